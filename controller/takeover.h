/* High availability: one turn of the etcd election, this manager's role
 * published, and a new leader's takeover of the group (the last leader's
 * target and unanswered launches, the provider's instances adopted). */
#ifndef ASG_CTL_TAKEOVER_H
#define ASG_CTL_TAKEOVER_H

#include "ctl.h"

/* Returns when the next turn is due. */
int64_t ctl_ha_turn(struct ctl *c);

#endif
