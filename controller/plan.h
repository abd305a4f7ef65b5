/* One evaluation's decisions, made by pure functions from a copy of the
 * group (its view): which instances to stop and why, which launches to ask
 * about again, which terminations to check, which instances the balancer
 * has let go of, what the joined instances do to the target, the policy's
 * decision, and how many instances to launch. Nothing here reads a table,
 * a clock or a provider: the Check units drive it with views they make.
 *
 * The controller applies a plan under the table's lock, step by step, each
 * to the row it names by slot and incarnation, and only while that row is
 * still in the state the step was decided on: a plan made on a view the
 * monitor has since overtaken (an instance registered, or went silent)
 * cannot touch a reused row or undo a newer fact; the next evaluation
 * decides again. */
#ifndef ASG_PLAN_H
#define ASG_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/group.h"
#include "../policy/policy.h"
#include "../common/suspend.h"

struct plan;

/* An instance as the evaluation sees it. */
struct plan_row {
    uint32_t slot;
    uint64_t incarnation;
    uint32_t state;             /* enum row_state */
    bool unconfirmed;           /* its launch had no clear answer */
    bool joined;                /* it joined on its own registration */
    bool joined_counted;        /* and the target holds it */
    bool lb_hold;               /* terminating, waiting for the balancer to let it go */
    bool balancer_takes;        /* it has an address the balancer could send traffic to */
    uint32_t lb_state;          /* enum lb_state */
    int64_t launch_ms, lb_since_ms;
    char id[INSTANCE_ID_MAX];
    char reason[64];            /* why its state last changed */
    struct policy_instance pol;
    /* rollouts (rollout_plan.h) */
    uint64_t spec_gen;          /* the launch spec generation it was launched from; 0 unknown */
    int64_t ready_since_ms;     /* running (and in the balancer, if it serves there) since; 0 not */
    int64_t state_since_ms;
    uint64_t lb_requests, lb_5xx, lb_req_mark, lb_5xx_mark;
    bool due;                   /* to be replaced (an older spec, or past its lifetime) */
    bool unproven;              /* of the spec replacing them, not healthy for the bake time yet */
    bool surge;                 /* an unproven one beyond the target: not the policy's capacity */
    /* operators' controls (docs/instance-controls.md) */
    bool protect;               /* scale-in protection: never a scale-in's or a rollout's victim */
    bool standby;               /* on standby: out of the balancer, the load and the capacity */
    uint32_t lb_sessions;       /* connections open to it at the balancer (fewest_connections) */
};

/* The group's facts at the view, besides its rows. */
struct plan_group {
    int64_t now;
    bool lb_on, lb_up;          /* a balancer is configured; its last listing worked */
    int64_t lb_wait_until;      /* a stopping manager's wait for the balancer; 0 otherwise */
    bool backoff_over;          /* no launch backoff in force */
    bool manager_known;         /* new agents can be told the monitor's address */
    bool draining;              /* the manager is stopping: nothing new is decided */
    int free_rows;              /* table slots free */
    int launch_failures;        /* in a row, and when the last one was */
    int64_t last_failure_ms;
    int64_t failing_since_ms;   /* the first of them */
    int sched_active;           /* the schedule entry in force, -1 none */
    struct ctl_state st;        /* the policy's state as the table holds it */
    uint64_t spec_gen;          /* the launch spec generation in force */
    uint64_t prev_gen;          /* the one before it, kept whole (a rollback can launch it); 0 none */
    bool lb_counts_5xx;         /* the balancer counts each member's 5xx answers */
    struct rollout_state ro;    /* the rollout as the table holds it */
    uint32_t suspended;         /* processes an operator suspended (common/suspend.h) */
    struct lb_demand demand;    /* the balancer's count of the backend as a whole (policy/zero.h) */
    struct zero_state zero;     /* scale to zero's state as the table holds it */
    int64_t wall_now;           /* Unix ms, for what people read */
};

