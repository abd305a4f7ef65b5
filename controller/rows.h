/* The controller's writes to rows, each through a named table operation,
 * with the lock held; and the provider calls they queue (struct op), made
 * later without the lock (calls.h). */
#ifndef ASG_CTL_ROWS_H
#define ASG_CTL_ROWS_H

#include "ctl.h"
#include "plan.h"

int ctl_kill_timeout(const struct ctl *c);
/* Queues a provider call about row r, remembering its slot and incarnation. */
void ctl_add_op(struct ctl *c, enum op_kind kind, const struct table_row *r);
/* The row of an op, if it is still the same instance. */
struct table_row *ctl_op_row(struct ctl *c, const struct op *o);
void ctl_row_free(struct ctl *c, struct table_row *r, const char *why);
/* Marks r terminating: held for the balancer to drain first (hold), or the
 * provider's terminate queued. The row stays until the provider says the
 * instance is gone, so nothing is forgotten while it shuts down. */
void ctl_stop_row(struct ctl *c, struct table_row *r, const char *why, bool hold, int64_t now);
/* ctl_stop_row, holding when the balancer has the instance. */
void ctl_mark_terminating(struct ctl *c, struct table_row *r, const char *why, int64_t now);
/* The balancer let r go (blind: without its word, why says why): the
 * provider may stop it now. */
void ctl_release_row(struct ctl *c, struct table_row *r, bool blind, const char *why, int64_t now);
/* A pending row for a new launch, its launch queued. */
void ctl_launch_row(struct ctl *c, const char *why, int64_t now);
/* One backoff step per evaluation: 0.5 s doubling to 64 s. */
void ctl_launch_backoff(struct ctl *c, int64_t now);
/* Terminating instances still waiting for the balancer to let them go. */
int ctl_held_for_balancer(const struct ctl *c);
/* The config as the policy sees it (sched_effective): the scheduled
 * entry's bounds and the operator's desired size applied. */
struct asg_config ctl_effective_config(const struct ctl *c);
/* A target raised to hold instances the group did not launch: like an
 * operator's choice, it starts a cooldown. */
void ctl_hold_target(struct ctl *c, int target);
/* Sets the live target for an operator's request (lock held), counted as
 * an operator's action; desired > 0 also records the operator's desired
 * size (controller/requests.c, instance_ops.c). */
void ctl_operator_target(struct ctl *c, int from, int to, int desired, int64_t now);
/* Row slot of t as the evaluation sees it. */
void ctl_plan_row(const struct ctl *c, const struct table_row *r, uint32_t slot, struct plan_row *out);
/* Terminating rows the balancer has let go of, released (lock held). */
void ctl_release_holds(struct ctl *c, int64_t now);

#endif
