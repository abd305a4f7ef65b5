/* The rollout planner (controller/rollout_plan.c), driven through the
 * whole evaluation (controller/plan.c) with views made by hand: the
 * boundaries of surge and unavailable, the health gate, canaries and
 * checkpoints, failures and rollbacks, lifetimes, and scaling during a
 * rollout. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../controller/plan.h"
#include "../controller/rollout_plan.h"
#include "check_suites.h"
#include "plan_fixture.h"

#define NOW 1000000000LL
#define BAKE 10000
#define OLD 1
#define NEW 2

static struct asg_config cfg;
static struct plan_row rows[64];
static size_t nrows;
static struct plan_group g;
static struct plan p;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.min_instances = 1;
    cfg.max_instances = 20;
    cfg.desired_instances = 3;
    cfg.boot_timeout_ms = 30000;
    cfg.cooldown_ms = 600000;
    cfg.rollout_bake_s = BAKE / 1000;
    memset(rows, 0, sizeof rows);
    nrows = 0;
    plan_fixture_view(&g, &p, NOW, 16);
    g.spec_gen = NEW;
    g.prev_gen = OLD;
    g.st.target = 3;
    g.st.last_action_ms = NOW; /* in cooldown: the policy holds the target */
    g.ro.phase = RO_RUNNING;
    g.ro.number = 1;
    g.ro.from_gen = OLD;
    g.ro.to_gen = NEW;
    g.ro.set.surge = 1;
    g.ro.set.bake_ms = BAKE;
    g.ro.set.rollback = 1;
    g.ro.started_ms = NOW - 100000;
}

static void teardown(void) { plan_free(&p); }

/* A row of generation gen, launched `age` ms ago; running ones have run
 * (and been ready) for all but the first second of it. */
static struct plan_row *row(uint32_t state, uint64_t gen, int64_t age)
{
    struct plan_row *r = plan_fixture_row(&rows[nrows], nrows, state, NOW - age, 0.5, NOW);
    r->spec_gen = gen;
    nrows++;
    return r;
}

static void old_group(int n)
{
    for (int i = 0; i < n; i++)
        row(ROW_RUNNING, OLD, 3600000 - i * 1000);
}

static void decide(void) { plan_evaluation(rows, nrows, &cfg, &cfg, &g, &p); }

static int rolled(void)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.steps[i].kind == PLAN_STOP && p.steps[i].rolled;
    return n;
}

START_TEST(test_surge_one_launches_one_and_stops_none)
{
    old_group(3);
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 1);
    ck_assert_int_eq(p.surge, 1);
    ck_assert_int_eq(p.allowance, 1);
    ck_assert_int_eq(p.d.target, 3);
    ck_assert(p.ro_mark); /* the bake window opens with the batch */
    ck_assert_int_eq(p.ro.remaining, 3);
}
END_TEST

START_TEST(test_an_unproven_new_instance_holds_the_next_batch)
{
    old_group(3);
    row(ROW_RUNNING, NEW, 5000); /* ran 4 s of a 10 s bake */
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 0);
    ck_assert_int_eq(p.allowance, 1); /* the surge instance is not scaled in */
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
}
END_TEST

START_TEST(test_a_proven_instance_lets_the_oldest_go_then_the_next_surge_starts)
{
    old_group(3);
    row(ROW_RUNNING, NEW, BAKE + 2000);
    decide();
    ck_assert_int_eq(rolled(), 1);
    ck_assert_str_eq(p.steps[0].id, "web-1"); /* the oldest */
    ck_assert_int_eq(p.launches, 0); /* not while it shuts down: never more than 3 + 1 */
    ck_assert_int_eq(p.ro.replaced, 1);
    ck_assert_int_eq(p.ro.remaining, 2);
    /* once it is gone, the next batch */
    plan_free(&p);
    memset(&p, 0, sizeof p);
    rows[0].state = ROW_FREE;
    g.ro.replaced = 1;
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 1);
}
END_TEST

