/* The group's domain, as the libraries see it (policy/, lb/, ha/): what
 * state an instance is in, where it stands in the load balancer, the
 * manager's HA role, why the target changed, and the scaling state a
 * restarted controller resumes with. Plain values, no storage: the shared
 * table (shm/table.h) keeps them, the libraries reason about them without
 * knowing the table. */
#ifndef ASG_GROUP_H
#define ASG_GROUP_H

#include <stdint.h>

#define INSTANCE_ID_MAX 64
#define INSTANCE_ADDR_MAX 64

/* An instance's life (a table row's state; ROW_FREE: no instance). */
enum row_state {
    ROW_FREE = 0,
    ROW_PENDING,     /* launched, not registered yet */
    ROW_RUNNING,
    ROW_UNHEALTHY,   /* missed too many probes; will be replaced */
    ROW_TERMINATING, /* being stopped by the provider */
    /* Lifecycle hooks (controller/lifecycle.h): states of their own, not a
     * field beside the state, so that the one transition table (shm/ops.c)
     * says what may happen to an instance a hook holds, and every count by
     * state (the plan, the policy, /metrics) sees them without a second
     * test. */
    ROW_LAUNCH_WAIT, /* "launching:wait": registered, its launching hook runs; not serving yet */
    ROW_TERM_WAIT,   /* "terminating:wait": drained and out of the balancer, its terminating hook runs */
    ROW_STATE_COUNT
};

/* A manager's role with ha.etcd (ha/ha.h); HA_OFF without it. */
enum ha_role { HA_OFF = 0, HA_STANDBY = 1, HA_LEADER = 2 };

/* Where an instance stands in the load balancer (lb.kind); written by the
 * controller alone. */
enum lb_state {
    LBS_NONE = 0,    /* not in the balancer (no service, or not running yet) */
    LBS_ADDED,       /* in rotation */
    LBS_DRAINING,    /* no new connections; open ones finish */
    LBS_REMOVED,     /* out of the balancer: it may be terminated */
    LBS_COUNT
};

/* Why the group's target size changed. */
enum action_cause { CAUSE_LOAD, CAUSE_BOUNDS, CAUSE_OPERATOR, CAUSE_COUNT };

/* The predictive policy's memory of demand (policy/forecast.h), in
 * instances' worth of load: the last minutes, and a day of 5-minute slots
 * for the daily pattern. Bounded: about 1.4 KB whatever the uptime. */
#define FC_RECENT 32                 /* minutes */
#define FC_SLOT_MS 300000LL          /* 5 minutes */
#define FC_SLOTS 288                 /* a day of them */
struct forecast {
    int64_t minute_ms;               /* start of the minute being averaged; 0 = none yet */
    double minute_sum;
    int32_t minute_n, minute_saturated;
    float recent[FC_RECENT];         /* minute means, a ring */
    uint32_t recent_head, recent_len;
    int64_t slot_ms;                 /* start of the slot being averaged */
    double slot_sum;
    int32_t slot_n, slots_seen;      /* slots recorded: the day is known after FC_SLOTS */
    float slot_pred;                 /* what the daily pattern said of this slot */
    float day[FC_SLOTS];             /* mean demand of each slot of the day */
    float day_err;                   /* how wrong the daily pattern has been (relative, EWMA) */
    float noise;                     /* minute-to-minute change (relative, EWMA) */
    float spread;                    /* the same change over the square root of the level (EWMA):
                                      * what counting noise looks like at any level */
    int32_t pad;
};

/* The group's bounds in force: the config's, a scheduled entry's, and an
 * operator's desired size, combined in one place (sched_effective in
 * policy/schedule.h) by the controller, which both its policy and its
 * admission of joining instances (controller/admit.c) use, and which it
 * publishes for operators. */
struct group_bounds {
    int32_t min, max, desired;   /* max 0: not worked out yet */
    int32_t pad;
};

/* A rollout: the group's instances of older launch spec generations
 * replaced by the current one's (controller/rollout_plan.h decides, the
 * controller records). Its phases as operators see them. */
