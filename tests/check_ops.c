/* Operators' controls on instances (docs/instance-controls.md): the
 * termination policy's comparator (controller/victim.h), and protection
 * and standby as the planners (controller/plan.c, rollout_plan.c) and the
 * balancer step (lb/follow.c) honour them, on views made by hand. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "../controller/plan.h"
#include "../controller/victim.h"
#include "../lb/follow.h"
#include "check_suites.h"
#include "plan_fixture.h"

#define NOW 1000000000LL

/* ---- the comparator ---- */

static struct victim_facts cand(uint32_t slot, int64_t launch_ms, uint32_t sessions)
{
    return (struct victim_facts){.slot = slot, .launch_ms = launch_ms, .sessions = sessions, .sessions_known = true};
}

static struct victim_policy policy(const char *list)
{
    struct victim_policy p;
    char why[160];
    ck_assert_msg(victim_policy_parse(list, &p, why, sizeof why) == 0, "%s: %s", list, why);
    return p;
}

START_TEST(test_the_policy_list_is_read_and_bad_names_refused)
{
    struct victim_policy p = policy("");
    ck_assert_uint_eq(p.n, 2);
    ck_assert(p.rule[0] == VR_OLD_SPEC && p.rule[1] == VR_NEWEST);
    p = policy("fewest_connections,oldest,old_spec,newest");
    ck_assert_uint_eq(p.n, 4);
    ck_assert(p.rule[0] == VR_FEWEST_CONNECTIONS && p.rule[1] == VR_OLDEST);
    char why[160];
    ck_assert_int_eq(victim_policy_parse("old_spec,youngest", &p, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "'youngest' is not a termination rule"), "%s", why);
    ck_assert_int_eq(victim_policy_parse("newest,newest", &p, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "named twice"), "%s", why);
    ck_assert_int_eq(victim_policy_parse("newest,,oldest", &p, why, sizeof why), -1);
}
END_TEST

START_TEST(test_fewest_connections_picks_the_cheapest_drain)
{
    struct victim_policy p = policy("fewest_connections,newest");
    struct victim_facts c[] = {cand(0, NOW - 100, 7), cand(1, NOW - 900, 2), cand(2, NOW - 50, 9)};
    enum victim_rule why;
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 1);
    ck_assert_int_eq(why, VR_FEWEST_CONNECTIONS);
    ck_assert_str_eq(victim_rule_name(why), "fewest_connections");
    /* A tie in connections goes to the next rule: the newer of the two. */
    c[0].sessions = 2;
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 0);
    ck_assert_int_eq(why, VR_NEWEST);
    /* Without a balancer's count, no preference: the next rule decides. */
    for (int i = 0; i < 3; i++)
        c[i].sessions_known = false;
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 2);
    ck_assert_int_eq(why, VR_NEWEST);
}
END_TEST

START_TEST(test_oldest_newest_and_old_spec_in_the_order_given)
{
    struct victim_facts c[] = {cand(0, NOW - 100, 0), cand(1, NOW - 900, 0), cand(2, NOW - 50, 0)};
    enum victim_rule why;
    struct victim_policy oldest = policy("oldest"), newest = policy("newest");
    ck_assert_uint_eq(victim_choose(c, 3, &oldest, &why), 1);
    ck_assert_int_eq(why, VR_OLDEST);
    ck_assert_uint_eq(victim_choose(c, 3, &newest, &why), 2);
    ck_assert_int_eq(why, VR_NEWEST);
    c[0].old_spec = true;
    struct victim_policy d = policy(""), late = policy("newest,old_spec");
    ck_assert_uint_eq(victim_choose(c, 3, &d, &why), 0); /* the default: old_spec first */
    ck_assert_int_eq(why, VR_OLD_SPEC);
    ck_assert_uint_eq(victim_choose(c, 3, &late, &why), 2); /* newest before old_spec */
    ck_assert_int_eq(why, VR_NEWEST);
    /* Alike in every rule: the lower slot, whatever the order. */
    struct victim_facts same[] = {cand(4, NOW, 0), cand(3, NOW, 0)};
    ck_assert_uint_eq(victim_choose(same, 2, &d, &why), 1);
    ck_assert_int_eq(why, VR_SLOT);
    ck_assert_uint_eq(victim_choose(same, 1, &d, &why), 0);
    ck_assert_int_eq(why, VR_NONE);
}
END_TEST

START_TEST(test_fixed_rules_come_before_the_operators_list)
{
    struct victim_policy p = policy("fewest_connections");
    struct victim_facts c[] = {cand(0, NOW, 0), cand(1, NOW, 50), cand(2, NOW, 9)};
    enum victim_rule why;
    c[1].unhealthy = true; /* serves nothing: first, whatever its connections */
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 1);
    ck_assert_int_eq(why, VR_UNHEALTHY);
    c[1].unhealthy = false;
    c[2].pending = true;
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 2);
    ck_assert_int_eq(why, VR_PENDING);
    c[2].surge = true; /* a rollout's surge last, pending or not */
    ck_assert_uint_eq(victim_choose(c, 3, &p, &why), 0);
    ck_assert_int_eq(why, VR_FEWEST_CONNECTIONS);
}
END_TEST

