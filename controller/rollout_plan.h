/* A rollout's decisions, by pure functions over the evaluation's view
 * (plan.h): which old instances are due, whether the new ones prove
 * healthy, which old ones may go now, how many new ones to launch beyond
 * the target, and when the rollout pauses, fails, rolls back or ends.
 *
 * The rules, each evaluation (T: the policy's target; surge and
 * unavailable: the settings, percentages of T):
 *   - an instance is due when it is of another spec generation than the
 *     one rolled out to (unknown counts as another), or older than
 *     group.max_instance_lifetime_s; instances that joined on their own
 *     are never due (the group cannot launch them again);
 *   - a new instance is proven once it has been running, and in the
 *     balancer when it serves there, for the bake time; until then it is
 *     unproven, and at most max(surge, unavailable, 1) are at once, so no
 *     more bad instances than that ever take traffic;
 *   - an old running instance is stopped only while the healthy ones
 *     (old running and new proven) stay at least T - unavailable, and
 *     at most T + surge instances live at once;
 *   - a new instance of this rollout that never comes up within the boot
 *     timeout (or launches failing in a row since it began, for longer
 *     than the boot timeout), falls unhealthy before it is proven, or
 *     whose share of 5xx answers at the balancer over the bake window
 *     exceeds the old ones' by rollout.error_margin fails the rollout:
 *     then, when it may, it
 *     rolls back (the previous spec in force again, the new instances
 *     replaced the same way), else it stops;
 *   - a canary (replace N, pause) and checkpoints (pause at P% replaced)
 *     pause once nothing is unproven; resuming goes on.
 * Without a rollout running, instances past their lifetime are replaced
 * by the same rules (surge 1, unavailable 0), without a failure to judge.
 *
 * Nothing here reads a table, a clock or a provider: tests/check_rollout.c
 * drives it with views it makes. */
#ifndef ASG_ROLLOUT_PLAN_H
#define ASG_ROLLOUT_PLAN_H

#include "plan.h"

/* Marks each row due or unproven against the rollout in force (or the
 * lifetime), and judges the new ones: a failure is recorded in p (its
 * phase changes), before the sweep replaces an unhealthy one. */
void rollout_judge(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g,
                   struct plan *p);

/* After the policy: the rollout's stops and surge for target, its
 * progress, pauses and end. */
void rollout_step(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g,
                  int target, struct plan *p);

/* The surge and unavailable counts of settings s at target (a percentage
 * rounded up for surge, down for unavailable; both 0 means a surge of 1). */
void rollout_amounts(const struct rollout_settings *s, int target, int *surge, int *unavailable);

/* The phase's name as operators see it ("running", ...): defined in
 * shm/table.c beside the other state names, for every reader of the table. */
const char *rollout_phase_name(uint32_t phase);

#endif
