#include <string.h>

#include "../policy/forecast.h"
#include "../policy/policy.h"
#include "../policy/replay.h"
#include "../policy/zero.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "check_suites.h"

static struct asg_config cfg;
static struct ctl_state st;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.min_instances = 2;
    cfg.desired_instances = 2;
    cfg.max_instances = 5;
    cfg.breach_periods = 3;
    cfg.cooldown_ms = 10000;
    memset(&st, 0, sizeof st);
}

/* n running instances, all warm, all at the same load. */
static struct policy_input fleet(int n, double load)
{
    struct policy_input in = {n, 0, n, n * load, 0};
    return in;
}

/* Runs k evaluations one second apart starting at *t; returns the last. */
static struct decision run(int k, struct policy_input in, int64_t *t)
{
    struct decision d = {0};
    for (int i = 0; i < k; i++) {
        d = policy_decide(&cfg, &in, &st, *t);
        *t += 1000;
    }
    return d;
}

START_TEST(test_starts_at_desired)
{
    int64_t t = 1000;
    struct policy_input none = {0};
    struct decision d = run(1, none, &t);
    ck_assert_int_eq(d.target, 2);
    ck_assert_int_eq(d.change, 0);
}
END_TEST

START_TEST(test_out_after_breach_periods_only)
{
    int64_t t = 1000;
    struct decision d = run(2, fleet(2, 0.8), &t);
    ck_assert_int_eq(d.target, 2); /* two breaches: not yet */
    d = run(1, fleet(2, 0.8), &t);
    ck_assert_int_eq(d.target, 3);
    ck_assert_int_eq(d.change, 1);
    ck_assert_msg(strstr(d.reason, "above 0.60") != NULL, "%s", d.reason);
}
END_TEST

START_TEST(test_breach_must_be_consecutive)
{
    int64_t t = 1000;
    run(2, fleet(2, 0.8), &t);
    run(1, fleet(2, 0.5), &t); /* one normal period resets the count */
    struct decision d = run(2, fleet(2, 0.8), &t);
    ck_assert_int_eq(d.target, 2);
}
END_TEST

START_TEST(test_cooldown_blocks_then_allows)
{
    int64_t t = 1000;
    run(3, fleet(2, 0.9), &t); /* -> 3 */
    struct decision d = run(5, fleet(3, 0.9), &t);
    ck_assert_int_eq(d.target, 3); /* within 10 s of the action */
    d = run(6, fleet(3, 0.9), &t);
    ck_assert_int_eq(d.target, 4);
}
END_TEST

START_TEST(test_never_above_max)
{
    cfg.cooldown_ms = 0;
    int64_t t = 1000;
    struct decision d = {0};
    for (int n = 2; n < 12; n++)
        d = run(3, fleet(d.target ? d.target : 2, 1.0), &t);
    ck_assert_int_eq(d.target, 5);
}
END_TEST

START_TEST(test_pending_launch_holds_scale_out)
{
    cfg.cooldown_ms = 0;
    int64_t t = 1000;
    struct policy_input in = fleet(2, 0.9);
    in.pending = 1;
    struct decision d = run(5, in, &t);
    ck_assert_int_eq(d.target, 2);
}
END_TEST

START_TEST(test_in_to_desired_and_no_further)
{
    cfg.cooldown_ms = 0;
    st.target = 4;
    int64_t t = 1000;
    struct decision d = run(3, fleet(4, 0.1), &t);
    ck_assert_int_eq(d.target, 3);
    ck_assert_int_eq(d.change, -1);
    d = run(30, fleet(3, 0.1), &t);
    ck_assert_int_eq(d.target, 2); /* desired is the floor */
}
END_TEST

START_TEST(test_silence_never_scales_in)
{
    cfg.cooldown_ms = 0;
    st.target = 4;
    int64_t t = 1000;
    struct policy_input none = {4, 0, 0, 0, 4}; /* running, no fresh samples */
    struct decision d = run(20, none, &t);
    ck_assert_int_eq(d.target, 4);
    /* Some fresh and low, one stale: still no scale-in. */
    struct policy_input partial = {4, 0, 3, 0.3, 1};
    d = run(20, partial, &t);
    ck_assert_int_eq(d.target, 4);
}
END_TEST

