/* One evaluation of the group: a view of the table taken without the
 * lock, a plan decided from it by pure functions (plan.h), the plan
 * applied under the lock to rows that are still as the view saw them, and
 * the provider calls it queued made without the lock (calls.h). */
#ifndef ASG_CTL_EVALUATE_H
#define ASG_CTL_EVALUATE_H

#include "ctl.h"

void ctl_evaluate(struct ctl *c);
/* The monitor's facts (registrations waiting, deregistrations), decided
 * by the controller alone (admit.h) within the bounds in force. Lock held. */
void ctl_decide_facts(struct ctl *c, int64_t now);

#endif