enum rollout_phase {
    RO_NONE = 0,     /* never started */
    RO_RUNNING,
    RO_PAUSED,       /* a canary or a checkpoint reached, or an operator's pause: resume goes on */
    RO_SUCCEEDED,
    RO_FAILED,       /* stopped on a bad new instance, not rolled back */
    RO_ROLLED_BACK,  /* stopped on a bad new instance; the previous spec is in force again */
    RO_CANCELLED,
    RO_PHASE_COUNT
};

#define ROLLOUT_PAUSES 4

/* How a rollout goes: the operator's (asgctl rollout start) or the
 * config's (rollout.*). A count, or a percentage of the target when its
 * _pct flag is set (rounded up for surge, down for unavailable). */
struct rollout_settings {
    int32_t surge, unavailable;
    uint8_t surge_pct, unavailable_pct;
    uint8_t rollback;            /* roll back on failure */
    uint8_t npause;
    int32_t canary;              /* replace this many first, then pause; 0 none */
    int32_t canary_weight;       /* percent of new requests the canaries take; 0 = as any other */
    int32_t bake_ms;             /* a new instance is healthy this long before an old one goes */
    int32_t pause_at[ROLLOUT_PAUSES]; /* percent replaced: checkpoints, ascending */
};

struct rollout_state {
    uint32_t phase;              /* enum rollout_phase */
    uint32_t rolling_back;       /* this one restores from_gen's spec after a failure */
    uint64_t number;             /* 1, 2, ...: which rollout */
    uint64_t from_gen, to_gen;   /* the spec generation replaced, and the one replacing it */
    struct rollout_settings set;
    int32_t total;               /* instances to replace: due at the start, and found due since */
    int32_t replaced;            /* old instances it stopped */
    int32_t remaining;           /* instances still due, as last evaluated */
    int32_t next_pause;          /* index in set.pause_at of the next checkpoint */
    int32_t canary_done;         /* the canary pause was reached */
    int32_t pad;
    int64_t started_ms;          /* monotonic: launches from then on are its own */
    int64_t started_wall_ms, ended_wall_ms; /* Unix ms; 0 while running */
    int64_t window_ms;           /* the bake window's counters were marked then; 0 none */
    char reason[160];            /* why it paused, failed, rolled back or ended */
};

/* Controller state that must survive a controller restart. */
struct ctl_state {
    int32_t target;              /* live desired size; 0 = not set yet (unless at_zero) */
    int32_t breach_out, breach_in;
    int64_t last_action_ms;
    int64_t in_since_ms;         /* target policy: below target since */
    int32_t in_recommend;        /* highest recommendation in that window */
    int32_t at_zero;             /* scaled to zero (policy/zero.h): a target of 0 is meant */
    struct forecast fc;          /* predictive policy */
};

/* The balancer's count of the group's backend as a whole (HAProxy: its
 * BACKEND row of `show stat`): what a group with no instance can see of
 * its demand (policy/zero.h). */
struct lb_demand {
    uint64_t sessions;           /* sessions the backend took, a counter (held ones included) */
    uint32_t current;            /* at the backend now: served, or held waiting for a server */
    uint32_t queued;             /* in the backend's queue */
    int64_t read_ms;             /* when read; 0 = never, or the balancer has no such count */
};

/* Scale to zero (policy/zero.h): kept in the table, so that a restarted
 * controller goes on counting the idle time. */
struct zero_state {
    int64_t idle_since_ms;       /* no request at the balancer since; 0 = not watched yet */
    int64_t zero_since_ms;       /* at zero since (monotonic); 0 = not at zero */
    int64_t zero_since_wall_ms;  /* the same, Unix ms, for people */
    int64_t idle_since_wall_ms;  /* idle_since_ms, Unix ms */
    uint64_t sessions_seen;      /* the backend's session counter, last seen */
    uint64_t cold_starts;        /* times a request woke the group from zero */
};

#endif