START_TEST(test_a_new_instance_not_in_the_balancer_is_not_proven)
{
    old_group(3);
    struct plan_row *r = row(ROW_RUNNING, NEW, BAKE + 2000);
    r->ready_since_ms = 0; /* running, but the balancer has not taken it */
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

START_TEST(test_unavailable_one_stops_one_and_refills)
{
    g.ro.set.surge = 0;
    g.ro.set.unavailable = 1;
    old_group(3);
    decide();
    ck_assert_int_eq(rolled(), 1);
    ck_assert_int_eq(p.launches, 1); /* the refill, of the new spec */
    ck_assert_int_eq(p.surge, 0);
}
END_TEST

START_TEST(test_unavailable_two_stops_two_never_three)
{
    g.ro.set.surge = 0;
    g.ro.set.unavailable = 2;
    old_group(3);
    decide();
    ck_assert_int_eq(rolled(), 2);
    ck_assert_int_eq(p.launches, 2);
}
END_TEST

START_TEST(test_never_below_target_minus_unavailable_healthy)
{
    g.ro.set.surge = 0;
    g.ro.set.unavailable = 1;
    old_group(2);
    row(ROW_RUNNING, NEW, 5000); /* unproven: not healthy yet */
    decide();
    /* healthy: 2 old; stopping one would leave 1 < 3 - 1 */
    ck_assert_int_eq(rolled(), 0);
}
END_TEST

START_TEST(test_percentages_round_surge_up_and_unavailable_down)
{
    struct rollout_settings s = {.surge = 50, .surge_pct = 1, .unavailable = 50, .unavailable_pct = 1};
    int surge, unavail;
    rollout_amounts(&s, 3, &surge, &unavail);
    ck_assert_int_eq(surge, 2);
    ck_assert_int_eq(unavail, 1);
    struct rollout_settings none = {0};
    rollout_amounts(&none, 3, &surge, &unavail);
    ck_assert_int_eq(surge, 1); /* both none could never replace anything */
    ck_assert_int_eq(unavail, 0);
    struct rollout_settings all = {.unavailable = 9};
    rollout_amounts(&all, 3, &surge, &unavail);
    ck_assert_int_eq(unavail, 3); /* never more than the target */
}
END_TEST

START_TEST(test_surge_two_launches_two_at_once)
{
    g.ro.set.surge = 2;
    old_group(3);
    decide();
    ck_assert_int_eq(p.launches, 2);
    ck_assert_int_eq(p.allowance, 2);
}
END_TEST

START_TEST(test_surge_never_beyond_the_instances_left_to_replace)
{
    g.ro.set.surge = 5;
    old_group(1);
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 3600000);
    decide();
    ck_assert_int_eq(p.launches, 1);
}
END_TEST

START_TEST(test_canary_pauses_once_its_instances_are_proven)
{
    g.ro.set.canary = 1;
    old_group(3);
    row(ROW_RUNNING, NEW, BAKE + 2000);
    g.ro.replaced = 0;
    decide();
    ck_assert_int_eq(rolled(), 1);
    ck_assert_int_eq(p.launches, 0); /* no surge beyond the canary */
    ck_assert_int_eq(p.ro.phase, RO_PAUSED);
    ck_assert_msg(strstr(p.ro.reason, "canary") != NULL, "%s", p.ro.reason);
    ck_assert(p.ro.canary_done);
}
END_TEST

START_TEST(test_checkpoint_pauses_at_its_percentage)
{
    g.ro.set.npause = 1;
    g.ro.set.pause_at[0] = 50;
    g.ro.total = 4;
    g.ro.replaced = 2;
    g.st.target = cfg.desired_instances = 4;
    old_group(2);
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 3600000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_PAUSED);
    ck_assert_int_eq(p.ro.next_pause, 1);
    ck_assert_int_eq(p.launches, 0);
    ck_assert_msg(strstr(p.ro.reason, "checkpoint 50%") != NULL, "%s", p.ro.reason);
}
END_TEST

START_TEST(test_a_paused_rollout_replaces_nothing)
{
    g.ro.phase = RO_PAUSED;
    old_group(3);
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 0);
    ck_assert(!p.ro_changed);
}
END_TEST

