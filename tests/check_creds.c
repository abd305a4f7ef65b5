/* The credentials chain: environment, shared credentials file, config
 * file, each file read as botocore reads it (and compared with botocore
 * itself). (The instance metadata service is exercised against the fake
 * EC2 endpoint in the integration tests; here it is disabled.) */
#define _GNU_SOURCE
#include <json-c/json.h>
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
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
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
    /* Half of a pair is passed over, said, for the next source. */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.source, "shared file");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    ck_assert(aws_creds_load(&c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY"), "%s", err);
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

/* ---- files as botocore reads them ---- */

static char dir[64], creds_path[96], config_path[96];

static void write_text(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert(fputs(text, f) >= 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* Writes the two files (NULL: none) and points the chain at them. */
static void files(const char *creds, const char *config)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/asg-awsfiles-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(creds_path, sizeof creds_path, "%s/credentials", dir);
        snprintf(config_path, sizeof config_path, "%s/config", dir);
    }
    unlink(creds_path);
    unlink(config_path);
    if (creds)
        write_text(creds_path, creds);
    if (config)
        write_text(config_path, config);
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
    setenv("AWS_CONFIG_FILE", config_path, 1);
}

static void files_teardown(void)
{
    teardown();
    if (dir[0]) {
        unlink(creds_path);
        unlink(config_path);
        rmdir(dir);
        dir[0] = '\0';
    }
}

START_TEST(test_comments_and_spelling_as_configparser)
{
    files("; written by hand\n"
          "# both comment signs, at the start of a line\n"
          "[default]\n"
          "  ; indented comments too\n"
          "AWS_Access_Key_ID: AKIDCOMMENTS ; not a comment after a value\n"
          "\n"
          "   # between keys\n"
          "Aws_Secret_Access_Key   =   s3cr/t+=;#  \n", NULL);
    struct aws_creds c;
    char err[512];
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDCOMMENTS ; not a comment after a value");
    ck_assert_str_eq(c.secret_key, "s3cr/t+=;#");
    ck_assert_str_eq(c.source, "shared file");
}
END_TEST

START_TEST(test_profile_sections_per_file)
{
    /* `[profile prod]` names the profile prod only in the config file. */
    files("[profile prod]\naws_access_key_id = AKIDWRONGFILE\naws_secret_access_key = x\n",
          "[profile prod]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = y\n"
          "aws_session_token = tok\n"
          "[prod]\naws_access_key_id = AKIDNOTAPROFILE\naws_secret_access_key = z\n");
    setenv("AWS_PROFILE", "prod", 1);
    struct aws_creds c;
    char err[512];
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDCONFIG");
    ck_assert_str_eq(c.token, "tok");
    ck_assert_str_eq(c.source, "config file");
    /* A session token of a few KiB, as STS hands out. */
    char text[8192], tok[4000];
    memset(tok, 'T', sizeof tok - 1);
    tok[sizeof tok - 1] = '\0';
    snprintf(text, sizeof text, "[prod]\naws_access_key_id = AKIDLONG\naws_secret_access_key = w\n"
             "aws_session_token = %s\n", tok);
    files(text, NULL);
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.token, tok);
    ck_assert_str_eq(c.source, "shared file");
}
END_TEST

START_TEST(test_broken_file_does_not_stop_the_chain)
{
    const char *broken = "[default]\naws_access_key_id = AKIDBROKEN\n"
                         "aws_secret_access_key = never-shown\n"
                         "a line without an equals sign\n";
    files(broken, "[default]\naws_access_key_id = AKIDNEXT\naws_secret_access_key = v\n");
    struct aws_creds c;
    char err[512];
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.access_key, "AKIDNEXT");
    ck_assert_str_eq(c.source, "config file");
    /* Alone, the broken file is named with its line, and no value is shown. */
    files(broken, NULL);
    ck_assert(aws_creds_load(&c, err, sizeof err) != 0);
    char where[128];
    snprintf(where, sizeof where, "%s:4:", creds_path);
    ck_assert_msg(strstr(err, where) && strstr(err, "instance metadata"), "%s", err);
    ck_assert_msg(!strstr(err, "never-shown") && !strstr(err, "AKIDBROKEN"), "%s", err);
    /* A key given twice, in another profile: the file is broken (as for
     * botocore) and the next source is used. */
    files("[default]\naws_access_key_id = A\naws_secret_access_key = B\n[other]\nx = 1\nX = 2\n",
          "[default]\naws_access_key_id = AKIDNEXT\naws_secret_access_key = v\n");
    ck_assert_msg(aws_creds_load(&c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.source, "config file");
}
END_TEST

/* botocore's own answers for n cases at once, one JSON object a line, read
 * through a pipe (never printed): case k's files are DIR/kc and DIR/kg
 * (absent: none) and its profile profiles[k]. One python3 for them all:
 * importing botocore costs most of a second on a busy machine. */
static void botocore_answers(size_t n, const char *const *profiles, json_object **out)
{
    static const char script[] =
        "import json, os, sys\n"
        "try:\n"
        "    import botocore.session\n"
        "except ImportError:\n"
        "    print(json.dumps({'result': 'no botocore'})); sys.exit(0)\n"
        "for line in os.environ['ASG_BOTOCORE_CASES'].splitlines():\n"
        "    creds, config, profile = line.split('\\t')\n"
        "    os.environ.update(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE=config, AWS_PROFILE=profile)\n"
        "    try:\n"
        "        c = botocore.session.Session().get_credentials()\n"
        "        out = {'result': 'none'} if c is None else {'result': 'ok', 'method': c.method,\n"
        "               'ak': c.access_key, 'sk': c.secret_key, 'token': c.token or ''}\n"
        "    except Exception as e:\n"
        "        out = {'result': 'error', 'type': type(e).__name__}\n"
        "    print(json.dumps(out))\n";
    static char cases[8192], text[131072];
    size_t len = 0;
    for (size_t k = 0; k < n; k++)
        len += (size_t)snprintf(cases + len, sizeof cases - len, "%s/%zuc\t%s/%zug\t%s\n", dir, k, dir, k,
                                profiles[k]);
    ck_assert_uint_lt(len, sizeof cases);
    setenv("ASG_BOTOCORE_CASES", cases, 1);
    setenv("ASG_BOTOCORE_SCRIPT", script, 1);
    FILE *p = popen("/usr/bin/python3 -c \"$ASG_BOTOCORE_SCRIPT\"", "r");
    ck_assert_ptr_nonnull(p);
    size_t got = fread(text, 1, sizeof text - 1, p);
    text[got] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(!strstr(text, "no botocore"), "python3-botocore is not installed");
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    for (size_t k = 0; k < n; k++, line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(line != NULL, "botocore answered %zu case(s) of %zu", k, n);
        out[k] = json_tokener_parse(line);
        ck_assert_msg(out[k] != NULL, "case %zu: python3 printed no JSON", k);
    }
}

static const char *field(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) ? json_object_get_string(v) : "";
}

