/* The status role, a process the supervisor forks when status.listen is
 * set: the dashboard, /metrics and the JSON API over HTTP (libmicrohttpd). */
#ifndef ASG_STATUS_H
#define ASG_STATUS_H

#include "../common/config.h"
#include "../shm/table.h"

/* rw is the supervisor's read-write mapping, traded at once for a
 * read-only one. Returns 0 when asked to stop, ASG_EXIT_FATAL when it
 * cannot listen. */
int status_main(struct table *rw, const struct asg_config *cfg);

#endif