START_TEST(test_no_flapping_on_oscillation)
{
    cfg.cooldown_ms = 0;
    st.target = 3;
    int64_t t = 1000;
    for (int i = 0; i < 100; i++) {
        struct decision d = run(1, fleet(3, i % 2 ? 0.9 : 0.1), &t);
        ck_assert_int_eq(d.change, 0);
    }
}
END_TEST

START_TEST(test_bounds_follow_config)
{
    st.target = 5;
    int64_t t = 1000;
    cfg.max_instances = 3;
    struct decision d = run(1, fleet(5, 0.5), &t);
    ck_assert_int_eq(d.target, 3);
    ck_assert_msg(strstr(d.reason, "bounds") != NULL, "%s", d.reason);
    cfg.desired_instances = 3;
    cfg.max_instances = 5;
    st.target = 2;
    d = run(1, fleet(2, 0.5), &t);
    ck_assert_int_eq(d.target, 3);
}
END_TEST

START_TEST(test_input_counts_warm_fresh_only)
{
    struct policy_instance r;
    memset(&r, 0, sizeof r);
    struct policy_input in;
    memset(&in, 0, sizeof in);
    int64_t now = 100000;
    r.state = ROW_RUNNING;
    r.has_sample = true;
    r.load = 0.9;
    r.last_seen_ms = now - 10;
    r.running_since_ms = now - 1000; /* warming up (5 s) */
    policy_input_add(&in, &r, &cfg, now);
    ck_assert_int_eq(in.running, 1);
    ck_assert_int_eq(in.warm, 0);
    r.running_since_ms = now - 6000;
    policy_input_add(&in, &r, &cfg, now);
    ck_assert_int_eq(in.warm, 1);
    r.misses = 1; /* last probe failed */
    policy_input_add(&in, &r, &cfg, now);
    ck_assert_int_eq(in.stale, 1);
    r.misses = 0;
    r.state = ROW_PENDING;
    policy_input_add(&in, &r, &cfg, now);
    ck_assert_int_eq(in.pending, 1);
    r.state = ROW_UNHEALTHY;
    policy_input_add(&in, &r, &cfg, now);
    ck_assert_int_eq(in.running + in.pending, 4);
}
END_TEST

/* The target-tracking policy at 50 % per instance. */
static void target_policy(int cooldown_ms)
{
    cfg.policy_kind = POLICY_TARGET;
    cfg.target = 0.5;
    cfg.cooldown_ms = cooldown_ms;
}

START_TEST(test_target_scales_proportionally)
{
    target_policy(cfg.cooldown_ms);
    cfg.max_instances = 10;
    int64_t t = 1000;
    struct decision d = run(1, fleet(2, 0.9), &t); /* 1.8 / 0.5 = 3.6 -> 4 */
    ck_assert_int_eq(d.target, 4);
    ck_assert_int_eq(d.change, 2);
}
END_TEST

START_TEST(test_target_tolerance_band)
{
    target_policy(0);
    st.target = 4;
    int64_t t = 1000;
    struct decision d = run(5, fleet(4, 0.54), &t); /* within 10 % */
    ck_assert_int_eq(d.target, 4);
    d = run(1, fleet(4, 0.56), &t);
    ck_assert_int_eq(d.target, 5);
}
END_TEST

START_TEST(test_target_scale_in_waits_for_window)
{
    target_policy(0);
    cfg.scale_in_stabilization_ms = 10000;
    cfg.max_instances = 10;
    st.target = 6;
    int64_t t = 1000;
    /* Recommendations 3 then 4 then 2 within the window: the highest (4)
     * wins when the window has passed. */
    struct decision d = run(3, fleet(6, 0.25), &t); /* 1.5/0.5 = 3 */
    ck_assert_int_eq(d.target, 6);
    d = run(3, fleet(6, 0.3), &t); /* 1.8/0.5 = 3.6 -> 4 */
    ck_assert_int_eq(d.target, 6);
    d = run(3, fleet(6, 0.15), &t); /* 0.9/0.5 -> 2 */
    ck_assert_int_eq(d.target, 6);
    d = run(2, fleet(6, 0.15), &t);
    ck_assert_int_eq(d.target, 4);
    ck_assert_int_eq(d.change, -2);
}
END_TEST

START_TEST(test_target_scale_out_resets_window)
{
    target_policy(0);
    cfg.scale_in_stabilization_ms = 5000;
    st.target = 4;
    int64_t t = 1000;
    for (int i = 0; i < 30; i++) {
        /* Dips shorter than the window never cause a scale-in. */
        struct decision d = run(1, fleet(4, i % 4 == 3 ? 0.5 : 0.2), &t);
        ck_assert_int_eq(d.target, 4);
    }
}
END_TEST

