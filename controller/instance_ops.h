/* Operators' controls on one instance (docs/instance-controls.md):
 * scale-in protection and standby, asked for through the status API or
 * asgctl (REQ_PROTECT, REQ_STANDBY in common/ctlsock.h) and decided here
 * by the controller, which alone writes a row's flags. What the flags do
 * is the planners' (controller/plan.c, rollout_plan.c) and the balancer
 * step's (lb/follow.c). */
#ifndef ASG_CTL_INSTANCE_OPS_H
#define ASG_CTL_INSTANCE_OPS_H

#include "ctl.h"

struct ctl_request;
/* A well-formed REQ_PROTECT or REQ_STANDBY, lock held: checked against
 * the instance's state and the bounds in force (eff; target: the live
 * target), applied or refused, either way an event saying so. */
void ctl_instance_request(struct ctl *c, const struct ctl_request *rq, const struct asg_config *eff, int target,
                          int64_t now);

#endif