/* ---- the planners ---- */

static struct asg_config cfg;
static struct plan_row rows[16];
static size_t nrows;
static struct plan_group g;
static struct plan p;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.min_instances = 1;
    cfg.max_instances = 10;
    cfg.desired_instances = 2;
    cfg.cooldown_ms = 600000;
    cfg.rollout_bake_s = 10;
    memset(rows, 0, sizeof rows);
    nrows = 0;
    plan_fixture_view(&g, &p, NOW, 10);
    g.spec_gen = 1;
    g.st.target = 2;
    g.st.last_action_ms = NOW; /* in cooldown: the policy holds the target */
}

static void teardown(void) { plan_free(&p); }

static struct plan_row *row(uint32_t state, int64_t age)
{
    struct plan_row *r = plan_fixture_row(&rows[nrows], nrows, state, NOW - age, 0.4, NOW);
    r->spec_gen = 1;
    nrows++;
    return r;
}

static void decide(void) { plan_evaluation(rows, nrows, &cfg, &cfg, &g, &p); }

static const struct plan_step *stop_of(const char *id)
{
    for (size_t i = 0; i < p.n; i++)
        if (p.steps[i].kind == PLAN_STOP && strcmp(p.steps[i].id, id) == 0)
            return &p.steps[i];
    return NULL;
}

static int stops(void)
{
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.steps[i].kind == PLAN_STOP;
    return n;
}

START_TEST(test_a_scale_in_passes_over_protected_instances_and_says_which_rule_chose)
{
    cfg.termination_policy[0] = '\0';
    copy_str(cfg.termination_policy, sizeof cfg.termination_policy, "fewest_connections,newest");
    g.lb_on = g.lb_up = true;
    row(ROW_RUNNING, 90000)->lb_sessions = 0;             /* web-1: cheapest, but protected */
    row(ROW_RUNNING, 80000)->lb_sessions = 3;             /* web-2 */
    row(ROW_RUNNING, 10000)->lb_sessions = 8;             /* web-3 */
    row(ROW_RUNNING, 5000)->lb_sessions = 8;              /* web-4 */
    rows[0].protect = true;
    decide();
    ck_assert_int_eq(stops(), 2);
    ck_assert_ptr_null(stop_of("web-1"));
    const struct plan_step *s = stop_of("web-2");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s->why, "chosen by fewest_connections"), "%s", s->why);
    s = stop_of("web-4"); /* web-3 and web-4 tie on connections: the newer */
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s->why, "chosen by newest"), "%s", s->why);
    ck_assert_int_eq(p.held_protected, 0);
}
END_TEST

START_TEST(test_a_group_of_protected_instances_stays_above_its_target)
{
    g.st.target = cfg.desired_instances = 1;
    row(ROW_RUNNING, 90000)->protect = true;
    row(ROW_RUNNING, 80000)->protect = true;
    row(ROW_RUNNING, 70000);
    decide();
    ck_assert_int_eq(stops(), 1);
    ck_assert_ptr_nonnull(stop_of("web-3"));
    ck_assert_int_eq(p.held_protected, 1);
    /* A protected instance that dies is still replaced. */
    plan_free(&p);
    setup();
    row(ROW_UNHEALTHY, 90000)->protect = true;
    row(ROW_RUNNING, 80000);
    decide();
    ck_assert_ptr_nonnull(stop_of("web-1"));
    ck_assert(stop_of("web-1")->replaced);
}
END_TEST

START_TEST(test_standby_is_not_replaced_counted_or_scaled_in)
{
    /* Unhealthy on standby (its agent paused by an operator): kept; not
     * counted, so one is launched in its place. */
    row(ROW_UNHEALTHY, 90000)->standby = true;
    row(ROW_RUNNING, 80000);
    decide();
    ck_assert_int_eq(stops(), 0);
    ck_assert_int_eq(p.launches, 1);
    /* Above the target: the standby one is never the victim, nor its
     * load the policy's. */
    plan_free(&p);
    setup();
    g.st.target = cfg.desired_instances = 1;
    row(ROW_RUNNING, 1000)->standby = true; /* the newest: the default's choice, were it a candidate */
    row(ROW_RUNNING, 80000);
    row(ROW_RUNNING, 70000);
    rows[0].pol.load = 1.0;
    decide();
    ck_assert_int_eq(stops(), 1);
    ck_assert_ptr_nonnull(stop_of("web-3"));
    ck_assert_int_eq(p.launches, 0);
}
END_TEST

