/* sd_notify for asgd (see notify.h). libsystemd does the protocol (the
 * datagram to $NOTIFY_SOCKET, abstract or not); this file decides what to
 * say and when. */
#include "notify.h"

#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "../common/util.h"

void notify_init(struct notify *n, int64_t now)
{
    *n = (struct notify){0};
    n->since_ms = now;
    const char *sock = getenv("NOTIFY_SOCKET");
    n->on = sock && sock[0];
    uint64_t usec = 0;
    /* Half the period systemd allows, as sd_watchdog_enabled(3) advises:
     * a late wake-up of a busy machine still arrives in time. */
    if (n->on && sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        n->watchdog_ms = (int64_t)(usec / 2000);
        n->next_watchdog = now;
    }
}

void notify_forget_in_child(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

bool notify_roles_up(const struct table_hdr *h, pid_t monitor, pid_t controller, bool ha, int64_t since_ms)
{
    if (monitor <= 0 || controller <= 0 || h->pid_monitor != monitor || h->pid_controller != controller)
        return false;
    bool monitor_up = h->monitor_addr[0] && h->probe_rounds > 0 && h->last_probe_round_ms >= since_ms;
    bool controller_up = ha || (h->evaluations > 0 && h->last_eval_ms >= since_ms);
    return monitor_up && controller_up;
}

static void say(const struct notify *n, const char *what, const char *status)
{
    if (!n->on)
        return;
    int rc = sd_notifyf(0, "%s\nSTATUS=%s", what, status);
    if (rc < 0)
        log_warn("sd_notify %s: error %d", what, -rc);
}

void notify_ready(struct notify *n, const char *status)
{
    if (n->ready)
        return;
    n->ready = true;
    say(n, "READY=1", status);
    if (n->on)
        log_info("told the service manager: ready (%s)", status);
}

void notify_stopping(struct notify *n, const char *status)
{
    say(n, "STOPPING=1", status);
}

int64_t notify_watchdog(struct notify *n, int64_t now)
{
    if (!n->watchdog_ms)
        return INT64_MAX;
    if (now >= n->next_watchdog) {
        int rc = sd_notify(0, "WATCHDOG=1");
        if (rc < 0)
            log_warn("sd_notify WATCHDOG=1: error %d", -rc);
        n->next_watchdog = now + n->watchdog_ms;
    }
    return n->next_watchdog;
}
