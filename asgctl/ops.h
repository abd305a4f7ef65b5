/* asgctl's operator actions on the group through the status API (api.h),
 * the same requests the dashboard makes, checked as the API checks them:
 *   desired N              the group's desired size (within min..max)
 *   launch                 one more instance (the target up by one)
 *   terminate ID [--decrement]
 *                          stop an instance: replaced, or with
 *                          --decrement the group shrinks with it
 *   suspend PROCESS...     hold processes (common/suspend.h; "all")
 *   resume [PROCESS...]    let them run again (none named: all)
 * The controller's word on each (carried out or refused) is awaited in
 * the table's events when the table is at hand. */
#ifndef ASG_ASGCTL_OPS_H
#define ASG_ASGCTL_OPS_H

#include <stdbool.h>

#include "../common/config.h"
#include "../shm/table.h"

/* Is verb one of the above? */
bool ops_verb(const char *verb);

/* asgctl VERB ARGS...: 0 done, 1 refused or no answer, 2 bad arguments
 * (said on stderr). cfg: the manager's (its status.listen and, for
 * desired, its bounds); t: its table, or NULL. */
int ops_command(const struct asg_config *cfg, const struct table *t, const char *verb, int argc, char **argv);

/* asgctl status: "suspended: launch (by X at T), ..." when any is. */
void suspend_status_print(const struct table_hdr *h);

#endif
