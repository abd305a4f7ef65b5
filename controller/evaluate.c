/* Every policy.evaluation_interval_ms: snapshot -> decide -> apply.
 *
 * The view is a copy of the header and the used rows read without the
 * lock (each under its sequence counter), so the decision, however long
 * the policy takes, holds nobody up. The plan is then applied under the
 * lock: the rollout's decisions recorded first (a rollback puts an
 * earlier launch spec in force for the launches), each step on its row only while the row
 * is as the step was decided on (slot, incarnation and state), the
 * launches into rows made now, and the policy's state written back. The
 * provider calls the plan queued are made after the lock is released. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "admit.h"
#include "calls.h"
#include "evaluate.h"
#include "plan.h"
#include "rollout.h"
#include "rows.h"

_Static_assert(SPEC_DIGEST_SIZE == LAUNCH_SPEC_DIGEST, "the table keeps the launch spec's digest");

/* The view the plan is decided on. */
struct view {
    struct table_hdr hdr;
    struct plan_row *rows;
    size_t n;
    int free_rows;
    int unread;                  /* rows in use the view could not read */
};

/* The scheduled entry in force, worked out once a minute (and after a
 * reload); *fresh tells whether it was worked out now (to be recorded). */
static struct sched_state schedule_in_force(const struct ctl *c, int64_t *minute, bool *fresh)
{
    int64_t wall = wall_ms() / 1000;
    *minute = wall / 60;
    *fresh = *minute != c->sched_minute || c->sched_gen != c->cfg_gen;
    if (!*fresh)
        return c->sched;
    return c->cfg.nschedule ? sched_at(&c->cfg, wall) : (struct sched_state){-1, 0, -1, 0};
}

/* A change of the scheduled entry is logged and published. Lock held. */
static void record_schedule(struct ctl *c, struct sched_state s, int64_t minute)
{
    c->sched_minute = minute;
    c->sched_gen = c->cfg_gen;
    bool changed = s.active != c->sched.active || s.since != c->sched.since;
    if (changed && s.active >= 0) {
        const struct schedule_entry *e = &c->cfg.schedule[s.active];
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO,
                   "schedule: entry %d (%.40s) in force: min %d, max %d, desired %d", s.active + 1, e->at,
                   e->min, e->max, e->desired);
    } else if (changed && c->sched.active >= 0) {
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO, "schedule: no entry in force: the config's bounds");
    }
    if (changed || s.next != c->sched.next || s.next_at != c->sched.next_at)
        table_schedule(c->t, s.active, s.since, s.next, s.next_at);
    c->sched = s;
}

/* The header and every used row, copied without the lock. A row a dead
 * writer left torn (or a writer starved past the lock's wait is still in)
 * is left out of the view (the lock's recovery repairs it), but counted:
 * it is an instance all the same. */
static int take_view(const struct ctl *c, struct view *v)
{
    memset(v, 0, sizeof *v);
    if (!table_read_hdr(c->t, &v->hdr))
        return -1;
    v->rows = calloc(c->t->capacity ? c->t->capacity : 1, sizeof *v->rows);
    if (!v->rows)
        abort();
    struct table_row *r = malloc(sizeof *r);
    if (!r)
        abort();
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        if (!table_slot_used(c->t, i))
            v->free_rows++; /* only the controller makes rows: none appears while it decides */
        else if (!table_read_row(c->t, i, r))
            v->unread++;
        else if (r->state != ROW_FREE)
            ctl_plan_row(c, r, i, &v->rows[v->n++]);
    }
    /* An instance of an earlier generation of the very spec in force (a
     * config reverted) is of the spec in force: no rollout replaces it. */
    for (size_t k = 0; k < v->n; k++)
        if (spec_gen_same(&v->hdr, v->rows[k].spec_gen, v->hdr.spec.gen))
            v->rows[k].spec_gen = v->hdr.spec.gen;
    free(r);
    return 0;
}

