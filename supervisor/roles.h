/* Entry points of the role processes the supervisor forks. Each gets the
 * table (already mapped, read-write) and the config current at fork time,
 * and returns its exit code: 0 when asked to stop, ASG_EXIT_FATAL when it
 * must not be restarted. */
#ifndef ASG_ROLES_H
#define ASG_ROLES_H

#include <stdint.h>

#include "../common/config.h"
#include "../shm/table.h"

int monitor_main(struct table *t, const struct asg_config *cfg);
int controller_main(struct table *t, const struct asg_config *cfg);
int status_main(struct table *t, const struct asg_config *cfg);

/* Copies the published config when its generation moved past *gen;
 * returns true when it did. */
bool role_config_refresh(struct table *t, struct asg_config *cfg, uint64_t *gen);

/* Test-only fault point: with ASG_FAULT=ROLE:lock-kill:N in the
 * environment, that role kills itself (SIGKILL) on its Nth locked section,
 * holding the table lock and in the middle of a row write. Does nothing
 * otherwise; the supervisor drops the variable for restarted roles. */
void fault_point_locked(const char *role, struct table *t);

#endif
