/* One evaluation's decisions from a view of the group: pure functions,
 * each changing the view as the table will change when the plan is
 * applied, so that what follows decides on what precedes (a row stopped
 * by the sweep is no longer a scale-in candidate, nor counted by the
 * policy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "plan.h"
#include "rollout_plan.h"
#include "suspend.h"
#include "victim.h"
#include "../policy/zero.h"

/* Instances in a state. One on standby is not the group's capacity
 * (its replacement is, or the operator's decrement took it off the
 * target) until it comes back; stopping, it is counted as any other. */
static int count(const struct plan_row *rows, size_t n, uint32_t state)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += rows[i].state == state && (!rows[i].standby || state == ROW_TERMINATING);
    return k;
}

/* How many unhealthy instances may be replaced now. Launches and stops
 * cost the machine work; when the manager itself is starved (a busy host,
 * a restarted monitor dialling every agent) many healthy instances look
 * unhealthy at once, and replacing them all at once starves it further: a
 * replacement storm. So at most a tenth of the group (at least one) is
 * being launched or stopped at a time; the others stay unhealthy, are
 * still probed, and rejoin as running if they answer meanwhile. One held
 * for the balancer costs nothing yet, and must not hold up the replacement
 * of a dead one while the balancer is away. */
static int replacement_budget(const struct plan_row *rows, size_t n)
{
    int held = 0;
    for (size_t i = 0; i < n; i++)
        held += rows[i].state == ROW_TERMINATING && rows[i].lb_hold;
    int in_flight = count(rows, n, ROW_PENDING) + count(rows, n, ROW_TERMINATING) - held;
    int group = count(rows, n, ROW_RUNNING) + count(rows, n, ROW_PENDING) + count(rows, n, ROW_UNHEALTHY) +
                count(rows, n, ROW_LAUNCH_WAIT);
    int budget = (group + 9) / 10;
    return (budget > 1 ? budget : 1) - in_flight;
}

/* An unhealthy instance: one that joined on its own registration leaves
 * the same way (the joined accounting lowers the target), so that a
 * stranger that registers and goes silent cannot hold the group up; the
 * group's own are replaced, within the budget. */
static void sweep_unhealthy(struct plan_row *r, const struct plan_group *g, int *budget, struct plan *p)
{
    char why[128];
    if (suspend_holds(g->suspended, SUSP_TERMINATE) || (!r->joined && suspend_holds(g->suspended, SUSP_REPLACE))) {
        p->held++; /* suspended: it stays unhealthy, still probed */
    } else if (r->joined) {
        snprintf(why, sizeof why, "adopted, unhealthy (%.40s): leaves the group", r->reason);
        plan_stop(p, r, g, why);
    } else if (*budget <= 0) {
        p->waiting++;
    } else {
        (*budget)--;
        snprintf(why, sizeof why, "replacing unhealthy instance (%.60s)", r->reason);
        plan_stop(p, r, g, why)->replaced = true;
    }
}

/* Boot timeouts, unhealthy replacements, unconfirmed launches to ask
 * about again, terminations in progress. */
static void sweep(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g,
                  struct plan *p)
{
    char why[128];
    int budget = replacement_budget(rows, n);
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        bool may_stop = !suspend_holds(g->suspended, SUSP_TERMINATE);
        bool may_launch = !suspend_holds(g->suspended, SUSP_LAUNCH);
        if (r->state == ROW_PENDING && g->now - r->launch_ms > cfg->boot_timeout_ms && !may_stop) {
            p->held++;
        } else if (r->state == ROW_PENDING && g->now - r->launch_ms > cfg->boot_timeout_ms) {
            snprintf(why, sizeof why, "did not register within %d ms", cfg->boot_timeout_ms);
            plan_stop(p, r, g, why);
            p->boot_timeout = true;
        } else if (r->state == ROW_PENDING && r->unconfirmed && g->backoff_over && !p->boot_timeout && may_launch) {
            plan_add_step(p, PLAN_ASK_AGAIN, r);
        } else if (r->state == ROW_UNHEALTHY && !r->standby) {
            /* On standby, an operator is at it (a debugger, a hung
             * process kept for study): missed probes replace nothing. */
            sweep_unhealthy(r, g, &budget, p);
        } else if (r->state == ROW_TERMINATING && !r->lb_hold) {
            plan_add_step(p, PLAN_CHECK_GONE, r); /* held ones are not asked to stop yet */
        }
    }
}

