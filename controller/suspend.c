/* Suspended processes: the operator's request recorded, and the gates
 * (suspend.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "ctl.h"
#include "rollout_plan.h"
#include "suspend.h"

void ctl_suspend_request(struct ctl *c, const struct ctl_request *rq)
{
    uint32_t now_mask = c->t->hdr->suspended;
    bool suspend = rq->value == 1;
    /* Only what changes is recorded: a second suspend keeps the first
     * one's who and when. */
    uint32_t change = suspend ? rq->given & ~now_mask : rq->given & now_mask;
    uint32_t same = rq->given & ~change;
    char names[128], unchanged[128];
    suspend_mask_text(change, names, sizeof names);
    suspend_mask_text(same, unchanged, sizeof unchanged);
    if (change)
        table_suspended(c->t, change, suspend, rq->id, wall_ms());
    if (change && same)
        table_note(c->t, EV_SUSPEND, NULL, LOG_LVL_WARN, "operator %.55s: %s %s (already %s: %s)", rq->id,
                   suspend ? "suspended" : "resumed", names, suspend ? "suspended" : "running", unchanged);
    else if (change)
        table_note(c->t, EV_SUSPEND, NULL, LOG_LVL_WARN, "operator %.55s: %s %s", rq->id,
                   suspend ? "suspended" : "resumed", names);
    else
        table_note(c->t, EV_SUSPEND, NULL, LOG_LVL_INFO, "operator %.55s: %s %s: already %s", rq->id,
                   suspend ? "suspend" : "resume", unchanged, suspend ? "suspended" : "running");
    c->eval_now = true;
}

void suspend_state_encode(struct strbuf *b, const struct table_hdr *h)
{
    sb_printf(b, ",\"suspended\":");
    suspend_json(b, h->suspended, h->suspend);
}

/* One entry of the list: false with why. */
static bool decode_entry(json_object *e, struct suspend_state *out, char *err, size_t errsize)
{
    json_object *p, *by, *since;
    if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "process", &p) ||
        !json_object_object_get_ex(e, "by", &by) || !json_object_object_get_ex(e, "since_ms", &since) ||
        !json_object_is_type(p, json_type_string) || !json_object_is_type(by, json_type_string) ||
        !json_object_is_type(since, json_type_int)) {
        snprintf(err, errsize, "suspended: an entry without a process, by and since_ms");
        return false;
    }
    uint32_t bit = suspend_bit_of(json_object_get_string(p));
    const char *who = json_object_get_string(by);
    int64_t ms = json_object_get_int64(since);
    if (!bit || !suspend_by_valid(who, strlen(who)) || ms < 0 || ms > 100000000000000LL) {
        snprintf(err, errsize, "suspended: an entry with an unknown process, a bad by or since_ms");
        return false;
    }
    uint32_t k = (uint32_t)__builtin_ctz(bit);
    out->mask |= bit;
    out->mark[k].since_wall_ms = ms;
    copy_str(out->mark[k].by, sizeof out->mark[k].by, who);
    return true;
}

int suspend_state_decode(json_object *state, struct suspend_state *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    json_object *list;
    if (!json_object_is_type(state, json_type_object) || !json_object_object_get_ex(state, "suspended", &list))
        return 0;
    if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) > SUSP_COUNT) {
        snprintf(err, errsize, "suspended: not a list of at most %d entries", SUSP_COUNT);
        return -1;
    }
    for (size_t i = 0; i < json_object_array_length(list); i++)
        if (!decode_entry(json_object_array_get_idx(list, i), out, err, errsize))
            return -1;
    out->present = true;
    return 0;
}

void ctl_suspend_take_over(struct ctl *c, json_object *state)
{
    struct suspend_state s;
    char err[160];
    if (suspend_state_decode(state, &s, err, sizeof err) != 0) {
        log_warn("ha: the last leader's suspended processes ignored: %s", err);
        return;
    }
    uint32_t mine = c->t->hdr->suspended & SUSP_ALL;
    if (!s.present || s.mask == mine)
        return;
    if (mine & ~s.mask)
        table_suspended(c->t, mine & ~s.mask, false, "", 0);
    for (uint32_t p = 0; p < SUSP_COUNT; p++)
        if (suspend_holds(s.mask & ~mine, p))
            table_suspended(c->t, SUSP_BIT(p), true, s.mark[p].by, s.mark[p].since_wall_ms);
    char names[128];
    suspend_mask_text(s.mask, names, sizeof names);
    table_note(c->t, EV_SUSPEND, NULL, LOG_LVL_WARN, "ha: the last leader's suspended processes taken over: %s",
               s.mask ? names : "none");
}

bool ctl_suspended(const struct ctl *c, enum suspend_process p)
{
    return suspend_holds(c->t->hdr->suspended, p);
}

void suspend_hold_decision(const struct asg_config *eff, struct ctl_state *st, struct decision *d)
{
    memset(d, 0, sizeof *d);
    int lo = eff->desired_instances > eff->min_instances ? eff->desired_instances : eff->min_instances;
    int hi = eff->max_instances;
    lo = lo > hi ? hi : lo;
    int before = st->target ? st->target : lo;
    d->target = before < lo ? lo : before > hi ? hi : before;
    d->change = d->target - before;
    if (d->change) {
        d->cause = CAUSE_BOUNDS;
        snprintf(d->reason, sizeof d->reason, "group bounds are now %d..%d (scaling suspended)", lo, hi);
    }
    /* No breach counted while suspended: resuming starts afresh. */
    st->breach_out = st->breach_in = 0;
    st->in_since_ms = 0;
    st->target = d->target;
}

/* The rollout as a held one sees it: running reads as paused. */
static struct plan_group held_view(const struct plan_group *g)
{
    struct plan_group h = *g;
    if (h.ro.phase == RO_RUNNING)
        h.ro.phase = RO_PAUSED;
    return h;
}

/* Back to the table's phase: the hold is the suspension's, not the
 * rollout's own pause. */
static void unhold(const struct plan_group *g, struct plan *p)
{
    if (g->ro.phase == RO_RUNNING && p->ro.phase == RO_PAUSED)
        p->ro.phase = RO_RUNNING;
    p->ro_changed = p->ro_changed && memcmp(&p->ro, &g->ro, sizeof p->ro) != 0;
}

void suspend_rollout_judge(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                           const struct plan_group *g, struct plan *p)
{
    if (!suspend_holds_rollout(g->suspended)) {
        rollout_judge(rows, n, cfg, g, p);
        return;
    }
    struct plan_group h = held_view(g);
    rollout_judge(rows, n, cfg, &h, p);
    unhold(g, p);
}

void suspend_rollout_step(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                          const struct plan_group *g, int target, struct plan *p)
{
    if (!suspend_holds_rollout(g->suspended)) {
        rollout_step(rows, n, cfg, g, target, p);
        return;
    }
    if (g->ro.phase != RO_RUNNING && g->ro.phase != RO_PAUSED)
        return; /* no rollout: instances past their lifetime wait too */
    struct plan_group h = held_view(g);
    rollout_step(rows, n, cfg, &h, target, p);
    unhold(g, p);
}
