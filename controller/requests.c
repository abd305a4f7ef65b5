/* Operators' requests from the status API (common/ctlsock.h): applied
 * under the lock by the controller, which alone decides, then carried out
 * like any decision. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ctlsock.h"
#include "../common/util.h"
#include "../shm/ops.h"
#include "calls.h"
#include "lifecycle.h"
#include "instance_ops.h"
#include "requests.h"
#include "rollout.h"
#include "rows.h"
#include "suspend.h"


/* Terminate with decrement, as AWS's ShouldDecrementDesiredCapacity: the
 * group shrinks with the instance instead of replacing it. The target goes
 * down by one, and the operator's desired size with it whenever desired
 * would otherwise hold the target up (the policy never goes below desired,
 * so lowering the target alone would launch a replacement). Never below
 * min: there the request is refused and nothing changes, rather than the
 * instance being silently replaced. Lock held. */
static void terminate_decrement(struct ctl *c, struct table_row *r, const struct asg_config *eff,
                                int target, int64_t now)
{
    int to = target - 1;
    if (to < eff->min_instances) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN,
                   "operator: terminate %s with decrement refused: the group's target %d is at its "
                   "minimum %d; terminate without decrement to replace it", r->id, target, eff->min_instances);
        return;
    }
    int desired = eff->desired_instances;
    int new_desired = desired > to ? to : 0; /* 0: desired stays as it is */
    table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
               "operator: terminate %s and decrement: target %d -> %d, desired %d -> %d", r->id, target, to,
               desired, new_desired ? new_desired : desired);
    ctl_mark_terminating(c, r, "operator request (decrement)", now);
    ctl_operator_target(c, target, to, new_desired, now);
}

static void apply_request(struct ctl *c, const struct ctl_request *rq, int64_t now)
{
    struct table_hdr *h = c->t->hdr;
    struct asg_config eff = ctl_effective_config(c);
    int target = h->ctl.target || h->ctl.at_zero ? h->ctl.target : eff.desired_instances;
    if (rq->kind == REQ_SET_DESIRED) {
        if (rq->value < eff.min_instances || rq->value > eff.max_instances) {
            table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN, "operator: desired %d refused: outside %d..%d",
                       rq->value, eff.min_instances, eff.max_instances);
            return;
        }
        ctl_operator_target(c, target, rq->value, rq->value, now);
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_INFO, "operator: desired %d (target %d -> %d)",
                   rq->value, target, rq->value);
    } else if (rq->kind == REQ_LAUNCH_ONE) {
        if (target >= eff.max_instances) {
            table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN, "operator: launch refused: group at max %d",
                       eff.max_instances);
            return;
        }
        ctl_operator_target(c, target, target + 1, 0, now);
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_INFO, "operator: launch one (target %d -> %d)",
                   target, target + 1);
    } else if (rq->kind == REQ_ROLLOUT) {
        ctl_rollout_request(c, rq, now);
    } else if (rq->kind == REQ_LIFECYCLE) {
        lifecycle_request(c, rq, now);
    } else if (rq->kind == REQ_SUSPEND) {
        ctl_suspend_request(c, rq);
    } else if (rq->kind == REQ_PROTECT || rq->kind == REQ_STANDBY) {
        ctl_instance_request(c, rq, &eff, target, now);
    } else if (rq->kind == REQ_TERMINATE) {
        struct table_row *r = table_find(c->t, rq->id);
        if (!r || r->state == ROW_TERMINATING || r->state == ROW_TERM_WAIT) {
            table_note(c->t, EV_OPERATOR, rq->id, LOG_LVL_WARN, "operator: terminate %s refused: %s",
                       rq->id, r ? "already terminating" : "no such instance");
            return;
        }
        if (r->flags & ROW_F_STANDBY) { /* not counted: nothing replaces it, no decrement is due */
            table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO, "operator: terminate %s (on standby: not "
                       "counted, so nothing is launched in its place)", r->id);
            ctl_mark_terminating(c, r, "operator request (on standby)", now);
            return;
        }
        if (rq->value == 1) {
            terminate_decrement(c, r, &eff, target, now);
            return;
        }
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO, "operator: terminate %s (it will be replaced)",
                   r->id);
        ctl_mark_terminating(c, r, "operator request", now);
    }
}

/* One well-formed operator request: -1 when the table's lock could not be
 * had (the request is dropped, as a busy table's would be). */
int ctl_carry_out_request(struct ctl *c, const struct ctl_request *rq)
{
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return -1;
    if (!ha_may_act(&c->ha, now_ms())) {
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN,
                   "operator: request refused: this manager is a standby; the leader is %.60s",
                   c->ha.leader[0] ? c->ha.leader : "not known");
        table_unlock(c->t);
        return 0;
    }
    apply_request(c, rq, now_ms());
    table_unlock(c->t);
    /* The operator's choice outlives this manager: into etcd now, not only
     * with the next provider calls. */
    if (c->ha.on && c->nops == 0)
        ctl_guard_batch(c);
    ctl_execute(c);
    c->eval_now = true;
    return 0;
}

/* Operator requests from the status API: applied under the lock, then
 * carried out like any decision. A standby refuses them: the leader's
 * status API is the one to ask. */
void ctl_handle_requests(struct ctl *c)
{
    struct ctl_request rq;
    char why[160];
    int rc;
    while (c->reqfd >= 0 && (rc = ctlsock_recv(c->reqfd, &rq, why, sizeof why)) != 0) {
        if (rc < 0) {
            log_warn("operator request ignored: %s", why);
            continue;
        }
        if (ctl_carry_out_request(c, &rq) != 0)
            return;
    }
}

