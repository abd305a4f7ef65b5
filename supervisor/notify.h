/* What asgd tells its service manager (systemd's sd_notify protocol, for
 * a unit of Type=notify): READY=1 once its roles are up, STOPPING=1 when
 * it drains, WATCHDOG=1 from its main loop. Without $NOTIFY_SOCKET (not
 * started by systemd) every call does nothing. */
#ifndef ASG_SUPERVISOR_NOTIFY_H
#define ASG_SUPERVISOR_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shm/table.h"

struct notify {
    bool on;                 /* $NOTIFY_SOCKET was set at start */
    bool ready;              /* READY=1 sent */
    int64_t since_ms;        /* the supervisor's start (now_ms) */
    int64_t watchdog_ms;     /* how often to send WATCHDOG=1; 0: never */
    int64_t next_watchdog;   /* now_ms of the next one */
};

/* At the start of the supervisor, before any role is forked. */
void notify_init(struct notify *n, int64_t now);

/* In a forked role: the service manager hears from the supervisor alone. */
void notify_forget_in_child(void);

/* True when the roles of a supervisor started at since_ms are up, as the
 * table's header shows them: the monitor (pid monitor) has bound its
 * listener and completed a probe round, and the controller (pid
 * controller) has made its first evaluation; with ha.etcd (ha) a standby
 * evaluates nothing, so there its process running is enough. */
bool notify_roles_up(const struct table_hdr *h, pid_t monitor, pid_t controller, bool ha, int64_t since_ms);

/* READY=1 with a STATUS= line, once. */
void notify_ready(struct notify *n, const char *status);

/* STOPPING=1 with a STATUS= line. */
void notify_stopping(struct notify *n, const char *status);

/* WATCHDOG=1 when one is due; returns when the next is due (INT64_MAX:
 * no watchdog). */
int64_t notify_watchdog(struct notify *n, int64_t now);

#endif