START_TEST(test_it_succeeds_once_nothing_is_due_or_unproven)
{
    for (int i = 0; i < 3; i++)
        row(ROW_RUNNING, NEW, 3600000);
    g.ro.replaced = 3;
    decide();
    ck_assert_int_eq(p.ro.phase, RO_SUCCEEDED);
    ck_assert(p.ro_changed);
    ck_assert_int_eq(p.ro.remaining, 0);
}
END_TEST

START_TEST(test_success_waits_for_the_last_old_instance_to_be_gone)
{
    for (int i = 0; i < 3; i++)
        row(ROW_RUNNING, NEW, 3600000);
    row(ROW_TERMINATING, OLD, 3600000);
    g.ro.replaced = 3;
    decide();
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    ck_assert_int_eq(p.ro.remaining, 0);
}
END_TEST

START_TEST(test_the_last_batch_bakes_before_success)
{
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 4000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
}
END_TEST

START_TEST(test_a_new_instance_that_never_registers_rolls_back)
{
    old_group(3);
    row(ROW_PENDING, NEW, 31000);
    decide();
    ck_assert(p.ro_rollback);
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    ck_assert(p.ro.rolling_back);
    ck_assert_int_eq(p.ro.to_gen, OLD);
    ck_assert_int_eq(p.ro.from_gen, NEW);
    ck_assert_msg(strstr(p.ro.reason, "did not register") != NULL, "%s", p.ro.reason);
    ck_assert_int_eq(rolled(), 0); /* the rollback replaces from the next evaluation */
}
END_TEST

/* Launches refused at once (EC2: a template version that does not exist)
 * leave no row behind: the spell of failures is judged instead. */
START_TEST(test_launches_failing_since_it_began_roll_back)
{
    old_group(3);
    g.launch_failures = 4;
    g.failing_since_ms = NOW - 31000;
    g.last_failure_ms = NOW - 1000;
    decide();
    ck_assert(p.ro_rollback);
    ck_assert(p.ro.rolling_back);
    ck_assert_int_eq(p.ro.to_gen, OLD);
    ck_assert_msg(strstr(p.ro.reason, "launches of generation 2 failed 4 times") != NULL, "%s", p.ro.reason);
}
END_TEST

START_TEST(test_launch_failures_short_or_older_than_the_rollout_do_not_fail_it)
{
    old_group(3);
    g.launch_failures = 4;
    g.failing_since_ms = NOW - 29000; /* within the boot timeout */
    decide();
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    ck_assert(!p.ro_rollback);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    g.failing_since_ms = g.ro.started_ms - 1; /* began before it: not its verdict */
    decide();
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    ck_assert(!p.ro_rollback);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    g.failing_since_ms = NOW - 31000;
    g.launch_failures = 1; /* one failure is no spell */
    decide();
    ck_assert(!p.ro_rollback);
}
END_TEST

