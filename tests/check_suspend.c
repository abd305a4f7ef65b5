/* Suspended processes: each gate in the evaluation's pure decisions
 * (controller/plan.c, controller/suspend.c), driven with views made by
 * hand, each against the same view unsuspended (so that the unit fails if
 * the gate is gone); and the API's reading of a request
 * (status/suspend_api.c). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../controller/plan.h"
#include "../controller/suspend.h"
#include "../status/suspend_api.h"
#include "check_suites.h"
#include "plan_fixture.h"

#define NOW 1000000000LL

static struct asg_config cfg;
static struct plan_row rows[32];
static size_t nrows;
static struct plan_group g;
static struct plan p;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.min_instances = 1;
    cfg.max_instances = 10;
    cfg.desired_instances = 1;
    cfg.boot_timeout_ms = 30000;
    cfg.cooldown_ms = 0;
    cfg.breach_periods = 1;
    cfg.warmup_ms = 0;
    cfg.scale_in_stabilization_ms = 0;
    memset(rows, 0, sizeof rows);
    nrows = 0;
    plan_fixture_view(&g, &p, NOW, 16);
    g.spec_gen = 1;
}

static void teardown(void) { plan_free(&p); }

/* A fresh view within one unit. */
static void again(void)
{
    teardown();
    setup();
}

static struct plan_row *row(uint32_t state, double load)
{
    struct plan_row *r = plan_fixture_row(&rows[nrows], nrows, state, NOW - 600000 + (int64_t)nrows * 1000, load, NOW);
    r->spec_gen = 1;
    nrows++;
    return r;
}

/* Decides on a copy of the view (a plan changes the rows it decides on). */
static void decide(uint32_t suspended)
{
    static struct plan_row copy[32];
    memcpy(copy, rows, sizeof rows);
    g.suspended = suspended;
    plan_evaluation(copy, nrows, &cfg, &cfg, &g, &p);
}

static int stops(void)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.steps[i].kind == PLAN_STOP;
    return n;
}

static int steps(enum plan_kind kind)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.steps[i].kind == kind;
    return n;
}

START_TEST(test_launch_suspended_launches_nothing)
{
    row(ROW_RUNNING, 0.5);
    g.st.target = 3;
    decide(0);
    ck_assert_int_eq(p.launches, 2);
    decide(SUSP_BIT(SUSP_LAUNCH));
    ck_assert_int_eq(p.launches, 0);
    ck_assert_int_eq(p.held, 2);
    ck_assert_int_eq(p.d.target, 3); /* the target stands: launches wait for resume */
    /* An unconfirmed launch is not asked about again (that is a launch call). */
    struct plan_row *u = row(ROW_PENDING, 0);
    u->unconfirmed = true;
    u->launch_ms = NOW - 1000;
    decide(0);
    ck_assert_int_eq(steps(PLAN_ASK_AGAIN), 1);
    decide(SUSP_BIT(SUSP_LAUNCH));
    ck_assert_int_eq(steps(PLAN_ASK_AGAIN), 0);
}
END_TEST

START_TEST(test_terminate_suspended_stops_nothing_the_group_decides)
{
    for (int i = 0; i < 4; i++)
        row(ROW_RUNNING, 0.5);
    g.st.target = 2; /* scale-in of 2 */
    decide(0);
    ck_assert_int_eq(stops(), 2);
    decide(SUSP_BIT(SUSP_TERMINATE));
    ck_assert_int_eq(stops(), 0);
    ck_assert_int_eq(p.held, 2);
    /* Nor a boot timeout's stop, nor an unhealthy one's replacement. */
    again();
    row(ROW_RUNNING, 0.5);
    row(ROW_PENDING, 0)->launch_ms = NOW - 60000;
    g.st.target = 2;
    decide(0);
    ck_assert_int_eq(stops(), 1);
    decide(SUSP_BIT(SUSP_TERMINATE));
    ck_assert_int_eq(stops(), 0);
    again();
    row(ROW_RUNNING, 0.5);
    row(ROW_UNHEALTHY, 0);
    g.st.target = 2;
    decide(0);
    ck_assert_int_eq(stops(), 1);
    decide(SUSP_BIT(SUSP_TERMINATE));
    ck_assert_int_eq(stops(), 0);
}
END_TEST

START_TEST(test_replace_suspended_keeps_the_unhealthy_one)
{
    row(ROW_RUNNING, 0.5);
    row(ROW_UNHEALTHY, 0);
    g.st.target = 2;
    decide(0);
    ck_assert_int_eq(stops(), 1);
    ck_assert(p.steps[0].replaced);
    decide(SUSP_BIT(SUSP_REPLACE));
    ck_assert_int_eq(stops(), 0);
    ck_assert_int_eq(p.launches, 0); /* it still counts: no instance launched beside it */
    ck_assert_int_eq(p.held, 1);
}
END_TEST