void plan_releases(struct plan_row *rows, size_t n, const struct plan_group *g, int lb_drain_timeout_ms,
                   struct plan *p)
{
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        if (r->state != ROW_TERMINATING || !r->lb_hold)
            continue;
        bool out = !g->lb_on || r->lb_state == LBS_NONE || r->lb_state == LBS_REMOVED;
        bool drained_blind = !g->lb_up && r->lb_state == LBS_DRAINING && g->now - r->lb_since_ms >= lb_drain_timeout_ms;
        bool wait_over = g->lb_wait_until && g->now >= g->lb_wait_until;
        if (!out && !drained_blind && !wait_over)
            continue;
        struct plan_step *s = plan_add_step(p, PLAN_RELEASE, r);
        s->blind = !out;
        if (!out)
            copy_str(s->why, sizeof s->why,
                     wait_over ? "the manager is stopping" : "drained, and the balancer cannot be reached");
        r->lb_hold = false;
    }
}

/* Instances that joined on their own registration are the group's: the
 * target rises to hold each, within max, once; and falls again when it
 * leaves (deregistered, or gone silent), never below min. Decided after
 * the sweep and before the policy, so that neither a newcomer is scaled in
 * nor a leaver replaced. A rise is like an operator's choice: it starts a
 * cooldown and forgets the load periods counted so far, so the newcomers
 * are not scaled straight back in; the policy lowers the size in its own
 * time. */
static void joined(struct plan_row *rows, size_t n, const struct asg_config *eff, int64_t now, struct plan *p)
{
    int before = p->st.target || p->st.at_zero ? p->st.target : eff->desired_instances, target = before;
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        bool in = r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT;
        if (!r->joined || in == r->joined_counted)
            continue;
        struct plan_step *s = plan_add_step(p, PLAN_JOINED, r);
        s->from = target;
        if (in && target < eff->max_instances)
            target++;
        else if (!in && target > eff->min_instances)
            target--;
        s->to = target;
        s->counted = in;
        r->joined_counted = in;
    }
    if (target > before) {
        p->st.last_action_ms = now;
        p->st.breach_out = p->st.breach_in = 0;
        p->st.in_since_ms = 0;
    }
    if (target != before)
        p->st.target = target;
    if (target > 0)
        p->st.at_zero = 0; /* an instance joined: the group is no longer at zero */
}

static void policy_step(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                        const struct asg_config *eff, const struct plan_group *g, struct plan *p)
{
    struct policy_input in;
    memset(&in, 0, sizeof in);
    for (size_t i = 0; i < n; i++) {
        const struct plan_row *r = &rows[i];
        if (r->standby) /* neither demand nor capacity while on standby */
            continue;
        struct policy_instance pi = r->pol;
        pi.state = r->state; /* as this plan leaves it */
        if (!r->surge || r->state == ROW_TERMINATING) /* a rollout's surge: neither capacity nor demand yet */
            policy_input_add(&in, &pi, cfg, g->now);
        if (g->lb_on && r->state == ROW_RUNNING && r->lb_state == LBS_NONE && r->balancer_takes)
            p->lb_now = true; /* into the balancer now, not at its next step */
        if (g->launch_failures && r->state == ROW_RUNNING && r->pol.running_since_ms > g->last_failure_ms)
            p->launches_work = true;
    }
    if (suspend_holds(g->suspended, SUSP_SCALE))
        suspend_hold_decision(eff, &p->st, &p->d); /* within the bounds, not moved by the load */
    else
        p->d = policy_decide(eff, &in, &p->st, g->now);
    p->zero = g->zero;
    if (g->lb_on && !suspend_holds(g->suspended, SUSP_SCALE)) /* a cold start or a drop to zero scales too */
        p->zero_changed = zero_decide(eff, &g->demand, &p->st, &p->zero, g->now, g->wall_now, &p->d);
    if (p->d.change && p->d.cause == CAUSE_BOUNDS && g->sched_active >= 0)
        snprintf(p->d.reason, sizeof p->d.reason, "schedule entry %d: bounds %d..%d", g->sched_active + 1,
                 eff->desired_instances, eff->max_instances);
}

/* Of an older launch spec than the one in force, or due to a rollout. */
static bool old_spec(const struct plan_row *r, const struct plan_group *g)
{
    return r->due || (!r->joined && r->spec_gen != g->spec_gen);
}

/* A candidate as the termination policy sees it (victim.h). */
static struct victim_facts facts_of(const struct plan_row *r, const struct plan_group *g)
{
    return (struct victim_facts){.unhealthy = r->state == ROW_UNHEALTHY, .pending = r->state == ROW_PENDING || r->state == ROW_LAUNCH_WAIT,
                                 .surge = r->surge, .old_spec = old_spec(r, g), .sessions_known = g->lb_on,
                                 .sessions = r->lb_sessions, .launch_ms = r->launch_ms, .slot = r->slot};
}