START_TEST(test_without_a_previous_spec_it_fails_and_stops)
{
    g.prev_gen = 0;
    old_group(3);
    row(ROW_PENDING, NEW, 31000);
    decide();
    ck_assert(!p.ro_rollback);
    ck_assert_int_eq(p.ro.phase, RO_FAILED);
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

START_TEST(test_rollback_off_fails_and_stops)
{
    g.ro.set.rollback = 0;
    old_group(3);
    row(ROW_PENDING, NEW, 31000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_FAILED);
}
END_TEST

START_TEST(test_a_failure_without_rollback_stops_the_bad_instance_not_an_old_one)
{
    g.ro.set.rollback = 0;
    g.lb_counts_5xx = true;
    g.ro.window_ms = NOW - 5000;
    old_group(3);
    struct plan_row *r = row(ROW_RUNNING, NEW, 5000);
    r->lb_requests = 100;
    r->lb_5xx = 50;
    decide();
    ck_assert_int_eq(p.ro.phase, RO_FAILED);
    for (size_t i = 0; i < p.n; i++)
        if (p.steps[i].kind == PLAN_STOP)
            ck_assert_str_eq(p.steps[i].id, "web-4");
    ck_assert_int_eq(rows[3].state, ROW_TERMINATING);
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

START_TEST(test_unhealthy_before_its_bake_fails)
{
    old_group(3);
    struct plan_row *r = row(ROW_UNHEALTHY, NEW, 8000);
    r->pol.running_since_ms = NOW - 7000;
    r->state_since_ms = NOW - 2000; /* fell 5 s in, of a 10 s bake */
    decide();
    ck_assert(p.ro_rollback);
    ck_assert_msg(strstr(p.ro.reason, "unhealthy before") != NULL, "%s", p.ro.reason);
}
END_TEST

START_TEST(test_unhealthy_after_its_bake_is_a_replacement_not_a_failure)
{
    old_group(2);
    struct plan_row *r = row(ROW_UNHEALTHY, NEW, 60000);
    r->pol.running_since_ms = NOW - 59000;
    r->state_since_ms = NOW - 2000;
    decide();
    ck_assert(!p.ro_rollback);
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
}
END_TEST

START_TEST(test_more_5xx_than_the_old_ones_fails)
{
    g.lb_counts_5xx = true;
    g.ro.window_ms = NOW - 5000;
    old_group(3);
    for (int i = 0; i < 3; i++)
        rows[i].lb_requests = 1000, rows[i].lb_req_mark = 900, rows[i].lb_5xx = 3, rows[i].lb_5xx_mark = 2;
    struct plan_row *r = row(ROW_RUNNING, NEW, 5000);
    r->lb_requests = 100;
    r->lb_5xx = 10;
    decide();
    ck_assert(p.ro_rollback);
    ck_assert_msg(strstr(p.ro.reason, "5xx") != NULL, "%s", p.ro.reason);
}
END_TEST

START_TEST(test_5xx_within_the_margin_or_too_few_requests_pass)
{
    g.lb_counts_5xx = true;
    g.ro.window_ms = NOW - 5000;
    old_group(3);
    struct plan_row *r = row(ROW_RUNNING, NEW, 5000);
    r->lb_requests = 100;
    r->lb_5xx = 4; /* 4% against 0%: within 5% */
    decide();
    ck_assert(!p.ro_rollback);
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    r->lb_requests = 10;
    r->lb_5xx = 10; /* all bad, but fewer than rollout.min_requests */
    decide();
    ck_assert(!p.ro_rollback);
}
END_TEST

START_TEST(test_a_rollback_that_fails_stops)
{
    g.ro.rolling_back = 1;
    g.ro.from_gen = NEW;
    g.ro.to_gen = OLD;
    g.spec_gen = OLD;
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_PENDING, OLD, 31000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_FAILED);
    ck_assert_msg(strstr(p.ro.reason, "rollback failed") != NULL, "%s", p.ro.reason);
}
END_TEST

START_TEST(test_a_finished_rollback_says_rolled_back)
{
    g.ro.rolling_back = 1;
    g.ro.from_gen = NEW;
    g.ro.to_gen = OLD;
    g.spec_gen = OLD;
    snprintf(g.ro.reason, sizeof g.ro.reason, "rolling back: web-9 did not register");
    for (int i = 0; i < 3; i++)
        row(ROW_RUNNING, OLD, 3600000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_ROLLED_BACK);
    ck_assert_str_eq(p.ro.reason, "rolled back: web-9 did not register");
}
END_TEST

START_TEST(test_joined_instances_are_never_due)
{
    for (int i = 0; i < 3; i++)
    {
        struct plan_row *r = row(ROW_RUNNING, 0, 3600000);
        r->joined = r->joined_counted = true;
    }
    decide();
    ck_assert_int_eq(p.ro.phase, RO_SUCCEEDED);
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

START_TEST(test_lifetime_replaces_the_old_through_the_same_gate)
{
    g.ro.phase = RO_NONE;
    cfg.max_instance_lifetime_s = 3000;
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 60000);
    row(ROW_RUNNING, NEW, 60000);
    decide();
    ck_assert_int_eq(rolled(), 0);
    ck_assert_int_eq(p.launches, 1); /* its replacement first */
    plan_free(&p);
    memset(&p, 0, sizeof p);
    row(ROW_RUNNING, NEW, 5000); /* unproven */
    decide();
    ck_assert_int_eq(rolled(), 0);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    rows[3].ready_since_ms = NOW - BAKE - 1;
    rows[3].state_since_ms = rows[3].ready_since_ms;
    decide();
    ck_assert_int_eq(rolled(), 1);
    ck_assert_str_eq(p.steps[0].id, "web-1");
    ck_assert_int_eq(p.ro.phase, RO_NONE);
}
END_TEST

START_TEST(test_a_scale_in_during_a_rollout_takes_old_instances_first)
{
    old_group(2);
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, NEW, 3600000);
    row(ROW_RUNNING, OLD, 3600000);
    g.st.target = 3; /* five live: two beyond */
    g.ro.set.surge = 1;
    decide();
    int old_stopped = 0, new_stopped = 0;
    for (size_t i = 0; i < p.n; i++)
        if (p.steps[i].kind == PLAN_STOP) {
            const struct plan_row *r = &rows[p.steps[i].slot];
            old_stopped += r->spec_gen == OLD;
            new_stopped += r->spec_gen == NEW;
        }
    ck_assert_int_eq(new_stopped, 0);
    ck_assert_int_ge(old_stopped, 2);
}
END_TEST

