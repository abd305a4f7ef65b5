/* asgctl rollout: the group's rollout seen in its table (status), and the
 * operator's commands to it sent to the status API (start, pause, resume,
 * rollback, cancel; api.h), whose outcome the controller records as an
 * event that asgctl waits for. */
#ifndef ASG_ASGCTL_ROLLOUT_H
#define ASG_ASGCTL_ROLLOUT_H

#include <stdbool.h>

#include "../common/config.h"
#include "../shm/snapshot.h"
#include "../shm/table.h"

/* asgctl rollout status [--json]: prints the rollout of snapshot s. */
void rollout_status_print(const struct snapshot *s, bool json);

/* asgctl rollout ACTION [options] (argv[0] is ACTION): sends it to the
 * manager cfg names; t, when not NULL, is its table, where the outcome is
 * awaited. 0 done, 1 the manager refused or did not answer, 2 bad
 * arguments (said on stderr). */
int rollout_command(const struct asg_config *cfg, const struct table *t, int argc, char **argv);

#endif
