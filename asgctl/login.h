/* asgctl dashboard: a one-time login link for the status role's
 * dashboard, asked of the running manager with its API token. */
#ifndef ASG_ASGCTL_LOGIN_H
#define ASG_ASGCTL_LOGIN_H

#include "../common/config.h"

/* Prints the link; 0, or an exit code (1: the manager said no or is not
 * there; 2: no token or no status.listen to use). */
int asgctl_dashboard(const struct asg_config *cfg);

#endif