START_TEST(test_a_scale_out_during_a_rollout_launches_and_is_not_held)
{
    old_group(3);
    cfg.desired_instances = 5;
    g.st.target = 5; /* the policy raised it: two to launch now */
    decide();
    /* the two it needs; no surge beside them until they are proven */
    ck_assert_int_eq(p.launches, 2);
    ck_assert_int_eq(rolled(), 0);
}
END_TEST

START_TEST(test_the_surge_is_not_the_policys_capacity)
{
    old_group(3);
    row(ROW_PENDING, NEW, 1000);
    decide();
    ck_assert(rows[3].surge);
    ck_assert(!rows[0].surge);
}
END_TEST

static int stops_of(uint64_t gen, uint32_t was)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        if (p.steps[i].kind == PLAN_STOP && rows[p.steps[i].slot].spec_gen == gen && p.steps[i].state == was)
            n++;
    return n;
}

/* A new instance failing on its 5xx (running, its probes fine) is the one
 * that goes when the rollout rolls back, not a healthy old one: the group
 * is one beyond its target with it, and the scale-in must not take the
 * old instance the rollback keeps. */
START_TEST(test_a_5xx_rollback_stops_the_bad_instance_not_an_old_one)
{
    g.lb_counts_5xx = true;
    g.ro.window_ms = NOW - 5000;
    old_group(3);
    struct plan_row *r = row(ROW_RUNNING, NEW, 5000);
    r->lb_requests = 100;
    r->lb_5xx = 50;
    decide();
    ck_assert(p.ro_rollback);
    ck_assert_int_eq(stops_of(OLD, ROW_RUNNING), 0);
    ck_assert_int_eq(stops_of(NEW, ROW_RUNNING), 1);
    ck_assert_int_eq(p.launches, 0); /* three old ones serve: the target */
}
END_TEST

/* An operator's pause mid-batch: the new instance still boots; nothing
 * is stopped (no old one before it is proven, and not the surge itself)
 * and nothing launched until resumed. */
START_TEST(test_a_pause_mid_batch_stops_nothing)
{
    g.ro.phase = RO_PAUSED;
    old_group(3);
    row(ROW_PENDING, NEW, 1000);
    decide();
    ck_assert_int_eq(stops_of(OLD, ROW_RUNNING), 0);
    ck_assert_int_eq(stops_of(NEW, ROW_PENDING), 0);
    ck_assert_int_eq(p.launches, 0);
    ck_assert(rows[3].surge); /* not capacity for the policy either */
}
END_TEST

