/* The balancer's member weights (weights.h): pure functions. */
#include "weights.h"

#include <math.h>

static uint32_t clamp_weight(double w)
{
    if (!(w >= 1.0)) /* NaN too */
        return 1;
    if (w >= LB_WEIGHT_MAX)
        return LB_WEIGHT_MAX;
    return (uint32_t)lround(w);
}

int weight_canary_share(const struct rollout_state *ro)
{
    const struct rollout_settings *s = &ro->set;
    if (s->canary <= 0 || s->canary_weight <= 0 || ro->rolling_back)
        return 0;
    if (ro->phase != RO_RUNNING && ro->phase != RO_PAUSED)
        return 0;
    /* Replacing the canary (an operator's pause included), or paused
     * where the canary ended; a resume ends the canary's weights. */
    bool canarying = !ro->canary_done || (ro->phase == RO_PAUSED && ro->replaced <= s->canary);
    if (!canarying)
        return 0;
    return s->canary_weight < 100 ? s->canary_weight : 99;
}

uint32_t weight_of_load(double load)
{
    return clamp_weight(WEIGHT_LOAD_SCALE * (1.05 - load));
}

void weight_canary(int pct, int n_old, int n_new, uint32_t *w_new, uint32_t *w_old)
{
    *w_new = *w_old = LB_WEIGHT_BASE;
    if (pct <= 0 || pct >= 100 || n_old <= 0 || n_new <= 0)
        return;
    double want = (double)pct * n_old * LB_WEIGHT_BASE / ((double)(100 - pct) * n_new);
    if (want <= LB_WEIGHT_MAX) {
        *w_new = clamp_weight(want);
        return;
    }
    /* The new ones at the most: the old ones come down instead. */
    *w_new = LB_WEIGHT_MAX;
    *w_old = clamp_weight((double)(100 - pct) * n_new * LB_WEIGHT_MAX / ((double)pct * n_old));
}

int weights_decide(const struct weight_member *m, size_t n, bool by_load, int canary_pct, uint32_t *out)
{
    int n_old = 0, n_new = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i].serving) {
            n_new += m[i].is_new;
            n_old += !m[i].is_new;
        }
    uint32_t w_new = LB_WEIGHT_BASE, w_old = LB_WEIGHT_BASE;
    int rule = by_load ? WR_LOAD : WR_BASE;
    /* A canary alone, or without a canary yet in rotation, has no share
     * to take from anyone. */
    if (canary_pct > 0 && n_new > 0 && n_old > 0) {
        weight_canary(canary_pct, n_old, n_new, &w_new, &w_old);
        rule = WR_CANARY;
    }
    for (size_t i = 0; i < n; i++) {
        const struct weight_member *w = &m[i];
        if (!w->serving)
            out[i] = w->current;
        else if (rule == WR_CANARY)
            out[i] = w->is_new ? w_new : w_old;
        else if (rule == WR_LOAD && w->fresh)
            out[i] = weight_of_load(w->load);
        else
            out[i] = LB_WEIGHT_BASE;
    }
    return rule;
}

bool weight_worth_setting(int rule, uint32_t from, uint32_t to)
{
    if (from == to)
        return false;
    if (rule != WR_LOAD || to == LB_WEIGHT_BASE)
        return true;
    uint32_t moved = from > to ? from - to : to - from;
    return moved >= WEIGHT_DEADBAND;
}

bool weight_change_noted(uint32_t from, uint32_t to)
{
    uint32_t lo = from < to ? from : to, hi = from < to ? to : from;
    return hi >= 2 * lo;
}