START_TEST(test_same_answers_as_botocore)
{
    static char long_token[3001];
    memset(long_token, 'Q', sizeof long_token - 1);
    static char long_file[4000];
    snprintf(long_file, sizeof long_file, "[default]\naws_access_key_id=AKIDL\n"
             "aws_secret_access_key=sL\naws_session_token=%s\n", long_token);
    static const struct {
        const char *creds, *config, *profile;
        int broken_line; /* botocore refuses the file; we name this line */
    } cases[] = {
        {"; c\n[default]\n# c\naws_access_key_id = AKIDA\n  ; c\naws_secret_access_key = sA/+=\n",
         NULL, "default", 0},
        {"[default]\nAWS_Access_Key_ID: AKIDB ; kept\nAws_Secret_Access_Key   =   sB  \n", NULL,
         "default", 0},
        {"[default]\r\naws_access_key_id = AKIDCRLF\r\naws_secret_access_key = sC\r\n", NULL,
         "default", 0},
        {"[profile prod]\naws_access_key_id=AKIDP\naws_secret_access_key=sP\n", NULL, "prod", 0},
        {"[profile prod]\naws_access_key_id=AKIDP\naws_secret_access_key=sP\n", NULL,
         "profile prod", 0},
        {NULL, "[default]\naws_access_key_id=AKIDD\naws_secret_access_key=sD\n[profile prod]\n"
         "aws_access_key_id=AKIDCP\naws_secret_access_key=sCP\naws_session_token=tCP\n", "prod", 0},
        {NULL, "[default]\naws_access_key_id=AKIDD\naws_secret_access_key=sD\n", "default", 0},
        {NULL, "[profile \"my prod\"]\naws_access_key_id=AKIDQ\naws_secret_access_key=sQ\n",
         "my prod", 0},
        {NULL, "[prod]\naws_access_key_id=AKIDNP\naws_secret_access_key=sNP\n", "prod", 0},
        {"[prod]\nregion = eu-west-1\n", "[profile prod]\naws_access_key_id=AKIDF\n"
         "aws_secret_access_key=sF\n", "prod", 0},
        {"[default]\naws_access_key_id=AKIDG\naws_secret_access_key=sG\n",
         "[default]\naws_access_key_id=AKIDH\naws_secret_access_key=sH\n", "default", 0},
        {"[default]\naws_access_key_id=AKIDT\naws_secret_access_key=sT\n"
         "aws_session_token=new\naws_security_token=old\n", NULL, "default", 0},
        {NULL, "[default]\naws_access_key_id=AKID1\naws_secret_access_key=s1\n"
         "[profile default]\naws_access_key_id=AKID2\naws_secret_access_key=s2\n", "default", 0},
        {long_file, NULL, "default", 0},
        {"[default]\naws_access_key_id=A\naws_access_key_id=B\naws_secret_access_key=s\n", NULL,
         "default", 3},
        {"[default]\naws_access_key_id=A\naws_secret_access_key=s\njunk\n", NULL, "default", 4},
        {"aws_access_key_id=A\n[default]\naws_secret_access_key=s\n", NULL, "default", 1},
        {"[default]\naws_access_key_id=A\n[default]\naws_secret_access_key=s\n", NULL, "default", 3},
        {"[default]\naws_access_key_id=A\n", NULL, "default", 0},
        {"[default]\nregion=x\n", NULL, "default", 0},
        {"", NULL, "default", 0},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    const char *profiles[NCASES];
    json_object *answers[NCASES];
    files(NULL, NULL); /* the directory */
    for (size_t i = 0; i < NCASES; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s/%zuc", dir, i);
        if (cases[i].creds)
            write_text(name, cases[i].creds);
        snprintf(name, sizeof name, "%s/%zug", dir, i);
        if (cases[i].config)
            write_text(name, cases[i].config);
        profiles[i] = cases[i].profile;
    }
    botocore_answers(NCASES, profiles, answers);
    for (size_t i = 0; i < NCASES; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s/%zuc", dir, i);
        unlink(name);
        snprintf(name, sizeof name, "%s/%zug", dir, i);
        unlink(name);
    }
    for (size_t i = 0; i < NCASES; i++) {
        files(cases[i].creds, cases[i].config);
        setenv("AWS_PROFILE", cases[i].profile, 1);
        json_object *want = answers[i];
        const char *result = field(want, "result");
        struct aws_creds c;
        char err[1024];
        int rc = aws_creds_load(&c, err, sizeof err);
        if (strcmp(result, "ok") == 0) {
            ck_assert_msg(rc == 0, "case %zu: botocore found credentials, we did not: %s", i, err);
            const char *method = field(want, "method");
            ck_assert_msg(strcmp(c.source, strcmp(method, "config-file") == 0 ? "config file"
                                                                               : "shared file") == 0,
                          "case %zu: botocore took them from %s, we from the %s", i, method, c.source);
            /* Compared, never printed. */
            ck_assert_msg(strcmp(c.access_key, field(want, "ak")) == 0 &&
                          strcmp(c.secret_key, field(want, "sk")) == 0 &&
                          strcmp(c.token, field(want, "token")) == 0,
                          "case %zu: not the keys botocore found", i);
        } else {
            ck_assert_msg(rc != 0, "case %zu: botocore said %s (%s), we found credentials in the %s",
                          i, result, field(want, "type"), c.source);
        }
        if (cases[i].broken_line) {
            ck_assert_msg(strcmp(result, "error") == 0 && strcmp(field(want, "type"),
                                                                 "ConfigParseError") == 0,
                          "case %zu: botocore read it: %s %s", i, result, field(want, "type"));
            char where[128];
            snprintf(where, sizeof where, "%s:%d:", creds_path, cases[i].broken_line);
            ck_assert_msg(strstr(err, where), "case %zu: %s", i, err);
        }
        json_object_put(want);
    }
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
    const TTest *file_tests[] = {
        test_comments_and_spelling_as_configparser,
        test_profile_sections_per_file,
        test_broken_file_does_not_stop_the_chain,
        test_same_answers_as_botocore,
        NULL};
    Suite *s = suite_of("creds", "chain", setup, teardown, 0, tests, NULL);
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, files_teardown);
    tcase_set_timeout(tc, 60); /* botocore is asked once, for every case */
    for (size_t i = 0; file_tests[i]; i++)
        tcase_add_test(tc, file_tests[i]);
    suite_add_tcase(s, tc);
    return s;
}