/* Paused, a real scale-in still happens, within what the surge explains. */
START_TEST(test_a_pause_lets_a_scale_in_beyond_the_surge_go_on)
{
    g.ro.phase = RO_PAUSED;
    old_group(4);
    row(ROW_PENDING, NEW, 1000);
    decide();
    ck_assert_int_eq(stops_of(OLD, ROW_RUNNING), 1); /* 5 live, target 3, surge 1 */
    ck_assert_int_eq(stops_of(NEW, ROW_PENDING), 0);
}
END_TEST

/* Cancelled mid-batch, the group is one beyond its target: the scale-in
 * takes the new instance still booting (it serves nothing), not an old
 * serving one, which would leave fewer serving than the target. */
START_TEST(test_a_cancel_mid_batch_scales_in_the_booting_one)
{
    g.ro.phase = RO_CANCELLED;
    old_group(3);
    row(ROW_PENDING, NEW, 1000);
    decide();
    ck_assert_int_eq(stops_of(OLD, ROW_RUNNING), 0);
    ck_assert_int_eq(stops_of(NEW, ROW_PENDING), 1);
}
END_TEST

/* A damaged table's counts: the rollout neither stalls (a huge negative
 * count of replaced ones put every next launch beyond its canary) nor
 * overflows its sums, and the state it records is back in range. */
START_TEST(test_damaged_counts_neither_stall_nor_overflow)
{
    g.ro.set.canary = 2;
    g.ro.replaced = INT_MIN;
    g.ro.total = INT_MAX;
    g.ro.remaining = -7;
    old_group(3);
    decide();
    ck_assert_int_eq(p.launches, 1);
    ck_assert_int_ge(p.ro.replaced, 0);
    ck_assert_int_le(p.ro.total, 100000);
    ck_assert_int_eq(p.ro.remaining, 3);
    ck_assert(p.ro_changed);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    g.ro.replaced = INT_MAX;
    g.ro.set.canary = 0;
    decide();
    ck_assert_int_le(p.ro.replaced, 100000);
    ck_assert_int_le(p.ro.total, 100000 + 3);
}
END_TEST

/* Two checkpoints that round to the same count (10% and 20% of 2): one
 * pause, not a second one straight after the resume with nothing done. */
START_TEST(test_checkpoints_at_the_same_count_pause_once)
{
    g.ro.set.npause = 2;
    g.ro.set.pause_at[0] = 10;
    g.ro.set.pause_at[1] = 20;
    g.ro.total = 2;
    g.ro.replaced = 1;
    g.st.target = cfg.desired_instances = 2;
    row(ROW_RUNNING, OLD, 3600000);
    row(ROW_RUNNING, NEW, 3600000);
    decide();
    ck_assert_int_eq(p.ro.phase, RO_PAUSED);
    ck_assert_int_eq(p.ro.next_pause, 2);
    ck_assert_msg(strstr(p.ro.reason, "checkpoint 20%") != NULL, "%s", p.ro.reason);
    /* resumed: it goes on */
    plan_free(&p);
    memset(&p, 0, sizeof p);
    g.ro.phase = RO_RUNNING;
    g.ro.next_pause = 2;
    decide();
    ck_assert_int_eq(p.ro.phase, RO_RUNNING);
    ck_assert_int_eq(p.launches, 1);
}
END_TEST

/* Every field of the rollout as garbage (a damaged table): the planner
 * decides without a fault (the ASan and UBSan build runs this too). */
START_TEST(test_a_garbage_rollout_state_is_decided_on_safely)
{
    for (int pass = 0; pass < 3; pass++) {
        memset(&g.ro, pass == 0 ? 0xff : pass == 1 ? 0x7f : 0x80, sizeof g.ro);
        g.ro.phase = pass == 2 ? RO_PAUSED : RO_RUNNING;
        nrows = 0;
        memset(rows, 0, sizeof rows);
        old_group(3);
        row(ROW_RUNNING, NEW, 5000);
        row(ROW_PENDING, NEW, 1000);
        cfg.max_instance_lifetime_s = pass == 1 ? 10 : 0;
        decide();
        ck_assert_int_ge(p.ro.replaced, 0);
        ck_assert_int_le(p.launches, 16);
        plan_free(&p);
        memset(&p, 0, sizeof p);
    }
}
END_TEST

