#ifndef ASG_CHECK_SUITES_H
#define ASG_CHECK_SUITES_H
#include <check.h>
#include <stddef.h>

/* A suite of one test case: the tests in order (NULL-terminated), each
 * between setup and teardown (either may be NULL), each bounded by timeout
 * seconds (0: CK_DEFAULT_TIMEOUT, which make test sets). *tc_out, when
 * given, gets the case, for suites that add loop tests to it. */
static inline Suite *suite_of(const char *name, const char *tcname, SFun setup, SFun teardown,
                              double timeout, const TTest *const *tests, TCase **tc_out)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(tcname);
    if (setup || teardown)
        tcase_add_checked_fixture(tc, setup, teardown);
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    for (size_t i = 0; tests[i]; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    if (tc_out)
        *tc_out = tc;
    return s;
}
Suite *table_suite(void);
Suite *walk_suite(void);
Suite *config_suite(void);
Suite *policy_suite(void);
Suite *rpc_suite(void);
Suite *sigv4_suite(void);
Suite *ec2_xml_suite(void);
Suite *creds_suite(void);
Suite *controller_suite(void);
Suite *admit_suite(void);
Suite *lb_suite(void);
Suite *schedule_suite(void);
Suite *text_suite(void);
Suite *exec_suite(void);
Suite *layout_suite(void);
Suite *notify_ce_suite(void);
Suite *lifecycle_suite(void);
Suite *history_suite(void);
Suite *suspend_suite(void);
Suite *plan_suite(void);
Suite *rollout_suite(void);
Suite *rollout_api_suite(void);
Suite *ha_rollout_suite(void);
Suite *migrate_suite(void);
Suite *notify_suite(void);
Suite *ops_suite(void);
#endif
