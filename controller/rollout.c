/* Rollouts, the controller's side (rollout.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "rollout.h"
#include "suspend.h"
#include "rollout_plan.h"

void rollout_config_settings(const struct asg_config *cfg, struct rollout_settings *s)
{
    memset(s, 0, sizeof *s);
    bool pct = false;
    /* Checked when the config was read; a default on the impossible. */
    if (rollout_amount_parse(cfg->rollout_max_surge, &s->surge, &pct) != 0)
        s->surge = 1, pct = false;
    s->surge_pct = pct;
    if (rollout_amount_parse(cfg->rollout_max_unavailable, &s->unavailable, &pct) != 0)
        s->unavailable = 0, pct = false;
    s->unavailable_pct = pct;
    s->bake_ms = cfg->rollout_bake_s * 1000;
    s->rollback = cfg->rollout_rollback;
}

/* Every step of a rollout is an event of its kind. */
#define note(c, level, ...) table_note((c)->t, EV_ROLLOUT, NULL, (level), __VA_ARGS__)

void ctl_launch_config(struct ctl *c)
{
    c->launch_cfg = c->cfg;
    const struct table_hdr *h = c->t->hdr;
    if (!h->spec_pinned)
        return;
    char err[160];
    size_t len = h->spec_cur.len < SPEC_KV_MAX ? h->spec_cur.len : SPEC_KV_MAX;
    if (launch_spec_apply(h->spec_cur.kv, len, h->spec_cur.digest, &c->launch_cfg, err, sizeof err) != 0) {
        /* A table another build wrote, or damaged: launches follow the config. */
        log_error("launch spec generation %llu kept in the table is unusable (%s): launching the config's",
                  (unsigned long long)h->spec_cur.gen, err);
        c->launch_cfg = c->cfg;
    }
}

bool ctl_spec_usable(const struct ctl *c, const struct spec_saved *s, char *why, size_t whysize)
{
    if (!s->gen || !s->len || s->len > SPEC_KV_MAX) {
        snprintf(why, whysize, "no earlier launch spec is kept whole to roll back to");
        return false;
    }
    struct asg_config *scratch = malloc(sizeof *scratch);
    if (!scratch)
        abort();
    *scratch = c->cfg;
    char err[160];
    bool ok = launch_spec_apply(s->kv, s->len, s->digest, scratch, err, sizeof err) == 0;
    free(scratch);
    if (!ok)
        snprintf(why, whysize, "the earlier launch spec kept (generation %llu) is unusable: %.100s",
                 (unsigned long long)s->gen, err);
    return ok;
}

/* The generation before to among the instances due (for status), or 0. */
static uint64_t replaced_gen(const struct table *t, uint64_t to)
{
    uint64_t best = 0;
    for (uint32_t i = 0; i < t->capacity; i++) {
        const struct table_row *r = &t->rows[i];
        if (r->state != ROW_FREE && r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT &&
            !spec_gen_same(t->hdr, r->spec_gen, to) && r->spec_gen > best)
            best = r->spec_gen;
    }
    return best;
}

static int count_due(const struct table *t, uint64_t to)
{
    int n = 0;
    for (uint32_t i = 0; i < t->capacity; i++) {
        const struct table_row *r = &t->rows[i];
        n += r->state != ROW_FREE && r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT &&
             !(r->flags & ROW_F_JOINED) &&
             !spec_gen_same(t->hdr, r->spec_gen, to);
    }
    return n;
}

static bool ongoing(uint32_t phase) { return phase == RO_RUNNING || phase == RO_PAUSED; }

/* A new rollout to the spec in force, with settings s (who: why it
 * started, for the log). */
