/* The termination policy's vocabulary (group.termination_policy): the
 * rules a scale-in's victim is chosen by, their names, and the operator's
 * ordered list read from the config. Here, at the base, so that the
 * config's check refuses a bad name; the comparator that applies them is
 * the controller's (controller/victim.h). */
#ifndef ASG_TERMINATION_H
#define ASG_TERMINATION_H

#include <stddef.h>
#include <stdint.h>

/* The rules, fixed and the operator's; VR_NONE: nothing told two apart. */
enum victim_rule {
    VR_NONE = 0,
    VR_UNHEALTHY,           /* fixed: unhealthy first */
    VR_PENDING,             /* fixed: not serving yet */
    VR_SURGE,               /* fixed: a rollout's surge last */
    VR_OLD_SPEC,            /* "old_spec": of an older launch spec (or due to a rollout) first */
    VR_OLDEST,              /* "oldest": launched first */
    VR_NEWEST,              /* "newest": launched last */
    VR_FEWEST_CONNECTIONS,  /* "fewest_connections": fewest open at the balancer */
    VR_SLOT,                /* last resort: the lower table slot */
    VR_COUNT
};

#define VICTIM_RULES_MAX 4

/* The operator's ordered list. */
struct victim_policy {
    uint32_t n;
    uint32_t rule[VICTIM_RULES_MAX]; /* VR_OLD_SPEC .. VR_FEWEST_CONNECTIONS */
};

/* The default list, what asg always did: old_spec, then newest. */
void victim_policy_default(struct victim_policy *p);

/* list: the config's names joined by commas ("" = the default). 0, or -1
 * with why naming the bad or repeated name. */
int victim_policy_parse(const char *list, struct victim_policy *p, char *why, size_t whysize);

/* "unhealthy", "pending", "surge", "old_spec", "oldest", "newest",
 * "fewest_connections", "slot", "none". */
const char *victim_rule_name(uint32_t rule);

#endif
