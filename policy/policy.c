#include "policy.h"
#include "forecast.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void policy_input_add(struct policy_input *in, const struct policy_instance *r,
                      const struct asg_config *cfg, int64_t now)
{
    if (r->state == ROW_PENDING || r->state == ROW_LAUNCH_WAIT) { /* a launching hook's: capacity to come */
        in->pending++;
        return;
    }
    if (r->state == ROW_UNHEALTHY) {
        in->waiting++;
        return;
    }
    if (r->state != ROW_RUNNING)
        return;
    in->running++;
    /* A sample is fresh when the last probe succeeded recently enough; a
     * request rate, when the balancer was read recently enough. */
    bool fresh;
    double load = r->load;
    if (cfg->policy_metric == METRIC_REQUESTS) {
        /* The balancer's count, or else what the service says it served. */
        bool lb = r->req_rate_ms > 0 && now - r->req_rate_ms <= 3LL * cfg->lb_interval_ms + 1000;
        bool svc = r->svc_rate_ms > 0 &&
                   now - r->svc_rate_ms <= 3LL * cfg->probe_interval_ms + cfg->probe_timeout_ms + 1000;
        fresh = lb || svc;
        load = (lb ? r->req_rate : r->svc_rate) / cfg->target_requests; /* 1.0 = at target; unbounded */
    } else {
        int64_t fresh_ms = 2LL * cfg->probe_interval_ms + cfg->probe_timeout_ms;
        fresh = r->has_sample && r->misses == 0 && r->last_seen_ms > 0 &&
                now - r->last_seen_ms <= fresh_ms;
    }
    if (!fresh) {
        in->stale++;
        return;
    }
    if (now - r->running_since_ms < cfg->warmup_ms)
        return;
    in->warm++;
    in->load_sum += load;
}

static bool in_cooldown(const struct asg_config *cfg, const struct ctl_state *st, int64_t now)
{
    return st->last_action_ms != 0 && now - st->last_action_ms < cfg->cooldown_ms;
}

static void set_reason(struct decision *d, const char *fmt, double a, double b)
{
    snprintf(d->reason, sizeof d->reason, fmt, a, b);
}

static void decide_threshold(const struct asg_config *cfg, const struct policy_input *in,
                             struct ctl_state *st, int64_t now, int floor,
                             struct decision *d)
{
    double mean = in->load_sum / in->warm;
    st->breach_out = mean > cfg->scale_out_above ? st->breach_out + 1 : 0;
    st->breach_in = mean < cfg->scale_in_below ? st->breach_in + 1 : 0;
    if (st->breach_out >= cfg->breach_periods) {
        /* Wait for launches in flight before judging again: their load
         * is not in the mean yet. */
        if (d->target < cfg->max_instances && !in_cooldown(cfg, st, now) && in->pending == 0) {
            d->target++;
            st->breach_out = 0;
            set_reason(d, "mean load %.3f above %.2f", mean, cfg->scale_out_above);
        }
    } else if (st->breach_in >= cfg->breach_periods) {
        if (d->target > floor && !in_cooldown(cfg, st, now) && in->stale == 0) {
            d->target--;
            st->breach_in = 0;
            set_reason(d, "mean load %.3f below %.2f", mean, cfg->scale_in_below);
        }
    }
}

/* Why, in the metric's own words. */
static void target_reason(struct decision *d, const struct asg_config *cfg, double mean, const char *tail)
{
    if (cfg->policy_metric == METRIC_REQUESTS)
        snprintf(d->reason, sizeof d->reason, "%.1f requests/s per instance against target %d%s",
                 mean * cfg->target_requests, cfg->target_requests, tail);
    else
        snprintf(d->reason, sizeof d->reason, "mean load %.3f against target %.2f%s", mean, cfg->target,
                 tail);
}

/* Target tracking. On requests the loads are rates over the target rate,
 * so the goal is 1.0. */
static void decide_target(const struct asg_config *cfg, const struct policy_input *in,
                          struct ctl_state *st, int64_t now, int floor,
                          struct decision *d)
{
    double goal = cfg->policy_metric == METRIC_REQUESTS ? 1.0 : cfg->target;
    double mean = in->load_sum / in->warm;
    double ratio = mean / goal;
    int want = d->target;
    if (fabs(ratio - 1.0) > cfg->target_tolerance) {
        /* Instances without a counted sample are taken as idle, as the
         * HPA does for pods that are not ready: no overshoot on boot. */
        want = (int)ceil(in->load_sum / goal - 1e-9);
        want = clamp_int(want, floor, cfg->max_instances);
    }
    if (want > d->target) {
        st->in_since_ms = 0;
        if (!in_cooldown(cfg, st, now)) {
            d->target = want;
            target_reason(d, cfg, mean, "");
        }
    } else if (want < d->target && in->stale == 0) {
        /* Scale in only to the highest recommendation of the whole
         * stabilization window (the HPA's downscale rule). */
        if (st->in_since_ms == 0 || want > st->in_recommend) {
            if (st->in_since_ms == 0)
                st->in_since_ms = now;
            st->in_recommend = want;
        }
        if (now - st->in_since_ms >= cfg->scale_in_stabilization_ms && !in_cooldown(cfg, st, now)) {
            d->target = st->in_recommend;
            st->in_since_ms = 0;
            target_reason(d, cfg, mean, ", stable");
        }
    } else {
        st->in_since_ms = 0;
    }
}

