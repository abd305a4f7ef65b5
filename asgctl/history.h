/* asgctl history: the group's activities, read from its history database
 * (report/histq.h) read-only, as the manager's user. */
#ifndef ASG_ASGCTL_HISTORY_H
#define ASG_ASGCTL_HISTORY_H

#include "../common/config.h"

/* argv: [-n N] [--since T] [--json]. 0 shown, 1 the database cannot be
 * read, 2 bad arguments (said on stderr). */
int history_command(const struct asg_config *cfg, const char *shm, int argc, char **argv);

#endif
