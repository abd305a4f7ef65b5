/* The balancer's step: list its members (without the lock), plan (with
 * it), act (without), record and release the instances it has let go of
 * (with it), then stop those. */
#ifndef ASG_CTL_BALANCER_H
#define ASG_CTL_BALANCER_H

#include "ctl.h"

/* reconcile_now: also remove members the group does not know (strays). */
void ctl_lb_step(struct ctl *c, bool reconcile_now);
/* When the next step is due: soon while instances wait for it. */
int64_t ctl_next_lb_step(const struct ctl *c);

#endif
