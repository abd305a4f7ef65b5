/* The steps a plan is made of (plan.h), for the planners that add them:
 * the evaluation's (plan.c) and the rollout's (rollout_plan.c). */
#include <string.h>

#include "../common/util.h"
#include "plan.h"

struct plan_step *plan_add_step(struct plan *p, enum plan_kind kind, const struct plan_row *r)
{
    p->steps = array_room(p->steps, p->n, &p->cap, sizeof *p->steps);
    struct plan_step *s = &p->steps[p->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->slot = r->slot;
    s->incarnation = r->incarnation;
    s->state = r->state;
    copy_str(s->id, sizeof s->id, r->id);
    return s;
}

bool plan_holds_for_balancer(bool lb_on, bool lb_up, uint32_t state, uint32_t lb_state)
{
    bool in_lb = lb_on && (lb_state == LBS_ADDED || lb_state == LBS_DRAINING);
    return in_lb && !(state == ROW_UNHEALTHY && !lb_up);
}

struct plan_step *plan_stop(struct plan *p, struct plan_row *r, const struct plan_group *g, const char *why)
{
    struct plan_step *s = plan_add_step(p, PLAN_STOP, r);
    s->hold = plan_holds_for_balancer(g->lb_on, g->lb_up, r->state, r->lb_state);
    copy_str(s->why, sizeof s->why, why);
    r->state = ROW_TERMINATING;
    r->lb_hold = s->hold;
    return s;
}
