#ifndef ASG_CHECK_SUITES_H
#define ASG_CHECK_SUITES_H
#include <check.h>
Suite *table_suite(void);
Suite *walk_suite(void);
Suite *config_suite(void);
Suite *policy_suite(void);
Suite *rpc_suite(void);
Suite *sigv4_suite(void);
Suite *ec2_xml_suite(void);
Suite *creds_suite(void);
Suite *controller_suite(void);
#endif
