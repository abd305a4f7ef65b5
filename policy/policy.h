/* The scaling policy: a pure function. Given what the table says (reduced
 * to a policy_input), the config, the time, and the state it carried from
 * its last evaluation, it returns the group's new target size and why. It
 * touches nothing else, so it is tested on its own and replayed as is. */
#ifndef ASG_POLICY_H
#define ASG_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../shm/table.h"

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

/* Reduces table rows to the policy's input (only what it may look at). */
void policy_input_add(struct policy_input *in, const struct table_row *r,
                      const struct asg_config *cfg, int64_t now);

/* st is the state carried between evaluations (kept in the table so that a
 * restarted controller resumes with the same cooldown and breach counts). */
struct decision policy_decide(const struct asg_config *cfg, const struct policy_input *in,
                              struct ctl_state *st, int64_t now);

#endif
