/* The controller's writes to rows (lock held): each a named operation of
 * shm/ops.c, logged there or here through table_note. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "controller.h"
#include "lifecycle.h"
#include "rows.h"

_Static_assert(TABLE_ID_MAX == PROVIDER_ID_MAX && TABLE_ADDR_MAX == PROVIDER_ADDR_MAX &&
                   sizeof(((struct table_row *)0)->launch_token) == PROVIDER_TOKEN_MAX &&
                   sizeof(((struct table_row *)0)->reason) == sizeof(((struct provider_handle *)0)->reason),
               "a row's id, address, token and reason fit a provider handle exactly");
_Static_assert(sizeof(((struct table_row *)0)->reason) == sizeof(((struct plan_row *)0)->reason) &&
                   TABLE_ID_MAX == sizeof(((struct plan_row *)0)->id),
               "a row's id and reason fit the evaluation's view of it");

int ctl_kill_timeout(const struct ctl *c) { return provider_kill_timeout_ms(&c->cfg); }

void controller_handle_of_row(const struct table_row *r, struct provider_handle *h)
{
    memset(h, 0, sizeof *h);
    copy_str(h->id, sizeof h->id, r->id);
    copy_str(h->addr, sizeof h->addr, r->addr);
    copy_str(h->token, sizeof h->token, r->launch_token);
    copy_str(h->reason, sizeof h->reason, r->reason);
    h->launch_ms = r->launch_ms;
    h->pid = r->pid;
    h->pid_start = r->pid_start;
    if (r->flags & ROW_F_JOINED)
        h->flags |= PROVIDER_H_JOINED;
    if (r->state == ROW_TERMINATING)
        h->flags |= PROVIDER_H_STOPPING;
    if ((r->state == ROW_RUNNING || r->state == ROW_PENDING || r->state == ROW_LAUNCH_WAIT) && r->last_seen_ms > 0)
        h->flags |= PROVIDER_H_ANSWERING;
}

void ctl_add_op(struct ctl *c, enum op_kind kind, const struct table_row *r)
{
    c->ops = array_room(c->ops, c->nops, &c->capops, sizeof *c->ops);
    struct op *o = &c->ops[c->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->slot = (uint32_t)(r - c->t->rows);
    o->incarnation = r->incarnation;
    o->row = *r;
}

struct table_row *ctl_op_row(struct ctl *c, const struct op *o)
{
    return table_row_at(c->t, o->slot, o->incarnation);
}

void ctl_row_free(struct ctl *c, struct table_row *r, const char *why)
{
    table_note(c->t, EV_TERMINATE, r->id, LOG_LVL_INFO, "instance %s removed from the group: %.100s",
               r->id, why);
    table_gone(c->t, r);
}

void ctl_stop_row(struct ctl *c, struct table_row *r, const char *why, bool hold, int64_t now)
{
    table_note(c->t, EV_TERMINATE, r->id, LOG_LVL_INFO, "terminating %s (%s): %.110s", r->id,
               row_state_name(r->state), why);
    bool hook = lifecycle_on_stop(c, r); /* decided on the state it had */
    if (!table_stopping(c->t, r, why, now + ctl_kill_timeout(c)))
        return;
    if (hook)
        table_hook_due(c->t, r);
    if (hold) { /* drained and removed first (the balancer step), stopped after (released) */
        table_lb_hold(c->t, r, true);
        c->lb_now = true;
    } else if (hook) { /* never in the balancer: its terminating hook at once */
        lifecycle_hold(c, r, now);
    } else {
        ctl_add_op(c, OP_TERMINATE, r);
    }
}

void ctl_mark_terminating(struct ctl *c, struct table_row *r, const char *why, int64_t now)
{
    ctl_stop_row(c, r, why, plan_holds_for_balancer(c->lb.ops != NULL, c->lb_up, r->state, r->lb_state), now);
}

void ctl_release_row(struct ctl *c, struct table_row *r, bool blind, const char *why, int64_t now)
{
    if (blind)
        table_note(c->t, EV_BALANCER, r->id, LOG_LVL_WARN, "stopping %s without the balancer's word: %s", r->id,
                   why);
    table_lb_hold(c->t, r, false);
    if ((r->flags & ROW_F_HOOK_TERM) && !c->hooks.off) { /* out of the balancer: now its terminating hook */
        lifecycle_hold(c, r, now);
        return;
    }
    table_stop_deadline(c->t, r, now + ctl_kill_timeout(c));
    ctl_add_op(c, OP_TERMINATE, r);
}

void ctl_launch_row(struct ctl *c, const char *why, int64_t now)
{
    char id[TABLE_ID_MAX], token[72];
    uint64_t n = table_next_instance_number(c->t);
    snprintf(id, sizeof id, "%s-%llu", c->cfg.group_name, (unsigned long long)n);
    provider_launch_token(&c->prov, id, token, sizeof token);
    /* The row exists before the instance does: if we die in between, the
     * reconciliation ties the instance to it (by id or launch token). */
    struct table_row *r = table_row_launch(c->t, id, why, ROW_F_UNCONFIRMED | lifecycle_launch_flags(c), token,
                                           c->t->hdr->spec.gen, now);
    if (!r) { /* the plan counts free slots first; a full table here means the monitor took one */
        log_error("cannot launch: the shared table is full (%u rows)", c->t->capacity);
        ctl_launch_backoff(c, now);
        return;
    }
    ctl_add_op(c, OP_LAUNCH, r);
}