START_TEST(test_a_rollout_leaves_protected_old_instances_and_says_it_waits)
{
    g.spec_gen = 2;
    g.ro.phase = RO_RUNNING;
    g.ro.number = 1;
    g.ro.from_gen = 1;
    g.ro.to_gen = 2;
    g.ro.set.surge = 1;
    g.ro.set.bake_ms = 10000;
    g.ro.started_ms = NOW - 100000;
    row(ROW_RUNNING, 200000)->protect = true;  /* web-1: old, protected */
    row(ROW_RUNNING, 50000)->spec_gen = 2;     /* web-2: new, proven */
    decide();
    ck_assert_int_eq(stops(), 0);
    ck_assert_int_eq(p.launches, 0);          /* no surge for an instance it may not replace */
    ck_assert_int_eq(p.ro.phase, RO_RUNNING); /* not finished */
    ck_assert_int_eq(p.ro.remaining, 1);
    ck_assert_msg(strstr(p.ro.reason, "waiting: 1 protected old instance(s) (web-1)"), "%s", p.ro.reason);
    ck_assert_msg(strstr(p.ro_note, "rollout 1 waiting"), "%s", p.ro_note);
    /* Unprotected, it is replaced as any other. */
    plan_free(&p);
    memset(&p, 0, sizeof p);
    rows[0].protect = false;
    rows[0].state = rows[0].pol.state = ROW_RUNNING;
    rows[1].state = rows[1].pol.state = ROW_RUNNING;
    decide();
    ck_assert_int_eq(p.launches, 1); /* the surge for web-1 */
}
END_TEST

/* ---- the balancer step ---- */

static int states_recorded;
static void no_count(void *ctx, const struct lb_instance *in, const struct lb_member *m, int64_t now)
{
    (void)ctx, (void)in, (void)m, (void)now;
}
static bool state_seen(void *ctx, uint32_t slot, uint64_t inc, uint32_t st, int64_t now)
{
    (void)ctx, (void)slot, (void)inc, (void)st, (void)now;
    states_recorded++;
    return true;
}
static void no_note(void *ctx, const char *instance, int level, const char *msg)
{
    (void)ctx, (void)instance, (void)level, (void)msg;
}

START_TEST(test_the_balancer_drains_and_removes_a_standby_instance_and_takes_it_back)
{
    struct asg_config c;
    config_defaults(&c);
    copy_str(c.group_name, sizeof c.group_name, "web");
    c.lb_kind = LB_HAPROXY;
    struct lb_instance in;
    memset(&in, 0, sizeof in);
    in.incarnation = 1;
    in.state = ROW_RUNNING;
    in.lb_state = LBS_ADDED;
    in.standby = true;
    copy_str(in.id, sizeof in.id, "web-1");
    copy_str(in.service_addr, sizeof in.service_addr, "127.0.0.1:9000");
    struct lb_member m = {"web-1", "127.0.0.1:9000", LBM_READY, 2, 10, true};
    struct lb_recorder rec = {NULL, no_count, state_seen, no_note, NULL};
    struct lb_plan pl = {0};
    lb_plan_step(&c, &in, 1, &m, 1, false, false, 1000, &rec, &pl);
    ck_assert(pl.n == 1 && pl.tasks[0].action == LBA_DRAIN);
    in.lb_state = LBS_DRAINING;
    in.lb_since_ms = 1000;
    m.sessions = 0;
    lb_plan_step(&c, &in, 1, &m, 1, false, false, 1500, &rec, &pl);
    ck_assert(pl.n == 1 && pl.tasks[0].action == LBA_REMOVE);
    in.lb_state = LBS_REMOVED;
    lb_plan_step(&c, &in, 1, NULL, 0, false, false, 2000, &rec, &pl);
    ck_assert_uint_eq(pl.n, 0); /* out, and stays out */
    in.standby = false;         /* back: in again */
    lb_plan_step(&c, &in, 1, NULL, 0, false, false, 2500, &rec, &pl);
    ck_assert(pl.n == 1 && pl.tasks[0].action == LBA_ADD);
    lb_plan_free(&pl);
}
END_TEST

Suite *ops_suite(void)
{
    const TTest *tests[] = {
        test_the_policy_list_is_read_and_bad_names_refused,
        test_fewest_connections_picks_the_cheapest_drain,
        test_oldest_newest_and_old_spec_in_the_order_given,
        test_fixed_rules_come_before_the_operators_list,
        test_a_scale_in_passes_over_protected_instances_and_says_which_rule_chose,
        test_a_group_of_protected_instances_stays_above_its_target,
        test_standby_is_not_replaced_counted_or_scaled_in,
        test_a_rollout_leaves_protected_old_instances_and_says_it_waits,
        test_the_balancer_drains_and_removes_a_standby_instance_and_takes_it_back,
        NULL,
    };
    return suite_of("ops", "core", setup, teardown, 0, tests, NULL);
}
