/* asgctl lifecycle: an operator's word on an instance a lifecycle hook
 * holds (launching:wait, terminating:wait), sent to the status API
 * (api.h) as POST /api/v1/instances/ID/lifecycle; the controller's
 * outcome, an event, is awaited in the table when there is one. */
#ifndef ASG_ASGCTL_LIFECYCLE_H
#define ASG_ASGCTL_LIFECYCLE_H

#include "../common/config.h"
#include "../shm/table.h"

/* asgctl lifecycle complete ID continue|abandon, asgctl lifecycle
 * heartbeat ID (argv[0] is complete or heartbeat). t, when not NULL, is
 * the manager's table. 0 done, 1 refused or no answer, 2 bad arguments
 * (said on stderr). */
int lifecycle_command(const struct asg_config *cfg, const struct table *t, int argc, char **argv);

#endif
