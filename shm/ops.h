/* The table's operations: what the roles call, named after what happened.
 * Every one of them is called with the table lock held and brackets its
 * own writes (readers see all of it or none of it); no role touches a
 * sequence counter, the id index or a row's state itself.
 *
 * A row's state changes only through one transition table (state x event
 * -> next state), applied by one function: an edge the table does not have
 * is refused, counted (hdr->illegal_transitions), logged, and changes
 * nothing. Adding a state is adding a row to that table.
 *
 * Who writes what:
 *   supervisor  role pids, where its config is published, draining, restarts
 *   monitor     probe results, registrations, joins, the address it bound,
 *               requests to join (the inbox), deregistrations
 *   controller  launches (with their launch spec generation), terminations,
 *               pids, the target and its state, the launch spec in force
 * The monitor records facts for the controller to decide on: an unknown
 * agent's registration (the inbox, monitor.adopt_unknown), a
 * deregistration (ROW_F_DEREGISTERED); the controller alone admits (a
 * joined row, ROW_F_JOINED), refuses and stops (controller/admit.c), and
 * counts joined rows into the target and out again. */
#ifndef ASG_OPS_H
#define ASG_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "table.h"

enum row_event {
    RE_LAUNCH,        /* the controller asks for an instance (free -> pending) */
    RE_ADOPT,         /* found running, or registered unknown (free -> pending) */
    RE_REGISTER,      /* its agent registered (pending -> running; running stays) */
    RE_ANSWER,        /* it answered a probe (pending, unhealthy -> running) */
    RE_FAIL,          /* missed probes, or its process died (-> unhealthy) */
    RE_STOP,          /* scale-in, replacement, deregistration, drain (-> terminating) */
    RE_GONE,          /* the instance no longer exists, or never did (-> free) */
    RE_HOLD,          /* a lifecycle hook holds it (-> launching:wait, terminating:wait) */
    RE_CONTINUE,      /* its hook let it go on (launching:wait -> running, terminating:wait -> terminating) */
    RE_COUNT
};

const char *row_event_name(uint32_t ev);
/* The next state, or -1 when the table has no such edge. */
int row_next_state(uint32_t state, uint32_t ev);

/* ---- rows ---- */

/* A new row for id in state pending (ev is RE_LAUNCH or RE_ADOPT), or NULL
 * when the table is full. */
struct table_row *table_row_new(struct table *t, const char *id, uint32_t ev, const char *reason,
                                uint32_t flags, const char *launch_token, int64_t now);
/* A launch (RE_LAUNCH) made from launch spec generation spec_gen; a row
 * from table_row_new has generation 0, unknown. */
struct table_row *table_row_launch(struct table *t, const char *id, const char *reason, uint32_t flags,
                                   const char *launch_token, uint64_t spec_gen, int64_t now);
/* What a provider said about a row's instance: its id (a rename when it
 * differs: EC2 names an instance on launch), process, address and launch
 * token (the last two only fill what the row lacks); the launch is
 * confirmed. */
void table_instance_known(struct table *t, struct table_row *r, const char *id, int32_t pid,
                          uint64_t pid_start, const char *addr, const char *launch_token);
/* Its agent registered from addr (service: its service's address, or "").
 * True when that made it running. */
bool table_registered(struct table *t, struct table_row *r, const char *addr, const char *service,
                      int64_t now);
/* A probe's outcome: sample (load, cpu, mem) when it answered, failure
 * otherwise. */
enum probe_outcome { PROBE_NOTED, PROBE_NOW_RUNNING, PROBE_REJOINED, PROBE_NOW_UNHEALTHY };
struct probe_sample {
    double load, cpu, mem;
    bool has_requests;           /* its service's request counter, when the agent reads one */
    uint64_t requests;
};
enum probe_outcome table_probe_result(struct table *t, struct table_row *r,
                                      const struct probe_sample *sample, const char *failure,
                                      uint32_t unhealthy_after, int64_t now);
/* Marked unhealthy for a reason other than probes (its process died). */
bool table_failed(struct table *t, struct table_row *r, const char *why, int64_t now);
/* Being stopped; the provider is asked again or harder after deadline. */
bool table_stopping(struct table *t, struct table_row *r, const char *why, int64_t deadline);
void table_stop_deadline(struct table *t, struct table_row *r, int64_t deadline);
/* Lifecycle hooks (controller/lifecycle.h). A terminating row, released
 * by the balancer, waits for its terminating hook: terminating:wait. */
