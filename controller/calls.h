/* The provider calls the controller queued under the lock (struct op):
 * made without it (they can take seconds), then what the provider answered
 * recorded with it again, only on rows that are still the same instance.
 * With ha.etcd each batch is guarded by a transaction that holds only
 * while this manager leads. */
#ifndef ASG_CTL_CALLS_H
#define ASG_CTL_CALLS_H

#include "ctl.h"

/* Carries out the ops queued under the lock (the lock not held). */
void ctl_execute(struct ctl *c);
/* Writes the group's state to etcd in the transaction that checks this
 * manager still leads: false when it does not. */
bool ctl_guard_batch(struct ctl *c);

#endif
