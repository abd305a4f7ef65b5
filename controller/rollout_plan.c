/* A rollout's decisions (rollout_plan.h): pure functions over the view. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "rollout_plan.h"

/* Within range whatever the table holds (a damaged one included). */
static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

void rollout_amounts(const struct rollout_settings *s, int target, int *surge, int *unavailable)
{
    int64_t t = clamp(target, 0, 100000);
    int64_t su = clamp(s->surge, 0, s->surge_pct ? 100 : 100000);
    int64_t un = clamp(s->unavailable, 0, s->unavailable_pct ? 100 : 100000);
    *surge = (int)(s->surge_pct ? (t * su + 99) / 100 : su);
    *unavailable = (int)(s->unavailable_pct ? t * un / 100 : un);
    if (*unavailable > t)
        *unavailable = t;
    if (*surge <= 0 && *unavailable <= 0)
        *surge = 1;
}

static bool running(const struct plan_group *g) { return g->ro.phase == RO_RUNNING; }

/* Running or paused: its instances are told apart (old, unproven, surge)
 * either way, so that a pause mid-batch neither counts the surge as the
 * policy's capacity nor scales it in against an old serving instance. */
static bool ongoing(const struct plan_group *g) { return g->ro.phase == RO_RUNNING || g->ro.phase == RO_PAUSED; }

/* Instances past their lifetime are replaced between rollouts too, but
 * not while an operator holds one paused. */
static bool lifetime_only(const struct asg_config *cfg, uint32_t phase)
{
    return phase != RO_RUNNING && phase != RO_PAUSED && cfg->max_instance_lifetime_s > 0;
}

/* An instance on standby is outside the rollout, as it is outside the
 * group's capacity: neither replaced nor counted (it may be of an older
 * spec when it comes back; docs/instance-controls.md). */
static bool live(const struct plan_row *r)
{
    return r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT && r->state != ROW_FREE && !r->standby;
}

/* Of this rollout: launched from the spec rolled out to since it began. */
static bool its_own(const struct plan_row *r, const struct rollout_state *ro)
{
    return !r->joined && r->spec_gen == ro->to_gen && r->launch_ms >= ro->started_ms;
}

static int bake_ms(const struct asg_config *cfg, const struct plan_group *g)
{
    return ongoing(g) ? g->ro.set.bake_ms : cfg->rollout_bake_s * 1000;
}

static void classify(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g)
{
    uint64_t to = ongoing(g) ? g->ro.to_gen : g->spec_gen;
    int64_t lifetime = (int64_t)cfg->max_instance_lifetime_s * 1000;
    int bake = bake_ms(cfg, g);
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        r->due = r->unproven = r->surge = false;
        if (!live(r) || r->joined)
            continue;
        bool aged = lifetime > 0 && g->now - r->launch_ms >= lifetime;
        r->due = (ongoing(g) && r->spec_gen != to) || aged;
        bool proven = r->state == ROW_RUNNING && r->ready_since_ms && g->now - r->ready_since_ms >= bake;
        r->unproven = !r->due && r->spec_gen == to && !proven;
    }
}

/* The newest unproven instances beyond the last target are the surge:
 * the policy sizes the group without them, so that a rollout is neither
 * extra capacity nor (their boot's load) extra demand. */
static void mark_surge(struct plan_row *rows, size_t n, const struct plan_group *g)
{
    int lv = 0;
    for (size_t i = 0; i < n; i++)
        lv += live(&rows[i]);
    int target = g->st.target;
    for (int extra = lv - target; target > 0 && extra > 0; extra--) {
        struct plan_row *newest = NULL;
        for (size_t i = 0; i < n; i++)
            if (rows[i].unproven && !rows[i].surge && live(&rows[i]) &&
                (!newest || rows[i].launch_ms > newest->launch_ms))
                newest = &rows[i];
        if (!newest)
            break;
        newest->surge = true;
    }
}

