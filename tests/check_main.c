/* Unit tests (Check). Each test runs in its own forked process. */
#include <stdlib.h>

#include "../common/util.h"
#include "check_suites.h"

int main(void)
{
    log_set_level(LOG_LVL_ERROR);
    SRunner *sr = srunner_create(table_suite());
    srunner_add_suite(sr, walk_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, policy_suite());
    srunner_add_suite(sr, rpc_suite());
    srunner_add_suite(sr, sigv4_suite());
    srunner_add_suite(sr, ec2_xml_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
