/* The shared instance table: one named POSIX shared memory segment with a
 * versioned header and fixed-size rows.
 *
 * Writers serialise on a lock word in the header that holds its holder's
 * pid: taken by compare-and-swap, and taken over the same way from a holder
 * that died (then the table is repaired); a process-shared semaphore only
 * wakes waiters. Readers never lock: every row
 * and the header carry a sequence counter (odd while being written), so a
 * read-only mapping is enough to take consistent copies. */
#ifndef ASG_TABLE_H
#define ASG_TABLE_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/group.h"
#include "../common/identity.h"
#include "../common/proc.h"
#include "../common/suspend.h"

#define TABLE_MAGIC 0x31304c4254475341ULL /* "ASGTBL01" in memory order */
/* The layout's version: bumped by every change of the header's or a row's
 * layout (tests/check_layout.c pins sizes and offsets against it). 19: the
 * config left the header for its own segment (shm/confseg.h); the launch
 * spec's generation came in (the header's and each row's), and the bounds
 * in force (the header's). 20: the admission inbox (the header's); the
 * segment ends with its layout's directory (shm/tabledir.h), from which a
 * later asgd migrates it. 21: rollouts (the header's rollout and saved
 * launch specs; each row's 5xx counter, bake window marks and weight).
 * 22: the notifier's cursor and counters (the header's notify), the
 * history role's pid and its database's health (the header's),
 * suspended processes (the header's suspended mask and marks),
 * scale to zero (the header's lb_demand and zero). */
#define TABLE_VERSION 22
#define TABLE_HIST 256 /* load samples kept per row */
#define TABLE_ID_MAX INSTANCE_ID_MAX
#define TABLE_ADDR_MAX INSTANCE_ADDR_MAX

/* enum row_state, ha_role, lb_state, action_cause: common/group.h */
const char *row_state_name(uint32_t st);

const char *ha_role_name(uint32_t role);

/* enum rollout_phase (common/group.h): "none", "running", ... */
const char *rollout_phase_name(uint32_t phase);

/* The launch call's outcome is unknown (it timed out): the instance may
 * exist. The controller asks again with the same client token. */
#define ROW_F_UNCONFIRMED 1u
#define ROW_F_JOINED 2u      /* adopted on its own registration, not launched */
/* Terminating, but the provider is not asked yet: the load balancer first
 * drains the instance and removes it (controller/, lb/). */
#define ROW_F_LB_HOLD 4u
/* Monitor: its agent deregistered. A fact: the controller stops the row. */
#define ROW_F_DEREGISTERED 8u
/* Controller: launched while a launching hook was configured; its agent's
 * registration (or first answer) puts it in launching:wait, not running,
 * until the hook continues (cleared then). */
#define ROW_F_HOOK_LAUNCH 64u
/* Controller: stopped while a terminating hook was configured: once the
 * balancer lets it go, it waits in terminating:wait (cleared then). */
#define ROW_F_HOOK_TERM 128u
/* Operators' controls, set by the controller alone on their request
 * (controller/instance_ops.c, docs/instance-controls.md): never a
 * scale-in's or a rollout's victim; on standby (out of the balancer, not
 * replaced on missed probes, neither load nor capacity), and whether its
 * entry lowered the target (its exit raises it again). */
#define ROW_F_PROTECTED 16u
#define ROW_F_STANDBY 32u
#define ROW_F_STANDBY_DECREMENTED 256u

const char *lb_state_name(uint32_t st);