Suite *rollout_suite(void)
{
    Suite *s = suite_create("rollout");
    TCase *tc = tcase_create("plan");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_surge_one_launches_one_and_stops_none);
    tcase_add_test(tc, test_an_unproven_new_instance_holds_the_next_batch);
    tcase_add_test(tc, test_a_proven_instance_lets_the_oldest_go_then_the_next_surge_starts);
    tcase_add_test(tc, test_a_new_instance_not_in_the_balancer_is_not_proven);
    tcase_add_test(tc, test_unavailable_one_stops_one_and_refills);
    tcase_add_test(tc, test_unavailable_two_stops_two_never_three);
    tcase_add_test(tc, test_never_below_target_minus_unavailable_healthy);
    tcase_add_test(tc, test_percentages_round_surge_up_and_unavailable_down);
    tcase_add_test(tc, test_surge_two_launches_two_at_once);
    tcase_add_test(tc, test_surge_never_beyond_the_instances_left_to_replace);
    tcase_add_test(tc, test_canary_pauses_once_its_instances_are_proven);
    tcase_add_test(tc, test_checkpoint_pauses_at_its_percentage);
    tcase_add_test(tc, test_a_paused_rollout_replaces_nothing);
    tcase_add_test(tc, test_it_succeeds_once_nothing_is_due_or_unproven);
    tcase_add_test(tc, test_the_last_batch_bakes_before_success);
    tcase_add_test(tc, test_success_waits_for_the_last_old_instance_to_be_gone);
    tcase_add_test(tc, test_a_new_instance_that_never_registers_rolls_back);
    tcase_add_test(tc, test_launches_failing_since_it_began_roll_back);
    tcase_add_test(tc, test_launch_failures_short_or_older_than_the_rollout_do_not_fail_it);
    tcase_add_test(tc, test_without_a_previous_spec_it_fails_and_stops);
    tcase_add_test(tc, test_rollback_off_fails_and_stops);
    tcase_add_test(tc, test_a_failure_without_rollback_stops_the_bad_instance_not_an_old_one);
    tcase_add_test(tc, test_unhealthy_before_its_bake_fails);
    tcase_add_test(tc, test_unhealthy_after_its_bake_is_a_replacement_not_a_failure);
    tcase_add_test(tc, test_more_5xx_than_the_old_ones_fails);
    tcase_add_test(tc, test_5xx_within_the_margin_or_too_few_requests_pass);
    tcase_add_test(tc, test_a_rollback_that_fails_stops);
    tcase_add_test(tc, test_a_finished_rollback_says_rolled_back);
    tcase_add_test(tc, test_joined_instances_are_never_due);
    tcase_add_test(tc, test_lifetime_replaces_the_old_through_the_same_gate);
    tcase_add_test(tc, test_a_scale_in_during_a_rollout_takes_old_instances_first);
    tcase_add_test(tc, test_a_scale_out_during_a_rollout_launches_and_is_not_held);
    tcase_add_test(tc, test_the_surge_is_not_the_policys_capacity);
    tcase_add_test(tc, test_a_5xx_rollback_stops_the_bad_instance_not_an_old_one);
    tcase_add_test(tc, test_a_pause_mid_batch_stops_nothing);
    tcase_add_test(tc, test_a_pause_lets_a_scale_in_beyond_the_surge_go_on);
    tcase_add_test(tc, test_a_cancel_mid_batch_scales_in_the_booting_one);
    tcase_add_test(tc, test_damaged_counts_neither_stall_nor_overflow);
    tcase_add_test(tc, test_checkpoints_at_the_same_count_pause_once);
    tcase_add_test(tc, test_a_garbage_rollout_state_is_decided_on_safely);
    suite_add_tcase(s, tc);
    return s;
}
