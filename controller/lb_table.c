/* The balancer step's table side (see lb_table.h). */
#include "lb_table.h"
#include "../common/util.h"
#include "../shm/ops.h"
#include "weights.h"

#include <stdlib.h>
#include <string.h>

static void counted(void *ctx, const struct lb_instance *in, const struct lb_member *m, int64_t now)
{
    struct table *t = ctx;
    struct table_row *r = table_row_at(t, in->slot, in->incarnation);
    if (!r)
        return;
    table_lb_counted(t, r, m->requests, m->sessions, now);
    if (m->has_errors)
        table_lb_5xx(t, r, m->errors);
}

static bool state(void *ctx, uint32_t slot, uint64_t incarnation, uint32_t lb_state, int64_t now)
{
    struct table *t = ctx;
    struct table_row *r = table_row_at(t, slot, incarnation);
    if (r)
        table_lb_state(t, r, lb_state, now);
    return r != NULL;
}

static void note(void *ctx, const char *instance, int level, const char *msg)
{
    table_note(ctx, EV_BALANCER, instance, level, "%s", msg);
}

/* A weight set: recorded, and said in the event log when it moved by much
 * (weights from load move a little with every sample: the log at debug
 * level has those). */
static void weighted(void *ctx, const struct lb_task *k, int64_t now)
{
    (void)now;
    struct table *t = ctx;
    struct table_row *r = table_row_at(t, k->slot, k->incarnation);
    if (!r)
        return;
    table_lb_weight(t, r, k->weight);
    if (weight_change_noted(k->from, k->weight))
        table_note(t, EV_BALANCER, k->name, LOG_LVL_INFO, "balancer: weight of %s %u -> %u", k->name,
                   (unsigned)k->from, (unsigned)k->weight);
    else
        log_debug("balancer: weight of %s %u -> %u", k->name, (unsigned)k->from, (unsigned)k->weight);
}

static struct lb_recorder recorder(struct table *t)
{
    return (struct lb_recorder){t, counted, state, note, weighted};
}

static void view(const struct table *t, uint32_t slot, struct lb_instance *out)
{
    const struct table_row *r = &t->rows[slot];
    memset(out, 0, sizeof *out);
    out->slot = slot;
    out->incarnation = r->incarnation;
    out->state = r->state;
    copy_str(out->id, sizeof out->id, r->id);
    copy_str(out->addr, sizeof out->addr, r->addr);
    copy_str(out->service_addr, sizeof out->service_addr, r->service_addr);
    out->lb_state = r->lb_state;
    out->lb_since_ms = r->lb_since_ms;
    out->standby = r->flags & ROW_F_STANDBY;
}

void lb_table_plan(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                   bool strays, bool drain_over, int64_t now, struct lb_plan *p)
{
    struct lb_instance *in = calloc(t->capacity ? t->capacity : 1, sizeof *in);
    if (!in)
        abort();
    size_t n = 0;
    for (uint32_t i = 0; i < t->capacity; i++)
        if (t->rows[i].state != ROW_FREE)
            view(t, i, &in[n++]);
    struct lb_recorder rec = recorder(t);
    lb_plan_step(cfg, in, n, m, nm, strays, drain_over, now, &rec, p);
    free(in);
}

void lb_table_record(struct table *t, struct lb_plan *p, int64_t now)
{
    struct lb_recorder rec = recorder(t);
    lb_record(p, &rec, now);
}

static const struct lb_member *member_named(const struct lb_member *m, size_t nm, const char *name)
{
    for (size_t i = 0; i < nm; i++)
        if (strcmp(m[i].name, name) == 0)
            return &m[i];
    return NULL;
}

/* A row as the weight rules see it; false when its member has no weight
 * to set (not listed, or the balancer says no weight). */
static bool weight_view(const struct table *t, const struct asg_config *cfg, uint32_t slot,
                        const struct lb_member *mm, int64_t now, struct weight_member *w)
{
    const struct table_row *r = &t->rows[slot];
    memset(w, 0, sizeof *w);
    if (!mm || !mm->has_weight)
        return false;
    w->serving = r->state == ROW_RUNNING && r->lb_state == LBS_ADDED && mm->admin == LBM_READY;
    w->is_new = r->spec_gen != 0 && r->spec_gen == t->hdr->rollout.to_gen;
    /* Three probes' time: a sample older than that is of an instance the
     * monitor no longer hears. */
    w->fresh = r->has_sample && r->last_seen_ms && now - r->last_seen_ms <= 3 * (int64_t)cfg->probe_interval_ms;
    w->load = r->load;
    w->current = mm->weight;
    return true;
}

void lb_table_weights(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                      int64_t now, struct lb_plan *p)
{
    size_t cap = t->capacity ? t->capacity : 1, n = 0;
    struct weight_member *w = calloc(cap, sizeof *w);
    uint32_t *slot = calloc(cap, sizeof *slot), *want = calloc(cap, sizeof *want);
    const struct lb_member **mm = calloc(cap, sizeof *mm);
    if (!w || !slot || !want || !mm)
        abort();
    for (uint32_t i = 0; i < t->capacity; i++) {
        if (t->rows[i].state == ROW_FREE)
            continue;
        mm[n] = member_named(m, nm, t->rows[i].id);
        if (weight_view(t, cfg, i, mm[n], now, &w[n]))
            slot[n++] = i;
    }
    int rule = weights_decide(w, n, cfg->lb_weight_by_load, weight_canary_share(&t->hdr->rollout), want);
    for (size_t k = 0; k < n; k++) {
        if (!w[k].serving || !weight_worth_setting(rule, w[k].current, want[k]))
            continue;
        struct lb_instance in;
        view(t, slot[k], &in);
        lb_plan_weight(p, &in, mm[k]->addr, w[k].current, want[k]);
    }
    free(w);
    free(slot);
    free(want);
    free(mm);
}
