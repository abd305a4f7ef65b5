#include "zero.h"

#include <stdio.h>
#include <string.h>

bool zero_demand_fresh(const struct asg_config *cfg, const struct lb_demand *d, int64_t now)
{
    return d->read_ms > 0 && now - d->read_ms <= 3LL * cfg->lb_interval_ms + 1000;
}

/* Requests since the last look: the counter moved (a restarted balancer
 * counts from 0 again: any count then is new), or some are at the backend
 * now (a keep-alive connection's next request does not open a session). */
static uint64_t arrivals(const struct lb_demand *d, const struct zero_state *z)
{
    if (d->sessions >= z->sessions_seen)
        return d->sessions - z->sessions_seen;
    return d->sessions;
}

static void leave_zero(struct ctl_state *st, struct zero_state *z)
{
    st->at_zero = 0;
    z->zero_since_ms = z->zero_since_wall_ms = 0;
}

static void enter_zero(struct ctl_state *st, struct zero_state *z, int64_t now, int64_t wall_now)
{
    st->at_zero = 1;
    st->target = 0;
    st->breach_out = st->breach_in = 0;
    st->in_since_ms = 0;
    z->zero_since_ms = now;
    z->zero_since_wall_ms = wall_now;
}

/* min_instances above 0: scale to zero is not (or no longer) allowed; a
 * group at zero is brought back to min by the bounds. */
static void zero_not_allowed(const struct asg_config *cfg, struct ctl_state *st, struct zero_state *z, int from,
                             struct decision *d)
{
    if (st->at_zero) {
        leave_zero(st, z);
        d->target = cfg->min_instances;
        d->change = d->target - from;
        d->cause = CAUSE_BOUNDS;
        snprintf(d->reason, sizeof d->reason, "group.min_instances is %d: no longer at zero", cfg->min_instances);
        st->target = d->target;
    }
    z->idle_since_ms = z->idle_since_wall_ms = 0;
}

/* What the balancer's backend says now: requests since the last look
 * (*came), whether any is there (the return), and the idle clock moved on
 * either. The first reading is the baseline: what the backend counted
 * before it was watched (a start, min just set to 0) is no request now. */
static bool observe_demand(const struct lb_demand *demand, bool fresh, struct zero_state *z, int64_t now,
                           int64_t wall_now, uint64_t *came)
{
    bool first = fresh && z->idle_since_ms == 0;
    *came = fresh && !first ? arrivals(demand, z) : 0;
    bool busy = fresh && (*came > 0 || demand->current > 0 || demand->queued > 0);
    if (fresh) {
        z->sessions_seen = demand->sessions;
        if (busy || first) {
            z->idle_since_ms = now;
            z->idle_since_wall_ms = wall_now;
        }
    }
    return busy;
}

/* At zero: a request waiting at the balancer is a cold start, at once
 * (no cooldown); else the group stays at zero. */
static void decide_at_zero(const struct lb_demand *demand, bool busy, uint64_t came, struct ctl_state *st,
                           struct zero_state *z, int from, struct decision *d)
{
    if (!busy) {
        d->target = 0;
        d->change = -from;
        return;
    }
    leave_zero(st, z);
    z->cold_starts++;
    d->target = 1; /* max(min, 1), min being 0 here */
    d->change = d->target - from;
    d->cause = CAUSE_LOAD;
    snprintf(d->reason, sizeof d->reason, "cold start from zero: %llu new, %u waiting, %u queued at the balancer",
             (unsigned long long)came, (unsigned)demand->current, (unsigned)demand->queued);
    st->target = d->target;
}

bool zero_decide(const struct asg_config *cfg, const struct lb_demand *demand, struct ctl_state *st,
                 struct zero_state *z, int64_t now, int64_t wall_now, struct decision *d)
{
    struct zero_state before = *z;
    int from = d->target - d->change;
    if (cfg->min_instances > 0) {
        zero_not_allowed(cfg, st, z, from, d);
        return memcmp(&before, z, sizeof *z) != 0;
    }
    if (!st->at_zero && z->zero_since_ms)
        leave_zero(st, z); /* woken otherwise (an instance joined on its own) */
    bool fresh = zero_demand_fresh(cfg, demand, now);
    uint64_t came;
    bool busy = observe_demand(demand, fresh, z, now, wall_now, &came);
    bool idle_long = fresh && !busy && z->idle_since_ms &&
                     now - z->idle_since_ms >= (int64_t)cfg->scale_to_zero_idle_s * 1000;
    if (st->at_zero && !z->zero_since_ms) {
        z->zero_since_ms = now; /* put there by the operator (a desired size of 0) */
        z->zero_since_wall_ms = wall_now;
    }
    if (st->at_zero) {
        decide_at_zero(demand, busy, came, st, z, from, d);
    } else if (d->target == 0 && from == 0) {
        /* Sized to nothing from the start (desired_instances 0). */
        enter_zero(st, z, now, wall_now);
    } else if (idle_long) {
        enter_zero(st, z, now, wall_now);
        d->target = 0;
        d->change = -from;
        d->cause = CAUSE_LOAD;
        snprintf(d->reason, sizeof d->reason, "no request at the balancer for %d s: scale to zero",
                 cfg->scale_to_zero_idle_s);
        st->last_action_ms = now;
    } else if (d->target == 0) {
        /* The load policy would go to zero on its own (desired 0, no rate
         * over its window): only the idle time takes the group there. */
        d->target = st->target = 1;
        d->change = d->target - from;
        if (d->change == 0)
            d->reason[0] = '\0';
    }
    return memcmp(&before, z, sizeof *z) != 0;
}