bool table_hook_hold(struct table *t, struct table_row *r, const char *why, int64_t now);
/* Its terminating hook is due once the balancer lets it go (ROW_F_HOOK_TERM). */
void table_hook_due(struct table *t, struct table_row *r);
/* Its hook said continue (or its default did): launching:wait -> running
 * (the launching hook has passed: ROW_F_HOOK_LAUNCH cleared);
 * terminating:wait -> terminating, to be stopped by deadline. */
bool table_hook_continue(struct table *t, struct table_row *r, const char *why, int64_t deadline, int64_t now);
/* When its hook's time is up (term_deadline_ms, which a row in a wait
 * state does not otherwise use): set at its start, moved by a heartbeat. */
void table_hook_deadline(struct table *t, struct table_row *r, int64_t deadline);
/* Gone: the slot is free again. */
bool table_gone(struct table *t, struct table_row *r);
/* Controller: a joined row is (or no longer is) counted in the target. */
void table_joined_counted(struct table *t, struct table_row *r, bool counted);
/* Joined rows in the group that the controller has not counted yet. */
int table_joined_uncounted(const struct table *t);
/* The load balancer (controller): the row's place in it, from now. */
void table_lb_state(struct table *t, struct table_row *r, uint32_t lb_state, int64_t now);
/* Held for the balancer before the provider is asked to stop it, or not. */
void table_lb_hold(struct table *t, struct table_row *r, bool hold);
/* Sets (on) or clears the ROW_F_* bits of mask: the operators' controls. */
void table_row_flags(struct table *t, struct table_row *r, uint32_t mask, bool on);
/* The balancer's counters for it: requests served (a counter, turned into
 * a rate since the last reading), open connections. */
void table_lb_counted(struct table *t, struct table_row *r, uint64_t requests, uint32_t sessions,
                      int64_t now);
/* EC2 bootstrap: its join token is spent. */
void table_join_spent(struct table *t, struct table_row *r, int64_t now);

/* ---- facts the monitor records, decisions the controller records ---- */

/* Monitor: its agent deregistered; the controller stops the row. False
 * when that was already known. */
bool table_deregistered(struct table *t, struct table_row *r);
/* The inbox entry (waiting or answered) of id, or NULL. */
struct inbox_entry *table_inbox_find(struct table *t, const char *id);
/* Monitor: an unknown agent asks to join from addr (service: its
 * service's address, or ""): INBOX_ASK_NEW, a new request, or
 * INBOX_ASK_AGAIN, its waiting one refreshed; 0 (INBOX_ASK_FULL) when
 * every entry is taken. Not logged here: anybody who reaches the monitor
 * can ask, so the monitor logs requests within a rate limit. */
enum { INBOX_ASK_FULL = 0, INBOX_ASK_AGAIN = 1, INBOX_ASK_NEW = 2 };
int table_inbox_ask(struct table *t, const char *id, const char *addr, const char *service, int64_t now);
/* Monitor: the controller's refusal is told to its agent: the entry is
 * free again. */
void table_inbox_told(struct table *t, struct inbox_entry *e);
/* Controller: the request is refused, why (table_full: for want of a
 * free row), for the monitor to tell at the agent's next try. Not logged
 * here: the controller logs refusals within a rate limit. */
void table_inbox_refuse(struct table *t, struct inbox_entry *e, const char *why, bool table_full);
/* Controller: the request is admitted: a joined row for it, registered at
 * its address and running; the entry is free again. NULL (and the entry
 * kept) when the table is full. */
struct table_row *table_inbox_admit(struct table *t, struct inbox_entry *e, int64_t now);
/* Controller: a waiting entry that cannot be read (a writer died in it)
 * is dropped; its agent asks again. */
void table_inbox_drop(struct table *t, struct inbox_entry *e);

/* ---- the header ---- */

/* Supervisor. nonce: the group's; config_path: its file (NULL: defaults);
 * config_name: the segment its config is published in (shm/confseg.h). */
void table_supervisor_started(struct table *t, const char *group_name, const char *nonce,
                              const char *config_path, const char *config_name);
/* These four without the lock (table_supervisor_started runs at attach,
 * before any role: with it). */
