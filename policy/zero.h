/* Scale to zero and back: a pure function, like the policy itself.
 *
 * A group with group.min_instances = 0 (a request-rate group behind
 * HAProxy: common/config.c refuses it otherwise) goes to zero instances
 * once its balancer has seen no request for group.scale_to_zero_idle_s,
 * through the ordinary scale-in (each instance drained first). At zero,
 * the instances' own rates are gone; what is left is the balancer's count
 * of the backend as a whole (struct lb_demand): a request that reaches it
 * (held in its queue, or waiting for a server) moves the session counter
 * and is a current session there. Any such request wakes the group at
 * once, to max(min, 1) instances, cooldown or not: someone is waiting. */
#ifndef ASG_ZERO_H
#define ASG_ZERO_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/group.h"
#include "policy.h"

/* Whether the balancer's count is recent enough to be believed. */
bool zero_demand_fresh(const struct asg_config *cfg, const struct lb_demand *d, int64_t now);

/* After policy_decide: d and st as it left them (st->at_zero set while
 * the group is at zero, when a target of 0 is meant), z the state kept
 * between evaluations. Returns true when z changed (to be recorded). */
bool zero_decide(const struct asg_config *cfg, const struct lb_demand *demand, struct ctl_state *st,
                 struct zero_state *z, int64_t now, int64_t wall_now, struct decision *d);

#endif