/* The victim of a scale-in under the termination policy (pol), and the
 * rule that chose it. Protected and standby instances are never
 * candidates; *kept counts the protected ones passed over. NULL: none. */
static struct plan_row *scale_in_victim(struct plan_row *rows, size_t n, const struct plan_group *g,
                                        const struct victim_policy *pol, enum victim_rule *why, int *kept)
{
    struct victim_facts *f = calloc(n ? n : 1, sizeof *f);
    size_t *at = calloc(n ? n : 1, sizeof *at);
    if (!f || !at)
        abort();
    size_t k = 0;
    *kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        if ((r->state != ROW_PENDING && r->state != ROW_RUNNING && r->state != ROW_UNHEALTHY &&
             r->state != ROW_LAUNCH_WAIT) || r->standby)
            continue;
        if (r->protect) {
            (*kept)++;
            continue;
        }
        f[k] = facts_of(r, g);
        at[k++] = i;
    }
    struct plan_row *victim = k ? &rows[at[victim_choose(f, k, pol, why)]] : NULL;
    free(f);
    free(at);
    return victim;
}

/* Launches into free slots (rows still terminating hold theirs: the rest
 * wait for those, which is no failure), or victims to stop. */
static void converge(struct plan_row *rows, size_t n, const struct plan_group *g,
                     const struct victim_policy *pol, struct plan *p)
{
    int size = count(rows, n, ROW_RUNNING) + count(rows, n, ROW_PENDING) + count(rows, n, ROW_UNHEALTHY) +
               count(rows, n, ROW_LAUNCH_WAIT);
    int target = p->d.target;
    const char *reason = p->d.reason;
    /* After a boot timeout this evaluation backs off; agents need the
     * monitor's address: without it, wait rather than count a failure. */
    bool may_launch = g->backoff_over && !p->boot_timeout && g->manager_known;
    if (size < target + p->surge && suspend_holds(g->suspended, SUSP_LAUNCH)) {
        p->held += target + p->surge - size;
    } else if (size > target + p->allowance && suspend_holds(g->suspended, SUSP_TERMINATE)) {
        p->held += size - target - p->allowance;
    } else if (size < target + p->surge && may_launch) {
        int want = target + p->surge - size;
        if (size >= target)
            snprintf(p->launch_why, sizeof p->launch_why, "rollout %llu: %d beyond target %d to replace older "
                     "instances", (unsigned long long)p->ro.number, want, target);
        else
            snprintf(p->launch_why, sizeof p->launch_why, "group at %d, target %d%s%.150s", size, target,
                     reason[0] ? ": " : "", reason);
        p->launches = want < g->free_rows ? want : g->free_rows;
        p->slots_short = want - p->launches;
    } else if (size > target + p->allowance) {
        target += p->allowance;
        for (int k = target; k < size; k++) {
            enum victim_rule rule;
            int kept;
            struct plan_row *r = scale_in_victim(rows, n, g, pol, &rule, &kept);
            if (!r) { /* only protected ones left: the group stays above its target */
                p->held_protected = kept ? size - k : 0;
                break;
            }
            char why[128];
            snprintf(why, sizeof why, "scale in (group %d, target %d%s%.40s): chosen by %s", size, target,
                     reason[0] ? ": " : "", reason, rule == VR_NONE ? "being the only candidate" :
                     victim_rule_name(rule));
            plan_stop(p, r, g, why);
        }
    }
}

void plan_evaluation(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                     const struct asg_config *eff, const struct plan_group *g, struct plan *p)
{
    struct plan_step *keep = p->steps;
    size_t cap = p->cap;
    memset(p, 0, sizeof *p);
    p->steps = keep;
    p->cap = cap;
    p->st = g->st;
    suspend_rollout_judge(rows, n, cfg, g, p);
    sweep(rows, n, cfg, g, p);
    plan_releases(rows, n, g, cfg->lb_drain_timeout_ms, p);
    joined(rows, n, eff, g->now, p);
    policy_step(rows, n, cfg, eff, g, p);
    if (!g->draining) {
        suspend_rollout_step(rows, n, cfg, g, p->d.target, p);
        struct victim_policy pol;
        char why[160];
        if (victim_policy_parse(cfg->termination_policy, &pol, why, sizeof why) != 0)
            victim_policy_default(&pol); /* the config's check refused it already */
        converge(rows, n, g, &pol, p);
    }
}

void plan_free(struct plan *p)
{
    free(p->steps);
    memset(p, 0, sizeof *p);
}
