/* The table and the provider made to agree: nothing orphaned, nothing
 * forgotten. */
#ifndef ASG_CTL_RECONCILE_H
#define ASG_CTL_RECONCILE_H

#include "ctl.h"

/* Lists the provider's instances (without the lock), then, with it, drops
 * rows whose instance is gone and adopts instances without a row. */
void ctl_reconcile(struct ctl *c);

#endif
