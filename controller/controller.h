/* ControllerASG, a role process the supervisor forks: keeps the group
 * between its bounds and sized to its load through a provider, replaces
 * unhealthy instances, carries out operators' requests. */
#ifndef ASG_CONTROLLER_H
#define ASG_CONTROLLER_H

#include "../common/config.h"
#include "../shm/table.h"

/* t is mapped read-write, cfg is the config at fork time. Returns 0 when
 * asked to stop, ASG_EXIT_FATAL when it cannot run with this config. */
int controller_main(struct table *t, const struct asg_config *cfg);

#endif