static void start(struct ctl *c, const struct rollout_settings *s, const char *who, int64_t now)
{
    const struct table_hdr *h = c->t->hdr;
    struct rollout_state ro = {0};
    ro.phase = RO_RUNNING;
    ro.number = h->rollout.number + 1;
    ro.to_gen = h->spec.gen;
    ro.from_gen = replaced_gen(c->t, ro.to_gen);
    ro.set = *s;
    ro.total = ro.remaining = count_due(c->t, ro.to_gen);
    ro.started_ms = now;
    ro.started_wall_ms = wall_ms();
    snprintf(ro.reason, sizeof ro.reason, "started (%.60s)", who);
    int surge, unavail;
    rollout_amounts(s, h->ctl.target, &surge, &unavail);
    if (ro.total == 0) {
        ro.phase = RO_SUCCEEDED;
        ro.ended_wall_ms = ro.started_wall_ms;
        snprintf(ro.reason, sizeof ro.reason, "nothing to replace: every instance is of generation %llu",
                 (unsigned long long)ro.to_gen);
    }
    table_rollout(c->t, &ro);
    note(c, LOG_LVL_INFO, "rollout %llu %s (%.40s): %d instance(s) to generation %llu, surge %d%s, "
         "unavailable %d%s, canary %d, bake %d s", (unsigned long long)ro.number,
         ro.phase == RO_RUNNING ? "started" : "succeeded at once", who, ro.total, (unsigned long long)ro.to_gen,
         s->surge, s->surge_pct ? "%" : "", s->unavailable, s->unavailable_pct ? "%" : "", s->canary,
         s->bake_ms / 1000);
}

/* The spec before the one in force is put in force again (a rollback);
 * the config's spec is refused until the config changes. */
static void pin_previous(struct ctl *c)
{
    const struct table_hdr *h = c->t->hdr;
    struct spec_saved prev = h->spec_prev, cur = h->spec_cur;
    table_spec_in_force(c->t, &prev, &cur, true, cur.digest);
    ctl_launch_config(c);
}

/* Has the spec the config says become the one in force again? */
static void spec_changed(struct ctl *c, const struct launch_spec *cfgspec, int64_t now)
{
    const struct table_hdr *h = c->t->hdr;
    uint64_t last = h->spec_gen_last > h->spec.gen ? h->spec_gen_last : h->spec.gen;
    struct spec_saved cur = {.gen = h->spec.gen ? last + 1 : 1};
    memcpy(cur.digest, cfgspec->digest, SPEC_DIGEST_SIZE);
    cur.len = (uint32_t)launch_spec_save(cfgspec, cur.kv, sizeof cur.kv);
    const char *key = c->spec.n ? launch_spec_changed(&c->spec, cfgspec) : NULL;
    /* The spec replaced is kept whole when it is known whole. */
    struct spec_saved prev = h->spec_cur.gen == h->spec.gen ? h->spec_cur : (struct spec_saved){.gen = h->spec.gen};
    if (h->spec.gen && prev.gen == h->spec.gen)
        memcpy(prev.digest, h->spec.digest, SPEC_DIGEST_SIZE);
    bool first = h->spec.gen == 0;
    table_spec_in_force(c->t, &cur, &prev, false, NULL);
    if (first)
        table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO, "launch spec generation 1");
    else if (key)
        table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO, "launch spec generation %llu: %.60s changed",
                   (unsigned long long)cur.gen, key);
    else
        table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO,
                   "launch spec generation %llu: the config's spec differs from generation %llu's",
                   (unsigned long long)cur.gen, (unsigned long long)prev.gen);
    if (!cur.len)
        log_warn("launch spec generation %llu is too large to keep whole: no rollback to it",
                 (unsigned long long)cur.gen);
    struct rollout_state ro = h->rollout;
    if (ongoing(ro.phase)) {
        ro.to_gen = cur.gen;
        ro.rolling_back = 0;
        table_rollout(c->t, &ro);
        note(c, LOG_LVL_INFO, "rollout %llu now rolls out generation %llu", (unsigned long long)ro.number,
             (unsigned long long)cur.gen);
    } else if (c->cfg.rollout_auto && !first && suspend_holds_rollout(h->suspended)) {
        note(c, LOG_LVL_WARN, "rollout.auto: no rollout of generation %llu while processes it needs are "
             "suspended; asgctl rollout start once they are resumed", (unsigned long long)cur.gen);
    } else if (c->cfg.rollout_auto && !first) {
        struct rollout_settings s;
        rollout_config_settings(&c->cfg, &s);
        start(c, &s, "rollout.auto", now);
    }
}