/* ---- replay: the same policy in simulated time ---- */

static struct replay_result replay(const uint32_t *d, size_t n, uint32_t rpm, int64_t boot_ms)
{
    struct replay_opts o = {rpm, boot_ms};
    struct replay_result r;
    char err[256];
    ck_assert_msg(replay_run(&cfg, d, n, &o, &r, err, sizeof err) == 0, "%s", err);
    return r;
}

START_TEST(test_replay_fixed_group)
{
    uint32_t idle[10] = {0}, busy[10];
    for (int i = 0; i < 10; i++)
        busy[i] = 100;
    struct replay_result r = replay(idle, 10, 10, 60000);
    ck_assert(fabs(r.instance_minutes - 20.0) < 1e-6); /* two instances, ten minutes */
    ck_assert_uint_eq(r.overload_minutes, 0);
    ck_assert_uint_eq(r.scaling_actions, 0);
    cfg.min_instances = cfg.desired_instances = cfg.max_instances = 5;
    r = replay(busy, 10, 10, 60000); /* 100 a minute on 5 x 10: load 2 */
    ck_assert(fabs(r.instance_minutes - 50.0) < 1e-6);
    ck_assert_uint_eq(r.overload_minutes, 10);
    ck_assert(fabs(r.unserved_requests - 500.0) < 1e-6);
    ck_assert_uint_eq(r.scaling_actions, 0);
}
END_TEST

START_TEST(test_replay_scale_out_waits_for_boot)
{
    uint32_t d[10];
    for (int i = 0; i < 10; i++)
        d[i] = 90;
    cfg.min_instances = cfg.desired_instances = 1;
    cfg.max_instances = 4;
    cfg.breach_periods = 1;
    cfg.cooldown_ms = cfg.warmup_ms = 0;
    cfg.evaluation_interval_ms = 60000;
    /* 90 on one instance of 100: load 0.9 > 0.6, one launch at t=0 that
     * serves after a minute; then 0.45 stays inside the band. */
    struct replay_result r = replay(d, 10, 100, 60000);
    ck_assert_uint_eq(r.scaling_actions, 1);
    ck_assert(fabs(r.instance_minutes - 20.0) < 1e-6);
    ck_assert_uint_eq(r.overload_minutes, 0);
    ck_assert(r.unserved_requests == 0);
    /* At 120 a minute the first minute is over capacity until the boot. */
    for (int i = 0; i < 10; i++)
        d[i] = 120;
    r = replay(d, 10, 100, 60000);
    ck_assert_uint_eq(r.overload_minutes, 1);
    ck_assert(fabs(r.unserved_requests - 20.0) < 1e-6);
}
END_TEST

START_TEST(test_requests_metric_sees_demand_above_capacity)
{
    /* 6,000 a minute (100/s) on one instance that serves 1,200 (20/s). */
    uint32_t d[20];
    for (int i = 0; i < 20; i++)
        d[i] = 6000;
    cfg.min_instances = cfg.desired_instances = 1;
    cfg.max_instances = 10;
    cfg.policy_kind = POLICY_TARGET;
    cfg.cooldown_ms = cfg.warmup_ms = 0;
    cfg.evaluation_interval_ms = 60000;
    cfg.target = 0.5;
    /* On load, saturation hides the gap: 1.0 against 0.5 asks for two,
     * then twice more as each step saturates too. */
    struct replay_result load = replay(d, 20, 1200, 60000);
    ck_assert_uint_ge(load.scaling_actions, 2);
    /* On requests at 14/s per instance (70 % of what one serves): the
     * whole gap at once, ceil(100 / 14) = 8, in one action. */
    cfg.policy_metric = METRIC_REQUESTS;
    cfg.target_requests = 14;
    struct replay_result req = replay(d, 20, 1200, 60000);
    ck_assert_uint_eq(req.scaling_actions, 1);
    ck_assert_int_eq(req.peak_instances, 8);
    ck_assert_uint_lt(req.overload_minutes, load.overload_minutes);
    /* A rate within the tolerance of the target is no action. */
    cfg.desired_instances = 7;
    req = replay(d, 20, 1200, 60000);
    ck_assert_uint_eq(req.scaling_actions, 0);
}
END_TEST

