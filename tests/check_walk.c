#include <math.h>

#include <string.h>

#include "../agent/walk.h"
#include "../agent/workload.h"
#include "check_suites.h"

#define STEPS 5000

START_TEST(test_step_bounded_and_in_range)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct walk w;
        walk_init(&w, seed, (double)(seed % 11) / 10.0);
        double prev = w.x;
        for (int i = 0; i < STEPS; i++) {
            double x = walk_step(&w);
            ck_assert_msg(x >= 0.0 && x <= 1.0, "seed %llu step %d: %f outside 0..1",
                          (unsigned long long)seed, i, x);
            ck_assert_msg(fabs(x - prev) <= w.max_step + 1e-12, "seed %llu step %d jumped %f",
                          (unsigned long long)seed, i, fabs(x - prev));
            prev = x;
        }
    }
}
END_TEST

static double mean_after(uint64_t seed, double start, int skip, int n)
{
    struct walk w;
    walk_init(&w, seed, start);
    for (int i = 0; i < skip; i++)
        walk_step(&w);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += walk_step(&w);
    return sum / n;
}

START_TEST(test_mean_reverting)
{
    struct walk w;
    walk_init(&w, 1, 0.5);
    /* From either edge the walk comes back toward its mean. */
    double hi = mean_after(7, 1.0, 500, 20000);
    double lo = mean_after(7, 0.0, 500, 20000);
    ck_assert_msg(fabs(hi - w.mean) < 0.1, "from 1.0: long-run mean %f", hi);
    ck_assert_msg(fabs(lo - w.mean) < 0.1, "from 0.0: long-run mean %f", lo);
    /* And it heads there: after 100 steps from 1.0 it is well below. */
    walk_init(&w, 9, 1.0);
    for (int i = 0; i < 100; i++)
        walk_step(&w);
    ck_assert_msg(w.x < 0.85, "after 100 steps from 1.0 still at %f", w.x);
}
END_TEST

START_TEST(test_not_constant)
{
    struct walk w;
    walk_init(&w, 3, 0.35);
    double lo = 1, hi = 0;
    for (int i = 0; i < 2000; i++) {
        double x = walk_step(&w);
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    ck_assert_msg(hi - lo > 0.1, "range only %f over 2000 steps", hi - lo);
}
END_TEST

START_TEST(test_same_seed_same_sequence)
{
    struct walk a, b, c;
    walk_init(&a, 42, 0.3);
    walk_init(&b, 42, 0.3);
    walk_init(&c, 43, 0.3);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        double xa = walk_step(&a), xb = walk_step(&b), xc = walk_step(&c);
        ck_assert(xa == xb);
        differ += xa != xc;
    }
    ck_assert_msg(differ > 900, "seeds 42 and 43 agree on %d of 1000 steps", 1000 - differ);
}
END_TEST

/* Where the service check connects, and so what its Host says: a
 * wildcard bind is checked on both loopbacks, never as "0.0.0.0". */
START_TEST(test_service_check_hosts)
{
    char h[2][48];
    ck_assert_int_eq(workload_check_hosts("0.0.0.0", h, 2), 2);
    ck_assert_str_eq(h[0], "127.0.0.1");
    ck_assert_str_eq(h[1], "[::1]");
    ck_assert_int_eq(workload_check_hosts("::", h, 2), 2);
    ck_assert_str_eq(h[0], "[::1]");
    ck_assert_str_eq(h[1], "127.0.0.1");
    ck_assert_int_eq(workload_check_hosts("::1", h, 2), 1);
    ck_assert_str_eq(h[0], "[::1]");
    ck_assert_int_eq(workload_check_hosts("127.0.0.5", h, 2), 1);
    ck_assert_str_eq(h[0], "127.0.0.5");
    ck_assert_int_eq(workload_check_hosts("localhost", h, 2), 1);
    ck_assert_str_eq(h[0], "localhost");
}
END_TEST

START_TEST(test_service_check_forms)
{
    struct workload w;
    char why[160];
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(workload_parse_check("https://svc.asg.test:8443/h?full=1", &w, why, sizeof why), 0);
    ck_assert(w.check == SVC_CHECK_HTTP && w.tls);
    ck_assert_str_eq(w.authority, "svc.asg.test:8443");
    ck_assert_str_eq(w.path, "/h?full=1");
    ck_assert_int_eq(workload_parse_check("http:/ready", &w, why, sizeof why), 0);
    ck_assert(!w.tls && w.authority[0] == '\0');
    ck_assert_str_eq(w.path, "/ready");
    ck_assert_int_eq(workload_parse_check("https:/", &w, why, sizeof why), 0);
    ck_assert(w.tls);
    ck_assert_int_eq(workload_parse_check("http://[::1]:8080/", &w, why, sizeof why), 0);
    ck_assert_str_eq(w.authority, "[::1]:8080");
    const char *bad[] = {"http://user:pw@name/", "http://name/#frag", "ftp://name/", "http:",
                         "http://name /", "https//name/", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(workload_parse_check(bad[i], &w, why, sizeof why) != 0, "%s accepted", bad[i]);
}
END_TEST

Suite *walk_suite(void)
{
    const TTest *tests[] = {
        test_step_bounded_and_in_range,
        test_mean_reverting,
        test_not_constant,
        test_same_seed_same_sequence,
        test_service_check_hosts,
        test_service_check_forms,
        NULL};
    return suite_of("walk", "walk", NULL, NULL, 0, tests, NULL);
}
