/* High availability: one turn of the etcd election, this manager's role
 * published, and a new leader's takeover of the group (the last leader's
 * target and unanswered launches, the provider's instances adopted). */
#ifndef ASG_CTL_TAKEOVER_H
#define ASG_CTL_TAKEOVER_H

#include "ctl.h"

/* A row adopted after the takeover: the generation of ours its instance
 * was launched from, if the last leader's state named it. */
void ctl_ha_spec_of_adopted(struct ctl *c, struct table_row *r);

/* Returns when the next turn is due. */
int64_t ctl_ha_turn(struct ctl *c);

#endif
