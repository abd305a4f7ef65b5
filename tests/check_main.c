/* Unit tests (Check). Each test runs in its own forked process. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "../common/util.h"
#include "check_suites.h"

int main(void)
{
    /* Never reach outside 127.0.0.0/8: no instance metadata service, no
     * developer's real credentials. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/asg-test/credentials", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    log_set_level(LOG_LVL_ERROR);
    SRunner *sr = srunner_create(table_suite());
    srunner_add_suite(sr, walk_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, policy_suite());
    srunner_add_suite(sr, rpc_suite());
    srunner_add_suite(sr, sigv4_suite());
    srunner_add_suite(sr, ec2_xml_suite());
    srunner_add_suite(sr, creds_suite());
    srunner_add_suite(sr, controller_suite());
    srunner_add_suite(sr, admit_suite());
    srunner_add_suite(sr, lb_suite());
    srunner_add_suite(sr, notify_ce_suite());
    srunner_add_suite(sr, schedule_suite());
    srunner_add_suite(sr, text_suite());
    srunner_add_suite(sr, exec_suite());
    srunner_add_suite(sr, layout_suite());
    srunner_add_suite(sr, plan_suite());
    srunner_add_suite(sr, rollout_suite());
    srunner_add_suite(sr, rollout_api_suite());
    srunner_add_suite(sr, history_suite());
    srunner_add_suite(sr, ha_rollout_suite());
    srunner_add_suite(sr, migrate_suite());
    srunner_add_suite(sr, notify_suite());
    srunner_add_suite(sr, lifecycle_suite());
    srunner_add_suite(sr, suspend_suite());
    srunner_add_suite(sr, ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
