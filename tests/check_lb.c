/* The load balancer's pieces that need no balancer: HAProxy's `show stat`
 * parser (columns found by name, quoted fields, bad answers refused) and
 * which members are ours. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Suite *lb_suite(void)
{
    const TTest *tests[] = {test_stat_reads_the_backends_servers,
                            test_stat_refuses_what_is_not_haproxys_answer,
                            test_members_of_ours_are_named_like_our_instances, NULL};
    return suite_of("lb", "core", NULL, NULL, 0, tests, NULL);
}
