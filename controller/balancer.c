/* The balancer's step: it follows the table (lb/follow.h plans and acts,
 * lb_table.h reads and records the rows). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "balancer.h"
#include "calls.h"
#include "lb_table.h"
#include "rows.h"
#include "suspend.h"

/* Whether the balancer counts its members' 5xx answers (HAProxy in http
 * mode; not in tcp mode, nor ELBv2, whose counts are in CloudWatch): the
 * rollout judges new instances by them only then. */
static bool counts_5xx(const struct lb_member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].has_errors)
            return true;
    return false;
}

/* Suspended by an operator: no call to the balancer. A stopping
 * manager's wait for it still ends, so that its instances are stopped. */
static bool held_by_suspension(struct ctl *c)
{
    if (!ctl_suspended(c, SUSP_BALANCER))
        return false;
    log_debug("balancer: suspended by an operator (asgctl resume balancer)");
    if (c->lb_wait_until && table_lock(c->t, TABLE_LOCK_RECORD_MS) == 0) {
        ctl_release_holds(c, now_ms());
        table_unlock(c->t);
        ctl_execute(c);
    }
    return true;
}

/* The balancer follows the table: list its members (without the lock),
 * plan (with it), act (without), record and release the instances it has
 * let go of (with it), then stop those. */
void ctl_lb_step(struct ctl *c, bool reconcile_now)
{
    struct lb_member *m = NULL;
    size_t n = 0;
    char err[256] = "";
    int64_t started = now_ms();
    c->last_lb = started;
    c->lb_now = false;
    if (held_by_suspension(c))
        return;
    if (reconcile_now)
        c->last_lb_reconcile = started;
    int rc = c->lb.ops->list(&c->lb, &m, &n, err, sizeof err);
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0) {
        free(m);
        return;
    }
    int64_t now = now_ms();
    bool drain_over = c->lb_wait_until && now >= c->lb_wait_until;
    if (rc == 0)
        lb_table_plan(c->t, &c->cfg, m, n, reconcile_now, drain_over, now, &c->plan);
    if (rc == 0 && n > 0)
        c->lb_counts_5xx = counts_5xx(m, n);
    /* The backend as a whole: the demand a group at zero sees (policy/zero.h). */
    if (rc == 0 && c->lb.demand.read_ms)
        table_lb_demand(c->t, &c->lb.demand);
    /* Weights at most every lb.interval_ms (the step runs more often while
     * instances wait for it), and none while the manager stops. */
    bool stopping = c->lb_wait_until || (c->lb.abort_flag && *c->lb.abort_flag);
    if (rc == 0 && c->lb.ops->set_weight && !stopping && now - c->last_lb_weights >= c->cfg.lb_interval_ms) {
        c->last_lb_weights = now;
        lb_table_weights(c->t, &c->cfg, m, n, now, &c->plan);
    }
    if (rc != 0 && (c->lb_up || c->t->hdr->lb_checked_ms == 0))
        table_note(c->t, EV_BALANCER, NULL, LOG_LVL_WARN,
                   "balancer %s unreachable: %.150s; instances stay until it can drain them",
                   c->lb.ops->name, err);
    else if (rc == 0 && !c->lb_up && c->t->hdr->lb_checked_ms != 0)
        table_note(c->t, EV_BALANCER, NULL, LOG_LVL_INFO, "balancer %s answers again (%zu members)",
                   c->lb.ops->name, n);
    c->lb_up = rc == 0;
    table_lb_health(c->t, c->lb_up, rc == 0 ? NULL : err, rc == 0 ? (int)n : -1, now);
    table_unlock(c->t);
    free(m);
    /* A refused task (an instance the balancer will not take yet) is said
     * and counted; the balancer is still up. */
    bool task_failed = c->plan.n && lb_run(&c->lb, &c->plan, err, sizeof err) > 0;
    if (table_lock(c->t, TABLE_LOCK_RECORD_MS) != 0)
        return;
    now = now_ms();
    if (task_failed)
        table_lb_health(c->t, c->lb_up, err, -1, now);
    lb_table_record(c->t, &c->plan, now);
    ctl_release_holds(c, now);
    table_unlock(c->t);
    ctl_execute(c);
}

/* When the next balancer step is due: soon while instances wait for it to
 * let them go. */
int64_t ctl_next_lb_step(const struct ctl *c)
{
    int every = c->cfg.lb_interval_ms;
    if (every > 200 && ctl_held_for_balancer(c))
        every = 200;
    return c->last_lb + every;
}