START_TEST(test_replay_trace_errors_name_the_line)
{
    char path[] = "/tmp/asg-trace-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "12\n 7 \n-3\n", 10), 10);
    close(fd);
    uint32_t *d = NULL;
    size_t n = 0;
    char err[256], want[128];
    ck_assert_int_eq(replay_load_trace(path, &d, &n, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: expected requests per minute", path);
    ck_assert_msg(strstr(err, want) && strstr(err, "'-3'"), "%s", err);
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, "12\n 7 \r\n", 8), 8);
    close(fd);
    ck_assert_int_eq(replay_load_trace(path, &d, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(d[1], 7);
    free(d);
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    ck_assert_int_eq(replay_load_trace(path, &d, &n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no minutes"), "%s", err);
    unlink(path);
}
END_TEST

/* ---- the forecast and the predictive policy ---- */

START_TEST(test_forecast_of_a_constant_is_the_constant)
{
    struct forecast f;
    memset(&f, 0, sizeof f);
    int64_t t = 3600000;
    for (int i = 0; i < 40 * 60; i++, t += 1000)
        fc_observe(&f, 4.0, t);
    struct fc_outlook o = fc_outlook(&f, 4.0, t, 61000);
    ck_assert(fabs(o.level - 4.0) < 1e-6);
    ck_assert(fabs(o.trend - 4.0) < 1e-6); /* no slope */
    ck_assert(o.daily < 0);                /* not a day yet */
    ck_assert(fabs(o.forecast - 4.0) < 1e-6);
    ck_assert(o.noise < 1e-6 && o.spread < 1e-6);
}
END_TEST

START_TEST(test_forecast_follows_a_ramp)
{
    struct forecast f;
    memset(&f, 0, sizeof f);
    int64_t t = 3600000;
    /* +0.5 instances a minute for 20 minutes. */
    for (int i = 0; i < 20 * 60; i++, t += 1000)
        fc_observe(&f, 2.0 + 0.5 * (i / 60), t);
    struct fc_outlook o = fc_outlook(&f, 11.5, t, 120000);
    /* Two and a half minutes past the last closed minute (11.5 at 0.5 a minute). */
    ck_assert_msg(fabs(o.trend - (11.5 + 0.5 * 2.5)) < 0.2, "trend %.2f", o.trend);
    ck_assert(o.forecast >= o.trend);
}
END_TEST

/* A daily wave, sampled a minute apart: after two days the daily pattern
 * forecasts an hour ahead within 5 %. */
START_TEST(test_forecast_learns_a_daily_wave)
{
    struct forecast f;
    memset(&f, 0, sizeof f);
    int64_t t = 3600000;
    double v = 0;
    for (int i = 0; i < 2 * 1440 + 300; i++, t += 60000) {
        v = 10 + 8 * sin(2 * M_PI * i / 1440.0);
        fc_observe(&f, v, t);
    }
    int i_ahead = 2 * 1440 + 300 + 60;
    double truth = 10 + 8 * sin(2 * M_PI * i_ahead / 1440.0);
    struct fc_outlook o = fc_outlook(&f, v, t, 3600000);
    ck_assert_msg(o.daily > 0, "the daily pattern unused (error %.3f)", f.day_err);
    ck_assert_msg(fabs(o.daily - truth) / truth < 0.05, "daily %.2f, truth %.2f", o.daily, truth);
}
END_TEST

static void predictive(void)
{
    cfg.policy_kind = POLICY_PREDICTIVE;
    cfg.min_instances = cfg.desired_instances = 1;
    cfg.max_instances = 20;
    cfg.cooldown_ms = 0;
    cfg.utilization = 0.9;
    cfg.scale_in_stabilization_ms = 60000;
}

START_TEST(test_predictive_holds_a_steady_group)
{
    predictive();
    cfg.desired_instances = 5;
    int64_t t = 3600000;
    /* 5 instances at 0.6: 3 instances of demand, sized 4 at 0.9; no noise. */
    struct decision d = run(30, fleet(5, 0.6), &t);
    ck_assert_int_eq(d.target, 5); /* the floor */
    cfg.desired_instances = 1;
    int changes = 0;
    for (int i = 0; i < 600; i++) {
        d = run(1, fleet(d.target, 3.0 / d.target), &t);
        changes += d.change != 0;
    }
    ck_assert_int_eq(d.target, 4);
    ck_assert_int_le(changes, 1);
}
END_TEST

START_TEST(test_predictive_steps_out_at_once_and_in_slowly)
{
    predictive();
    int64_t t = 3600000;
    struct decision d = run(120, fleet(2, 0.5), &t);
    ck_assert_int_eq(d.target, 2);
    /* Demand 1 -> 6 instances: out to ceil(6 / 0.9) = 7 in one step. */
    d = run(1, fleet(2, 1.0), &t);
    ck_assert_int_ge(d.target, 3); /* saturated: at least half again */
    d = run(1, fleet(3, 1.0), &t);
    d = run(1, fleet(d.target, 6.0 / d.target), &t);
    ck_assert_int_ge(d.target, 7);
    int high = d.target;
    /* Back down to 1: nothing for the stabilization window. */
    d = run(30, fleet(high, 1.0 / high), &t);
    ck_assert_int_eq(d.target, high);
    for (int i = 0; i < 600 && d.target == high; i++)
        d = run(1, fleet(high, 1.0 / high), &t);
    ck_assert_int_lt(d.target, high);
    ck_assert_msg(strstr(d.reason, "forecast") && strstr(d.reason, "stable"), "%s", d.reason);
}
END_TEST

START_TEST(test_predictive_stays_in_bounds_and_never_in_on_stale_data)
{
    predictive();
    cfg.max_instances = 6;
    int64_t t = 3600000;
    struct decision d = run(5, fleet(6, 1.0), &t);
    ck_assert_int_eq(d.target, 6); /* capped at max */
    struct policy_input stale = fleet(6, 0.05);
    stale.stale = 1;
    for (int i = 0; i < 600; i++) {
        d = run(1, stale, &t);
        ck_assert_int_eq(d.target, 6);
    }
    d = run(600, fleet(6, 0.01), &t);
    ck_assert_int_ge(d.target, cfg.min_instances);
    ck_assert_int_lt(d.target, 6);
}
END_TEST

/* The totals are the sums over the timeline's minutes. */
START_TEST(test_replay_totals_follow_from_the_timeline)
{
    uint32_t d[600];
    for (int i = 0; i < 600; i++)
        d[i] = (uint32_t)(100 + 80 * sin(i / 40.0) + (i % 97 == 0 ? 300 : 0));
    cfg.min_instances = cfg.desired_instances = 1;
    cfg.max_instances = 30;
    cfg.policy_kind = POLICY_TARGET;
    char path[] = "/tmp/asg-timeline-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *tl = fdopen(fd, "w+");
    struct replay_opts o = {20, 60000, tl};
    struct replay_result r;
    char err[256];
    ck_assert_msg(replay_run(&cfg, d, 600, &o, &r, err, sizeof err) == 0, "%s", err);
    rewind(tl);
    char line[256];
    ck_assert(fgets(line, sizeof line, tl) && strcmp(line, REPLAY_TIMELINE_HEADER) == 0);
    double cost = 0, unserved = 0;
    unsigned long over = 0, rows = 0;
    long minute, target, flag;
    double demand, ready, booting;
    while (fgets(line, sizeof line, tl)) {
        ck_assert_int_eq(sscanf(line, "%ld,%lf,%lf,%lf,%ld,%ld", &minute, &demand, &ready, &booting,
                                &target, &flag), 6);
        ck_assert_int_eq(minute, (long)rows);
        bool o_here = demand > 0 && (ready == 0 || demand > 0.9 * ready * 20);
        ck_assert_int_eq(o_here, flag);
        cost += ready + booting;
        over += o_here;
        unserved += demand > ready * 20 ? demand - ready * 20 : 0;
        rows++;
    }
    fclose(tl);
    unlink(path);
    ck_assert_uint_eq(rows, 600);
    ck_assert_msg(fabs(cost - r.instance_minutes) < 0.01 * rows, "%.3f vs %.3f", cost, r.instance_minutes);
    ck_assert_uint_eq(over, r.overload_minutes);
    ck_assert(r.overload_minutes > 0); /* the spikes: a test that can see one */
    ck_assert(fabs(unserved - r.unserved_requests) < 0.5 * rows);
}
END_TEST

/* ---- scale to zero (policy/zero.h) ---- */

static struct lb_demand dem;
static struct zero_state zs;

static void zero_setup(void)
{
    cfg.min_instances = 0;
    cfg.desired_instances = 1;
    cfg.max_instances = 3;
    cfg.policy_metric = METRIC_REQUESTS;
    cfg.lb_kind = LB_HAPROXY;
    cfg.lb_interval_ms = 200;
    cfg.scale_to_zero_idle_s = 5;
    memset(&dem, 0, sizeof dem);
    memset(&zs, 0, sizeof zs);
    dem.sessions = 10;
}

/* One evaluation at t as the controller makes it: the policy, then zero's
 * say, on a count of the backend just read. */
static struct decision zero_step(struct policy_input in, int64_t t)
{
    dem.read_ms = t;
    struct decision d = policy_decide(&cfg, &in, &st, t);
    zero_decide(&cfg, &dem, &st, &zs, t, t, &d);
    return d;
}

/* A last request at t0 takes a group of one to zero at t0 + 5 s; returns
 * the time after. */
static int64_t idle_to_zero(int64_t t0)
{
    int64_t t = t0;
    dem.sessions++;
    for (; t < t0 + 5000; t += 1000)
        ck_assert_int_eq(zero_step(fleet(1, 0.0), t).target, 1);
    struct decision d = zero_step(fleet(1, 0.0), t);
    ck_assert_int_eq(d.target, 0);
    ck_assert_int_eq(d.change, -1);
    ck_assert_int_eq(d.cause, CAUSE_LOAD);
    ck_assert_msg(strstr(d.reason, "no request at the balancer for 5 s") != NULL, "%s", d.reason);
    ck_assert(st.at_zero && zs.zero_since_ms == t);
    return t + 1000;
}

START_TEST(test_zero_after_the_idle_time_only)
{
    zero_setup();
    int64_t t = 1000;
    /* A request at 3 s starts the idle time again. */
    for (; t <= 3000; t += 1000)
        ck_assert_int_eq(zero_step(fleet(1, 0.0), t).target, 1);
    dem.sessions++;
    ck_assert_int_eq(zero_step(fleet(1, 0.0), t).target, 1);
    ck_assert_int_eq(zs.idle_since_ms, 4000);
    idle_to_zero(t);
    /* At zero it stays there: the floor (desired 1) does not bring it back. */
    struct policy_input none = {0};
    for (int i = 0; i < 30; i++) {
        struct decision d = zero_step(none, 20000 + i * 1000);
        ck_assert_int_eq(d.target, 0);
        ck_assert_int_eq(d.change, 0);
    }
}
END_TEST

START_TEST(test_zero_wakes_at_once_on_a_waiting_request)
{
    zero_setup();
    int64_t t = idle_to_zero(1000);
    struct policy_input none = {0};
    ck_assert_int_eq(zero_step(none, t).target, 0);
    /* Held at the backend (HAProxy waits for a server): woken at once,
     * within the cooldown of the scale-in just made. */
    dem.sessions++;
    dem.current = 1;
    t += 100;
    struct decision d = zero_step(none, t);
    ck_assert_int_eq(d.target, 1);
    ck_assert_int_eq(d.change, 1);
    ck_assert_int_eq(d.cause, CAUSE_LOAD);
    ck_assert_msg(strstr(d.reason, "cold start from zero: 1 new, 1 waiting") != NULL, "%s", d.reason);
    ck_assert(!st.at_zero && zs.zero_since_ms == 0 && zs.cold_starts == 1);
    /* Pending, then running: the target holds (no second launch, no flap). */
    struct policy_input pending = {0, 1, 0, 0, 0, 0};
    ck_assert_int_eq(zero_step(pending, t + 1000).target, 1);
    dem.current = 0;
    ck_assert_int_eq(zero_step(fleet(1, 0.2), t + 2000).target, 1);
    /* A request in the queue alone wakes it too, and so does the counter alone. */
    t = idle_to_zero(t + 3000);
    dem.queued = 2;
    ck_assert_int_eq(zero_step(none, t).target, 1);
    dem.queued = 0;
    t = idle_to_zero(t + 1000);
    dem.sessions += 3;
    d = zero_step(none, t);
    ck_assert_int_eq(d.target, 1);
    ck_assert_msg(strstr(d.reason, "3 new") != NULL, "%s", d.reason);
}
END_TEST

START_TEST(test_zero_never_on_a_stale_count_and_not_below_min)
{
    zero_setup();
    /* No count from the balancer (unreachable, or none read yet): no zero. */
    struct policy_input one = fleet(1, 0.0);
    for (int64_t t = 1000; t < 30000; t += 1000) {
        struct decision d = policy_decide(&cfg, &one, &st, t);
        zero_decide(&cfg, &dem, &st, &zs, t, t, &d);
        ck_assert_int_eq(d.target, 1);
    }
    dem.read_ms = 1000; /* read once, long ago */
    struct decision d = policy_decide(&cfg, &one, &st, 40000);
    zero_decide(&cfg, &dem, &st, &zs, 40000, 40000, &d);
    ck_assert_int_eq(d.target, 1);
    /* At zero, min raised to 1 by a reload: back to one, as new bounds. */
    int64_t t = idle_to_zero(50000);
    cfg.min_instances = 1;
    d = zero_step((struct policy_input){0}, t);
    ck_assert_int_eq(d.target, 1);
    ck_assert_int_eq(d.cause, CAUSE_BOUNDS);
    ck_assert(!st.at_zero);
    /* Put at zero by the operator (asgctl desired 0: the table's at_zero,
     * target 0): it stays there, and a request wakes it. */
    cfg.min_instances = 0;
    memset(&zs, 0, sizeof zs);
    st.at_zero = 1;
    st.target = 0;
    t += 60000;
    ck_assert_int_eq(zero_step((struct policy_input){0}, t).target, 0);
    ck_assert_int_eq(zs.zero_since_ms, t);
    dem.current = 1;
    ck_assert_int_eq(zero_step((struct policy_input){0}, t + 1000).target, 1);
    dem.current = 0;
    cfg.min_instances = 1;
    /* With min 1 an idle group never goes to zero. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(zero_step(fleet(1, 0.0), t + 1000 * (i + 1)).target, 1);
}
END_TEST

/* desired_instances 0: the group starts at zero; woken, the load policy
 * (no rate: it would want none) does not take it back before the idle time. */
START_TEST(test_zero_from_the_start_and_only_the_idle_time_goes_back)
{
    zero_setup();
    cfg.desired_instances = 0;
    cfg.policy_kind = POLICY_TARGET;
    cfg.scale_in_stabilization_ms = 1000;
    struct policy_input none = {0};
    struct decision d = zero_step(none, 1000);
    ck_assert_int_eq(d.target, 0);
    ck_assert_int_eq(d.change, 0);
    ck_assert(st.at_zero);
    dem.current = 1;
    d = zero_step(none, 2000);
    ck_assert_int_eq(d.target, 1);
    dem.current = 0;
    int64_t t = 3000;
    for (; t < 7000; t += 500) {
        d = zero_step(fleet(1, 0.0), t);
        ck_assert_msg(d.target == 1 && d.change == 0, "at %lld: target %d, change %d", (long long)t, d.target,
                      d.change);
    }
    d = zero_step(fleet(1, 0.0), t);
    ck_assert_int_eq(d.target, 0);
    ck_assert_msg(strstr(d.reason, "no request at the balancer for 5 s") != NULL, "%s", d.reason);
}
END_TEST

Suite *policy_suite(void)
{
    const TTest *tests[] = {
        test_starts_at_desired,
        test_out_after_breach_periods_only,
        test_breach_must_be_consecutive,
        test_cooldown_blocks_then_allows,
        test_never_above_max,
        test_pending_launch_holds_scale_out,
        test_in_to_desired_and_no_further,
        test_silence_never_scales_in,
        test_no_flapping_on_oscillation,
        test_bounds_follow_config,
        test_input_counts_warm_fresh_only,
        test_target_scales_proportionally,
        test_target_tolerance_band,
        test_target_scale_in_waits_for_window,
        test_target_scale_out_resets_window,
        test_replay_fixed_group,
        test_replay_scale_out_waits_for_boot,
        test_replay_trace_errors_name_the_line,
        test_requests_metric_sees_demand_above_capacity,
        test_forecast_of_a_constant_is_the_constant,
        test_forecast_follows_a_ramp,
        test_forecast_learns_a_daily_wave,
        test_predictive_holds_a_steady_group,
        test_predictive_steps_out_at_once_and_in_slowly,
        test_predictive_stays_in_bounds_and_never_in_on_stale_data,
        test_replay_totals_follow_from_the_timeline,
        test_zero_after_the_idle_time_only,
        test_zero_wakes_at_once_on_a_waiting_request,
        test_zero_never_on_a_stale_count_and_not_below_min,
        test_zero_from_the_start_and_only_the_idle_time_goes_back,
        NULL};
    return suite_of("policy", "policy", setup, NULL, 0, tests, NULL);
}
