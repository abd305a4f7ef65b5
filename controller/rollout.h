/* Rollouts, the controller's side: the launch spec in force followed from
 * the config (kept whole in the table, with the one before it, so that a
 * rollback can launch it again), operators' rollout requests, and the
 * rollout planner's decisions (rollout_plan.h) recorded. Lock held for
 * all of them. */
#ifndef ASG_CTL_ROLLOUT_H
#define ASG_CTL_ROLLOUT_H

#include "../common/ctlsock.h"
#include "ctl.h"
#include "plan.h"

/* The launch spec in force, worked out once per config generation
 * (before any launch): when the config's differs from the one in force
 * (a reload changed it, or this controller restarted on another
 * config), its generation moves on, logged with the first key that
 * changed; a rollout running follows it, and rollout.auto starts one.
 * After a rollback the previous spec stays in force until the config says
 * something other than the spec rolled back from. */
void ctl_follow_spec(struct ctl *c, int64_t now);

/* c->launch_cfg: the config launches are made with (the config, with the
 * spec in force when a rollback pinned an earlier one). */
void ctl_launch_config(struct ctl *c);

/* Can spec s be launched (kept whole, and launch_spec_apply takes it on
 * the config)? Else why: a rollback to it would launch the config's. */
bool ctl_spec_usable(const struct ctl *c, const struct spec_saved *s, char *why, size_t whysize);

/* The settings the config gives rollouts (rollout.*). */
void rollout_config_settings(const struct asg_config *cfg, struct rollout_settings *s);

/* An evaluation's rollout decisions (p), made on a view whose rollout
 * was seen: recorded only if the table's is still that one. */
void ctl_rollout_record(struct ctl *c, const struct plan *p, const struct rollout_state *seen, int64_t now);

/* An operator's REQ_ROLLOUT. */
void ctl_rollout_request(struct ctl *c, const struct ctl_request *rq, int64_t now);

#endif
