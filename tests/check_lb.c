/* The load balancer's pieces that need no balancer: HAProxy's `show stat`
 * parser (columns found by name, quoted fields, bad answers refused) and
 * which members are ours. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../lb/follow.h"
#include "../lb/lb.h"
#include "../controller/weights.h"
#include "check_suites.h"

/* Columns in another order than HAProxy 2.6 prints them, and some it has
 * that the parser does not read: it must find them by name. */
#define HEAD "# svname,pxname,foo,scur,qcur,stot,status,req_tot,type,addr,\n"

START_TEST(test_stat_reads_the_backends_servers)
{
    const char *csv = HEAD
        "web,FRONTEND,x,0,0,0,OPEN,,0,,\n"
        "web-1,web,x,3,1,100,no check,250,2,127.0.0.1:8001,\n"
        "web-2,web,x,0,0,7,DRAIN,9,2,127.0.0.1:8002,\n"
        "\"odd,name\",web,x,0,0,0,MAINT (resolution),,2,\"127.0.0.1:8003\",\n"
        "web-9,other,x,0,0,0,UP,,2,127.0.0.1:9,\n"
        "BACKEND,web,x,3,0,107,UP,259,1,,\n";
    struct lb_member *m;
    size_t n;
    char err[256];
    ck_assert_msg(haproxy_parse_stat(csv, "web", &m, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(m[0].name, "web-1");
    ck_assert_str_eq(m[0].addr, "127.0.0.1:8001");
    ck_assert_int_eq(m[0].admin, LBM_READY);
    ck_assert_uint_eq(m[0].sessions, 4); /* current and queued */
    ck_assert(m[0].has_requests);
    ck_assert_uint_eq(m[0].requests, 250);
    ck_assert_int_eq(m[1].admin, LBM_DRAIN);
    ck_assert_str_eq(m[2].name, "odd,name");
    ck_assert_int_eq(m[2].admin, LBM_MAINT);
    ck_assert(!m[2].has_requests); /* tcp mode: sessions counted instead */
    free(m);
}
END_TEST

/* The backend's own row: the demand a group at zero sees (policy/zero.h). */
START_TEST(test_stat_reads_the_backends_own_row)
{
    const char *csv = HEAD
        "FRONTEND,web,x,9,0,500,OPEN,480,0,,\n"
        "web-1,web,x,3,1,100,no check,250,2,127.0.0.1:8001,\n"
        "BACKEND,other,x,1,1,1,UP,1,1,,\n"
        "BACKEND,web,x,2,5,107,UP,259,1,,\n";
    struct lb_demand d;
    char err[256];
    ck_assert_msg(haproxy_parse_backend(csv, "web", &d, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(d.sessions, 107);
    ck_assert_uint_eq(d.current, 2);
    ck_assert_uint_eq(d.queued, 5);
    ck_assert_int_eq(haproxy_parse_backend(csv, "nosuch", &d, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no BACKEND row for nosuch"), "%s", err);
    ck_assert_int_eq(haproxy_parse_backend(HEAD "BACKEND,web,x,-2,0,1,UP,,1,,\n", "web", &d, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "a bad number in the BACKEND row"), "%s", err);
    /* pxname after type, and a line that ends between them: not read past
     * its fields (found by fuzz_haproxy_stat). */
    const char *late = "# type,svname,scur,qcur,stot,status,pxname\n1\n2\n1,BACKEND,1,0,4,UP,web\n";
    ck_assert_msg(haproxy_parse_backend(late, "web", &d, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(d.sessions, 4);
    struct lb_member *m;
    size_t n;
    ck_assert_msg(haproxy_parse_stat(late, "web", &m, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 0);
    free(m);
}
END_TEST

static void refused(const char *csv, const char *words)
{
    struct lb_member *m = (struct lb_member *)1;
    size_t n = 7;
    char err[256] = "";
    ck_assert_int_eq(haproxy_parse_stat(csv, "web", &m, &n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, words), "\"%s\" lacks \"%s\"", err, words);
    ck_assert_ptr_null(m);
    ck_assert_uint_eq(n, 0);
}

START_TEST(test_stat_refuses_what_is_not_haproxys_answer)
{
    refused("", "empty");
    refused("Unknown command. Please enter one of the following commands only :\n", "no header");
    refused("# pxname,svname,scur\nweb,web-1,0\n", "no column");
    refused(HEAD "web-1,web,x,lots,0,0,UP,1,2,a,\n", "bad name or number");
    refused(HEAD "web-1,web,x,-1,0,0,UP,1,2,a,\n", "bad name or number");
    refused(HEAD "web-1,web,x,99999999999,0,0,UP,1,2,a,\n", "bad name or number");
    /* A name longer than any instance id. */
    char line[512];
    snprintf(line, sizeof line, HEAD "%0100d,web,x,0,0,0,UP,1,2,a,\n", 1);
    refused(line, "bad name or number");
}
END_TEST

/* HAProxy 2.6's columns for 5xx answers, retries and weights, among
 * others: in http mode hrsp_5xx counts, in tcp mode it is empty. */
#define HEAD_W "# pxname,svname,status,scur,qcur,stot,req_tot,hrsp_5xx,weight,type,uweight,wretr,addr\n"

START_TEST(test_stat_reads_5xx_answers_and_weights)
{
    const char *csv = HEAD_W
        "web,web-1,UP,0,0,40,30,7,50,2,60,0,127.0.0.1:8001\n"
        "web,web-2,UP,0,0,40,,,1,2,1,3,127.0.0.1:8002\n"
        "web,web-3,UP,0,0,15,0,0,1,2,1,15,127.0.0.1:8003\n"
        "web,BACKEND,UP,0,0,80,30,7,61,1,,,\n";
    struct lb_member *m;
    size_t n;
    char err[256];
    ck_assert_msg(haproxy_parse_stat(csv, "web", &m, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 3);
    ck_assert(m[0].has_errors && m[0].errors == 7);
    ck_assert(m[0].has_requests && m[0].requests == 30);
    /* The weight set (uweight), not the effective one of the moment. */
    ck_assert(m[0].has_weight && m[0].weight == 60);
    ck_assert(!m[1].has_errors && m[1].errors == 0); /* tcp mode */
    ck_assert(m[1].has_weight && m[1].weight == 1);
    /* Every attempt retried on another server (retry-on 503): HAProxy
     * counts none in req_tot nor hrsp_5xx; each is a request it failed. */
    ck_assert(m[2].has_errors && m[2].errors == 15 && m[2].requests == 15);
    free(m);
    /* An older HAProxy: no uweight, weight read; no hrsp_5xx at all. */
    ck_assert_msg(haproxy_parse_stat("# pxname,svname,status,scur,qcur,stot,weight,type\n"
                                     "web,web-1,UP,0,0,4,80,2\n",
                                     "web", &m, &n, err, sizeof err) == 0, "%s", err);
    ck_assert(n == 1 && m[0].has_weight && m[0].weight == 80 && !m[0].has_errors && !m[0].has_requests);
    free(m);
    ck_assert_msg(haproxy_parse_stat("# pxname,svname,status,scur,qcur,stot,type\nweb,web-1,UP,0,0,4,2\n",
                                     "web", &m, &n, err, sizeof err) == 0, "%s", err);
    ck_assert(n == 1 && !m[0].has_weight && !m[0].has_errors);
    free(m);
}
END_TEST

START_TEST(test_stat_refuses_bad_5xx_counts_and_weights)
{
    refused(HEAD_W "web,web-1,UP,0,0,40,30,many,50,2,60,0,a\n", "line 2: a bad name or number");
    refused(HEAD_W "web,web-1,UP,0,0,40,30,-7,50,2,60,0,a\n", "bad name or number");
    refused(HEAD_W "web,web-1,UP,0,0,40,30,7,50,2,257,0,a\n", "bad name or number");
    refused(HEAD_W "web,web-1,UP,0,0,40,30,7,50,2,1.5,0,a\n", "bad name or number");
    refused(HEAD_W "web,web-1,UP,0,0,40,30,7,50,2,60,x,a\n", "bad name or number");
    refused(HEAD_W "web,web-1,UP,0,0,40,30,7,50,2\n", "too few");
}
END_TEST

START_TEST(test_members_of_ours_are_named_like_our_instances)
{
    ck_assert(lb_name_is_ours("web", "web-1"));
    ck_assert(lb_name_is_ours("web", "web-12345"));
    ck_assert(!lb_name_is_ours("web", "web-"));
    ck_assert(!lb_name_is_ours("web", "web-1a"));
    ck_assert(!lb_name_is_ours("web", "webx-1"));
    ck_assert(!lb_name_is_ours("web", "static-1"));
    ck_assert(!lb_name_is_ours("web", "web"));
}
END_TEST

/* ---- one balancer step, planned and recorded without a table ---- */

struct seen {
    int counted, states, notes;
    uint32_t last_state, last_slot;
    bool gone;                   /* the planned-for instance has left its slot */
    char last_note[400];
};

static void seen_counted(void *ctx, const struct lb_instance *in, const struct lb_member *m, int64_t now)
{
    (void)in, (void)m, (void)now;
    ((struct seen *)ctx)->counted++;
}

static bool seen_state(void *ctx, uint32_t slot, uint64_t incarnation, uint32_t lb_state, int64_t now)
{
    struct seen *s = ctx;
    (void)incarnation, (void)now;
    if (s->gone)
        return false;
    s->states++;
    s->last_state = lb_state;
    s->last_slot = slot;
    return true;
}

static void seen_note(void *ctx, const char *instance, int level, const char *msg)
{
    struct seen *s = ctx;
    (void)instance, (void)level;
    s->notes++;
    copy_str(s->last_note, sizeof s->last_note, msg);
}

static struct lb_instance instance(uint32_t slot, const char *id, uint32_t state, uint32_t lb_state)
{
    struct lb_instance in;
    memset(&in, 0, sizeof in);
    in.slot = slot;
    in.incarnation = 1;
    in.state = state;
    in.lb_state = lb_state;
    copy_str(in.id, sizeof in.id, id);
    snprintf(in.service_addr, sizeof in.service_addr, "127.0.0.1:%u", 9000 + slot);
    return in;
}

START_TEST(test_step_plans_over_instances_and_records_through_the_caller)
{
    struct asg_config cfg;
    config_defaults(&cfg);
    copy_str(cfg.group_name, sizeof cfg.group_name, "web");
    cfg.lb_kind = LB_HAPROXY;
    struct lb_instance in[] = {instance(0, "web-1", ROW_RUNNING, LBS_NONE),
                               instance(3, "web-2", ROW_TERMINATING, LBS_ADDED),
                               instance(5, "web-3", ROW_TERMINATING, LBS_DRAINING)};
    struct lb_member m[] = {{"web-2", "127.0.0.1:9003", LBM_READY, 4, 100, true},
                            {"web-9", "127.0.0.1:9009", LBM_READY, 0, 0, true}};
    struct seen s = {0};
    struct lb_recorder rec = {&s, seen_counted, seen_state, seen_note};
    struct lb_plan p = {0};
    lb_plan_step(&cfg, in, 3, m, 2, true, false, 1000, &rec, &p);
    /* web-1 goes in, web-2 is drained, web-3 (gone from the balancer
     * while draining) is recorded removed at once, stray web-9 drained. */
    ck_assert_uint_eq(p.n, 3);
    ck_assert(p.tasks[0].action == LBA_ADD && strcmp(p.tasks[0].name, "web-1") == 0 &&
              strcmp(p.tasks[0].addr, "127.0.0.1:9000") == 0 && p.tasks[0].slot == 0);
    ck_assert(p.tasks[1].action == LBA_DRAIN && strcmp(p.tasks[1].name, "web-2") == 0);
    ck_assert(p.tasks[2].action == LBA_DRAIN && p.tasks[2].slot == LB_NO_ROW &&
              strcmp(p.tasks[2].name, "web-9") == 0);
    ck_assert_int_eq(s.counted, 1); /* web-2's counters */
    ck_assert(s.states == 1 && s.last_state == LBS_REMOVED && s.last_slot == 5);
    ck_assert(s.notes == 1 && strstr(s.last_note, "web-9"));
    /* Done: each recorded on its instance; not on one that left its slot. */
    for (size_t i = 0; i < p.n; i++)
        p.tasks[i].result = 0;
    lb_record(&p, &rec, 2000);
    ck_assert(s.states == 3 && s.last_state == LBS_DRAINING && s.last_slot == 3);
    ck_assert(s.notes == 4 && strstr(s.last_note, "drained web-9 (no instance of ours)"));
    lb_plan_step(&cfg, in, 1, NULL, 0, false, false, 3000, &rec, &p);
    ck_assert_uint_eq(p.n, 1);
    p.tasks[0].result = 0;
    s.gone = true;
    lb_record(&p, &rec, 4000);
    ck_assert_int_eq(s.notes, 4); /* nothing said of an instance that is not there */
    ck_assert_uint_eq(p.n, 0);
    lb_plan_free(&p);
}
END_TEST

/* ---- weights (controller/weights.h) ---- */

START_TEST(test_weight_follows_load)
{
    ck_assert_uint_eq(weight_of_load(0.0), 105);
    ck_assert_uint_eq(weight_of_load(0.5), 55);
    ck_assert_uint_eq(weight_of_load(0.9), 15);
    ck_assert_uint_eq(weight_of_load(1.0), 5);
    ck_assert_uint_eq(weight_of_load(1.04), 1);
    ck_assert_uint_eq(weight_of_load(3.0), 1); /* never 0: it still gets a little */
    ck_assert_uint_eq(weight_of_load(-5.0), LB_WEIGHT_MAX);
    ck_assert_uint_eq(weight_of_load(0.0 / 0.0), 1);
}
END_TEST

static struct weight_member wm(bool serving, bool is_new, bool fresh, double load, uint32_t current)
{
    return (struct weight_member){serving, is_new, fresh, load, current};
}

START_TEST(test_weights_by_rule)
{
    struct weight_member m[] = {wm(true, false, true, 0.9, 100), wm(true, false, true, 0.1, 100),
                                wm(true, false, false, 0.9, 7), wm(false, false, true, 0.9, 42)};
    uint32_t out[4];
    /* Base: every serving member 100; one out of rotation left as it is. */
    ck_assert_int_eq(weights_decide(m, 4, false, 0, out), WR_BASE);
    ck_assert(out[0] == 100 && out[1] == 100 && out[2] == 100 && out[3] == 42);
    /* By load: busier, fewer; no recent sample, the base. */
    ck_assert_int_eq(weights_decide(m, 4, true, 0, out), WR_LOAD);
    ck_assert(out[0] == 15 && out[1] == 95 && out[2] == 100 && out[3] == 42);
    /* A canary share without new members in rotation: nothing to share. */
    ck_assert_int_eq(weights_decide(m, 4, true, 10, out), WR_LOAD);
}
END_TEST

START_TEST(test_canary_takes_its_share)
{
    /* 3 old, 1 new, 10%: the new one 10*3*100/(90*1) = 33 against 300. */
    struct weight_member m[] = {wm(true, false, true, 0.5, 100), wm(true, false, true, 0.5, 100),
                                wm(true, false, true, 0.5, 100), wm(true, true, true, 0.0, 100),
                                wm(false, true, true, 0.0, 100)};
    uint32_t out[5];
    ck_assert_int_eq(weights_decide(m, 5, true, 10, out), WR_CANARY);
    ck_assert(out[0] == 100 && out[1] == 100 && out[2] == 100 && out[3] == 33 && out[4] == 100);
    uint32_t wn, wo;
    weight_canary(50, 2, 2, &wn, &wo);
    ck_assert(wn == 100 && wo == 100);
    weight_canary(1, 1, 3, &wn, &wo);
    ck_assert(wn == 1 && wo == 100); /* 0.34 rounds up to the least weight */
    /* 90% to one new beside 3 old: 2700 is past the most; the old ones
     * come down instead: 10*1*256/(90*3) = 9.5 -> 9, so 256/(256+27). */
    weight_canary(90, 3, 1, &wn, &wo);
    ck_assert(wn == LB_WEIGHT_MAX && wo == 9);
    weight_canary(99, 200, 1, &wn, &wo);
    ck_assert(wn == LB_WEIGHT_MAX && wo == 1);
    weight_canary(0, 3, 1, &wn, &wo);
    ck_assert(wn == LB_WEIGHT_BASE && wo == LB_WEIGHT_BASE);
}
END_TEST

START_TEST(test_canary_share_only_in_the_canary_phase)
{
    struct rollout_state ro;
    memset(&ro, 0, sizeof ro);
    ro.phase = RO_RUNNING;
    ro.set.canary = 1;
    ro.set.canary_weight = 10;
    ck_assert_int_eq(weight_canary_share(&ro), 10); /* replacing the canary */
    ro.phase = RO_PAUSED;
    ck_assert_int_eq(weight_canary_share(&ro), 10); /* an operator's pause in it */
    ro.canary_done = 1;
    ro.replaced = 1;
    ck_assert_int_eq(weight_canary_share(&ro), 10); /* paused after the canary */
    ro.phase = RO_RUNNING;
    ck_assert_int_eq(weight_canary_share(&ro), 0);  /* resumed */
    ro.phase = RO_PAUSED;
    ro.replaced = 2;
    ck_assert_int_eq(weight_canary_share(&ro), 0);  /* a later checkpoint */
    ro.replaced = 1;
    ro.rolling_back = 1;
    ck_assert_int_eq(weight_canary_share(&ro), 0);
    ro.rolling_back = 0;
    ro.phase = RO_FAILED;
    ck_assert_int_eq(weight_canary_share(&ro), 0);
    ro.phase = RO_RUNNING;
    ro.canary_done = 0;
    ro.set.canary_weight = 0;
    ck_assert_int_eq(weight_canary_share(&ro), 0);  /* no canary weight asked */
    ro.set.canary_weight = 100;
    ck_assert_int_eq(weight_canary_share(&ro), 99); /* the old ones keep a little */
    ro.set.canary = 0;
    ck_assert_int_eq(weight_canary_share(&ro), 0);
}
END_TEST

START_TEST(test_weights_set_only_when_worth_it)
{
    ck_assert(!weight_worth_setting(WR_BASE, 100, 100));
    ck_assert(weight_worth_setting(WR_BASE, 99, 100));
    ck_assert(weight_worth_setting(WR_CANARY, 34, 33));
    ck_assert(!weight_worth_setting(WR_LOAD, 55, 51)); /* a load's small move */
    ck_assert(weight_worth_setting(WR_LOAD, 55, 50));
    ck_assert(weight_worth_setting(WR_LOAD, 98, 100)); /* back to the base: exactly */
    ck_assert(!weight_change_noted(55, 40));
    ck_assert(weight_change_noted(100, 33));
    ck_assert(weight_change_noted(33, 100));
    ck_assert(weight_change_noted(1, 100));
}
END_TEST

/* A balancer of a test (its priv): the weights set. */
struct fake_weights {
    uint32_t set[4];
    int calls;
};

static int fake_set_weight(struct lb *lb, const char *name, const char *addr, uint32_t weight, char *err,
                           size_t errsize)
{
    struct fake_weights *f = lb->priv;
    (void)addr;
    if (strcmp(name, "web-bad") == 0) {
        snprintf(err, errsize, "no such server");
        return -1;
    }
    f->set[f->calls++ % 4] = weight;
    return 0;
}

struct weighed {
    int n;
    uint32_t last;
};

static void seen_weighted(void *ctx, const struct lb_task *k, int64_t now)
{
    (void)now;
    struct weighed *w = ctx;
    w->n++;
    w->last = k->weight;
}

START_TEST(test_weight_tasks_run_and_record)
{
    struct lb_ops ops = {.name = "fake", .set_weight = fake_set_weight};
    struct fake_weights f = {{0}, 0};
    struct lb lb = {.ops = &ops, .priv = &f};
    struct lb_plan p = {0};
    struct lb_instance a = instance(1, "web-1", ROW_RUNNING, LBS_ADDED),
                       bad = instance(2, "web-bad", ROW_RUNNING, LBS_ADDED);
    lb_plan_weight(&p, &a, "127.0.0.1:9001", 100, 33);
    lb_plan_weight(&p, &bad, "127.0.0.1:9002", 100, 33);
    char err[256] = "";
    ck_assert_int_eq(lb_run(&lb, &p, err, sizeof err), 1);
    ck_assert(f.calls == 1 && f.set[0] == 33);
    ck_assert_msg(strstr(err, "no such server"), "%s", err);
    struct weighed w = {0};
    struct lb_recorder rec = {&w, seen_counted, seen_state, seen_note, seen_weighted};
    lb_record(&p, &rec, 10);
    ck_assert(w.n == 1 && w.last == 33); /* the failed one is not recorded */
    /* A balancer without weights refuses the task, by its op's absence. */
    ops.set_weight = NULL;
    lb_plan_weight(&p, &a, "127.0.0.1:9001", 100, 33);
    ck_assert_int_eq(lb_run(&lb, &p, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "no weights"), "%s", err);
    lb_plan_free(&p);
}
END_TEST

Suite *lb_suite(void)
{
    const TTest *tests[] = {test_stat_reads_the_backends_servers,
                            test_stat_refuses_what_is_not_haproxys_answer,
                            test_members_of_ours_are_named_like_our_instances,
                            test_step_plans_over_instances_and_records_through_the_caller,
                            test_stat_reads_5xx_answers_and_weights,
                            test_stat_refuses_bad_5xx_counts_and_weights,
                            test_weight_follows_load,
                            test_weights_by_rule,
                            test_canary_takes_its_share,
                            test_canary_share_only_in_the_canary_phase,
                            test_weights_set_only_when_worth_it,
                            test_weight_tasks_run_and_record, test_stat_reads_the_backends_own_row, NULL};
    return suite_of("lb", "core", NULL, NULL, 0, tests, NULL);
}
