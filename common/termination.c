/* The termination policy's names and list (termination.h). */
#include <stdio.h>
#include <string.h>

#include "termination.h"

static const char *const rule_names[VR_COUNT] = {
    [VR_NONE] = "none",         [VR_UNHEALTHY] = "unhealthy", [VR_PENDING] = "pending",
    [VR_SURGE] = "surge",       [VR_OLD_SPEC] = "old_spec",   [VR_OLDEST] = "oldest",
    [VR_NEWEST] = "newest",     [VR_FEWEST_CONNECTIONS] = "fewest_connections", [VR_SLOT] = "slot"};

const char *victim_rule_name(uint32_t rule) { return rule < VR_COUNT ? rule_names[rule] : "?"; }

void victim_policy_default(struct victim_policy *p)
{
    memset(p, 0, sizeof *p);
    p->rule[p->n++] = VR_OLD_SPEC;
    p->rule[p->n++] = VR_NEWEST;
}

/* One name of the operator's list: its rule, or VR_NONE. */
static uint32_t rule_named(const char *name, size_t len)
{
    for (uint32_t r = VR_OLD_SPEC; r <= VR_FEWEST_CONNECTIONS; r++)
        if (strlen(rule_names[r]) == len && strncmp(rule_names[r], name, len) == 0)
            return r;
    return VR_NONE;
}

int victim_policy_parse(const char *list, struct victim_policy *p, char *why, size_t whysize)
{
    if (!list[0]) {
        victim_policy_default(p);
        return 0;
    }
    struct victim_policy got = {0};
    for (const char *s = list;;) {
        size_t len = strcspn(s, ",");
        uint32_t r = rule_named(s, len);
        if (r == VR_NONE) {
            snprintf(why, whysize, "'%.*s' is not a termination rule: one of old_spec, oldest, newest, "
                     "fewest_connections", (int)(len < 40 ? len : 40), s);
            return -1;
        }
        for (uint32_t k = 0; k < got.n; k++)
            if (got.rule[k] == r) {
                snprintf(why, whysize, "'%s' is named twice", rule_names[r]);
                return -1;
            }
        if (got.n == VICTIM_RULES_MAX) { /* unreachable: four names, none twice */
            snprintf(why, whysize, "more than %d rules", VICTIM_RULES_MAX);
            return -1;
        }
        got.rule[got.n++] = r;
        if (!s[len])
            break;
        s += len + 1;
    }
    *p = got;
    return 0;
}