struct table_row {
    _Atomic uint32_t seq;        /* odd while a writer is in the row */
    uint32_t state;              /* enum row_state */
    uint64_t incarnation;        /* bumped whenever the slot is reused */
    char id[TABLE_ID_MAX];
    char addr[TABLE_ADDR_MAX];   /* where the agent serves, "" if unknown */
    char service_addr[TABLE_ADDR_MAX]; /* monitor: where the operator's service serves, "" if none */
    char reason[64];             /* why the state last changed */
    int32_t pid;                 /* local provider: the agent's pid */
    uint32_t misses;             /* consecutive failed probes */
    uint32_t flags;              /* ROW_F_* */
    uint32_t pad;
    uint64_t pid_start;          /* its start time, against pid reuse */
    char launch_token[72];       /* controller: the launch's idempotency token (ec2 ClientToken) */
    int64_t cert_issued_ms;      /* monitor: when its join token was spent (ec2 bootstrap), 0 if not */
    bool joined_counted;         /* controller: this joined row is counted in the target */
    double load, cpu, mem;       /* last sample, fractions 0..1 */
    bool has_sample;
    bool load_pinned;
    int64_t launch_ms;           /* monotonic ms; see now_ms() */
    int64_t running_since_ms;
    int64_t last_probe_ms;
    int64_t last_seen_ms;        /* last successful probe, 0 if never */
    int64_t state_since_ms;
    int64_t term_deadline_ms;    /* terminating: when to escalate */
    uint64_t probes_ok, probes_failed;
    uint32_t hist_head, hist_len;
    float hist[TABLE_HIST];      /* ring of load samples */
    /* controller: the load balancer's view of it */
    uint32_t lb_state;           /* enum lb_state */
    uint32_t lb_sessions;        /* connections open to it at the balancer */
    int64_t lb_since_ms;         /* in lb_state since */
    uint64_t lb_requests;        /* the balancer's request counter, last read */
    int64_t lb_counted_ms;       /* when it was read; 0 = never */
    double req_rate;             /* requests/s it served over the last interval */
    int64_t req_rate_ms;         /* when req_rate was measured; 0 = never */
    /* monitor: the request counter its service reports (--service-requests) */
    uint64_t svc_requests;       /* as of svc_counted_ms */
    int64_t svc_counted_ms;      /* 0 = never */
    double svc_rate;             /* requests/s over the last second or more */
    int64_t svc_rate_ms;         /* when svc_rate was measured; 0 = never */
    /* controller: the launch spec generation it was launched from
     * (hdr->spec); 0 = unknown (adopted, or a launch another leader made) */
    uint64_t spec_gen;
    /* controller: the balancer's count of 5xx answers it gave (HAProxy
     * hrsp_5xx), and both counters as they stood when the rollout's bake
     * window opened (controller/rollout_plan.h) */
    uint64_t lb_5xx;
    uint64_t lb_req_mark, lb_5xx_mark;
    uint32_t lb_weight;          /* controller: the weight last set at the balancer; 0 = never set */
    uint32_t pad2;
};

/* The event log: what changed, when and why, for operators (status role,
 * asgctl events). A ring; each entry has its own sequence counter. */
#define TABLE_EVENTS 256
enum event_kind { EV_SCALE, EV_LAUNCH, EV_TERMINATE, EV_HEALTH, EV_ROLE, EV_CONFIG,
                  EV_OPERATOR, EV_BALANCER, EV_ROLLOUT, EV_LIFECYCLE, EV_SUSPEND, EV_KIND_COUNT };
const char *event_kind_name(uint32_t kind);

struct table_event {
    _Atomic uint32_t seq;
    uint32_t kind;
    uint64_t number;             /* 1, 2, 3, ... over the table's life */
    int64_t wall_ms;             /* Unix ms */
    char instance[TABLE_ID_MAX];
    char msg[160];
};

/* Probe round trip histogram: upper bounds in milliseconds (+Inf last). */
#define PROBE_BUCKETS 12
extern const double probe_bucket_ms[PROBE_BUCKETS - 1];
/* The same round trips, finely: bucket i holds those of at most
 * 2^((i+1)/8) microseconds (9% wide), up to about 16 s; for benchmarks'
 * percentiles, which the coarse buckets above cannot give. */
#define PROBE_FINE 192
static inline double probe_fine_upper_us(int i) { return __builtin_exp2((i + 1) / 8.0); }

const char *action_cause_name(uint32_t cause);

/* Why the roles are stopping: an operator's stop ends the local agents
 * (provider.local.stop_on_exit); a manager that fails to start or run
 * leaves every instance running for the next one to adopt. */
enum drain_kind { DRAIN_NONE = 0, DRAIN_STOP = 1, DRAIN_KEEP_INSTANCES = 2 };

/* Requests refused from strangers or bad peers, counted for /metrics (their
 * log lines are rate-limited, these are not). */
enum refusal_kind { REFUSED_REGISTER, REFUSED_DEREGISTER, REFUSED_CONTROL, REFUSED_HTTP,
                    REFUSED_JOIN, REFUSED_CONNECTION, REFUSED_COUNT };
const char *refusal_kind_name(uint32_t kind);

/* struct forecast, struct ctl_state (the scaling state): common/group.h */

/* The launch spec in force (provider/spec.h), kept by the controller in
 * the table so that a restarted one goes on counting from it. */
