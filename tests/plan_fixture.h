/* The planners' Check units (check_plan.c, check_rollout.c, check_ops.c,
 * check_suspend.c): an evaluation's view of a group made by hand, with no
 * table, as controller/evaluate.c would copy it. */
#ifndef ASG_TESTS_PLAN_FIXTURE_H
#define ASG_TESTS_PLAN_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "../controller/plan.h"

/* A view with no rows yet: the manager knows its instances, the launch
 * backoff is over, no scheduled entry is in force; p empty. */
static inline void plan_fixture_view(struct plan_group *g, struct plan *p, int64_t now, int free_rows)
{
    memset(g, 0, sizeof *g);
    g->now = now;
    g->backoff_over = g->manager_known = true;
    g->free_rows = free_rows;
    g->sched_active = -1;
    memset(p, 0, sizeof *p);
}

/* Row n of a view ("web-N+1"), in state, launched at launch_ms; a running
 * one has run (and been ready) since a second after, and was last seen
 * 100 ms before now with this load. */
static inline struct plan_row *plan_fixture_row(struct plan_row *r, size_t n, uint32_t state, int64_t launch_ms,
                                                double load, int64_t now)
{
    memset(r, 0, sizeof *r);
    r->slot = (uint32_t)n;
    r->incarnation = 7 + n;
    r->state = r->pol.state = state;
    r->launch_ms = launch_ms;
    snprintf(r->id, sizeof r->id, "web-%zu", n + 1);
    if (state == ROW_RUNNING) {
        r->pol.running_since_ms = r->state_since_ms = r->ready_since_ms = launch_ms + 1000;
        r->pol.has_sample = true;
        r->pol.load = load;
        r->pol.last_seen_ms = now - 100;
    }
    return r;
}

#endif
