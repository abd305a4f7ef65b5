/* Lifecycle hooks (docs/lifecycle-hooks.md): the operator's command or
 * URL that an instance waits for on its way in (launching:wait, after it
 * registers, before it counts as running or joins the balancer) and on its
 * way out (terminating:wait, drained and out of the balancer, before the
 * provider stops it).
 *
 * The controller never waits for one: a command is forked in its own
 * process group with its stdin a pipe carrying the JSON, its output read
 * without blocking and logged a few lines a second; a URL is POSTed
 * through libcurl's multi interface; both are looked at once per turn of
 * the controller's loop. At most lifecycle.max_concurrent run at once; the
 * rest wait their turn in the table (the rows in a wait state that have no
 * run here), so that a restarted controller starts them again. A hook
 * ends by its answer (lifecycle_msg.h), by an operator's completion
 * (REQ_LIFECYCLE), or by its timeout (its process group killed, its
 * default applied). Every change is an EV_LIFECYCLE event. */
#ifndef ASG_LIFECYCLE_H
#define ASG_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/lifecycle_msg.h"

#define HOOK_RUNS_MAX 64
#define HOOK_REPLY_MAX 4096

struct ctl;
struct ctl_request;
struct table_row;

/* One hook being run for one row (slot, incarnation). */
struct hook_run {
    bool used;
    int kind;                    /* enum hook_kind */
    uint32_t slot;
    uint64_t incarnation;
    char id[64];
    pid_t pid;                   /* a command's; 0 when none or reaped */
    int outfd;                   /* its stdout and stderr, -1 once closed */
    bool exited;                 /* reaped: status holds its wait status */
    int status;
    bool orphan;                 /* its row moved on: only its reaping is left */
    void *easy;                  /* a URL's transfer (CURL *), NULL when none */
    void *headers;               /* struct curl_slist * */
    char *body;                  /* the JSON POSTed */
    bool http_done;
    bool http_ok;
    long http_code;
    char reply[HOOK_REPLY_MAX];
    size_t reply_len;
    bool reply_too_long;         /* its answer did not fit in reply: the transfer was cut */
    bool later;                  /* it answered "later": the operator's word or the timeout */
    int64_t started_ms, deadline_ms;
    char line[512];              /* output not yet ended by a newline */
    size_t line_len;
    struct hook_lines lines;
};

struct lifecycle {
    struct hook_run runs[HOOK_RUNS_MAX];
    void *multi;                 /* CURLM *, made on the first URL hook */
    bool off;                    /* the manager stops: no new hook, the waiting ones let go */
    int64_t next_look_ms;        /* no hook configured: when to look for waiting rows again */
};

/* The config of the hook of kind (enum hook_kind), and whether it has a
 * command or a URL (lifecycle_rows.c). */
const struct lifecycle_hook_config *lifecycle_hook_cfg(const struct ctl *c, int kind);
bool lifecycle_hook_set(const struct ctl *c, int kind);
/* The row flags a launch gets: ROW_F_HOOK_LAUNCH while a launching hook
 * is configured. */
uint32_t lifecycle_launch_flags(const struct ctl *c);
/* Lock held, before r is stopped: does its terminating hook run? Only for
 * an instance that ran (not one stopped on its way in: a launch
 * abandoned, a boot timeout), and not while the manager stops. */
bool lifecycle_on_stop(const struct ctl *c, const struct table_row *r);
/* Lock held: r, terminating and let go of by the balancer (or never in
 * it), waits for its terminating hook. */
void lifecycle_hold(struct ctl *c, struct table_row *r, int64_t now);
/* A turn of the controller: answers read, outcomes applied, timeouts
 * enforced, waiting rows' hooks started. Takes the lock itself. */
void lifecycle_step(struct ctl *c);
/* The longest the controller's loop may sleep while hooks run (ms), or -1
 * when none does. */
int lifecycle_wait_ms(const struct ctl *c);
/* A child the controller reaped: true when it was one of our hooks (its
 * outcome is applied at the next step). */
bool lifecycle_reaped(struct ctl *c, pid_t pid, int status);
/* Lock held: an operator's REQ_LIFECYCLE (complete continue/abandon,
 * heartbeat) on the instance rq names. */
void lifecycle_request(struct ctl *c, const struct ctl_request *rq, int64_t now);
/* Lock held, the manager stopping: no more hooks; every run killed and
 * each waiting instance let go on (terminating:wait -> terminating). */
void lifecycle_stop_all(struct ctl *c);
/* Why the program at path may not run as a hook (it, or a directory on
 * its way, is another user's or writable by others), or NULL with its
 * path, links resolved, in resolved (what is then run). */
const char *lifecycle_program_refused(const char *path, char *resolved, size_t rsize, char *why, size_t n);
/* Kills what still runs, frees the rest (the controller's exit). */
void lifecycle_free(struct ctl *c);

#endif
