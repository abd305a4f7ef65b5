/* The scale-in victim comparator (victim.h). */
#include "victim.h"

/* a before b: -1; b before a: 1; alike: 0. */
static int first_if(bool a, bool b) { return a == b ? 0 : a ? -1 : 1; }

static int by_rule(uint32_t rule, const struct victim_facts *a, const struct victim_facts *b)
{
    switch (rule) {
    case VR_OLD_SPEC:
        return first_if(a->old_spec, b->old_spec);
    case VR_OLDEST:
        return a->launch_ms == b->launch_ms ? 0 : a->launch_ms < b->launch_ms ? -1 : 1;
    case VR_NEWEST:
        return a->launch_ms == b->launch_ms ? 0 : a->launch_ms > b->launch_ms ? -1 : 1;
    case VR_FEWEST_CONNECTIONS:
        /* Without a balancer's count neither costs less to drain. */
        if (!a->sessions_known || !b->sessions_known || a->sessions == b->sessions)
            return 0;
        return a->sessions < b->sessions ? -1 : 1;
    default:
        return 0;
    }
}

int victim_compare(const struct victim_facts *a, const struct victim_facts *b, const struct victim_policy *p,
                   enum victim_rule *decided)
{
    int c;
    *decided = VR_UNHEALTHY;
    if ((c = first_if(a->unhealthy, b->unhealthy)) != 0)
        return c;
    *decided = VR_SURGE;
    if ((c = first_if(!a->surge, !b->surge)) != 0)
        return c;
    *decided = VR_PENDING;
    if ((c = first_if(a->pending, b->pending)) != 0)
        return c;
    uint32_t n = p->n <= VICTIM_RULES_MAX ? p->n : VICTIM_RULES_MAX;
    for (uint32_t k = 0; k < n; k++) {
        *decided = (enum victim_rule)p->rule[k];
        if ((c = by_rule(p->rule[k], a, b)) != 0)
            return c;
    }
    *decided = VR_NEWEST;
    if ((c = by_rule(VR_NEWEST, a, b)) != 0)
        return c;
    *decided = a->slot == b->slot ? VR_NONE : VR_SLOT;
    return a->slot == b->slot ? 0 : a->slot < b->slot ? -1 : 1;
}

/* How far down the order a rule is: the fixed ones, the list, the last
 * resorts. */
static uint32_t depth(enum victim_rule rule, const struct victim_policy *p)
{
    if (rule == VR_UNHEALTHY || rule == VR_SURGE || rule == VR_PENDING)
        return rule == VR_UNHEALTHY ? 1 : rule == VR_SURGE ? 2 : 3;
    uint32_t n = p->n <= VICTIM_RULES_MAX ? p->n : VICTIM_RULES_MAX;
    for (uint32_t k = 0; k < n; k++)
        if (p->rule[k] == rule)
            return 4 + k;
    return rule == VR_NEWEST ? 4 + VICTIM_RULES_MAX : 5 + VICTIM_RULES_MAX;
}

size_t victim_choose(const struct victim_facts *c, size_t n, const struct victim_policy *p,
                     enum victim_rule *decided)
{
    size_t best = 0;
    enum victim_rule rule;
    for (size_t i = 1; i < n; i++)
        if (victim_compare(&c[i], &c[best], p, &rule) < 0)
            best = i;
    /* It beat every other; the closest needed the deepest rule. */
    *decided = VR_NONE;
    for (size_t i = 0; i < n; i++) {
        if (i == best)
            continue;
        victim_compare(&c[best], &c[i], p, &rule);
        if (*decided == VR_NONE || depth(rule, p) > depth(*decided, p))
            *decided = rule;
    }
    return best;
}
