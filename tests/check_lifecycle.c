/* Lifecycle hooks, the parts that need no process: the rows' way through
 * launching:wait and terminating:wait (shm/ops.h), what a hook is told and
 * what its answers mean (common/lifecycle_msg.h), the config's checks
 * of lifecycle.*, and the API's reading of an operator's word
 * (status/lifecycle_api.h). */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../common/lifecycle_msg.h"
#include "../shm/ops.h"
#include "../status/lifecycle_api.h"
#include "../controller/lifecycle.h"
#include "check_suites.h"

static char name[64];
static struct table T;

static void setup(void)
{
    snprintf(name, sizeof name, "/asg-test-lc-%d", (int)getpid());
    char err[512];
    table_unlink(name);
    ck_assert_msg(table_create(name, 16, &T, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    table_detach(&T);
    table_unlink(name);
}

/* A launch made while a launching hook is configured waits at its
 * registration, and at its first answer; only the hook's continue makes it
 * running, and clears the mark so that it never waits again. */
START_TEST(test_a_hooked_launch_waits_until_its_hook_continues)
{
    ck_assert(table_lock(&T, 1000) == 0);
    int64_t now = now_ms();
    struct table_row *r = table_row_launch(&T, "lc-1", "test", ROW_F_HOOK_LAUNCH, NULL, 1, now);
    ck_assert_ptr_nonnull(r);
    ck_assert(table_registered(&T, r, "127.0.0.1:9", "127.0.0.1:10", now));
    ck_assert_int_eq(r->state, ROW_LAUNCH_WAIT);
    ck_assert_str_eq(row_state_name(r->state), "launching:wait");
    ck_assert(!table_registered(&T, r, "127.0.0.1:9", "", now)); /* again: still waiting */
    ck_assert_int_eq(r->state, ROW_LAUNCH_WAIT);
    struct probe_sample s = {0.5, 0.1, 0.1, false, 0};
    ck_assert_int_eq(table_probe_result(&T, r, &s, NULL, 3, now), PROBE_NOTED);
    ck_assert_int_eq(r->state, ROW_LAUNCH_WAIT);
    /* Missed probes make it unhealthy (replaced); answering again, it
     * waits for its hook again rather than jump to running. */
    for (int i = 0; i < 3; i++)
        table_probe_result(&T, r, NULL, "timeout", 3, now);
    ck_assert_int_eq(r->state, ROW_UNHEALTHY);
    ck_assert_int_eq(table_probe_result(&T, r, &s, NULL, 3, now), PROBE_REJOINED);
    ck_assert_int_eq(r->state, ROW_LAUNCH_WAIT);
    ck_assert(table_hook_continue(&T, r, "hook continued", 0, now));
    ck_assert_int_eq(r->state, ROW_RUNNING);
    ck_assert(!(r->flags & ROW_F_HOOK_LAUNCH));
    ck_assert(!table_hook_continue(&T, r, "twice", 0, now)); /* running: no such edge */
    /* Unmarked (no hook configured at launch): straight to running. */
    struct table_row *q = table_row_launch(&T, "lc-2", "test", 0, NULL, 1, now);
    ck_assert(table_registered(&T, q, "127.0.0.1:11", "", now));
    ck_assert_int_eq(q->state, ROW_RUNNING);
    ck_assert_int_eq(r->seq % 2, 0);
    table_unlock(&T);
}
END_TEST

/* On the way out: terminating, then held by its hook (the mark cleared),
 * then terminating again with the deadline its continue gives; gone from
 * the wait when the instance vanishes. */
START_TEST(test_a_stopped_instance_waits_for_its_terminating_hook)
{
    ck_assert(table_lock(&T, 1000) == 0);
    int64_t now = now_ms();
    struct table_row *r = table_row_launch(&T, "lc-3", "test", 0, NULL, 1, now);
    table_registered(&T, r, "127.0.0.1:9", "", now);
    ck_assert(table_stopping(&T, r, "scale in", now + 1000));
    table_hook_due(&T, r);
    ck_assert(r->flags & ROW_F_HOOK_TERM);
    ck_assert(table_hook_hold(&T, r, "waits for its terminating hook", now));
    ck_assert_int_eq(r->state, ROW_TERM_WAIT);
    ck_assert_str_eq(row_state_name(r->state), "terminating:wait");
    ck_assert(!(r->flags & ROW_F_HOOK_TERM));
    ck_assert_int_eq(r->term_deadline_ms, 0); /* the stop's deadline is not its hook's */
    table_hook_deadline(&T, r, now + 5000);
    ck_assert_int_eq(r->term_deadline_ms, now + 5000);
    ck_assert(!table_registered(&T, r, "127.0.0.1:9", "", now)); /* cannot come back */
    ck_assert(table_hook_continue(&T, r, "let go", now + 3000, now));
    ck_assert_int_eq(r->state, ROW_TERMINATING);
    ck_assert_int_eq(r->term_deadline_ms, now + 3000);
    struct table_row *g = table_row_launch(&T, "lc-4", "test", 0, NULL, 1, now);
    table_registered(&T, g, "127.0.0.1:12", "", now);
    table_stopping(&T, g, "x", now);
    table_hook_hold(&T, g, "waits", now);
    ck_assert(table_gone(&T, g));
    ck_assert_int_eq(g->state, ROW_FREE);
    table_unlock(&T);
}
END_TEST

static struct hook_facts facts(void)
{
    struct hook_facts f = {.kind = HOOK_TERMINATING, .spec_gen = 7, .timeout_s = 30};
    copy_str(f.group, sizeof f.group, "web");
    copy_str(f.instance, sizeof f.instance, "web-3");
    copy_str(f.addr, sizeof f.addr, "127.0.0.1:7000");
    copy_str(f.service_addr, sizeof f.service_addr, "127.0.0.1:8000");
    copy_str(f.reason, sizeof f.reason, "scale in: \"load\"\n low");
    return f;
}

START_TEST(test_the_json_a_hook_reads_has_every_fact)
{
    struct hook_facts f = facts();
    struct strbuf b = {0};
    hook_json(&f, &b);
    json_object *o = json_tokener_parse(b.s);
    ck_assert_ptr_nonnull(o);
    json_object *v;
    ck_assert(json_object_object_get_ex(o, "group", &v) && strcmp(json_object_get_string(v), "web") == 0);
    ck_assert(json_object_object_get_ex(o, "instance", &v) && strcmp(json_object_get_string(v), "web-3") == 0);
    ck_assert(json_object_object_get_ex(o, "addr", &v) && strcmp(json_object_get_string(v), "127.0.0.1:7000") == 0);
    ck_assert(json_object_object_get_ex(o, "service_addr", &v) &&
              strcmp(json_object_get_string(v), "127.0.0.1:8000") == 0);
    ck_assert(json_object_object_get_ex(o, "spec_generation", &v) && json_object_get_int64(v) == 7);
    ck_assert(json_object_object_get_ex(o, "reason", &v) &&
              strcmp(json_object_get_string(v), "scale in: \"load\"\n low") == 0);
    ck_assert(json_object_object_get_ex(o, "transition", &v) &&
              strcmp(json_object_get_string(v), "terminating") == 0);
    ck_assert(json_object_object_get_ex(o, "timeout_s", &v) && json_object_get_int(v) == 30);
    json_object_put(o);
    sb_free(&b);
}
END_TEST

START_TEST(test_the_environment_carries_the_same_facts_and_nothing_of_ours)
{
    setenv("ASG_SECRET_OF_THE_MANAGER", "x", 1);
    struct hook_facts f = facts();
    char buf[1024];
    char *envp[16];
    int n = hook_env(&f, buf, sizeof buf, envp, 16);
    ck_assert_int_eq(n, 9);
    ck_assert_ptr_null(envp[n]);
    const char *want[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "ASG_GROUP=web", "ASG_INSTANCE=web-3",
                          "ASG_ADDR=127.0.0.1:7000", "ASG_SERVICE_ADDR=127.0.0.1:8000", "ASG_SPEC_GENERATION=7",
                          "ASG_REASON=scale in: \"load\"? low", "ASG_TRANSITION=terminating", "ASG_TIMEOUT_S=30"};
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(envp[i], want[i]);
    ck_assert_int_eq(hook_env(&f, buf, 40, envp, 16), -1); /* too small: refused, not cut */
    ck_assert_int_eq(hook_env(&f, buf, sizeof buf, envp, 4), -1);
    unsetenv("ASG_SECRET_OF_THE_MANAGER");
}
END_TEST

/* A wait status as waitpid would give it. */
static int exited(int code) { return (code & 0xff) << 8; }

START_TEST(test_exit_codes_and_replies_say_continue_abandon_later_or_default)
{
    ck_assert_int_eq(hook_exit_outcome(exited(0)), HO_CONTINUE);
    ck_assert_int_eq(hook_exit_outcome(exited(1)), HO_ABANDON);
    ck_assert_int_eq(hook_exit_outcome(exited(2)), HO_ABANDON);
    ck_assert_int_eq(hook_exit_outcome(exited(HOOK_EXIT_LATER)), HO_LATER);
    ck_assert_int_eq(hook_exit_outcome(exited(126)), HO_DEFAULT);
    ck_assert_int_eq(hook_exit_outcome(exited(127)), HO_DEFAULT);
    ck_assert_int_eq(hook_exit_outcome(9), HO_DEFAULT); /* killed by SIGKILL */
    const char *ab = "{\"result\":\"abandon\"}", *later = "{\"result\":\"later\"}", *odd = "{\"result\":\"maybe\"}";
    ck_assert_int_eq(hook_http_outcome(true, 200, "", 0), HO_CONTINUE);
    ck_assert_int_eq(hook_http_outcome(true, 204, "", 0), HO_CONTINUE);
    ck_assert_int_eq(hook_http_outcome(true, 200, "not json", 8), HO_CONTINUE);
    ck_assert_int_eq(hook_http_outcome(true, 200, ab, strlen(ab)), HO_ABANDON);
    ck_assert_int_eq(hook_http_outcome(true, 200, later, strlen(later)), HO_LATER);
    ck_assert_int_eq(hook_http_outcome(true, 202, "", 0), HO_LATER);
    ck_assert_int_eq(hook_http_outcome(true, 200, odd, strlen(odd)), HO_DEFAULT);
    ck_assert_int_eq(hook_http_outcome(true, 500, "", 0), HO_DEFAULT);
    ck_assert_int_eq(hook_http_outcome(true, 404, ab, strlen(ab)), HO_DEFAULT);
    ck_assert_int_eq(hook_http_outcome(false, 0, "", 0), HO_DEFAULT);
    /* The default is the config's; "later" is no result yet. */
    ck_assert_int_eq(hook_result_of(HO_DEFAULT, 1), HO_ABANDON);
    ck_assert_int_eq(hook_result_of(HO_DEFAULT, 0), HO_CONTINUE);
    ck_assert_int_eq(hook_result_of(HO_ABANDON, 0), HO_ABANDON);
    ck_assert_int_eq(hook_result_of(HO_CONTINUE, 1), HO_CONTINUE);
    ck_assert_int_eq(hook_result_of(HO_LATER, 1), -1);
}
END_TEST

START_TEST(test_a_hook_has_its_timeout_from_its_start_or_heartbeat)
{
    int64_t start = 1000000;
    int64_t d = hook_deadline(start, 300);
    ck_assert_int_eq(d, start + 300000);
    ck_assert(!hook_timed_out(d, d - 1));
    ck_assert(hook_timed_out(d, d)); /* at that very millisecond */
    ck_assert(hook_timed_out(d, d + 5000));
    /* A heartbeat late in its time gives timeout_s from then, not more
     * added to what was left. */
    int64_t beat = d - 10;
    ck_assert_int_eq(hook_deadline(beat, 300), beat + 300000);
    ck_assert_int_eq(hook_deadline(start, 86400), start + 86400000LL); /* no overflow at the top of the range */
}
END_TEST

START_TEST(test_output_is_logged_a_few_lines_a_second_the_rest_counted)
{
    struct hook_lines l = {0};
    int logged = 0;
    for (int i = 0; i < 50; i++)
        logged += hook_line_allowed(&l, 20, 5000 + i);
    ck_assert_int_eq(logged, 20);
    ck_assert_int_eq(l.dropped, 30);
    ck_assert(hook_line_allowed(&l, 20, 6000)); /* the next second */
    char out[8];
    hook_line_clean("a\x1b[2Jbcdefghij\r\n", 15, out, sizeof out);
    ck_assert_str_eq(out, "a?[2Jbc");
    hook_line_clean("ok\n", 3, out, sizeof out);
    ck_assert_str_eq(out, "ok");
}
END_TEST

START_TEST(test_an_operator_word_needs_a_waiting_instance)
{
    ck_assert_int_eq(lifecycle_action_of("continue"), LC_CONTINUE);
    ck_assert_int_eq(lifecycle_action_of("abandon"), LC_ABANDON);
    ck_assert_int_eq(lifecycle_action_of("heartbeat"), LC_HEARTBEAT);
    ck_assert_int_eq(lifecycle_action_of("Continue"), 0);
    ck_assert_ptr_null(lifecycle_action_refused(LC_CONTINUE, ROW_LAUNCH_WAIT, false)); /* queued: may complete */
    ck_assert_ptr_null(lifecycle_action_refused(LC_ABANDON, ROW_TERM_WAIT, true));
    ck_assert_ptr_null(lifecycle_action_refused(LC_HEARTBEAT, ROW_TERM_WAIT, true));
    ck_assert_ptr_nonnull(lifecycle_action_refused(LC_HEARTBEAT, ROW_LAUNCH_WAIT, false)); /* its time not started */
    ck_assert_ptr_nonnull(lifecycle_action_refused(LC_CONTINUE, ROW_RUNNING, false));
    ck_assert_ptr_nonnull(lifecycle_action_refused(LC_CONTINUE, ROW_TERMINATING, false));
    ck_assert_ptr_nonnull(lifecycle_action_refused(0, ROW_LAUNCH_WAIT, true));
    ck_assert_ptr_nonnull(lifecycle_action_refused(LC_COUNT, ROW_LAUNCH_WAIT, true));
}
END_TEST

START_TEST(test_the_api_reads_one_action_for_one_instance)
{
    struct ctl_request rq;
    char why[200];
    json_object *o = json_tokener_parse("{\"action\":\"heartbeat\"}");
    ck_assert_int_eq(lifecycle_api_request("web-3", o, &rq, why, sizeof why), 0);
    ck_assert_int_eq(rq.kind, REQ_LIFECYCLE);
    ck_assert_int_eq(rq.value, LC_HEARTBEAT);
    ck_assert_str_eq(rq.id, "web-3");
    json_object_put(o);
    const char *bad[] = {"{}", "{\"action\":\"go\"}", "{\"action\":1}", "{\"action\":\"continue\",\"x\":1}", NULL};
    for (int i = 0; bad[i]; i++) {
        o = json_tokener_parse(bad[i]);
        ck_assert_msg(lifecycle_api_request("web-3", o, &rq, why, sizeof why) != 0, "%s taken", bad[i]);
        json_object_put(o);
    }
    o = json_tokener_parse("{\"action\":\"continue\"}");
    ck_assert(lifecycle_api_request("../x", o, &rq, why, sizeof why) != 0);
    json_object_put(o);
}
END_TEST

/* One hook, one way to run it; a program by its absolute path; a URL
 * that is http only to this machine; each error names the key. */
START_TEST(test_the_config_refuses_a_hook_it_could_not_run_safely)
{
    struct asg_config c;
    char err[512];
    ck_assert_msg(config_load_string("lifecycle = { launching = { command = [\"/bin/true\"]; timeout_s = 5; "
                                     "default = \"continue\"; }; terminating = { http = "
                                     "\"http://127.0.0.1:9/hook\"; }; max_concurrent = 2; };",
                                     "t.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.hook_launching.timeout_s, 5);
    ck_assert_int_eq(c.hook_launching.default_result, 0);
    ck_assert_int_eq(c.hook_terminating.default_result, 0); /* terminating's default: continue */
    ck_assert_int_eq(c.hook_max_concurrent, 2);
    ck_assert(config_load_string("", "t.cfg", &c, err, sizeof err) == 0);
    ck_assert_int_eq(c.hook_launching.default_result, 1); /* launching's default: abandon */
    ck_assert_int_eq(c.hook_launching.timeout_s, 300);
    struct {
        const char *text, *says;
    } bad[] = {
        {"lifecycle = { launching = { command = [\"/bin/true\"]; http = \"https://h.example/x\"; }; };",
         "cannot both be set"},
        {"lifecycle = { launching = { command = [\"true\"]; }; };", "absolute path"},
        {"lifecycle = { terminating = { http = \"http://hooks.example/x\"; }; };", "plain http only"},
        {"lifecycle = { terminating = { http = \"ftp://127.0.0.1/x\"; }; };", "http or https"},
        {"lifecycle = { terminating = { http = \"https://u:p@h.example/x\"; }; };", "password"},
        {"lifecycle = { launching = { default = \"retry\"; }; };", "is not one of"},
        {"lifecycle = { launching = { timeout_s = 0; }; };", "out of range"},
        {"lifecycle = { max_concurrent = 0; };", "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(config_load_string(bad[i].text, "t.cfg", &c, err, sizeof err) != 0, "%s taken", bad[i].text);
        ck_assert_msg(strstr(err, bad[i].says) && strstr(err, "lifecycle."), "%s: %s", bad[i].text, err);
    }
}
END_TEST

/* A hook's program in a directory others may write: they could put their
 * own program in its place (a rename between the check and the exec, or
 * before it), run as asgd's user: refused. In one only root or we can
 * change: run, by its path with links resolved. */
START_TEST(test_a_program_in_a_directory_others_may_write_is_refused)
{
    char dir[] = "/tmp/asg-lc-prog-XXXXXX", prog[64], link[64], resolved[PATH_MAX], why[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(prog, sizeof prog, "%s/hook", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    FILE *f = fopen(prog, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(prog, 0755), 0);
    ck_assert_int_eq(symlink(prog, link), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    const char *no = lifecycle_program_refused(prog, resolved, sizeof resolved, why, sizeof why);
    ck_assert_msg(no && strstr(no, "is writable by its group or others") && strstr(no, dir), "%s", no ? no : "ran");
    ck_assert_ptr_nonnull(lifecycle_program_refused(link, resolved, sizeof resolved, why, sizeof why));
    ck_assert_int_eq(chmod(dir, 0755), 0);
    no = lifecycle_program_refused(link, resolved, sizeof resolved, why, sizeof why);
    ck_assert_msg(!no, "%s", no);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(prog, real));
    ck_assert_str_eq(resolved, real);
    unlink(link);
    unlink(prog);
    rmdir(dir);
}
END_TEST

Suite *lifecycle_suite(void)
{
    const TTest *tests[] = {test_a_hooked_launch_waits_until_its_hook_continues,
                            test_a_program_in_a_directory_others_may_write_is_refused,
                                         test_a_stopped_instance_waits_for_its_terminating_hook,
                                         test_the_json_a_hook_reads_has_every_fact,
                                         test_the_environment_carries_the_same_facts_and_nothing_of_ours,
                                         test_exit_codes_and_replies_say_continue_abandon_later_or_default,
                                         test_a_hook_has_its_timeout_from_its_start_or_heartbeat,
                                         test_output_is_logged_a_few_lines_a_second_the_rest_counted,
                                         test_an_operator_word_needs_a_waiting_instance,
                                         test_the_api_reads_one_action_for_one_instance,
                                         test_the_config_refuses_a_hook_it_could_not_run_safely,
                                         NULL};
    return suite_of("lifecycle", "lifecycle", setup, teardown, 60, tests, NULL);
}
