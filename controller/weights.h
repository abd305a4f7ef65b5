/* How the controller weighs the balancer's members: which share of new
 * requests each instance gets. Pure functions: tests/check_lb.c drives
 * them; controller/lb_table.c gives them the rows and sets what they say
 * at the balancer (only where it has weights: lb_ops.set_weight).
 *
 * The rules, over the members in rotation (running, added, ready):
 *   - a canary: while a rollout with a canary weight P (asgctl rollout
 *     start --canary N --canary-weight P%) replaces its canary, or waits
 *     paused right after it, the new generation's members together take
 *     P% of new requests: each old one keeps the base weight B, each new
 *     one gets P * n_old * B / ((100 - P) * n_new); when that is above
 *     LB_WEIGHT_MAX, the new ones get LB_WEIGHT_MAX and the old ones
 *     (100 - P) * n_new * LB_WEIGHT_MAX / (P * n_old) instead, so that
 *     the share holds. Each at least 1;
 *   - otherwise, with lb.weight_by_load: round(100 * (1.05 - load)),
 *     1..LB_WEIGHT_MAX: an idle instance 105, one at 50% 55, one at 90%
 *     15, a saturated one 5 (never 0: it still gets a little, so that its
 *     load keeps being measured against traffic). An instance without a
 *     recent sample keeps the base weight;
 *   - otherwise every member has the base weight, LB_WEIGHT_BASE (100).
 * Weights from load change with every sample: one is set again only
 * when it moved by WEIGHT_DEADBAND or more, not to call the balancer for
 * every member every step. */
#ifndef ASG_WEIGHTS_H
#define ASG_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/group.h"
#include "../lb/lb.h"

#define WEIGHT_LOAD_SCALE 100
#define WEIGHT_DEADBAND 5

enum weight_rule { WR_BASE, WR_LOAD, WR_CANARY };

/* A member as the rules see it (the controller fills it from its row and
 * the balancer's listing). */
struct weight_member {
    bool serving;                /* in rotation: running, added, ready at the balancer */
    bool is_new;                 /* of the generation the rollout goes to */
    bool fresh;                  /* its load sample is recent enough to go by */
    double load;                 /* 0..1 */
    uint32_t current;            /* its weight at the balancer now */
};

/* The share in percent of new requests the canary takes now (1..99), or
 * 0 when no canary weight is in force. */
int weight_canary_share(const struct rollout_state *ro);

/* The weight of an instance at load (a fraction). */
uint32_t weight_of_load(double load);

/* A canary's weights: its n_new members take pct% of the requests beside
 * n_old old ones. */
void weight_canary(int pct, int n_old, int n_new, uint32_t *w_new, uint32_t *w_old);

/* Each member's weight, in out (a member not serving: its current one);
 * returns the rule that decided (enum weight_rule). canary_pct: from
 * weight_canary_share. */
int weights_decide(const struct weight_member *m, size_t n, bool by_load, int canary_pct, uint32_t *out);

/* Whether moving a member from its weight to another is worth a call. */
bool weight_worth_setting(int rule, uint32_t from, uint32_t to);

/* Whether a change is large enough to tell operators in the event log
 * (halved or doubled, or more); smaller ones are logged at debug level. */
bool weight_change_noted(uint32_t from, uint32_t to);

#endif
