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
#include "../policy/zero.h"

static int count(const struct plan_row *rows, size_t n, uint32_t state)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += rows[i].state == state;
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
    int group = count(rows, n, ROW_RUNNING) + count(rows, n, ROW_PENDING) + count(rows, n, ROW_UNHEALTHY);
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
    if (r->joined) {
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
        if (r->state == ROW_PENDING && g->now - r->launch_ms > cfg->boot_timeout_ms) {
            snprintf(why, sizeof why, "did not register within %d ms", cfg->boot_timeout_ms);
            plan_stop(p, r, g, why);
            p->boot_timeout = true;
        } else if (r->state == ROW_PENDING && r->unconfirmed && g->backoff_over && !p->boot_timeout) {
            plan_add_step(p, PLAN_ASK_AGAIN, r);
        } else if (r->state == ROW_UNHEALTHY) {
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
        bool in = r->state != ROW_TERMINATING;
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
        struct policy_instance pi = r->pol;
        pi.state = r->state; /* as this plan leaves it */
        if (!r->surge || r->state == ROW_TERMINATING) /* a rollout's surge: neither capacity nor demand yet */
            policy_input_add(&in, &pi, cfg, g->now);
        if (g->lb_on && r->state == ROW_RUNNING && r->lb_state == LBS_NONE && r->balancer_takes)
            p->lb_now = true; /* into the balancer now, not at its next step */
        if (g->launch_failures && r->state == ROW_RUNNING && r->pol.running_since_ms > g->last_failure_ms)
            p->launches_work = true;
    }
    p->d = policy_decide(eff, &in, &p->st, g->now);
    p->zero = g->zero;
    if (g->lb_on)
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

/* Picks the victim of a scale-in: an unhealthy instance waiting for
 * replacement first; else a pending one (it serves nothing yet: taking a
 * serving old one instead, after a rollout's cancel mid-batch, left fewer
 * serving than the target); else one of an older launch spec (a rollout
 * would replace it anyway); else the newest, which has done the least
 * work and is the last to have warmed up; a rollout's surge last. */
/* Higher goes first. A rollout's surge goes last: the allowance keeps it
 * and only a scale-in below that reaches it. */
static int victim_rank(const struct plan_row *r, const struct plan_group *g)
{
    return r->surge ? 0 : r->state == ROW_PENDING ? 3 : old_spec(r, g) ? 2 : 1;
}

static struct plan_row *scale_in_victim(struct plan_row *rows, size_t n, const struct plan_group *g)
{
    struct plan_row *best = NULL;
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        if (r->state == ROW_UNHEALTHY)
            return r;
        if (r->state != ROW_PENDING && r->state != ROW_RUNNING)
            continue;
        int rank = victim_rank(r, g), best_rank = best ? victim_rank(best, g) : -1;
        if (rank > best_rank || (rank == best_rank && r->launch_ms > best->launch_ms))
            best = r;
    }
    return best;
}

/* Launches into free slots (rows still terminating hold theirs: the rest
 * wait for those, which is no failure), or victims to stop. */
static void converge(struct plan_row *rows, size_t n, const struct plan_group *g, struct plan *p)
{
    int size = count(rows, n, ROW_RUNNING) + count(rows, n, ROW_PENDING) + count(rows, n, ROW_UNHEALTHY);
    int target = p->d.target;
    const char *reason = p->d.reason;
    /* After a boot timeout this evaluation backs off; agents need the
     * monitor's address: without it, wait rather than count a failure. */
    bool may_launch = g->backoff_over && !p->boot_timeout && g->manager_known;
    if (size < target + p->surge && may_launch) {
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
        char why[128];
        snprintf(why, sizeof why, "scale in: group at %d, target %d%s%.60s", size, target, reason[0] ? ": " : "",
                 reason);
        for (int k = target; k < size; k++) {
            struct plan_row *r = scale_in_victim(rows, n, g);
            if (!r)
                break;
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
    rollout_judge(rows, n, cfg, g, p);
    sweep(rows, n, cfg, g, p);
    plan_releases(rows, n, g, cfg->lb_drain_timeout_ms, p);
    joined(rows, n, eff, g->now, p);
    policy_step(rows, n, cfg, eff, g, p);
    if (!g->draining) {
        rollout_step(rows, n, cfg, g, p->d.target, p);
        converge(rows, n, g, p);
    }
}

void plan_free(struct plan *p)
{
    free(p->steps);
    memset(p, 0, sizeof *p);
}
