/* The history role, a process the supervisor forks when history.enabled
 * (docs/history.md): the one writer of the history's SQLite database. It
 * records every event of the table's ring, the activities they make
 * (history/activity.h), and a sample of the group every
 * history.sample_interval_s; it prunes what is older than
 * history.retention_days. It never takes the table lock and nobody waits
 * on it: a database it cannot write (a full disk, a corrupt file, a
 * read-only directory) is reported (the header's history state, an event,
 * the log) and tried again later, while the group is managed as before. */
#ifndef ASG_HISTORY_H
#define ASG_HISTORY_H

#include "../common/config.h"
#include "../shm/table.h"

/* Returns 0 when asked to stop. */
int history_main(struct table *t, const struct asg_config *cfg);

#endif
