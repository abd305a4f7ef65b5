/* Suspended processes (AWS's SuspendProcesses): the group's own actions
 * an operator can stop and start again, by name. The controller alone
 * records which are suspended (a mask in the table's header, with who
 * and when for each, controller/suspend.h); every reader names them the
 * same way through these. */
#ifndef ASG_SUSPEND_H
#define ASG_SUSPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum suspend_process {
    SUSP_LAUNCH,    /* no launch calls: scale-out and replacements wait */
    SUSP_TERMINATE, /* no termination the group decides: scale-in and removals wait */
    SUSP_REPLACE,   /* unhealthy instances are not replaced (ReplaceUnhealthy) */
    SUSP_SCALE,     /* the policy does not move the target on load */
    SUSP_RECONCILE, /* no adoption or clean-up against the provider's listing */
    SUSP_BALANCER,  /* no balancer calls */
    SUSP_ROLLOUT,   /* a running rollout holds as if paused; none starts */
    SUSP_COUNT
};

#define SUSP_BIT(p) (1u << (p))
#define SUSP_ALL ((1u << SUSP_COUNT) - 1u)

/* Who suspended a process, as the request named them: at most this long. */
#define SUSPEND_BY_MAX 56

/* A suspension's record in the table's header (one per process). */
struct suspend_mark {
    int64_t since_wall_ms;       /* Unix ms; 0 while it runs */
    char by[SUSPEND_BY_MAX];     /* who suspended it, "" while it runs */
};

struct strbuf;
/* The suspended processes of mask as a JSON array: [{"process": "launch",
 * "by": "...", "since_ms": N}, ...] (the status JSON, and the leader's
 * state in etcd). */
void suspend_json(struct strbuf *b, uint32_t mask, const struct suspend_mark marks[]);

/* "launch", ... for p < SUSP_COUNT, else "?". */
const char *suspend_process_name(uint32_t p);

/* Is process p suspended in mask? */
static inline bool suspend_holds(uint32_t mask, enum suspend_process p) { return (mask & SUSP_BIT(p)) != 0; }

/* Does mask hold rollouts? A rollout replaces: it cannot without launch
 * and terminate, and rollout holds it by name (controller/suspend.h). */
static inline bool suspend_holds_rollout(uint32_t mask)
{
    return (mask & (SUSP_BIT(SUSP_ROLLOUT) | SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_TERMINATE))) != 0;
}

/* One name into its bit: 0 unknown. */
uint32_t suspend_bit_of(const char *name);

/* The names of mask, ", "-joined, into out ("" for none). */
void suspend_mask_text(uint32_t mask, char *out, size_t size);

/* Who asked, as an operator's tool or the API says it: printable ASCII
 * without quotes or backslashes, 1..SUSPEND_BY_MAX-1 bytes (it is shown
 * in status, events and JSON). */
bool suspend_by_valid(const char *by, size_t len);

#endif
