/* Text the manager writes for others: JSON strings (UTF-8 as it is, invalid
 * bytes never passed on), UTF-8 checks where text enters, and /metrics as
 * Prometheus' own promtool reads it. */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/strbuf.h"
#include "../common/utf8.h"
#include "../common/util.h"
#include "../monitor_s/monitor.h"
#include "../report/render.h"
#include "../shm/ops.h"
#include "../shm/table.h"
#include "asg.pb-c.h"
#include "check_suites.h"

/* s as a JSON string literal. */
static char *json_of(const char *s)
{
    struct strbuf b = {0};
    sb_json_str(&b, s);
    return b.s;
}

/* The literal read back by json-c with UTF-8 checked, as a client would. */
static char *parsed_back(const char *lit)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, lit, (int)strlen(lit));
    ck_assert_msg(o && json_tokener_get_error(tok) == json_tokener_success, "json-c refused %s", lit);
    json_tokener_free(tok);
    char *s = strdup(json_object_get_string(o));
    json_object_put(o);
    return s;
}

START_TEST(test_json_writes_valid_utf8_as_it_is)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},                         /* é: two bytes, not Ã© */
        {"\xe6\x97\xa5\xe6\x9c\xac", "\"\xe6\x97\xa5\xe6\x9c\xac\""}, /* three-byte characters */
        {"\xe2\x82\xac 5", "\"\xe2\x82\xac 5\""},                    /* € */
        {"\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\""},              /* U+1F600: four bytes */
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},                /* U+10FFFF, the last */
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"l1\nl2\tx\r\x01\x1f\x7f", "\"l1\\nl2\\tx\\r\\u0001\\u001f\\u007f\""},
        {"\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\""},          /* JavaScript's line ends */
        {"", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *lit = json_of(cases[i].in);
        ck_assert_msg(strcmp(lit, cases[i].out) == 0, "case %zu: %s", i, lit);
        char *back = parsed_back(lit);
        ck_assert_msg(strcmp(back, cases[i].in) == 0, "case %zu read back as %s", i, back);
        free(back);
        free(lit);
    }
}
END_TEST