/* The rollout failed (why): it rolls back when it may, else it stops. */
static void fail(const struct plan_group *g, struct plan *p, const char *why)
{
    struct rollout_state *ro = &p->ro;
    bool may_roll_back = ro->set.rollback && !ro->rolling_back && g->prev_gen && g->prev_gen != ro->to_gen;
    p->ro_changed = true;
    p->ro_level = LOG_LVL_WARN;
    if (may_roll_back) {
        snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu failed: %.120s; rolling back to generation %llu",
                 (unsigned long long)ro->number, why, (unsigned long long)g->prev_gen);
        snprintf(ro->reason, sizeof ro->reason, "rolling back: %.140s", why);
        ro->rolling_back = 1;
        ro->from_gen = ro->to_gen;
        ro->to_gen = g->prev_gen;
        ro->started_ms = g->now;
        ro->total = ro->replaced = ro->remaining = 0;
        ro->canary_done = 1;
        ro->next_pause = ro->set.npause;
        ro->window_ms = 0;
        p->ro_rollback = true;
        return;
    }
    const char *no_prev = ro->set.rollback && !ro->rolling_back ? " (no previous spec kept to roll back to)" : "";
    snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu failed: %.120s%s", (unsigned long long)ro->number,
             why, no_prev);
    snprintf(ro->reason, sizeof ro->reason, "%s%.100s%s", ro->rolling_back ? "rollback failed: " : "", why,
             no_prev);
    ro->phase = RO_FAILED;
    p->ro_level = LOG_LVL_ERROR;
}

/* The new instances' share of 5xx answers over the bake window, against
 * the old ones': why it is worse by more than the margin, or NULL. */
static bool errors_worse(const struct plan_row *rows, size_t n, const struct asg_config *cfg,
                         const struct rollout_state *ro, char *why, size_t size)
{
    uint64_t nreq = 0, nerr = 0, oreq = 0, oerr = 0;
    for (size_t i = 0; i < n; i++) {
        const struct plan_row *r = &rows[i];
        if (r->state != ROW_RUNNING)
            continue;
        /* A counter below its mark was reset (the member added again). */
        uint64_t req = r->lb_requests >= r->lb_req_mark ? r->lb_requests - r->lb_req_mark : r->lb_requests;
        uint64_t err = r->lb_5xx >= r->lb_5xx_mark ? r->lb_5xx - r->lb_5xx_mark : r->lb_5xx;
        if (err > req)
            err = req;
        if (r->unproven && its_own(r, ro)) {
            nreq += req;
            nerr += err;
        } else if (r->due) {
            oreq += req;
            oerr += err;
        }
    }
    if (nreq < (uint64_t)cfg->rollout_min_requests)
        return false;
    double nshare = (double)nerr / (double)nreq, oshare = oreq ? (double)oerr / (double)oreq : 0.0;
    if (nshare <= oshare + cfg->rollout_error_margin)
        return false;
    snprintf(why, size, "new instances answered %.1f%% of %llu requests with 5xx, the old ones %.1f%% of %llu",
             100 * nshare, (unsigned long long)nreq, 100 * oshare, (unsigned long long)oreq);
    return true;
}

/* A new instance of this rollout that never came up, or fell before it
 * was proven: why, or false. */
static bool instance_failed(const struct plan_row *rows, size_t n, const struct asg_config *cfg,
                            const struct plan_group *g, char *why, size_t size)
{
    const struct rollout_state *ro = &g->ro;
    for (size_t i = 0; i < n; i++) {
        const struct plan_row *r = &rows[i];
        if (!its_own(r, ro))
            continue;
        if (r->state == ROW_PENDING && g->now - r->launch_ms > cfg->boot_timeout_ms) {
            snprintf(why, size, "%.40s (generation %llu) did not register within %d ms", r->id,
                     (unsigned long long)r->spec_gen, cfg->boot_timeout_ms);
            return true;
        }
        bool fell_early = !r->pol.running_since_ms || r->state_since_ms - r->pol.running_since_ms < ro->set.bake_ms;
        if (r->state == ROW_UNHEALTHY && fell_early) {
            snprintf(why, size, "%.40s (generation %llu) unhealthy before it was proven: %.60s", r->id,
                     (unsigned long long)r->spec_gen, r->reason);
            return true;
        }
    }
    /* A launch the provider refuses at once (an unknown template version)
     * leaves no row to time out: launches failing in a row since the
     * rollout began, for as long as a boot may take, are the same verdict. */
    if (g->launch_failures > 1 && g->failing_since_ms >= ro->started_ms &&
        g->now - g->failing_since_ms > cfg->boot_timeout_ms) {
        snprintf(why, size, "launches of generation %llu failed %d times in a row over %lld s (see the launch events)",
                 (unsigned long long)ro->to_gen, g->launch_failures,
                 (long long)(g->now - g->failing_since_ms) / 1000);
        return true;
    }
    return false;
}

