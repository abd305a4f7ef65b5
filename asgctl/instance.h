/* asgctl protect ID on|off and asgctl standby ID enter [--decrement]|exit:
 * an operator's controls on one instance, sent to the status API
 * (POST /api/v1/instances/ID/protect and .../standby, api.h) with the
 * same checks as the API makes; the controller's outcome (an event on
 * that instance) is awaited in the table when there is one. */
#ifndef ASG_ASGCTL_INSTANCE_H
#define ASG_ASGCTL_INSTANCE_H

#include "../common/config.h"
#include "../shm/snapshot.h"

/* asgctl status's share: an instance's marks ("  [protected]",
 * "  [standby]"), and a line with the termination policy and the group's
 * protected and standby instances, a scale-in held by protection said. */
void instance_marks_print(const struct table_row *r);
void instance_controls_print(const struct snapshot *s);

/* verb: "protect" or "standby"; argv[0..argc): ID and its words. shm: the
 * manager's table (NULL: the outcome is not awaited). 0 done, 1 refused
 * or no answer, 2 bad arguments (said on stderr). */
int instance_command(const struct asg_config *cfg, const char *shm, const char *verb, int argc, char **argv);

#endif
