/* Operator requests to the controller (from the status role's API): fixed
 * size datagrams on an unnamed socket pair that the supervisor makes before
 * it forks any role. Having no name, it cannot be bound first, connected to
 * or sent to by any other process (a named or abstract socket could be
 * squatted by another uid). The receiver still checks the length, the
 * fields' ranges and the sender's uid. */
#ifndef ASG_CTLSOCK_H
#define ASG_CTLSOCK_H

#include <stddef.h>
#include <stdint.h>

#define CTL_REQ_MAGIC 0x41534752u /* "ASGR" */

#include "group.h"

enum ctl_req_kind { REQ_SET_DESIRED = 1, REQ_LAUNCH_ONE = 2, REQ_TERMINATE = 3, REQ_ROLLOUT = 4,
                    REQ_PROTECT = 5, REQ_STANDBY = 6, REQ_SUSPEND = 7, REQ_LIFECYCLE = 8 };

/* REQ_PROTECT's value: 1 on, 0 off. REQ_STANDBY's: what to do. */
enum standby_action { SB_EXIT = 0, SB_ENTER = 1, SB_ENTER_DECREMENT = 2 };

/* REQ_ROLLOUT: what to do with the group's rollout (value). */
enum rollout_action { RA_START = 1, RA_PAUSE, RA_RESUME, RA_ROLLBACK, RA_CANCEL, RA_COUNT };

/* RA_START: which settings the operator gave (the rest are the config's). */
#define RS_SURGE 1u
#define RS_UNAVAILABLE 2u
#define RS_CANARY 4u
#define RS_BAKE 8u
#define RS_PAUSES 16u
#define RS_CANARY_WEIGHT 32u

struct ctl_request {
    uint32_t magic;
    uint32_t kind;
    int32_t value;          /* REQ_SET_DESIRED: the size; REQ_TERMINATE: 1 = decrement;
                             * REQ_ROLLOUT: enum rollout_action; REQ_PROTECT: 1 on, 0 off;
                             * REQ_STANDBY: enum standby_action;
                             * REQ_LIFECYCLE: 1 continue, 2 abandon, 3 heartbeat;
                             * REQ_SUSPEND: 1 suspend, 0 resume */
    uint32_t given;         /* RA_START: RS_*; REQ_SUSPEND: the processes (SUSP_BIT mask) */
    char id[64];            /* REQ_TERMINATE, REQ_PROTECT, REQ_STANDBY, REQ_LIFECYCLE: the instance;
                             * REQ_SUSPEND: who asks */
    struct rollout_settings set; /* RA_START */
};

/* Settings in range (ctlsock_recv's check, and the status API's): NULL, or
 * what is wrong. */
const char *rollout_settings_invalid(const struct rollout_settings *s);

/* An operator's words for a rollout's settings (asgctl rollout start, the
 * status API), read the same way by both so that a bad one is named before
 * anything is sent. A share of requests, "P%" or "P" (--canary-weight): 0,
 * or -1 unless a whole 0..100. */
int rollout_percent_parse(const char *s, int *pct);
/* Checkpoints, "P%[,P%...]" (--pause-at): at most ROLLOUT_PAUSES whole
 * percentages within 1..99, ascending, into s->pause_at and s->npause;
 * 0, or -1 with why. */
int rollout_pauses_parse(const char *list, struct rollout_settings *s, char *why, size_t whysize);

/* In the supervisor, once, before forking roles: 0, or -1 with errno. Both
 * ends stay open in the supervisor, so requests queued while the controller
 * restarts wait for the next one. */
int ctlsock_pair_open(void);
/* In the controller: its receiving end (non-blocking), or -1 when the
 * supervisor made no pair. */
int ctlsock_receiver(void);
/* Reads one request; 1 when one was read and is well-formed, 0 when none
 * is waiting, -1 for a malformed one (why says how). */
int ctlsock_recv(int fd, struct ctl_request *req, char *why, size_t whysize);
/* In the status role: sends one request without blocking; 0, or -1 (no
 * pair, or the controller has not read the last ones yet). */
int ctlsock_send(const struct ctl_request *req);

#endif