/* The counts as a damaged table may hold them, back in range: a huge
 * negative number replaced put every launch beyond a canary (the
 * rollout stalled), and sums of huge ones overflowed. Recorded so. */
static void counts_in_range(struct rollout_state *ro)
{
    ro->replaced = (int32_t)clamp(ro->replaced, 0, 100000);
    ro->total = (int32_t)clamp(ro->total, 0, 100000);
    ro->remaining = (int32_t)clamp(ro->remaining, 0, 100000);
    ro->next_pause = (int32_t)clamp(ro->next_pause, 0, ROLLOUT_PAUSES);
}

void rollout_judge(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g,
                   struct plan *p)
{
    p->ro = g->ro;
    if (ongoing(g))
        counts_in_range(&p->ro);
    if (!ongoing(g) && !lifetime_only(cfg, g->ro.phase)) {
        for (size_t i = 0; i < n; i++)
            rows[i].due = rows[i].unproven = rows[i].surge = false;
        return;
    }
    classify(rows, n, cfg, g);
    if (ongoing(g))
        mark_surge(rows, n, g);
    char why[160];
    if (running(g) && (instance_failed(rows, n, cfg, g, why, sizeof why) ||
                       (g->lb_counts_5xx && g->ro.window_ms && errors_worse(rows, n, cfg, &g->ro, why, sizeof why))))
        fail(g, p, why);
}

struct counts {
    int live, avail, unproven, due;
    int stopping;               /* terminating: still there, draining or shutting down */
    int held;                   /* due but protected: the rollout stops none of them */
    const char *held_id;        /* one of those, for the reason */
};

static struct counts count_rows(const struct plan_row *rows, size_t n)
{
    struct counts c = {0, 0, 0, 0, 0, 0, NULL};
    for (size_t i = 0; i < n; i++) {
        const struct plan_row *r = &rows[i];
        c.stopping += r->state == ROW_TERMINATING || r->state == ROW_TERM_WAIT;
        if (!live(r))
            continue;
        c.live++;
        c.unproven += r->unproven;
        c.due += r->due && !r->protect;
        c.held += r->due && r->protect;
        if (r->due && r->protect && !c.held_id)
            c.held_id = r->id;
        c.avail += r->state == ROW_RUNNING && !r->unproven;
    }
    return c;
}

/* The next old instance to replace: one not serving first (pending, or
 * waiting to be replaced), then the oldest. */
static struct plan_row *next_due(struct plan_row *rows, size_t n)
{
    struct plan_row *best = NULL;
    for (size_t i = 0; i < n; i++) {
        struct plan_row *r = &rows[i];
        if (!r->due || !live(r) || r->protect)
            continue;
        bool serving = r->state == ROW_RUNNING;
        bool best_serving = best && best->state == ROW_RUNNING;
        if (!best || (best_serving && !serving) || (serving == best_serving && r->launch_ms < best->launch_ms))
            best = r;
    }
    return best;
}

/* How many replacements until the next pause (INT_MAX: none). */
static int pause_limit(const struct rollout_state *ro)
{
    if (ro->rolling_back)
        return INT_MAX;
    if (ro->set.canary > 0 && !ro->canary_done)
        return ro->set.canary;
    if (ro->next_pause < ro->set.npause && ro->next_pause >= 0 && ro->next_pause < ROLLOUT_PAUSES) {
        int64_t total = clamp(ro->total, 1, 100000);
        int64_t k = (clamp(ro->set.pause_at[ro->next_pause], 1, 99) * total + 99) / 100;
        return (int)k;
    }
    return INT_MAX;
}

/* Every old instance left is protected: the rollout cannot stop them and
 * cannot finish; it waits, and says why (once, when it starts waiting). */
static void wait_for_protected(struct plan *p, const struct plan_group *g, const struct counts *c)
{
    struct rollout_state *ro = &p->ro;
    snprintf(ro->reason, sizeof ro->reason,
             "waiting: %d protected old instance(s) (%.24s%s) not replaced; asgctl protect ID off "
             "lets it finish", c->held, c->held_id ? c->held_id : "?", c->held > 1 ? ", ..." : "");
    if (strcmp(ro->reason, g->ro.reason) == 0)
        return;
    snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu %.200s", (unsigned long long)ro->number, ro->reason);
    p->ro_level = LOG_LVL_WARN;
}

