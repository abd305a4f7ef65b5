/* Which instance a scale-in stops first: a pure comparator of two
 * candidates under the group's termination policy
 * (group.termination_policy), an ordered list of tie-breakers.
 *
 * Before the operator's list, fixed rules that keep the group serving: an
 * unhealthy instance goes first (it serves nothing), then one still
 * pending (it serves nothing yet), and a rollout's surge last (the
 * rollout keeps it). The list then decides among the rest, rule by rule;
 * when every rule finds the two alike, the newer goes (the default's last
 * word), then the lower slot, so the choice never depends on the order of
 * the rows. Protected and standby instances are never candidates: the
 * caller leaves them out (controller/plan.c). */
#ifndef ASG_VICTIM_H
#define ASG_VICTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/termination.h"

/* A candidate as the comparator sees it. */
struct victim_facts {
    bool unhealthy, pending, surge, old_spec;
    bool sessions_known;    /* a balancer counts its connections */
    uint32_t sessions;      /* open at the balancer */
    int64_t launch_ms;
    uint32_t slot;
};

/* Negative when a goes before b, positive when b goes first (never 0 for
 * two different slots); *decided is the rule that told them apart. */
int victim_compare(const struct victim_facts *a, const struct victim_facts *b, const struct victim_policy *p,
                   enum victim_rule *decided);

/* The first to go of c[0..n) (n > 0), and the rule that set it apart
 * from the one closest behind it (VR_NONE when it was the only one):
 * what the termination event says. */
size_t victim_choose(const struct victim_facts *c, size_t n, const struct victim_policy *p,
                     enum victim_rule *decided);

#endif