#define SPEC_DIGEST_SIZE 32
struct spec_state {
    uint64_t gen;                /* 1, 2, ...: moves on when the spec changes; 0 = none yet */
    uint8_t digest[SPEC_DIGEST_SIZE]; /* its SHA-256 */
};

#define SPEC_SEEN 8

/* A launch spec kept whole (provider/spec.h), so that a restarted
 * controller, or a rollback, can launch from it when the config no longer
 * says it: its keys and values as "key\0value\0" pairs. */
#define SPEC_KV_MAX 4096
struct spec_saved {
    uint64_t gen;                /* 0 = none kept */
    uint8_t digest[SPEC_DIGEST_SIZE];
    uint32_t len;                /* bytes of kv used */
    uint32_t pad;
    char kv[SPEC_KV_MAX];
};

/* The admission inbox: registrations of agents the manager did not launch
 * (monitor.adopt_unknown), recorded by the monitor as facts, decided by
 * the controller alone (controller/admit.c): it creates the row, or
 * records why not for the monitor to tell the agent at its next try.
 * Small and fixed: when every entry waits, the monitor refuses the next
 * stranger ("retry shortly") rather than overwrite an older request, so a
 * flood of new ids cannot push out the agents that asked first; the
 * controller empties it within moments of each registration. */
#define TABLE_INBOX 16
enum inbox_state { INBOX_FREE, INBOX_WAITING, INBOX_REFUSED };
struct inbox_entry {
    uint64_t seq;                /* which request (hdr->inbox_next), 0 when free */
    uint32_t state;              /* enum inbox_state */
    uint32_t table_full;         /* refused for want of a free row (RESOURCE_EXHAUSTED) */
    int64_t asked_ms;            /* monitor: when the agent last asked */
    char id[TABLE_ID_MAX];
    char addr[TABLE_ADDR_MAX];
    char service_addr[TABLE_ADDR_MAX];
    char reason[120];            /* controller: why it was refused */
};

/* The notifier (webhook/notify.h): written by it alone, all atomics and
 * without the lock (it never makes the controller wait); read by status,
 * asgctl and /metrics. Per webhook, by its place in notify.webhooks. */
#define NOTIFY_HOOKS 8
struct notify_hook_state {
    _Atomic uint64_t url_hash;   /* which URL these counters are about; 0 = none yet */
    /* Every event numbered up to done is settled for this webhook
     * (delivered, refused, dropped, or not of its kinds): a restarted
     * notifier goes on after it. Delivery is at least once: an event
     * whose delivery was under way when the notifier died is sent again. */
    _Atomic uint64_t done;
    _Atomic uint64_t delivered;  /* answered 2xx */
    _Atomic uint64_t failed;     /* tries that failed (connection, timeout, any non-2xx) */
    _Atomic uint64_t refused;    /* events given up on at a 4xx other than 408/429 */
    _Atomic uint64_t dropped;    /* events pushed out of a full queue, oldest first */
    _Atomic uint32_t queued;     /* events waiting now */
    _Atomic uint32_t last_status; /* the last answer's HTTP status; 0 = none or no answer */
    _Atomic int64_t last_ok_ms;  /* Unix ms of the last delivery; 0 = never */
};
struct notify_state {
    _Atomic int32_t pid;         /* supervisor: the notifier's pid, 0 if none */
    _Atomic uint32_t hooks;      /* webhooks it delivers to, as last configured */
    _Atomic uint64_t restarts;   /* supervisor */
    _Atomic uint64_t cursor;     /* the last event number it read from the ring */
    _Atomic uint64_t lost;       /* events the ring overwrote before it read them */
    struct notify_hook_state hook[NOTIFY_HOOKS];
};
/* The history role's database (history/history.h), as it last found it:
 * written by that role alone, under its own sequence counter (readers copy
 * it with table_seq_copy), never under the table lock, so that a role
 * stuck on a slow disk holds nobody up. */
#define HISTORY_ERROR_MAX 200
struct history_state {
    _Atomic uint32_t seq;        /* odd while the role writes */
    uint32_t ok;                 /* 1: the last write went through; 0: see error */
    uint64_t last_event;         /* the last event number recorded */
    uint64_t events_lost;        /* overwritten in the ring before it read them */
    uint64_t activities;         /* activities written (opened or closed) by this table's roles */
    uint64_t samples;            /* samples written */
    uint64_t failures;           /* writes that failed (each retried later) */
    uint64_t pruned;             /* rows removed past history.retention_days */
    int64_t last_write_ms;       /* Unix ms of the last good write; 0 = never */
    int64_t error_since_ms;      /* Unix ms the current error began; 0 = none */
    char error[HISTORY_ERROR_MAX]; /* why the last write failed; "" when ok */
};