/* Nothing unproven, none to launch: a pause point or, once the last old
 * instance is gone too, the end (or a wait while protected ones remain). */
static void progress(struct plan *p, const struct plan_group *g, int limit, const struct counts *c)
{
    struct rollout_state *ro = &p->ro;
    int remaining = c->due, stopping = c->stopping;
    if (remaining == 0 && stopping > 0)
        return;
    if (remaining == 0 && c->held > 0) {
        wait_for_protected(p, g, c);
        return;
    }
    if (remaining == 0) {
        ro->phase = ro->rolling_back ? RO_ROLLED_BACK : RO_SUCCEEDED;
        const char *was = g->ro.reason, *prefix = "rolling back: ";
        if (strncmp(was, prefix, strlen(prefix)) == 0)
            was += strlen(prefix);
        if (ro->rolling_back)
            snprintf(ro->reason, sizeof ro->reason, "rolled back: %.140s", was);
        else
            snprintf(ro->reason, sizeof ro->reason, "%d instance(s) replaced: every one is of generation %llu",
                     ro->replaced, (unsigned long long)ro->to_gen);
        if (ro->rolling_back)
            snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu rolled back to generation %llu: %.150s",
                     (unsigned long long)ro->number, (unsigned long long)ro->to_gen, was);
        else
            snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu succeeded: %.150s", (unsigned long long)ro->number,
                     ro->reason);
        p->ro_level = ro->rolling_back ? LOG_LVL_WARN : LOG_LVL_INFO;
        return;
    }
    if (limit == INT_MAX || ro->replaced < limit)
        return;
    ro->phase = RO_PAUSED;
    /* Checkpoints this pause has reached too (rounded to the same count)
     * are passed with it: else each would pause again, nothing done. */
    if (ro->set.canary > 0 && !ro->canary_done) {
        ro->canary_done = 1;
        while (pause_limit(ro) <= ro->replaced)
            ro->next_pause++;
        snprintf(ro->reason, sizeof ro->reason,
                 "canary: %d instance(s) of generation %llu proven; asgctl rollout resume goes on", ro->replaced,
                 (unsigned long long)ro->to_gen);
    } else {
        int at = ro->next_pause++;
        while (pause_limit(ro) <= ro->replaced)
            at = ro->next_pause++;
        snprintf(ro->reason, sizeof ro->reason, "checkpoint %d%%: %d of %d replaced; asgctl rollout resume goes on",
                 ro->set.pause_at[at], ro->replaced, ro->total);
    }
    snprintf(p->ro_note, sizeof p->ro_note, "rollout %llu paused: %.150s", (unsigned long long)ro->number, ro->reason);
    p->ro_level = LOG_LVL_INFO;
}

/* One evaluation's amounts and counts. */
struct batch {
    int target, surge, unavail, batch, limit, replaced;
    int refilled;               /* stops the converge refills with a new, unproven instance */
    struct counts c;
};

/* Stops old instances while the health gate allows: healthy ones stay
 * at least target - unavailable, and a stop the converge refills adds an
 * unproven instance, of which at most a batch exist. */
static void replace_old(struct plan_row *rows, size_t n, const struct plan_group *g, const char *why,
                        struct batch *b, struct plan *p)
{
    struct counts *c = &b->c;
    for (struct plan_row *r; b->replaced < b->limit && (r = next_due(rows, n)) != NULL;) {
        bool serving = r->state == ROW_RUNNING;
        if (serving && c->avail - 1 < b->target - b->unavail)
            break;
        bool refill = c->live - 1 < b->target;
        if (refill && c->unproven + 1 > b->batch)
            break;
        plan_stop(p, r, g, why)->rolled = true;
        r->due = false;
        c->live--;
        c->due--;
        c->avail -= serving;
        c->stopping++;
        c->unproven += refill;
        b->refilled += refill;
        b->replaced++;
    }
}

/* New instances to launch beyond the target: within the surge (those
 * still shutting down count against it, so never more than target +
 * surge exist at once), the batch of unproven ones (a scale-out's
 * launches among them), the old ones left, and the next pause. */
