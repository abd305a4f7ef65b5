/* Operators' controls on one instance (docs/instance-controls.md):
 * scale-in protection and standby, asked for through the status API or
 * asgctl (REQ_PROTECT, REQ_STANDBY in common/ctlsock.h) and decided here
 * by the controller, which alone writes a row's flags. What the flags do
 * is the planners' (controller/plan.c, rollout_plan.c) and the balancer
 * step's (lb/follow.c). */
#ifndef ASG_CTL_INSTANCE_OPS_H
#define ASG_CTL_INSTANCE_OPS_H

#include <json-c/json.h>

#include "../common/strbuf.h"
#include "ctl.h"

struct ctl_request;
/* A well-formed REQ_PROTECT or REQ_STANDBY, lock held: checked against
 * the instance's state and the bounds in force (eff; target: the live
 * target), applied or refused, either way an event saying so. */
void ctl_instance_request(struct ctl *c, const struct ctl_request *rq, const struct asg_config *eff, int target,
                          int64_t now);

/* ha.etcd: the flags outlive the leader. Appends
 * ,"instance_flags":{"ID":FLAGS,...} (the live rows protected or on
 * standby) to the group's state b, as long as b stays under max bytes. */
void ctl_instance_flags_state(const struct ctl *c, struct strbuf *b, size_t max);
/* A new leader reads them from the last leader's state (a JSON object):
 * its rows take exactly those flags, and instances adopted later take
 * theirs (ctl_instance_flags_of_adopted). A bad entry is an error naming
 * it, and the flags are left as they are. Lock held. */
void ctl_instance_flags_learn(struct ctl *c, json_object *state);
void ctl_instance_flags_of_adopted(struct ctl *c, struct table_row *r);

#endif