static void group_facts(const struct ctl *c, const struct view *v, int sched_active, int64_t now,
                        struct plan_group *g)
{
    memset(g, 0, sizeof *g);
    g->now = now;
    g->lb_on = c->lb.ops != NULL;
    g->lb_up = c->lb_up;
    g->lb_wait_until = c->lb_wait_until;
    g->backoff_over = now >= c->launch_not_before;
    g->manager_known = c->prov.manager_addr[0] != '\0';
    g->draining = v->hdr.draining != 0;
    /* An instance the view could not read is not counted in the group's
     * size: no launch this round, or one might be launched in its place
     * (past the maximum). The next evaluation sees it. */
    g->free_rows = v->unread ? 0 : v->free_rows;
    if (v->unread)
        log_debug("%d row(s) could not be read for this evaluation: no launch until they can", v->unread);
    g->launch_failures = c->launch_failures;
    g->last_failure_ms = c->last_failure_ms;
    g->failing_since_ms = c->failing_since_ms;
    g->sched_active = sched_active;
    g->st = v->hdr.ctl;
    g->spec_gen = v->hdr.spec.gen;
    /* A rollback launches the spec before: only one kept whole, and
     * usable (looked at only while a rollout runs: it may fail then). */
    char why[200];
    bool may = v->hdr.rollout.phase == RO_RUNNING && !v->hdr.spec_pinned;
    g->prev_gen = may && ctl_spec_usable(c, &v->hdr.spec_prev, why, sizeof why) ? v->hdr.spec_prev.gen : 0;
    g->lb_counts_5xx = g->lb_on && c->lb_counts_5xx;
    g->ro = v->hdr.rollout;
    g->suspended = v->hdr.suspended & SUSP_ALL;
    g->demand = v->hdr.lb_demand;
    g->zero = v->hdr.zero;
    g->wall_now = wall_ms();
}

/* Is row r still as step s was decided on? */
static bool step_holds(const struct plan_step *s, const struct table_row *r)
{
    switch (s->kind) {
    case PLAN_STOP:
        return r->state == s->state;
    case PLAN_ASK_AGAIN:
        return r->state == ROW_PENDING && (r->flags & ROW_F_UNCONFIRMED);
    case PLAN_CHECK_GONE:
        return r->state == ROW_TERMINATING && !(r->flags & ROW_F_LB_HOLD);
    case PLAN_RELEASE:
        return r->state == ROW_TERMINATING && (r->flags & ROW_F_LB_HOLD);
    case PLAN_JOINED:
        return (r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT) == s->counted &&
               r->joined_counted != s->counted;
    }
    return false;
}

/* One step, lock held. False when its row moved on since the view. */
static bool apply_step(struct ctl *c, const struct plan_step *s, int64_t now)
{
    struct table_row *r = table_row_at(c->t, s->slot, s->incarnation);
    if (!r || !step_holds(s, r)) {
        log_debug("plan step on %s not applied: the row changed since the view", s->id);
        return false;
    }
    switch (s->kind) {
    case PLAN_STOP:
        ctl_stop_row(c, r, s->why, s->hold, now);
        if (s->replaced)
            table_count_replaced(c->t);
        break;
    case PLAN_ASK_AGAIN: /* same id, same token: no second instance */
        ctl_add_op(c, OP_LAUNCH, r);
        break;
    case PLAN_CHECK_GONE:
        ctl_add_op(c, OP_CHECK_GONE, r);
        break;
    case PLAN_RELEASE:
        ctl_release_row(c, r, s->blind, s->why, now);
        break;
    case PLAN_JOINED:
        table_joined_counted(c->t, r, s->counted);
        log_info("instance %s %s on its own: target %d -> %d", r->id,
                 s->counted ? "joined the group" : "left the group", s->from, s->to);
        break;
    }
    return true;
}

/* The plan's row steps, then its launches; the policy's state after them.
 * A joined instance's step not applied takes its share of the target back,
 * so that the next evaluation counts it once. Lock held. */
