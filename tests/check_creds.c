/* The credentials chain: environment, shared file with profiles. (The
 * instance metadata service is exercised against the fake EC2 endpoint in
 * the integration tests; here it is disabled.) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../aws/creds.h"
#include "check_suites.h"

static char path[64];

static void setup(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    snprintf(path, sizeof path, "/tmp/asg-creds-XXXXXX");
    int fd = mkstemp(path);
    const char *text = "[default]\naws_access_key_id = AKIDDEFAULT\n"
                       "aws_secret_access_key = c2VjcmV0/+=\n\n"
                       "# a comment\n[prod]\naws_access_key_id=AKIDPROD\n"
                       "aws_secret_access_key=prodsecret\naws_session_token = tok123\n\n"
                       "[broken]\naws_access_key_id = AKIDONLY\n";
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
}

static void teardown(void) { unlink(path); }

START_TEST(test_environment_first)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    struct aws_creds c;
    char err[512];
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDENV");
    ck_assert_str_eq(c.token, "envtoken");
    ck_assert_str_eq(c.source, "environment");
    ck_assert(!aws_creds_stale(&c, 0));
}
END_TEST

START_TEST(test_shared_file_profiles)
{
    struct aws_creds c;
    char err[512];
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDDEFAULT");
    ck_assert_str_eq(c.secret_key, "c2VjcmV0/+=");
    ck_assert_str_eq(c.token, "");
    ck_assert_str_eq(c.source, "shared file");
    setenv("AWS_PROFILE", "prod", 1);
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDPROD");
    ck_assert_str_eq(c.token, "tok123");
    setenv("AWS_PROFILE", "broken", 1);
    ck_assert(aws_creds_load(&c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "[broken]") && strstr(err, "missing"), "%s", err);
    /* Whatever the error, no secret appears in it. */
    ck_assert(strstr(err, "secret") == NULL || strstr(err, "aws_secret_access_key") != NULL);
}
END_TEST

START_TEST(test_nothing_found_says_what_was_tried)
{
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    struct aws_creds c;
    char err[512];
    ck_assert(aws_creds_load(&c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "environment") && strstr(err, "shared credentials file") &&
                  strstr(err, "instance metadata is disabled"), "%s", err);
}
END_TEST

START_TEST(test_expiry)
{
    ck_assert_int_eq(aws_parse_iso8601("2026-11-22T16:00:00Z"), 1795363200000LL);
    ck_assert_int_eq(aws_parse_iso8601("2026-11-22T16:00:00.123Z"), 1795363200000LL);
    ck_assert_int_eq(aws_parse_iso8601("2026-11-22 16:00"), -1);
    ck_assert_int_eq(aws_parse_iso8601("2026-11-22T16:00:00+02:00"), -1);
    struct aws_creds c;
    memset(&c, 0, sizeof c);
    c.expires_ms = 1000000;
    ck_assert(aws_creds_stale(&c, 1000000 - 4 * 60 * 1000)); /* within 5 minutes */
    ck_assert(!aws_creds_stale(&c, 1000000 - 6 * 60 * 1000));
}
END_TEST

Suite *creds_suite(void)
{
    const TTest *tests[] = {
        test_environment_first,
        test_shared_file_profiles,
        test_nothing_found_says_what_was_tried,
        test_expiry,
        NULL};
    return suite_of("creds", "chain", setup, teardown, 0, tests, NULL);
}