void ctl_follow_spec(struct ctl *c, int64_t now)
{
    if (c->spec.n && c->spec_cfg_gen == c->cfg_gen)
        return;
    struct launch_spec cfgspec;
    launch_spec_of(&c->cfg, &cfgspec);
    const struct table_hdr *h = c->t->hdr;
    bool same = h->spec.gen && memcmp(h->spec.digest, cfgspec.digest, SPEC_DIGEST_SIZE) == 0;
    bool refused = h->spec_pinned && memcmp(h->spec_rejected, cfgspec.digest, SPEC_DIGEST_SIZE) == 0;
    if (refused) {
        /* Still the spec rolled back from: the earlier one stays. */
    } else if (same) {
        if (h->spec_pinned || h->spec_cur.gen != h->spec.gen || !h->spec_cur.len) {
            /* The config says the spec in force again (the operator
             * reverted it), or a table of before rollouts: kept whole. */
            struct spec_saved cur = {.gen = h->spec.gen};
            memcpy(cur.digest, cfgspec.digest, SPEC_DIGEST_SIZE);
            cur.len = (uint32_t)launch_spec_save(&cfgspec, cur.kv, sizeof cur.kv);
            if (h->spec_pinned)
                note(c, LOG_LVL_INFO, "the config's launch spec is generation %llu's again: it follows the "
                     "config", (unsigned long long)cur.gen);
            table_spec_in_force(c->t, &cur, NULL, false, NULL);
        }
    } else {
        spec_changed(c, &cfgspec, now);
    }
    c->spec = cfgspec;
    c->spec_cfg_gen = c->cfg_gen;
    ctl_launch_config(c);
}

void ctl_rollout_record(struct ctl *c, const struct plan *p, const struct rollout_state *seen, int64_t now)
{
    (void)now;
    if (!p->ro_changed && !p->ro_mark)
        return;
    if (memcmp(&c->t->hdr->rollout, seen, sizeof *seen) != 0) {
        log_debug("rollout decision not recorded: the rollout changed since the view");
        return;
    }
    if (p->ro_rollback)
        pin_previous(c);
    if (p->ro_mark)
        for (uint32_t i = 0; i < c->t->capacity; i++)
            if (c->t->rows[i].state == ROW_RUNNING)
                table_lb_mark(c->t, &c->t->rows[i]);
    struct rollout_state ro = p->ro;
    bool ended = ro.phase != RO_RUNNING && ro.phase != RO_PAUSED;
    if (ended && seen->phase == RO_RUNNING)
        ro.ended_wall_ms = wall_ms();
    table_rollout(c->t, &ro);
    if (p->ro_note[0])
        note(c, p->ro_level, "%s", p->ro_note);
}

static void refuse(struct ctl *c, const char *what, const char *why)
{
    table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN, "operator: rollout %s refused: %.120s", what, why);
}

/* The operator's settings over the config's. */
static void request_settings(const struct ctl *c, const struct ctl_request *rq, struct rollout_settings *s)
{
    rollout_config_settings(&c->cfg, s);
    const struct rollout_settings *o = &rq->set;
    if (rq->given & RS_SURGE)
        s->surge = o->surge, s->surge_pct = o->surge_pct;
    if (rq->given & RS_UNAVAILABLE)
        s->unavailable = o->unavailable, s->unavailable_pct = o->unavailable_pct;
    if (rq->given & RS_CANARY)
        s->canary = o->canary;
    if (rq->given & RS_CANARY_WEIGHT)
        s->canary_weight = o->canary_weight;
    if (rq->given & RS_BAKE)
        s->bake_ms = o->bake_ms;
    if (rq->given & RS_PAUSES) {
        s->npause = o->npause;
        memcpy(s->pause_at, o->pause_at, sizeof s->pause_at);
    }
}

