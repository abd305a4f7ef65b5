/* Lifecycle hooks, the parts that decide without doing: what a hook is
 * told (the JSON on its stdin or in its POST, the same facts in its
 * environment), what its answer means (an exit status, an HTTP reply), how
 * much of its output is logged, and what a completion may do in which
 * state. Pure, for the Check units; controller/lifecycle.c runs hooks. */
#ifndef ASG_LIFECYCLE_MSG_H
#define ASG_LIFECYCLE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Which transition a hook guards; the config's lifecycle.launching and
 * lifecycle.terminating. */
enum hook_kind { HOOK_LAUNCHING = 0, HOOK_TERMINATING = 1, HOOK_KINDS };
const char *hook_kind_name(int kind); /* "launching", "terminating" */

/* What a hook's answer says: go on, abandon, or nothing yet (the result
 * comes later, through asgctl lifecycle complete or the API, or the
 * timeout's default); HO_DEFAULT: it could not say (it could not run, it
 * timed out, its server failed), so the hook's default applies. */
enum hook_outcome { HO_CONTINUE = 0, HO_ABANDON = 1, HO_LATER, HO_DEFAULT };
const char *hook_outcome_name(int outcome);

/* A command's exit status that means "the result comes later". */
#define HOOK_EXIT_LATER 3

/* The facts a hook is given. Strings NUL-terminated. */
struct hook_facts {
    int kind;                    /* enum hook_kind */
    char group[48];
    char instance[64];
    char addr[64];
    char service_addr[64];
    uint64_t spec_gen;
    char reason[64];
    int timeout_s;
};

/* {"group":..., "instance":..., "addr":..., "service_addr":...,
 *  "spec_generation":N, "reason":..., "transition":"launching"|
 *  "terminating", "timeout_s":N} and a newline, into b. */
void hook_json(const struct hook_facts *f, struct strbuf *b);

/* The environment a command hook runs with: PATH and the same facts as
 * ASG_GROUP, ASG_INSTANCE, ASG_ADDR, ASG_SERVICE_ADDR,
 * ASG_SPEC_GENERATION, ASG_REASON, ASG_TRANSITION, ASG_TIMEOUT_S; nothing
 * inherited from asgd's own (which may hold a secret: status.token =
 * "env:..."). Values with control characters have them as '?'. Writes the
 * strings into buf and up to max - 1 pointers to them, NULL-terminated,
 * into envp; returns how many, or -1 when buf is too small. */
int hook_env(const struct hook_facts *f, char *buf, size_t bufsize, char **envp, size_t max);

/* A command's wait status: exit 0 continue, HOOK_EXIT_LATER later, 126 or
 * 127 (not executable, not found: it never ran) or killed by a signal
 * (ours at the timeout, or anyone's) the default, any other exit abandon. */
int hook_exit_outcome(int wstatus);

/* An HTTP hook's reply: a 2xx whose body is a JSON object with "result":
 * "continue", "abandon" or "later" says so; 202 without one, later; any
 * other 2xx, continue; a failed transfer (transport false), another status
 * or a 2xx with an unknown result, the default. */
int hook_http_outcome(bool transport, long code, const char *body, size_t len);

/* The result a hook's outcome comes to, with def (enum hook_result of the
 * config: 0 continue, 1 abandon) for HO_DEFAULT; -1 for HO_LATER. */
int hook_result_of(int outcome, int def);

/* A hook's time: it ends timeout_s after from (its start, or the last
 * heartbeat); it is up at that very millisecond. */
int64_t hook_deadline(int64_t from, int timeout_s);
bool hook_timed_out(int64_t deadline, int64_t now);

/* At most per_s lines of a hook's output a second: true when this one may
 * be logged; those refused are counted in dropped. */
struct hook_lines {
    int64_t second;              /* now / 1000 of the current window */
    int n;                       /* lines logged in it */
    uint64_t dropped;
};
bool hook_line_allowed(struct hook_lines *l, int per_s, int64_t now_ms);

/* One line of output for the log: at most size - 1 bytes of it, anything
 * unprintable as '?', the end of line removed. */
void hook_line_clean(const char *in, size_t len, char *out, size_t size);

/* An operator's word on a waiting instance (asgctl lifecycle, the API):
 * LC_CONTINUE, LC_ABANDON or LC_HEARTBEAT (the request's value). */
enum lifecycle_action { LC_CONTINUE = 1, LC_ABANDON = 2, LC_HEARTBEAT = 3, LC_COUNT };
const char *lifecycle_action_name(int action);
/* The action named s ("continue", "abandon", "heartbeat"), or 0. */
int lifecycle_action_of(const char *s);
/* May action be taken on a row in state (enum row_state) whose hook has
 * started (started) or not? NULL, or why not. */
const char *lifecycle_action_refused(int action, uint32_t state, bool started);

#endif