void table_set_role_pid(struct table *t, int role, pid_t pid); /* role: 0 monitor, 1 controller, 2 status, TABLE_ROLE_NOTIFY, TABLE_ROLE_HISTORY */
#define TABLE_ROLE_NOTIFY 3 /* the notifier (webhook/notify.h): its place in asgd's role_table */
#define TABLE_ROLE_HISTORY 4 /* the history role (history/history.h) */
void table_role_restarted(struct table *t, int role);
void table_set_draining(struct table *t, uint32_t kind);
/* A reload (its config published in shm/confseg.h), counted. */
void table_config_reloaded(struct table *t);
/* Controller, at a new config generation: an operator's desired size
 * ends (the file wins again). Lock held. */
void table_operator_forget(struct table *t);

/* Monitor. */
void table_set_monitor_addr(struct table *t, const char *addr);
void table_probe_round_done(struct table *t, int64_t now);

/* Controller. */
uint64_t table_next_instance_number(struct table *t);
void table_instance_number_seen(struct table *t, uint64_t n);
void table_set_target(struct table *t, int32_t target);
/* An evaluation's outcome: the policy's state, and which way it moved. */
void table_evaluated(struct table *t, const struct ctl_state *st, int change, int64_t now);
/* The launch spec in force: its generation and digest (provider/spec.h). */
void table_launch_spec(struct table *t, uint64_t gen, const uint8_t digest[SPEC_DIGEST_SIZE]);
/* The rollout as last decided (controller/rollout.h). */
void table_rollout(struct table *t, const struct rollout_state *ro);
/* Controller, on an operator's REQ_SUSPEND: the processes of mask
 * suspended (by whom, since wall) or resumed (their marks cleared). */
void table_suspended(struct table *t, uint32_t mask, bool suspend, const char *by, int64_t wall);
/* The launch spec in force, kept whole (cur; it is hdr->spec too), the
 * one before it (prev; NULL leaves it), whether it is pinned against the
 * config's after a rollback, and the config's digest then refused (NULL:
 * none). */
void table_spec_in_force(struct table *t, const struct spec_saved *cur, const struct spec_saved *prev,
                         bool pinned, const uint8_t rejected[SPEC_DIGEST_SIZE]);
/* The launch spec generation a row's instance was launched from, learnt
 * after its row was made (a new leader's, from the last leader's state). */
void table_row_spec_gen(struct table *t, struct table_row *r, uint64_t gen);
/* The balancer's count of a row's 5xx answers (HAProxy hrsp_5xx). */
void table_lb_5xx(struct table *t, struct table_row *r, uint64_t errors);
/* The rollout's bake window opens: the row's counters as they stand. */
void table_lb_mark(struct table *t, struct table_row *r);
/* The weight last set for it at the balancer. */
void table_lb_weight(struct table *t, struct table_row *r, uint32_t weight);
/* The group's bounds in force (controller, at each evaluation). */
void table_bounds(struct table *t, const struct group_bounds *b);
void table_count_replaced(struct table *t);
/* A balancer step: up when it could be listed; error, what failed (NULL:
 * nothing); members listed, or -1 when unknown. */
void table_lb_health(struct table *t, bool up, const char *error, int members, int64_t now);
/* The balancer's count of the backend as a whole, as last listed. */
void table_lb_demand(struct table *t, const struct lb_demand *d);
/* Scale to zero's state after an evaluation (policy/zero.h). */
void table_zero(struct table *t, const struct zero_state *z);
/* The scheduled entry in force (-1: none) since `since`, and the next. */
void table_schedule(struct table *t, int active, int64_t since, int next, int64_t next_at);
/* A pending row's boot clock starts again: a new leader gives the
 * instances it adopted as a standby the whole boot timeout to register. */
void table_boot_clock_restart(struct table *t, struct table_row *r, int64_t now);
/* The controller's HA role (ha/ha.h), lock held; became_leader counts a
 * failover. */
void table_ha(struct table *t, int role, int64_t term, int64_t lease, const char *leader,
              const char *leader_addr, const char *managers, const char *error, bool became_leader);
/* An operator's request: the target, with the cooldown restarted so that
 * the policy does not undo it at once; desired > 0 also records it. */
void table_operator_target(struct table *t, int32_t target, int32_t desired, int64_t now);

#endif