struct table_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t capacity;
    uint64_t total_size;
    uint32_t hdr_size, row_size;

    _Atomic int32_t lock_holder; /* the lock word: its holder's pid, 0 if free */
    _Atomic uint32_t lock_waiters; /* processes asleep on lock */
    sem_t lock;                  /* wakes waiters; holds nothing */
    _Atomic uint32_t suspect;    /* a writer died mid-write: check rows */
    _Atomic int64_t lock_since_ms;
    _Atomic uint64_t lock_count; /* acquisitions */

    _Atomic uint32_t hseq;       /* sequence counter of the fields below */
    _Atomic uint64_t gen;        /* bumped by every committed write */
    /* supervisor: written without the lock (atomics, each on its own) */
    _Atomic int32_t pid_supervisor, pid_monitor, pid_controller;
    _Atomic uint32_t draining;   /* enum drain_kind: supervisor asked roles to stop */
    uint64_t next_instance;      /* counter for instance ids */
    uint64_t nonce;              /* random per table: launch tokens never repeat */
    char monitor_addr[TABLE_ADDR_MAX]; /* address the monitor bound */
    struct ctl_state ctl;
    struct spec_state spec;      /* controller: the launch spec in force */
    struct group_bounds bounds;  /* controller: the bounds in force, as last evaluated */
    int64_t created_ms;
    int64_t last_probe_round_ms, last_eval_ms;
    uint64_t probe_rounds, evaluations;
    uint64_t lock_recoveries;
    _Atomic uint64_t role_restarts[3]; /* supervisor: monitor, controller, status */
    uint64_t scale_out, scale_in, replaced;
    _Atomic int32_t pid_status;  /* supervisor */
    int32_t operator_desired;    /* set through the status API; 0 = config's */

    /* Counters only ever grow; atomics, so no sequence counter needed. */
    _Atomic uint64_t reloads_ok, reloads_failed;
    _Atomic uint64_t actions[2][CAUSE_COUNT];   /* [0] out, [1] in */
    _Atomic uint64_t refused[REFUSED_COUNT];
    _Atomic uint64_t illegal_transitions; /* row events the state machine refused (ops.c) */

    /* controller: the scheduled entry in force (policy/schedule.h), -1 none */
    int32_t sched_active, sched_next;
    int64_t sched_since, sched_next_at;  /* Unix seconds */

    /* controller: the load balancer (lb.kind), as last called */
    uint32_t lb_up;              /* its last call succeeded */
    int32_t lb_members;          /* members in its backend, last listed */
    int64_t lb_checked_ms;       /* last call, 0 = never */
    char lb_error[200];          /* why the last call failed; "" once one succeeds */
    _Atomic uint64_t lb_errors;

    /* controller: high availability (ha.etcd), as last stepped */
    uint32_t ha_role;            /* enum ha_role */
    int64_t ha_term;             /* the leader key's create revision */
    int64_t ha_lease;            /* ours: a restarted controller renews it */
    char ha_leader[64];          /* the leader's ha.id, "" unknown */
    char ha_leader_addr[TABLE_ADDR_MAX]; /* its monitor, where agents register */
    char ha_error[160];          /* the last etcd failure, "" after a success */
    char ha_managers[256];       /* every manager's monitor address, ","-joined, ours first */
    _Atomic uint64_t ha_failovers;   /* times this manager became the leader */
    _Atomic uint64_t provider_calls; /* launches and terminations asked of the provider */

    /* supervisor: who runs this table, for the other managers of this uid
     * (a second group of the same name refuses to start, naming this one) */
    char group_nonce[GROUP_NONCE_HEX + 8]; /* the group's (common/identity.h) */
    char config_path[256];       /* the config file, "" for the built-in defaults */
    char group_name[48];         /* its group.name */
    char config_name[TABLE_NAME_MAX + 32]; /* its published config (shm/confseg.h) */
    uint64_t supervisor_start;   /* pid_supervisor's start time (against pid reuse) */
    /* monitor: its listener's progress (monitor_s/relay.h), written by
     * the monitor alone, read by the supervisor's deaf-listener check */
    _Atomic uint64_t relay_accepted;     /* TCP connections it took */
    _Atomic uint64_t relay_grpc_took;    /* relayed connections gRPC began to read */
    _Atomic uint32_t relay_grpc_waiting; /* relayed connections gRPC has not read yet */
    /* monitor: facts for the controller to decide on (a registration
     * waiting, a deregistration), counted so that it notices at once */
    _Atomic uint64_t facts;
    uint64_t inbox_next;         /* the last request's seq */
    struct inbox_entry inbox[TABLE_INBOX];
    /* controller: rollouts (controller/rollout.h). The spec in force
     * (spec above) is kept whole in spec_cur, the one before it in
     * spec_prev; after a rollback the in force one is the previous spec
     * (spec_pinned), not the config's, whose digest spec_rejected holds
     * until the operator's config says something else. */
    struct rollout_state rollout;
    struct spec_saved spec_cur, spec_prev;
    uint64_t spec_gen_last;      /* the highest generation ever given: numbers never repeat */
    uint32_t spec_pinned;
    uint32_t spec_seen_next;     /* the next slot of spec_seen to write */
    uint8_t spec_rejected[SPEC_DIGEST_SIZE];
    /* The last generations in force and their digests: an instance of an
     * earlier generation whose spec is the one in force again (a config
     * reverted) is not replaced (spec_gen_same). */
    struct spec_state spec_seen[SPEC_SEEN];
    struct notify_state notify;  /* the notifier's (webhook/notify.h) */
    /* supervisor: the history role's pid; history role: its database */
    _Atomic int32_t pid_history;
    uint32_t pad_history;
    struct history_state history;
    /* controller: suspended processes (common/suspend.h), written on an
     * operator's REQ_SUSPEND alone (controller/suspend.h): a bit per
     * process, and who suspended each and when */
    uint32_t suspended;
    uint32_t pad_suspend;
    struct suspend_mark suspend[SUSP_COUNT];
    /* controller: the balancer's count of the backend as a whole, as last
     * listed, and scale to zero (policy/zero.h) */
    struct lb_demand lb_demand;
    struct zero_state zero;
};

