/* The evaluation's decisions (controller/plan.c), driven without a table:
 * each unit makes a view of a group by hand and reads the plan. */
#include <stdio.h>
#include <string.h>

#include "../controller/plan.h"
#include "check_suites.h"
#include "plan_fixture.h"

#define NOW 1000000000LL

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
    cfg.desired_instances = 2;
    cfg.boot_timeout_ms = 30000;
    cfg.lb_drain_timeout_ms = 10000;
    memset(rows, 0, sizeof rows);
    nrows = 0;
    plan_fixture_view(&g, &p, NOW, 16);
}

static void teardown(void) { plan_free(&p); }

/* A row in the view: state, launched `age` ms ago. */
static struct plan_row *row(uint32_t state, int64_t age)
{
    struct plan_row *r = plan_fixture_row(&rows[nrows], nrows, state, NOW - age, 0.5, NOW);
    nrows++;
    return r;
}

static void decide(void) { plan_evaluation(rows, nrows, &cfg, &cfg, &g, &p); }

static int steps(enum plan_kind kind)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.steps[i].kind == kind;
    return n;
}

static const struct plan_step *step_on(const char *id)
{
    for (size_t i = 0; i < p.n; i++)
        if (strcmp(p.steps[i].id, id) == 0)
            return &p.steps[i];
    return NULL;
}

START_TEST(test_an_empty_group_launches_its_desired_size)
{
    decide();
    ck_assert_int_eq(p.launches, 2);
    ck_assert_int_eq(p.d.target, 2);
    ck_assert_msg(strstr(p.launch_why, "group at 0, target 2") != NULL, "%s", p.launch_why);
    ck_assert_int_eq((int)p.n, 0);
}
END_TEST

START_TEST(test_launches_wait_for_free_slots_and_the_monitors_address)
{
    cfg.desired_instances = 5;
    g.free_rows = 3;
    decide();
    ck_assert_int_eq(p.launches, 3);
    ck_assert_int_eq(p.slots_short, 2);
    g.manager_known = false;
    decide();
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

/* A launch that never registered is stopped; that evaluation backs off:
 * nothing launched, no unconfirmed launch asked about again. */
START_TEST(test_a_boot_timeout_stops_the_instance_and_backs_off)
{
    row(ROW_PENDING, 31000);
    struct plan_row *u = row(ROW_PENDING, 1000);
    u->unconfirmed = true;
    decide();
    const struct plan_step *s = step_on("web-1");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->kind, PLAN_STOP);
    ck_assert_int_eq(s->state, ROW_PENDING);
    ck_assert_uint_eq(s->incarnation, 7);
    ck_assert_msg(strstr(s->why, "did not register within 30000 ms") != NULL, "%s", s->why);
    ck_assert(p.boot_timeout);
    ck_assert_int_eq(p.launches, 0);
    ck_assert_int_eq(steps(PLAN_ASK_AGAIN), 0);
    ck_assert_int_eq(rows[0].state, ROW_TERMINATING); /* the view follows the plan */
}
END_TEST

START_TEST(test_an_unconfirmed_launch_is_asked_about_again_once_the_backoff_is_over)
{
    row(ROW_PENDING, 1000)->unconfirmed = true;
    row(ROW_RUNNING, 60000);
    g.backoff_over = false;
    decide();
    ck_assert_int_eq(steps(PLAN_ASK_AGAIN), 0);
    g.backoff_over = true;
    decide();
    ck_assert_int_eq(steps(PLAN_ASK_AGAIN), 1);
    ck_assert_int_eq(p.launches, 0); /* it counts as pending: the group is at 2 */
}
END_TEST