static int surge_room(const struct batch *b)
{
    const struct counts *c = &b->c;
    int beyond = c->live - b->target > 0 ? c->live - b->target : 0;
    int refills = b->target - c->live > 0 ? b->target - c->live : 0;
    int there = c->live + c->stopping - b->target;
    int room = b->surge - (there > beyond ? there : beyond);
    int cap[3] = {b->batch - c->unproven - (refills - b->refilled), c->due - beyond,
                  b->limit == INT_MAX ? INT_MAX : b->limit - b->replaced - beyond};
    for (int k = 0; k < 3; k++)
        room = cap[k] < room ? cap[k] : room;
    return room > 0 ? room : 0;
}

/* The rollout failed and rolls back: its new instances not yet proven go
 * now (a 5xx verdict leaves them running and serving, and without this
 * the group, one beyond its target, would scale in a good old one). The
 * converge refills from the previous spec, put in force first. */
static void stop_failed(struct plan_row *rows, size_t n, const struct plan_group *g, struct plan *p)
{
    char why[128];
    snprintf(why, sizeof why, "rollout %llu %s: generation %llu not proven", (unsigned long long)p->ro.number,
             p->ro_rollback ? "rolls back" : "failed", (unsigned long long)g->ro.to_gen);
    for (size_t i = 0; i < n; i++)
        if (live(&rows[i]) && rows[i].unproven && its_own(&rows[i], &g->ro))
            plan_stop(p, &rows[i], g, why);
}

/* Paused: nothing stopped or launched for it, and the surge it had
 * launched (marked by rollout_judge) is kept from the scale-in. */
static int paused_allowance(const struct plan_row *rows, size_t n)
{
    int kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += live(&rows[i]) && rows[i].surge;
    return kept;
}

void rollout_step(struct plan_row *rows, size_t n, const struct asg_config *cfg, const struct plan_group *g,
                  int target, struct plan *p)
{
    p->surge = p->allowance = 0;
    /* A rollout that failed now, rolling back or not, leaves no unproven
     * instance of its own serving. */
    if (p->ro_rollback || (p->ro.phase == RO_FAILED && g->ro.phase == RO_RUNNING))
        stop_failed(rows, n, g, p);
    if (p->ro.phase == RO_PAUSED && g->ro.phase == RO_PAUSED)
        p->allowance = paused_allowance(rows, n);
    bool on = p->ro.phase == RO_RUNNING && !p->ro_rollback && running(g);
    if (!on && !(lifetime_only(cfg, p->ro.phase) && lifetime_only(cfg, g->ro.phase)))
        goto done;
    struct rollout_settings life = {.surge = 1, .bake_ms = cfg->rollout_bake_s * 1000};
    struct batch b = {.target = target, .limit = on ? pause_limit(&p->ro) : INT_MAX,
                      .replaced = on ? p->ro.replaced : 0, .c = count_rows(rows, n)};
    rollout_amounts(on ? &p->ro.set : &life, target, &b.surge, &b.unavail);
    b.batch = b.surge > b.unavail ? b.surge : b.unavail;
    int unproven_before = b.c.unproven;
    char why[128];
    if (on)
        snprintf(why, sizeof why, "rollout %llu: generation %llu replaced by %llu", (unsigned long long)p->ro.number,
                 (unsigned long long)p->ro.from_gen, (unsigned long long)p->ro.to_gen);
    else
        snprintf(why, sizeof why, "past its lifetime (%d s)", cfg->max_instance_lifetime_s);
    replace_old(rows, n, g, why, &b, p);
    p->surge = surge_room(&b);
    if (on && unproven_before == 0 && (p->surge > 0 || b.refilled > 0)) {
        p->ro_mark = true;
        p->ro.window_ms = g->now;
    }
    int keep = b.c.live + p->surge - target;
    p->allowance = keep < 0 ? 0 : keep < b.surge ? keep : b.surge;
    if (!on)
        goto done;
    p->ro.replaced = b.replaced;
    p->ro.remaining = b.c.due + b.c.held;
    if (p->ro.total < b.replaced + p->ro.remaining)
        p->ro.total = b.replaced + p->ro.remaining;
    if (b.c.unproven == 0 && p->surge == 0 && b.c.live >= target)
        progress(p, g, b.limit, &b.c);
done:
    if (memcmp(&p->ro, &g->ro, sizeof p->ro) != 0)
        p->ro_changed = true;
}