START_TEST(test_scale_suspended_holds_the_target_on_load)
{
    row(ROW_RUNNING, 0.99);
    row(ROW_RUNNING, 0.99);
    g.st.target = 2;
    decide(0);
    ck_assert_int_gt(p.d.target, 2);
    decide(SUSP_BIT(SUSP_SCALE));
    ck_assert_int_eq(p.d.target, 2);
    ck_assert_int_eq(p.d.change, 0);
    ck_assert_int_eq(p.launches, 0);
    /* Low load: no scale-in either. */
    again();
    for (int i = 0; i < 3; i++)
        row(ROW_RUNNING, 0.01);
    g.st.target = 3;
    decide(0);
    ck_assert_int_lt(p.d.target, 3);
    decide(SUSP_BIT(SUSP_SCALE));
    ck_assert_int_eq(p.d.target, 3);
    ck_assert_int_eq(stops(), 0);
}
END_TEST

/* The bounds in force still hold the target: the operator's desired size
 * (or a schedule's) raises it, a lower max lowers it. */
START_TEST(test_scale_suspended_still_keeps_the_bounds)
{
    row(ROW_RUNNING, 0.5);
    g.st.target = 1;
    struct asg_config eff = cfg;
    eff.desired_instances = 3;
    g.suspended = SUSP_BIT(SUSP_SCALE);
    plan_evaluation(rows, nrows, &cfg, &eff, &g, &p);
    ck_assert_int_eq(p.d.target, 3);
    ck_assert_int_eq(p.launches, 2);
    struct ctl_state st = {.target = 8};
    struct decision d;
    eff.max_instances = 5;
    suspend_hold_decision(&eff, &st, &d);
    ck_assert_int_eq(d.target, 5);
    ck_assert_int_eq(st.target, 5);
}
END_TEST

START_TEST(test_rollout_suspended_holds_as_if_paused)
{
    for (int i = 0; i < 3; i++)
        row(ROW_RUNNING, 0.5)->spec_gen = 1;
    g.spec_gen = 2;
    g.prev_gen = 1;
    g.st.target = 3;
    g.st.last_action_ms = NOW;
    cfg.cooldown_ms = 600000;
    g.ro = (struct rollout_state){.phase = RO_RUNNING, .number = 1, .from_gen = 1, .to_gen = 2,
                                  .set = {.surge = 1, .bake_ms = 1000}, .started_ms = NOW - 10000};
    decide(0);
    ck_assert_int_eq(p.launches, 1); /* the surge */
    for (uint32_t m = SUSP_BIT(SUSP_ROLLOUT); m; m = 0) {
        decide(m);
        ck_assert_int_eq(p.launches, 0);
        ck_assert_int_eq(stops(), 0);
        ck_assert_int_eq(p.ro.phase, RO_RUNNING); /* the table's phase is left as it is */
        ck_assert(!p.ro_changed);
    }
    /* Terminate suspended holds it too: it could not replace anything. */
    decide(SUSP_BIT(SUSP_TERMINATE));
    ck_assert_int_eq(p.launches, 0);
    ck_assert(suspend_holds_rollout(SUSP_BIT(SUSP_LAUNCH)));
    ck_assert(!suspend_holds_rollout(SUSP_BIT(SUSP_SCALE) | SUSP_BIT(SUSP_BALANCER)));
}
END_TEST

static int api(const char *body, struct ctl_request *rq, char *why)
{
    json_object *o = json_tokener_parse(body);
    ck_assert_ptr_nonnull(o);
    int rc = suspend_api_request(o, "asgctl uid 1 via api-token", rq, why, 200);
    json_object_put(o);
    return rc;
}

START_TEST(test_the_api_reads_processes_by_name)
{
    struct ctl_request rq;
    char why[200];
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":[\"launch\",\"scale\"]}", &rq, why), 0);
    ck_assert_int_eq(rq.kind, REQ_SUSPEND);
    ck_assert_int_eq(rq.value, 1);
    ck_assert_uint_eq(rq.given, SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_SCALE));
    ck_assert_str_eq(rq.id, "asgctl uid 1 via api-token");
    ck_assert_int_eq(api("{\"action\":\"resume\"}", &rq, why), 0);
    ck_assert_int_eq(rq.value, 0);
    ck_assert_uint_eq(rq.given, SUSP_ALL);
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":[\"all\"]}", &rq, why), 0);
    ck_assert_uint_eq(rq.given, SUSP_ALL);
    ck_assert_int_eq(api("{\"action\":\"suspend\"}", &rq, why), -1);
    ck_assert_msg(strstr(why, "needs processes"), "%s", why);
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":[\"lunch\"]}", &rq, why), -1);
    ck_assert_msg(strstr(why, "'lunch'"), "%s", why);
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":[1]}", &rq, why), -1);
    ck_assert_int_eq(api("{\"action\":\"pause\",\"processes\":[\"launch\"]}", &rq, why), -1);
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":\"launch\"}", &rq, why), -1);
    ck_assert_int_eq(api("{\"action\":\"suspend\",\"processes\":[\"launch\"],\"x\":1}", &rq, why), -1);
    ck_assert_msg(strstr(why, "'x'"), "%s", why);
}
END_TEST