enum plan_kind {
    PLAN_STOP,                  /* terminate (or drain first, hold) */
    PLAN_ASK_AGAIN,             /* a launch without a clear answer: same id, same token */
    PLAN_CHECK_GONE,            /* ask the provider whether a terminating one has gone */
    PLAN_RELEASE,               /* the balancer let it go (or waiting for it is over) */
    PLAN_JOINED,                /* a joined instance enters or leaves the target */
};

struct plan_step {
    enum plan_kind kind;
    uint32_t slot;
    uint64_t incarnation;
    uint32_t state;             /* the row's state when decided: applied only while it is so */
    bool hold;                  /* PLAN_STOP: the balancer drains it before the provider stops it */
    bool replaced;              /* PLAN_STOP: an unhealthy instance replaced */
    bool rolled;                /* PLAN_STOP: replaced by the rollout */
    bool blind;                 /* PLAN_RELEASE: without the balancer's word (why says why) */
    bool counted;               /* PLAN_JOINED: the target now holds it, or no longer */
    int from, to;               /* PLAN_JOINED: the target before and after */
    char id[INSTANCE_ID_MAX];
    char why[128];
};

struct plan {
    struct plan_step *steps;
    size_t n, cap;
    struct decision d;          /* the policy's */
    struct ctl_state st;        /* the policy's state after this evaluation */
    int launches;               /* instances to launch now */
    int slots_short;            /* launches that wait for a slot to free up */
    char launch_why[256];
    int waiting;                /* unhealthy instances waiting their turn to be replaced */
    bool boot_timeout;          /* a launch never registered: back off */
    bool lb_now;                /* an instance waits for the balancer: step at once */
    bool launches_work;         /* an instance came up since the last launch failure */
    /* rollouts (rollout_plan.h) */
    struct rollout_state ro;    /* the rollout after this evaluation */
    bool ro_changed;            /* ro differs from the table's: record it */
    bool ro_rollback;           /* a rollback begins: the previous spec is in force again */
    bool ro_mark;               /* a bake window opens: every row's balancer counters marked */
    int ro_level;               /* the note's log level */
    char ro_note[224];          /* a phase change, for the log and the events */
    int surge;                  /* launches beyond the target, to replace old instances */
    int allowance;              /* instances beyond the target the rollout keeps (not scaled in) */
    int held;                   /* launches and stops a suspended process holds back (controller/suspend.h) */
    int held_protected;         /* a scale-in found only protected instances: this many kept above target */
    struct zero_state zero;     /* scale to zero's state after this evaluation */
    bool zero_changed;          /* zero differs from the table's: record it */
};

/* Would a stop of an instance in this state wait for the balancer to drain
 * it? Not when there is no balancer or it does not have the instance, and
 * not for an unhealthy one while the balancer cannot be reached: a dead
 * instance serves nothing worth waiting for. */
bool plan_holds_for_balancer(bool lb_on, bool lb_up, uint32_t state, uint32_t lb_state);

/* The whole evaluation over rows[0..n) (only used slots; the view is
 * changed as the plan goes, as the table will be): the sweep, the releases,
 * the joined instances, the policy (cfg: the file's; eff: with the
 * schedule's bounds and the operator's desired size), then convergence to
 * the target. p is reset first; plan_free frees its steps. */
void plan_evaluation(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                     const struct asg_config *eff, const struct plan_group *g, struct plan *p);

/* The terminating instances the balancer has let go of (also a stopping
 * manager's, once its wait is over; and a drained one's while the
 * balancer cannot be reached, after lb_drain_timeout_ms): PLAN_RELEASE
 * steps. */
void plan_releases(struct plan_row *rows, size_t n, const struct plan_group *g, int lb_drain_timeout_ms,
                   struct plan *p);

void plan_free(struct plan *p);

/* A step of kind on row r, added to p (controller/plan_steps.c). */
struct plan_step *plan_add_step(struct plan *p, enum plan_kind kind, const struct plan_row *r);
/* A stop of r (its view changed as the table will be): for the planners. */
struct plan_step *plan_stop(struct plan *p, struct plan_row *r, const struct plan_group *g, const char *why);

#endif