/* After the header, apart from it: the probe counters and histograms and
 * the event ring, 63 KB that every consistent copy of the header would
 * otherwise carry. Atomics and per-event sequence counters: no copy needs
 * them whole. */
struct table_log {
    _Atomic uint64_t probes_sent, probes_failed, probe_us_sum;
    _Atomic uint64_t probe_hist[PROBE_BUCKETS];
    _Atomic uint64_t probe_fine[PROBE_FINE];
    _Atomic uint64_t events_written;
    struct table_event events[TABLE_EVENTS];
};

struct table {
    struct table_hdr *hdr;
    struct table_log *log;
    struct table_row *rows;
    /* After the rows: per row, a hash of its id (never 0), or 0 for a free
     * row. Kept by row_write_end and rebuilt by table_repair, so that
     * finding an id reads 4 bytes a row instead of a whole row: a
     * registration storm at 10,000 rows did not finish without it. */
    _Atomic uint32_t *idhash;
    size_t size;
    /* Rows, as checked at attach: never read back from the segment, where
     * one scribbled word would send every loop past the mapping. */
    uint32_t capacity;
    bool readonly;
    char name[TABLE_NAME_MAX];
};

/* The lock waits, for every role: a round gives up after TABLE_LOCK_WAIT_MS
 * and tries again at the next; recording what a provider already did (a
 * launch, a termination) waits up to TABLE_LOCK_RECORD_MS, as giving up
 * there would lose it. Holds last microseconds; these only matter when a
 * holder is starved of CPU or dead (then it is taken over). */
#define TABLE_LOCK_WAIT_MS 2000
#define TABLE_LOCK_RECORD_MS 10000

/* Creates a fresh segment (mode 0600); fails if one exists. */
int table_create(const char *name, uint32_t capacity, struct table *t,
                 char *err, size_t errsize);
/* Maps an existing segment, checking magic, version and sizes. On failure
 * errno says why: ENOENT none, EPERM not ours (another owner, or group or
 * world bits), EPROTO a table of another layout version (err names its
 * version and ours; shm/migrate.h rewrites an older one), EINVAL not a
 * table, or a damaged one. */
int table_attach(const char *name, bool readonly, struct table *t,
                 char *err, size_t errsize);
void table_detach(struct table *t);
int table_unlink(const char *name);
/* The layout version and supervisor pid of a table of ours of any layout
 * (one table_attach refused with EPROTO). 0, or -1 with why. */
int table_peek_other(const char *name, uint32_t *version, int32_t *pid_supervisor, char *err, size_t errsize);