static void roll_back(struct ctl *c, int64_t now)
{
    const struct table_hdr *h = c->t->hdr;
    struct rollout_state ro = h->rollout;
    if (ro.rolling_back && ongoing(ro.phase)) {
        refuse(c, "rollback", "a rollback is already under way");
        return;
    }
    char why[200];
    if (h->spec_pinned || !ctl_spec_usable(c, &h->spec_prev, why, sizeof why)) {
        refuse(c, "rollback", h->spec_pinned ? "the spec in force is already a rolled back one" : why);
        return;
    }
    if (ro.phase == RO_NONE || ro.phase == RO_SUCCEEDED || ro.phase == RO_ROLLED_BACK) {
        refuse(c, "rollback", "no rollout to roll back (after a success, change the config back)");
        return;
    }
    uint64_t from = h->spec.gen;
    pin_previous(c);
    ro.phase = RO_RUNNING;
    ro.rolling_back = 1;
    ro.from_gen = from;
    ro.to_gen = h->spec.gen;
    ro.started_ms = now;
    ro.total = ro.remaining = count_due(c->t, ro.to_gen);
    ro.replaced = 0;
    ro.canary_done = 1;
    ro.next_pause = ro.set.npause;
    ro.window_ms = 0;
    ro.ended_wall_ms = 0;
    snprintf(ro.reason, sizeof ro.reason, "rolling back: operator request");
    table_rollout(c->t, &ro);
    note(c, LOG_LVL_WARN, "rollout %llu: operator: rolling back to generation %llu (%d instance(s))",
         (unsigned long long)ro.number, (unsigned long long)ro.to_gen, ro.total);
}

void ctl_rollout_request(struct ctl *c, const struct ctl_request *rq, int64_t now)
{
    struct rollout_state ro = c->t->hdr->rollout;
    const char *name = rollout_phase_name(ro.phase);
    char why[120];
    switch ((enum rollout_action)rq->value) {
    case RA_START:
        if (ongoing(ro.phase)) {
            snprintf(why, sizeof why, "rollout %llu is %s: cancel it first", (unsigned long long)ro.number, name);
            refuse(c, "start", why);
            return;
        }
        if (suspend_holds_rollout(c->t->hdr->suspended)) {
            refuse(c, "start", "processes are suspended that a rollout needs (rollout, launch or terminate): "
                               "asgctl resume first");
            return;
        }
        struct rollout_settings s;
        request_settings(c, rq, &s);
        start(c, &s, "operator", now);
        return;
    case RA_PAUSE:
    case RA_RESUME:
    case RA_CANCEL: {
        static const char *const verbs[] = {[RA_PAUSE] = "pause", [RA_RESUME] = "resume", [RA_CANCEL] = "cancel"};
        bool ok = rq->value == RA_RESUME ? ro.phase == RO_PAUSED : ongoing(ro.phase);
        if (!ok || (rq->value == RA_PAUSE && ro.phase == RO_PAUSED)) {
            snprintf(why, sizeof why, "the rollout is %s", name);
            refuse(c, verbs[rq->value], why);
            return;
        }
        ro.phase = rq->value == RA_PAUSE ? RO_PAUSED : rq->value == RA_RESUME ? RO_RUNNING : RO_CANCELLED;
        snprintf(ro.reason, sizeof ro.reason, "operator: %s (%d replaced, %d left)",
                 rq->value == RA_PAUSE ? "paused" : rq->value == RA_RESUME ? "resumed" : "cancelled", ro.replaced,
                 ro.remaining);
        if (ro.phase == RO_CANCELLED)
            ro.ended_wall_ms = wall_ms();
        table_rollout(c->t, &ro);
        note(c, LOG_LVL_INFO, "rollout %llu %s", (unsigned long long)ro.number, ro.reason);
        return;
    }
    case RA_ROLLBACK:
        roll_back(c, now);
        return;
    case RA_COUNT:
        break;
    }
}
