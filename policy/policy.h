/* The scaling policy: a pure function. Given what the table says (reduced
 * to a policy_input), the config, the time, and the state it carried from
 * its last evaluation, it returns the group's new target size and why. It
 * touches nothing else, so it is tested on its own and replayed as is. */
#ifndef ASG_POLICY_H
#define ASG_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/group.h"

struct policy_input {
    int running;        /* registered and healthy */
    int pending;        /* launched, not registered yet */
    int warm;           /* running, past warmup, with a fresh sample */
    double load_sum;    /* sum of the load of the warm ones */
    int stale;          /* running ones whose last probe failed */
    int waiting;        /* unhealthy, still probed, waiting their turn to be replaced */
};

struct decision {
    int target;         /* size the controller converges to */
    int change;         /* +n scale out, -n scale in, 0 none */
    int cause;          /* enum action_cause: load, or new bounds */
    char reason[160];
};

/* An instance as the policy sees it (the controller copies it from the
 * instance's row): its state, its last load sample and request rates. */
struct policy_instance {
    uint32_t state;             /* enum row_state */
    uint32_t misses;            /* consecutive failed probes */
    bool has_sample;
    double load;                /* last sample, a fraction */
    int64_t last_seen_ms;       /* last successful probe, 0 if never */
    int64_t running_since_ms;
    double req_rate;            /* requests/s at the balancer */
    int64_t req_rate_ms;        /* when measured; 0 = never */
    double svc_rate;            /* requests/s its service reports */
    int64_t svc_rate_ms;        /* when measured; 0 = never */
};

/* Adds one instance to the policy's input (only what it may look at). */
void policy_input_add(struct policy_input *in, const struct policy_instance *r,
                      const struct asg_config *cfg, int64_t now);

/* st is the state carried between evaluations (kept in the table so that a
 * restarted controller resumes with the same cooldown and breach counts). */
struct decision policy_decide(const struct asg_config *cfg, const struct policy_input *in,
                              struct ctl_state *st, int64_t now);

#endif