/* At most a tenth of the group is replaced at a time; the others wait. */
START_TEST(test_unhealthy_replacements_are_paced_to_a_tenth_of_the_group)
{
    cfg.desired_instances = 20;
    for (int i = 0; i < 15; i++)
        row(ROW_RUNNING, 60000);
    for (int i = 0; i < 5; i++)
        row(ROW_UNHEALTHY, 60000);
    decide();
    int replaced = 0;
    for (size_t i = 0; i < p.n; i++)
        replaced += p.steps[i].kind == PLAN_STOP && p.steps[i].replaced;
    ck_assert_int_eq(replaced, 2);
    ck_assert_int_eq(p.waiting, 3);
    ck_assert_int_eq(p.launches, p.d.target - 18); /* 15 running, 3 waiting: the two replaced relaunched */
    ck_assert_int_ge(p.launches, 2);
}
END_TEST

/* One that joined on its own leaves when it goes silent, target with it. */
START_TEST(test_a_joined_instance_enters_and_leaves_the_target)
{
    g.st.target = 2;
    row(ROW_RUNNING, 60000);
    row(ROW_RUNNING, 60000);
    struct plan_row *j = row(ROW_RUNNING, 1000);
    j->joined = true;
    decide();
    const struct plan_step *s = step_on("web-3");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->kind, PLAN_JOINED);
    ck_assert(s->counted);
    ck_assert_int_eq(s->from, 2);
    ck_assert_int_eq(s->to, 3);
    ck_assert_int_eq(p.d.target, 3);
    ck_assert_int_eq((int)p.st.last_action_ms, (int)NOW); /* a cooldown, as an operator's choice */
    ck_assert_int_eq(steps(PLAN_STOP), 0);                /* not scaled straight back in */

    teardown(); /* a second group */
    setup();
    g.st.target = 3;
    row(ROW_RUNNING, 60000);
    row(ROW_RUNNING, 60000);
    j = row(ROW_UNHEALTHY, 1000);
    j->joined = j->joined_counted = true;
    decide();
    ck_assert_int_eq(step_on("web-3")->kind, PLAN_STOP);
    ck_assert_int_eq(steps(PLAN_JOINED), 1);
    ck_assert_int_eq(p.d.target, 2);
    ck_assert_int_eq(p.launches, 0); /* a leaver is not replaced */
}
END_TEST

START_TEST(test_the_joined_never_take_the_target_past_max)
{
    cfg.max_instances = 2;
    g.st.target = 2;
    row(ROW_RUNNING, 60000);
    row(ROW_RUNNING, 60000);
    row(ROW_RUNNING, 1000)->joined = true;
    decide();
    ck_assert_int_eq(p.d.target, 2);
    ck_assert_int_eq(steps(PLAN_STOP), 1); /* over max: one goes */
}
END_TEST

/* Scale-in takes the newest; one in the balancer is drained first, unless
 * it is unhealthy and the balancer away. */
START_TEST(test_scale_in_takes_the_newest_and_holds_for_the_balancer)
{
    g.st.target = 2;
    g.lb_on = g.lb_up = true;
    row(ROW_RUNNING, 90000)->lb_state = LBS_ADDED;
    row(ROW_RUNNING, 80000)->lb_state = LBS_ADDED;
    row(ROW_RUNNING, 10000)->lb_state = LBS_ADDED; /* newest */
    row(ROW_UNHEALTHY, 70000)->lb_state = LBS_ADDED;
    cfg.desired_instances = 2;
    decide();
    ck_assert_int_eq(steps(PLAN_STOP), 2);
    ck_assert_ptr_nonnull(step_on("web-4"));
    ck_assert_ptr_nonnull(step_on("web-3"));
    ck_assert(step_on("web-3")->hold);
    ck_assert(step_on("web-4")->hold);
    ck_assert(plan_holds_for_balancer(true, true, ROW_UNHEALTHY, LBS_ADDED));
    ck_assert(!plan_holds_for_balancer(true, false, ROW_UNHEALTHY, LBS_ADDED));
    ck_assert(plan_holds_for_balancer(true, false, ROW_RUNNING, LBS_DRAINING));
    ck_assert(!plan_holds_for_balancer(true, true, ROW_RUNNING, LBS_NONE));
    ck_assert(!plan_holds_for_balancer(false, true, ROW_RUNNING, LBS_ADDED));
}
END_TEST