/* Takes the writer lock, waiting at most timeout_ms (roles use
 * TABLE_LOCK_WAIT_MS). Takes it over from a holder that has died. Returns
 * 0, or -1 (errno ETIMEDOUT) and logs who holds it. */
int table_lock(struct table *t, int timeout_ms);
void table_unlock(struct table *t);

/* Called by the supervisor when it reaps pid: if pid held the lock, take
 * it over, repair the table and release it. Returns 1 if it recovered. */
int table_recover_dead_holder(struct table *t, pid_t pid);

/* With the lock held: finish half-written rows (odd sequence counters),
 * correct impossible values. Returns the number of rows corrected. */
int table_repair(struct table *t);

/* Row and header write brackets, with the lock held: for shm/ only (the
 * roles call the operations in ops.h). */
void row_write_begin(struct table_row *r);
void row_write_end(struct table *t, struct table_row *r);
void hdr_write_begin(struct table *t);
void hdr_write_end(struct table *t);

/* Is an instance of launch spec generation gen one of generation to's
 * spec: that generation, or another with the same digest (a config
 * reverted)? Generation 0, unknown, is only its own. */
bool spec_gen_same(const struct table_hdr *h, uint64_t gen, uint64_t to);

/* Lock-free consistent copies. Return false when a writer kept the row
 * busy for longer than the reader is willing to spin (a dead writer). */
bool table_read_row(const struct table *t, uint32_t i, struct table_row *out);
bool table_read_hdr(const struct table *t, struct table_hdr *out);
/* Without the lock, a hint: is slot i used? (Its id hash is set once a row
 * is written, cleared once it is freed.) Lets a reader copy only the used
 * rows of a large table. */
bool table_slot_used(const struct table *t, uint32_t i);

/* With the lock held. */
struct table_row *table_find(struct table *t, const char *id);
/* The row in slot while it still holds the instance of that incarnation
 * (a plan made earlier must not touch a reused row), else NULL. */
struct table_row *table_row_at(struct table *t, uint32_t slot, uint64_t incarnation);
/* A zeroed slot for id, state free, its write bracket open: for ops.c. */
struct table_row *table_alloc_row(struct table *t, const char *id);
void row_push_sample(struct table_row *r, double load);
int table_count(const struct table *t, uint32_t state);


/* Logs a state change and records it in the event log, in one place.
 * Roles call it with the lock held; the supervisor without (each call
 * claims its own slot). instance may be NULL. */
void table_note(struct table *t, uint32_t kind, const char *instance, int level,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Copies events numbered above `after` (oldest first) into out; returns
 * how many. Lock-free. */
size_t table_read_events(const struct table *t, uint64_t after, struct table_event *out,
                         size_t max);
/* Adds one probe round trip to the histogram. */
void table_probe_observed(struct table *t, bool ok, int64_t rtt_us);

/* Copies n bytes of src while *seq is stable and even (a sequence
 * counter's bracket); false when a writer kept it odd (a dead writer). */
bool table_seq_copy(void *dst, const void *src, size_t n, const _Atomic uint32_t *seq);

/* Test-only fault point, compiled into test builds only (ASG_TEST_HOOKS):
 * with ASG_FAULT=ROLE:lock-kill:N in the environment, that role kills
 * itself (SIGKILL) on its Nth locked section, holding the table lock and in
 * the middle of a row write. The supervisor drops the variable for
 * restarted roles. */
#ifdef ASG_TEST_HOOKS
void table_fault_point(const char *role, struct table *t);
/* With ASG_FAULT=ROLE:WHAT:N, the Nth call stops the process (SIGSTOP),
 * as a stalled VM would: the test continues it. */
void fault_stop_point(const char *role, const char *what);
/* With ASG_FAULT=ROLE:WHAT:N, true from the Nth call on: the role then
 * behaves as the named fault says (monitor:relay-deaf: after its Nth
 * connection, its listener takes no more, as gRPC's did after EMFILE;
 * monitor:grpc-deaf: from its Nth relayed connection on, the relay dials
 * a listener that never accepts instead of its gRPC server). */
bool fault_reached(const char *role, const char *what);
#else
static inline bool fault_reached(const char *role, const char *what)
{
    (void)role;
    (void)what;
    return false;
}
static inline void fault_stop_point(const char *role, const char *what)
{
    (void)role;
    (void)what;
}
static inline void table_fault_point(const char *role, struct table *t)
{
    (void)role;
    (void)t;
}
#endif

#endif