static void apply_plan(struct ctl *c, const struct plan *p, const struct rollout_state *seen,
                       struct ctl_state *st, int64_t now)
{
    /* First: a rollback puts the earlier spec in force for the launches below. */
    ctl_rollout_record(c, p, seen, now);
    for (size_t i = 0; i < p->n; i++)
        if (!apply_step(c, &p->steps[i], now) && p->steps[i].kind == PLAN_JOINED)
            st->target -= p->steps[i].to - p->steps[i].from;
    if (p->boot_timeout)
        ctl_launch_backoff(c, now);
    if (p->slots_short)
        log_debug("waiting for %d table slot(s) to free up", p->slots_short);
    for (int k = 0; k < p->launches; k++)
        ctl_launch_row(c, p->launch_why, now);
    if (p->lb_now)
        c->lb_now = true;
    if (p->launches_work)
        c->launch_failures = 0;
    if (p->waiting && !c->replacements_paced)
        log_warn("replacements paced: %d unhealthy instance(s) wait their turn (a tenth of the group is "
                 "replaced at a time); they are still probed and rejoin if they answer", p->waiting);
    c->replacements_paced = p->waiting > 0;
    if (p->held)
        log_debug("%d launch(es) or stop(s) held by suspended processes", p->held);
    if (p->held_protected && p->held_protected != c->held_protected)
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_WARN,
                   "scale in held: %d instance(s) above the target, every candidate is protected "
                   "(asgctl protect ID off lets the scale-in go on)", p->held_protected);
    c->held_protected = p->held_protected;
}

/* The policy's decision recorded: logged, counted, its state written. */
static void record_decision(struct ctl *c, const struct plan *p, const struct ctl_state *st,
                            const struct asg_config *eff, int64_t now)
{
    const struct decision *d = &p->d;
    table_bounds(c->t, &(struct group_bounds){eff->min_instances, eff->max_instances, eff->desired_instances, 0});
    if (d->change) {
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO, "scale %s: target %d -> %d: %.100s",
                   d->change > 0 ? "out" : "in", d->target - d->change, d->target, d->reason);
        atomic_fetch_add(&c->t->hdr->actions[d->change > 0 ? 0 : 1][d->cause], 1);
    }
    table_evaluated(c->t, st, d->change, now);
    if (p->zero_changed)
        table_zero(c->t, &p->zero);
}

void ctl_decide_facts(struct ctl *c, int64_t now)
{
    int64_t minute;
    bool fresh;
    struct sched_state s = schedule_in_force(c, &minute, &fresh);
    if (fresh)
        record_schedule(c, s, minute);
    struct asg_config eff = ctl_effective_config(c);
    admit_facts(c->t, &eff, &c->admit_limit, now + ctl_kill_timeout(c), now);
}

void ctl_evaluate(struct ctl *c)
{
    int64_t now = now_ms();
    /* The monitor's facts first: the view then holds the instances just
     * admitted and the deregistered ones stopping. Deciding them also
     * records the schedule entry in force (c->sched), which the plan uses. */
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    ctl_decide_facts(c, now);
    ctl_follow_spec(c, now);
    table_unlock(c->t);
    struct sched_state sched = c->sched;
    struct view v;
    if (take_view(c, &v) != 0)
        return;
    struct asg_config eff;
    sched_effective(&c->cfg, sched.active, v.hdr.operator_desired, &eff);
    struct plan_group g;
    group_facts(c, &v, sched.active, now, &g);
    struct plan p = {0};
    plan_evaluation(v.rows, v.n, &c->cfg, &eff, &g, &p);
    free(v.rows);
    if (c->between)
        c->between(c->between_arg);
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) == 0) {
        table_fault_point("controller", c->t);
        c->failed_this_round = false;
        struct ctl_state st = p.st;
        apply_plan(c, &p, &g.ro, &st, now);
        record_decision(c, &p, &st, &eff, now);
        table_unlock(c->t);
        /* A rollout's change without a provider call (a pause, its end)
         * goes to etcd now: a new leader must not resume past a pause. */
        if (c->ha.on && c->nops == 0 && p.ro_changed)
            ctl_guard_batch(c);
        ctl_execute(c);
    }
    plan_free(&p);
}