START_TEST(test_json_replaces_each_invalid_byte)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xe9!", "\"caf\\ufffd!\""},                 /* Latin-1 é */
        {"\x80x", "\"\\ufffdx\""},                      /* a stray continuation byte */
        {"ab\xc3", "\"ab\\ufffd\""},                    /* cut short at the end */
        {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},           /* cut short before ASCII */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},             /* overlong '/' */
        {"\xc1\xbf", "\"\\ufffd\\ufffd\""},
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},  /* overlong, three bytes */
        {"\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* overlong, four bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},  /* a surrogate, U+D800 */
        {"\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\""},  /* U+DFFF */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\xf5\xff\xfe", "\"\\ufffd\\ufffd\\ufffd\""},  /* bytes that never occur */
        {"\xc3\xa9\xe9\xc3\xa9", "\"\xc3\xa9\\ufffd\xc3\xa9\""}, /* valid around invalid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *lit = json_of(cases[i].in);
        ck_assert_msg(strcmp(lit, cases[i].out) == 0, "case %zu: %s", i, lit);
        ck_assert(utf8_valid(lit, strlen(lit), NULL));
        free(parsed_back(lit));
        free(lit);
    }
}
END_TEST

START_TEST(test_utf8_valid_names_the_first_bad_byte)
{
    size_t bad = 99;
    ck_assert(utf8_valid("", 0, &bad));
    ck_assert(utf8_valid("plain ascii", 11, &bad));
    ck_assert(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, &bad));
    ck_assert(!utf8_valid("ok\xc3\xa9\xe9", 5, &bad));
    ck_assert_uint_eq(bad, 4);
    ck_assert(!utf8_valid("\xed\xa0\x80", 3, &bad)); /* surrogate */
    ck_assert_uint_eq(bad, 0);
    ck_assert(!utf8_valid("ab\xf0\x9f\x98", 5, &bad)); /* cut short */
    ck_assert_uint_eq(bad, 2);
    uint32_t cp = 0;
    ck_assert_uint_eq(utf8_sequence((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0x1F600);
    ck_assert_uint_eq(utf8_sequence((const unsigned char *)"\xe0\x9f\xbf", 3, &cp), 0); /* overlong U+7FF */
    ck_assert_uint_eq(utf8_sequence((const unsigned char *)"\xe0\xa0\x80", 3, &cp), 3);  /* U+0800 */
    ck_assert_uint_eq(cp, 0x800);
}
END_TEST

START_TEST(test_config_refuses_invalid_utf8)
{
    /* Text enters as UTF-8 or not at all: a Latin-1 byte in a string value
     * is named with its key and line; UTF-8 is taken. */
    struct asg_config c;
    char err[512];
    ck_assert_int_eq(config_load_string("tls = {\n  dir = \"/srv/caf\xe9\";\n};\n", "t.cfg", &c, err,
                                        sizeof err), -1);
    ck_assert_msg(strstr(err, "t.cfg:2: tls.dir is not valid UTF-8 (byte 9 of the string is 0xe9)"), "%s", err);
    ck_assert_int_eq(config_load_string("status = { allowed_hosts = [\"ok\", \"\xed\xa0\x80\"]; };\n", "t.cfg",
                                        &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "status.allowed_hosts is not valid UTF-8"), "%s", err);
    ck_assert_int_eq(config_load_string("policy = { kind = \"\xc0\xaf\"; };\n", "t.cfg", &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "policy.kind is not valid UTF-8"), "%s", err);
    ck_assert_int_eq(config_load_string("tls = { dir = \"/srv/caf\xc3\xa9\"; };\n", "t.cfg", &c, err, sizeof err),
                     0);
    ck_assert_str_eq(c.tls_dir, "/srv/caf\xc3\xa9");
}
END_TEST

/* ---- a table to render ---- */

static char name[64];
static struct table T;
static struct confseg CS; /* the config fill() publishes */

static void table_setup(void)
{
    snprintf(name, sizeof name, "/asg-text-test-%d", (int)getpid());
    char err[512];
    table_unlink(name);
    ck_assert_msg(table_create(name, 16, &T, err, sizeof err) == 0, "%s", err);
}

static void table_teardown(void)
{
    if (CS.seg) {
        confseg_detach(&CS);
        confseg_unlink(CS.name);
    }
    table_detach(&T);
    table_unlink(name);
}

/* A group with a balancer and etcd, so that every family appears, and an
 * instance with a sample; text, the error texts from outside. */
static void fill(const char *text)
{
    struct asg_config cfg;
    config_defaults(&cfg);
    cfg.lb_kind = LB_HAPROXY;
    copy_str(cfg.ha_etcd, sizeof cfg.ha_etcd, "http://127.0.0.1:2379");
    int64_t now = now_ms();
    table_lock(&T, 1000);
    char err[512];
    ck_assert_msg(confseg_create(name, &cfg, 1, &CS, err, sizeof err) == 0, "%s", err);
    table_supervisor_started(&T, cfg.group_name, NULL, NULL, CS.name);
    struct table_row *r = table_row_new(&T, "asg-1", RE_LAUNCH, "launched", 0, "", now);
    ck_assert_ptr_nonnull(r);
    table_registered(&T, r, "127.0.0.1:9", "", now);
    struct probe_sample smp = {0.5, 0.25, 0.125, false, 0};
    table_probe_result(&T, r, &smp, NULL, 3, now);
    table_lb_health(&T, false, text, 1, now);
    table_ha(&T, HA_LEADER, 7, 1, text, "127.0.0.1:7301", "127.0.0.1:7301", text, true);
    table_unlock(&T);
}

START_TEST(test_status_json_carries_utf8_from_outside)
{
    fill("caf\xc3\xa9 \xe9t\xe9");
    struct snapshot s;
    ck_assert_int_eq(snapshot_take(&T, &CS, &s), 0);
    struct strbuf b = {0};
    render_status_json(&b, &s, true);
    ck_assert(utf8_valid(b.s, b.len, NULL));
    json_object *o = json_tokener_parse(b.s);
    ck_assert_ptr_nonnull(o);
    json_object *bal, *err;
    ck_assert(json_object_object_get_ex(o, "balancer", &bal) && json_object_object_get_ex(bal, "error", &err));
    ck_assert_str_eq(json_object_get_string(err), "caf\xc3\xa9 \xef\xbf\xbdt\xef\xbf\xbd");
    json_object_put(o);
    sb_free(&b);
    snapshot_free(&s);
}
END_TEST

/* An agent's Register under id with this version, as the monitor answers it. */
static struct rpc_reply register_as(const char *id, const char *version)
{
    struct monitor m;
    memset(&m, 0, sizeof m);
    m.t = &T;
    config_defaults(&m.cfg);
    m.cfg.adopt_unknown = true; /* a valid one joins the group */
    Asg__V1__RegisterRequest q = ASG__V1__REGISTER_REQUEST__INIT;
    q.instance_id = (char *)id;
    q.address = (char *)"127.0.0.1:9";
    q.agent_version = (char *)version;
    uint8_t buf[256];
    size_t len = asg__v1__register_request__pack(&q, buf);
    struct rpc_reply r;
    memset(&r, 0, sizeof r);
    monitor_h_register(&m, buf, len, NULL, &r);
    free(r.data);
    return r;
}

static struct rpc_reply register_with_version(const char *version) { return register_as("asg-7", version); }

START_TEST(test_register_refuses_invalid_utf8)
{
    /* proto3 strings are UTF-8, which protobuf-c does not check: the
     * monitor does, before anything is recorded. */
    struct rpc_reply r = register_with_version("0.1.0-caf\xe9");
    ck_assert_int_eq(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    ck_assert_str_eq(r.message, "agent_version is not valid UTF-8");
    r = register_with_version("0.1.0-\xed\xa0\x80");
    ck_assert_int_eq(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    r = register_with_version("0.1.0-caf\xc3\xa9");
    ck_assert_int_eq(r.status, GRPC_STATUS_OK);
    /* recorded for the controller's admission (controller/admit.c) */
    ck_assert_ptr_nonnull(table_inbox_find(&T, "asg-7"));
}
END_TEST

/* The controller's refusal, told to the agent, is read within its field
 * however the inbox entry was left: nothing of the entry after it (another
 * agent's request) goes out in the answer. */
START_TEST(test_a_refusal_is_told_within_its_field)
{
    struct rpc_reply r = register_as("asg-8", "0.1.0");
    ck_assert_int_eq(r.status, GRPC_STATUS_OK); /* asked: not admitted yet */
    struct inbox_entry *e = table_inbox_find(&T, "asg-8");
    ck_assert_ptr_nonnull(e);
    ck_assert(e + 1 < T.hdr->inbox + TABLE_INBOX);
    e->state = INBOX_REFUSED;
    e->table_full = 1; /* answered as an error: its text in the reply's message */
    memset(e->reason, 'r', sizeof e->reason); /* not ended */
    memset(&e[1].seq, 'A', sizeof e[1].seq);
    r = register_as("asg-8", "0.1.0");
    ck_assert_int_eq(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    ck_assert_msg(!strchr(r.message, 'A') && strlen(r.message) <= sizeof e->reason, "%s", r.message);
    memset(&e[1].seq, 0, sizeof e[1].seq);
}
END_TEST

START_TEST(test_metrics_pass_promtool)
{
    /* promtool (Debian's prometheus package): the format and its lint
     * rules, with every family present. */
    ck_assert_msg(system("promtool --version >/dev/null 2>&1") == 0,
                  "promtool is missing: scripts/install-deps.sh --test installs it (package prometheus)");
    fill("");
    struct snapshot s;
    ck_assert_int_eq(snapshot_take(&T, &CS, &s), 0);
    struct strbuf b = {0};
    render_metrics(&b, &s);
    snapshot_free(&s);
    ck_assert(strstr(b.s, "# TYPE asg_lb_errors_total counter\n"));
    ck_assert(strstr(b.s, "# TYPE asg_ha_failovers_total counter\n"));
    ck_assert(strstr(b.s, "asg_instance_load_ratio{instance_id=\"asg-1\"} 0.5000\n"));
    ck_assert(strstr(b.s, "asg_build_info{version=\"" ASG_VERSION "\""));
    char path[] = "/tmp/asg-metrics-XXXXXX", cmd[128];
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, b.s, b.len) == (ssize_t)b.len);
    close(fd);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "promtool check metrics refused:\n%s", b.s);
    sb_free(&b);
}
END_TEST

/* A line for the journal only when stderr is the very stream
 * JOURNAL_STREAM names ("DEVICE:INODE"): not when the variable is missing,
 * malformed or names another file (a shell started from a unit passes it
 * on to programs whose stderr is a terminal or a file). */
START_TEST(test_journal_stream_must_name_stderr)
{
    char path[] = "/tmp/asg-journal-XXXXXX", other[] = "/tmp/asg-journal-XXXXXX", v[64];
    int fd = mkstemp(path), fd2 = mkstemp(other), saved = dup(STDERR_FILENO);
    ck_assert(fd >= 0 && fd2 >= 0 && saved >= 0);
    ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    struct stat st, st2;
    ck_assert(fstat(fd, &st) == 0 && fstat(fd2, &st2) == 0);
    unsetenv("JOURNAL_STREAM");
    bool missing = log_stderr_is_journal();
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    bool same = log_stderr_is_journal();
    snprintf(v, sizeof v, "%llu:%llux", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    bool trailing = log_stderr_is_journal();
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st2.st_dev, (unsigned long long)st2.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    bool another = log_stderr_is_journal();
    setenv("JOURNAL_STREAM", "", 1);
    bool empty = log_stderr_is_journal();
    dup2(saved, STDERR_FILENO);
    close(saved), close(fd), close(fd2);
    unlink(path), unlink(other);
    unsetenv("JOURNAL_STREAM");
    ck_assert(same);
    ck_assert(!missing && !trailing && !another && !empty);
}
END_TEST

Suite *text_suite(void)
{
    const TTest *tests[] = {
        test_json_writes_valid_utf8_as_it_is,
        test_json_replaces_each_invalid_byte,
        test_utf8_valid_names_the_first_bad_byte,
        test_config_refuses_invalid_utf8,
        test_status_json_carries_utf8_from_outside,
        test_register_refuses_invalid_utf8,
        test_a_refusal_is_told_within_its_field,
        test_metrics_pass_promtool,
        test_journal_stream_must_name_stderr,
        NULL};
    return suite_of("text", "text", table_setup, table_teardown, 0, tests, NULL);
}
