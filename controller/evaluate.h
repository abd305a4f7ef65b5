/* One evaluation of the group: a view of the table taken without the
 * lock, a plan decided from it by pure functions (plan.h), the plan
 * applied under the lock to rows that are still as the view saw them, and
 * the provider calls it queued made without the lock (calls.h). */
#ifndef ASG_CTL_EVALUATE_H
#define ASG_CTL_EVALUATE_H

#include "ctl.h"

void ctl_evaluate(struct ctl *c);

#endif
