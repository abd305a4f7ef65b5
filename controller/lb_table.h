/* The balancer step's table side (lb/follow.h plans and acts; this
 * records): the rows as the step's instances, and a recorder that writes
 * what it found and did into the rows and the event log. Both with the
 * table lock held. */
#ifndef ASG_LB_TABLE_H
#define ASG_LB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../lb/follow.h"
#include "../shm/table.h"

/* lb_plan_step over every used row of t. */
void lb_table_plan(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                   bool strays, bool drain_over, int64_t now, struct lb_plan *p);
/* Adds to p the weights to set (weights.h) where they differ from the
 * listed members' (m, nm): only for a balancer that has weights. */
void lb_table_weights(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                      int64_t now, struct lb_plan *p);
/* lb_record into the rows the tasks were planned for. */
void lb_table_record(struct table *t, struct lb_plan *p, int64_t now);

#endif