/* How much the minute-to-minute noise widens the forecast (a margin of
 * HEADROOM_K times the typical change), and how much more than the group
 * a saturated group asks for: a load of 1.0 says "at least this much". */
#define HEADROOM_K 1.5
#define SATURATED_LOAD 0.99
#define SATURATED_STEP 1.5
/* The scale-in window widens by this many times the relative noise. */
#define WINDOW_K 1.0

static void predictive_reason(struct decision *d, const struct asg_config *cfg, const struct fc_outlook *o,
                              double demand, int want, const char *tail)
{
    const char *by = o->daily >= o->forecast && o->daily >= 0 ? "daily pattern"
                     : o->trend > o->level                   ? "trend"
                                                             : "level";
    snprintf(d->reason, sizeof d->reason,
             "demand %.2f instances, forecast %.2f in %d s (%s), noise %.0f%%, at %.2f -> %d%s", demand,
             o->forecast, (cfg->boot_ms + cfg->evaluation_interval_ms) / 1000, by, 100 * o->noise,
             cfg->utilization, want, tail);
}

/* Sizes the group for the demand expected once a launch would serve:
 * out at once and in proportion, in only to the highest size asked for
 * over a window that widens with the noise. */
static void decide_predictive(const struct asg_config *cfg, const struct policy_input *in,
                              struct ctl_state *st, int64_t now, int floor, struct decision *d)
{
    double mean = in->load_sum / in->warm;
    /* Every running instance takes its share of the demand, warm or not. */
    double demand = mean * in->running;
    fc_observe(&st->fc, demand, now);
    struct fc_outlook o = fc_outlook(&st->fc, demand, now, (int64_t)cfg->boot_ms + cfg->evaluation_interval_ms);
    double util = cfg->utilization > 0.05 ? cfg->utilization : 0.05;
    /* Counting noise grows as the square root of the level: a margin of
     * HEADROOM_K typical changes at the forecast's level. */
    double upper = o.forecast + HEADROOM_K * o.spread * sqrt(o.forecast > 0 ? o.forecast : 0);
    int want = (int)ceil(upper / util - 1e-9);
    const char *tail = "";
    if (mean >= SATURATED_LOAD) {
        int more = (int)ceil(in->running * SATURATED_STEP);
        if (more > want) {
            want = more;
            tail = ", saturated";
        }
    }
    want = clamp_int(want, floor, cfg->max_instances);
    if (want > d->target) {
        st->in_since_ms = 0;
        if (!in_cooldown(cfg, st, now)) {
            d->target = want;
            predictive_reason(d, cfg, &o, demand, want, tail);
        }
    } else if (want < d->target && in->stale == 0) {
        if (st->in_since_ms == 0 || want > st->in_recommend) {
            if (st->in_since_ms == 0)
                st->in_since_ms = now;
            st->in_recommend = want;
        }
        int64_t window = (int64_t)(cfg->scale_in_stabilization_ms * (1.0 + WINDOW_K * o.noise));
        if (now - st->in_since_ms >= window && !in_cooldown(cfg, st, now)) {
            d->target = st->in_recommend;
            st->in_since_ms = 0;
            predictive_reason(d, cfg, &o, demand, d->target, ", stable");
        }
    } else {
        st->in_since_ms = 0;
    }
}

struct decision policy_decide(const struct asg_config *cfg, const struct policy_input *in,
                              struct ctl_state *st, int64_t now)
{
    struct decision d;
    memset(&d, 0, sizeof d);
    if (st->at_zero) {
        /* At zero no instance has a rate: policy/zero.h decides when to wake. */
        st->target = 0;
        st->breach_out = st->breach_in = 0;
        st->in_since_ms = 0;
        return d;
    }
    int floor = clamp_int(cfg->desired_instances, cfg->min_instances, cfg->max_instances);
    int before = st->target ? st->target : floor;
    d.target = clamp_int(before, floor, cfg->max_instances);
    if (d.target != before) {
        snprintf(d.reason, sizeof d.reason, "group bounds are now %d..%d", floor, cfg->max_instances);
        d.cause = CAUSE_BOUNDS;
    }

    if (in->warm == 0) {
        /* No metrics, no judgement: never scale in on silence. */
        st->breach_out = st->breach_in = 0;
        st->in_since_ms = 0;
    } else {
        int t = d.target;
        /* A request rate has no threshold pair: it is tracked. */
        if (cfg->policy_kind == POLICY_PREDICTIVE)
            decide_predictive(cfg, in, st, now, floor, &d);
        else if (cfg->policy_kind == POLICY_TARGET || cfg->policy_metric == METRIC_REQUESTS)
            decide_target(cfg, in, st, now, floor, &d);
        else
            decide_threshold(cfg, in, st, now, floor, &d);
        if (d.target != t)
            st->last_action_ms = now;
    }
    d.change = d.target - before;
    st->target = d.target;
    return d;
}