void ctl_launch_backoff(struct ctl *c, int64_t now)
{
    if (c->failed_this_round)
        return;
    c->failed_this_round = true;
    if (c->launch_failures == 0)
        c->failing_since_ms = now;
    c->launch_failures++;
    c->last_failure_ms = now;
    int shift = c->launch_failures > 7 ? 7 : c->launch_failures - 1;
    int delay = 500 << shift; /* 0.5 s doubling to 64 s */
    c->launch_not_before = now + delay;
    log_warn("launch failures in a row: %d; next launch in %d ms", c->launch_failures, delay);
}

int ctl_held_for_balancer(const struct ctl *c)
{
    int held = 0;
    for (uint32_t i = 0; i < c->t->capacity; i++)
        held += c->t->rows[i].state == ROW_TERMINATING && (c->t->rows[i].flags & ROW_F_LB_HOLD);
    return held;
}

struct asg_config ctl_effective_config(const struct ctl *c)
{
    struct asg_config eff;
    sched_effective(&c->cfg, c->sched.active, c->t->hdr->operator_desired, &eff);
    return eff;
}

void ctl_hold_target(struct ctl *c, int target)
{
    table_operator_target(c->t, target, 0, now_ms());
}

void ctl_operator_target(struct ctl *c, int from, int to, int desired, int64_t now)
{
    table_operator_target(c->t, to, desired, now);
    if (to != from)
        atomic_fetch_add(&c->t->hdr->actions[to > from ? 0 : 1][CAUSE_OPERATOR], 1);
}

void ctl_plan_row(const struct ctl *c, const struct table_row *r, uint32_t slot, struct plan_row *out)
{
    memset(out, 0, sizeof *out);
    out->slot = slot;
    out->incarnation = r->incarnation;
    out->state = r->state;
    out->unconfirmed = r->flags & ROW_F_UNCONFIRMED;
    out->joined = r->flags & ROW_F_JOINED;
    out->joined_counted = r->joined_counted;
    out->lb_hold = r->flags & ROW_F_LB_HOLD;
    out->lb_state = r->lb_state;
    out->launch_ms = r->launch_ms;
    out->lb_since_ms = r->lb_since_ms;
    copy_str(out->id, sizeof out->id, r->id);
    copy_str(out->reason, sizeof out->reason, r->reason);
    out->pol = (struct policy_instance){r->state, r->misses, r->has_sample, r->load, r->last_seen_ms,
                                        r->running_since_ms, r->req_rate, r->req_rate_ms, r->svc_rate,
                                        r->svc_rate_ms};
    out->spec_gen = r->spec_gen;
    out->state_since_ms = r->state_since_ms;
    out->lb_requests = r->lb_requests;
    out->lb_5xx = r->lb_5xx;
    out->lb_req_mark = r->lb_req_mark;
    out->lb_5xx_mark = r->lb_5xx_mark;
    out->protect = r->flags & ROW_F_PROTECTED;
    out->standby = r->flags & ROW_F_STANDBY;
    out->lb_sessions = r->lb_sessions;
    bool serves_there = false;
    if (c->lb.ops && r->state == ROW_RUNNING) {
        char member[TABLE_ADDR_MAX];
        lb_member_addr(&c->cfg, r->id, r->addr, r->service_addr, member, sizeof member);
        serves_there = member[0] != '\0';
        out->balancer_takes = serves_there && r->lb_state == LBS_NONE;
    }
    /* Proven healthy (a rollout's bake) counts from when it last became
     * running and, if the balancer should have it, took it in. */
    if (r->state == ROW_RUNNING && (!serves_there || r->lb_state == LBS_ADDED))
        out->ready_since_ms = serves_there && r->lb_since_ms > r->state_since_ms ? r->lb_since_ms
                                                                                  : r->state_since_ms;
}

void ctl_release_holds(struct ctl *c, int64_t now)
{
    struct plan_group g = {.now = now, .lb_on = c->lb.ops != NULL, .lb_up = c->lb_up,
                           .lb_wait_until = c->lb_wait_until};
    struct plan p = {0};
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state != ROW_TERMINATING || !(r->flags & ROW_F_LB_HOLD))
            continue;
        struct plan_row v;
        ctl_plan_row(c, r, i, &v);
        plan_releases(&v, 1, &g, c->cfg.lb_drain_timeout_ms, &p);
    }
    for (size_t k = 0; k < p.n; k++) {
        struct table_row *r = table_row_at(c->t, p.steps[k].slot, p.steps[k].incarnation);
        if (r)
            ctl_release_row(c, r, p.steps[k].blind, p.steps[k].why, now);
    }
    plan_free(&p);
}