START_TEST(test_releases_follow_the_balancer_or_its_absence)
{
    g.lb_on = true;
    g.lb_up = false;
    struct plan_row *a = row(ROW_TERMINATING, 90000), *b = row(ROW_TERMINATING, 90000),
                    *c = row(ROW_TERMINATING, 90000);
    a->lb_hold = b->lb_hold = c->lb_hold = true;
    a->lb_state = LBS_REMOVED;
    b->lb_state = LBS_DRAINING;
    b->lb_since_ms = NOW - 10000; /* drained for lb.drain_timeout_ms, balancer away */
    c->lb_state = LBS_DRAINING;
    c->lb_since_ms = NOW - 9999;
    plan_releases(rows, nrows, &g, cfg.lb_drain_timeout_ms, &p);
    ck_assert_int_eq((int)p.n, 2);
    ck_assert(!step_on("web-1")->blind);
    ck_assert(step_on("web-2")->blind);
    ck_assert_str_eq(step_on("web-2")->why, "drained, and the balancer cannot be reached");
    ck_assert_ptr_null(step_on("web-3"));
    g.lb_wait_until = NOW; /* a stopping manager's wait is over */
    plan_releases(rows, nrows, &g, cfg.lb_drain_timeout_ms, &p);
    ck_assert_int_eq((int)p.n, 3);
    ck_assert_str_eq(step_on("web-3")->why, "the manager is stopping");
}
END_TEST

/* Terminations in progress are checked, except those the balancer holds. */
START_TEST(test_terminating_instances_are_checked_unless_held)
{
    row(ROW_TERMINATING, 1000);
    row(ROW_TERMINATING, 1000)->lb_hold = true;
    g.lb_on = g.lb_up = true;
    rows[1].lb_state = LBS_DRAINING;
    decide();
    ck_assert_int_eq(steps(PLAN_CHECK_GONE), 1);
    ck_assert_int_eq(step_on("web-1")->kind, PLAN_CHECK_GONE);
    ck_assert_ptr_null(step_on("web-2"));
}
END_TEST

START_TEST(test_a_draining_manager_decides_no_launch_and_no_scale_in)
{
    g.draining = true;
    decide();
    ck_assert_int_eq(p.launches, 0);
    teardown(); /* a second group */
    setup();
    g.draining = true;
    for (int i = 0; i < 4; i++)
        row(ROW_RUNNING, 60000);
    decide();
    ck_assert_int_eq(steps(PLAN_STOP), 0);
}
END_TEST

START_TEST(test_a_schedule_entry_names_itself_in_a_bounds_change)
{
    struct asg_config eff = cfg;
    eff.min_instances = eff.desired_instances = 4;
    g.sched_active = 1;
    g.st.target = 2; /* the target before the entry came into force */
    row(ROW_RUNNING, 60000);
    row(ROW_RUNNING, 60000);
    plan_evaluation(rows, nrows, &cfg, &eff, &g, &p);
    ck_assert_int_eq(p.d.target, 4);
    ck_assert_msg(strstr(p.d.reason, "schedule entry 2") != NULL, "%s", p.d.reason);
    ck_assert_int_eq(p.launches, 2);
}
END_TEST

Suite *plan_suite(void)
{
    const TTest *tests[] = {
        test_an_empty_group_launches_its_desired_size,
        test_launches_wait_for_free_slots_and_the_monitors_address,
        test_a_boot_timeout_stops_the_instance_and_backs_off,
        test_an_unconfirmed_launch_is_asked_about_again_once_the_backoff_is_over,
        test_unhealthy_replacements_are_paced_to_a_tenth_of_the_group,
        test_a_joined_instance_enters_and_leaves_the_target,
        test_the_joined_never_take_the_target_past_max,
        test_scale_in_takes_the_newest_and_holds_for_the_balancer,
        test_releases_follow_the_balancer_or_its_absence,
        test_terminating_instances_are_checked_unless_held,
        test_a_draining_manager_decides_no_launch_and_no_scale_in,
        test_a_schedule_entry_names_itself_in_a_bounds_change,
        NULL,
    };
    return suite_of("plan", "core", setup, teardown, 0, tests, NULL);
}
