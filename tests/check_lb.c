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

static void seen_counted(void *ctx, const struct lb_instance *in, uint64_t requests, uint32_t sessions,
                         int64_t now)
{
    (void)in, (void)requests, (void)sessions, (void)now;
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

Suite *lb_suite(void)
{
    const TTest *tests[] = {test_stat_reads_the_backends_servers,
                            test_stat_refuses_what_is_not_haproxys_answer,
                            test_members_of_ours_are_named_like_our_instances,
                            test_step_plans_over_instances_and_records_through_the_caller, NULL};
    return suite_of("lb", "core", NULL, NULL, 0, tests, NULL);
}