START_TEST(test_the_caller_is_named_plainly_or_by_its_credential)
{
    char by[SUSPEND_BY_MAX];
    suspend_api_caller("asgctl uid 1000", "api-token", by, sizeof by);
    ck_assert_str_eq(by, "asgctl uid 1000 via api-token");
    suspend_api_caller("evil\"name", "dashboard", by, sizeof by);
    ck_assert_str_eq(by, "dashboard");
    suspend_api_caller("a-very-long-client-name-that-goes-on", "status-token", by, sizeof by);
    ck_assert_str_eq(by, "status-token");
    suspend_api_caller(NULL, "api-token", by, sizeof by);
    ck_assert_str_eq(by, "api-token");
    ck_assert(suspend_by_valid(by, strlen(by)));
    ck_assert(!suspend_by_valid("a\nb", 3));
    char names[128];
    suspend_mask_text(SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_ROLLOUT), names, sizeof names);
    ck_assert_str_eq(names, "launch, rollout");
}
END_TEST

/* With ha.etcd: the suspension written with the group's state is read
 * back whole by a new leader; a bad one is refused by name. */
START_TEST(test_the_leaders_suspension_round_trips_through_its_state)
{
    static struct table_hdr h;
    memset(&h, 0, sizeof h);
    h.suspended = SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_ROLLOUT);
    h.suspend[SUSP_LAUNCH] = (struct suspend_mark){1700000000123LL, "asgctl uid 7 via api-token"};
    h.suspend[SUSP_ROLLOUT] = (struct suspend_mark){1700000000456LL, "dashboard"};
    struct strbuf b = {0};
    sb_printf(&b, "{\"leader\":\"a\"");
    suspend_state_encode(&b, &h);
    sb_printf(&b, "}");
    json_object *o = json_tokener_parse(b.s);
    ck_assert_ptr_nonnull(o);
    struct suspend_state st;
    char err[160];
    ck_assert_int_eq(suspend_state_decode(o, &st, err, sizeof err), 0);
    ck_assert(st.present);
    ck_assert_uint_eq(st.mask, h.suspended);
    ck_assert_str_eq(st.mark[SUSP_LAUNCH].by, "asgctl uid 7 via api-token");
    ck_assert(st.mark[SUSP_ROLLOUT].since_wall_ms == 1700000000456LL);
    json_object_put(o);
    sb_free(&b);
    /* A leader of before: nothing said, nothing taken. */
    o = json_tokener_parse("{\"leader\":\"a\"}");
    ck_assert_int_eq(suspend_state_decode(o, &st, err, sizeof err), 0);
    ck_assert(!st.present);
    json_object_put(o);
    const char *bad[] = {"{\"suspended\":1}", "{\"suspended\":[{\"process\":\"nap\",\"by\":\"x\",\"since_ms\":1}]}",
                         "{\"suspended\":[{\"process\":\"launch\",\"by\":\"a\\nb\",\"since_ms\":1}]}",
                         "{\"suspended\":[{\"process\":\"launch\",\"by\":\"x\",\"since_ms\":-1}]}",
                         "{\"suspended\":[{\"process\":\"launch\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = json_tokener_parse(bad[i]);
        ck_assert_ptr_nonnull(o);
        ck_assert_msg(suspend_state_decode(o, &st, err, sizeof err) == -1, "%s", bad[i]);
        ck_assert_msg(strstr(err, "suspended"), "%s", err);
        json_object_put(o);
    }
}
END_TEST

Suite *suspend_suite(void)
{
    const TTest *tests[] = {
        test_launch_suspended_launches_nothing,
        test_terminate_suspended_stops_nothing_the_group_decides,
        test_replace_suspended_keeps_the_unhealthy_one,
        test_scale_suspended_holds_the_target_on_load,
        test_scale_suspended_still_keeps_the_bounds,
        test_rollout_suspended_holds_as_if_paused,
        test_the_api_reads_processes_by_name,
        test_the_caller_is_named_plainly_or_by_its_credential,
        test_the_leaders_suspension_round_trips_through_its_state,
        NULL,
    };
    return suite_of("suspend", "core", setup, teardown, 0, tests, NULL);
}
