/* The exec provider's answers (provider/exec.c) and its config checks:
 * what an operator's command may print, and what is refused, by name. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../provider/provider.h"
#include "check_suites.h"

static int line(const char *s, struct provider_instance *out, char *why)
{
    return exec_parse_line(s, strlen(s), out, why, 200);
}

START_TEST(test_line_id_and_address)
{
    struct provider_instance pi;
    char why[200] = "";
    ck_assert_msg(line("web-1 10.0.0.7:7302", &pi, why) == 0, "%s", why);
    ck_assert_str_eq(pi.id, "web-1");
    ck_assert_str_eq(pi.addr, "10.0.0.7:7302");
    ck_assert(pi.alive);
    ck_assert_msg(line("i-0abc.x_y", &pi, why) == 0, "%s", why); /* the address is optional */
    ck_assert_str_eq(pi.id, "i-0abc.x_y");
    ck_assert_str_eq(pi.addr, "");
    ck_assert_msg(line("web-2 node-3.example:80", &pi, why) == 0, "%s", why);
}
END_TEST

START_TEST(test_line_refused_with_reason)
{
    struct provider_instance pi;
    char why[200];
    const char *bad[] = {"",  "-web",  "web 1", "web-1  10.0.0.1:1", "web-1 10.0.0.1", "web-1 10.0.0.1:0",
                         "web-1 10.0.0.1:70000", "web-1\t10.0.0.1:1", "web-1 10.0.0.1:1 extra",
                         "<html>", "web-1\r", "wéb-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        ck_assert_msg(line(bad[i], &pi, why) != 0, "accepted \"%s\"", bad[i]);
        ck_assert_msg(why[0], "no reason for \"%s\"", bad[i]);
    }
    char id64[65];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    ck_assert(line(id64, &pi, why) != 0); /* ids are 1..63 */
    ck_assert(exec_parse_line("web\0-1", 6, &pi, why, sizeof why) != 0);
    ck_assert_msg(strstr(why, "NUL"), "%s", why);
    char longer[EXEC_LINE_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    ck_assert(line(longer, &pi, why) != 0);
    ck_assert_msg(strstr(why, "at most"), "%s", why);
    /* What a message shows of a line is short and printable. */
    ck_assert(line("\x01\x1b[31mred", &pi, why) != 0);
    ck_assert_msg(!strchr(why, '\x1b') && !strchr(why, '\x01'), "%s", why);
}
END_TEST

START_TEST(test_list_lines)
{
    struct provider_instance *l;
    size_t n;
    char why[200] = "";
    const char *text = "g-1 127.0.0.1:4000\ng-2\ng-3 127.0.0.1:4002\n";
    ck_assert_msg(exec_parse_list(text, strlen(text), &l, &n, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(l[1].id, "g-2");
    ck_assert_str_eq(l[2].addr, "127.0.0.1:4002");
    free(l);
    ck_assert(exec_parse_list("", 0, &l, &n, why, sizeof why) == 0); /* an empty group */
    ck_assert_uint_eq(n, 0);
    free(l);
    struct {
        const char *text, *reason;
    } bad[] = {{"g-1\ng-2", "newline"},             /* cut short */
               {"g-1\n\ng-2\n", "line 2"},          /* no empty lines */
               {"g-1\ng-1 127.0.0.1:1\n", "twice"}, /* one instance, one line */
               {"g-1\nok then\n", "line 2"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = (void *)1;
        ck_assert_msg(exec_parse_list(bad[i].text, strlen(bad[i].text), &l, &n, why, sizeof why) != 0,
                      "accepted %s", bad[i].text);
        ck_assert_msg(strstr(why, bad[i].reason), "\"%s\": %s", bad[i].text, why);
        ck_assert_ptr_null(l);
    }
}
END_TEST

START_TEST(test_launch_answers_for_its_id)
{
    struct provider_instance pi;
    char why[200] = "";
    const char *ok = "g-7 127.0.0.1:4007\n";
    ck_assert_msg(exec_parse_launch(ok, strlen(ok), "g-7", &pi, why, sizeof why) == 0, "%s", why);
    ck_assert_str_eq(pi.addr, "127.0.0.1:4007");
    ck_assert(exec_parse_launch(ok, strlen(ok), "g-8", &pi, why, sizeof why) != 0);
    ck_assert_msg(strstr(why, "asked for g-8"), "%s", why);
    const char *two = "g-7\ng-8\n";
    ck_assert(exec_parse_launch(two, strlen(two), "g-7", &pi, why, sizeof why) != 0);
    ck_assert_msg(strstr(why, "2 lines"), "%s", why);
    ck_assert(exec_parse_launch("", 0, "g-7", &pi, why, sizeof why) != 0);
    ck_assert_msg(strstr(why, "0 lines"), "%s", why);
}
END_TEST

/* A provider running commands of argv (CONFIG_ARGV_SEP-joined) for all three. */
static void exec_provider(struct provider *p, struct asg_config *cfg, const char *argv, int timeout_ms)
{
    config_defaults(cfg);
    cfg->tls_mode = TLS_PLAINTEXT; /* no CA to open here */
    cfg->exec_timeout_ms = timeout_ms;
    snprintf(cfg->exec_launch, sizeof cfg->exec_launch, "%s", argv);
    snprintf(cfg->exec_list, sizeof cfg->exec_list, "%s", argv);
    snprintf(cfg->exec_terminate, sizeof cfg->exec_terminate, "%s", argv);
    cfg->provider_kind = PROVIDER_EXEC;
    snprintf(cfg->group_name, sizeof cfg->group_name, "g");
    char err[256];
    ck_assert_msg(provider_init(p, cfg, err, sizeof err) == 0, "%s", err);
    snprintf(p->manager_addr, sizeof p->manager_addr, "127.0.0.1:1");
}

#define SH "/bin/sh\x1f-c\x1f"

START_TEST(test_commands_run_bounded)
{
    struct provider p;
    struct asg_config cfg;
    struct provider_instance pi, *l;
    size_t n;
    char err[512] = "";
    /* The id and the manager come in the environment and in {placeholders}. */
    exec_provider(&p, &cfg, SH "echo \"$ASG_INSTANCE_ID ${ASG_MANAGER%:1}:9\"; test \"$1\" = g-4\x1fsh\x1f{id}", 5000);
    ck_assert_msg(p.ops->launch(&p, "g-4", &pi, err, sizeof err) == LAUNCH_OK, "%s", err);
    ck_assert_str_eq(pi.addr, "127.0.0.1:9");
    provider_free(&p);
    /* A program that cannot run started nothing. */
    exec_provider(&p, &cfg, "/nonexistent/asg-launch", 5000);
    ck_assert_int_eq(p.ops->launch(&p, "g-1", &pi, err, sizeof err), LAUNCH_FAILED);
    ck_assert_msg(strstr(err, "cannot run /nonexistent/asg-launch"), "%s", err);
    provider_free(&p);
    /* Exit status and the first line of stderr, for a failed launch. */
    exec_provider(&p, &cfg, SH "echo 'no capacity' >&2; exit 4", 5000);
    ck_assert_int_eq(p.ops->launch(&p, "g-1", &pi, err, sizeof err), LAUNCH_FAILED);
    ck_assert_msg(strstr(err, "exited with status 4: no capacity"), "%s", err);
    provider_free(&p);
    /* Killed at the time limit: it may have started something. */
    int64_t t0 = now_ms();
    exec_provider(&p, &cfg, SH "exec sleep 30", 300);
    ck_assert_int_eq(p.ops->launch(&p, "g-1", &pi, err, sizeof err), LAUNCH_UNKNOWN);
    ck_assert_msg(strstr(err, "did not finish within 300 ms"), "%s", err);
    ck_assert_int_lt(now_ms() - t0, 5000);
    provider_free(&p);
    /* More output than list may print. */
    exec_provider(&p, &cfg, SH "yes g-1 | head -c 1100000", 20000);
    ck_assert_int_eq(p.ops->list(&p, &l, &n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "printed more than 1048576 bytes"), "%s", err);
    provider_free(&p);
}
END_TEST

/* A process the command leaves behind holding its stdout: asgd neither
 * waits for it nor signals it. */
START_TEST(test_left_behind_child_is_not_waited_for)
{
    char dir[] = "/tmp/asg-check-exec-XXXXXX", pidfile[64], argv[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    snprintf(argv, sizeof argv, SH "sleep 30 & echo $! > %s; echo g-1", pidfile);
    struct provider p;
    struct asg_config cfg;
    struct provider_instance pi;
    char err[512] = "";
    exec_provider(&p, &cfg, argv, 10000);
    int64_t t0 = now_ms();
    ck_assert_msg(p.ops->launch(&p, "g-1", &pi, err, sizeof err) == LAUNCH_OK, "%s", err);
    ck_assert_int_lt(now_ms() - t0, 5000);
    provider_free(&p);
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int pid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    ck_assert_msg(pid > 0 && kill(pid, 0) == 0, "the command's child was signalled or reaped");
    kill(pid, SIGKILL); /* ours, by its pid */
    unlink(pidfile);
    rmdir(dir);
}
END_TEST

/* What a listing may hold: the group's ids only (others are never
 * adopted nor terminated), a few tables' worth of lines; a closed pipe
 * is not polled (no spin while the command lives on), and a failing list
 * is not run again for every row asked about. */
START_TEST(test_list_is_held_to_the_group)
{
    char dir[] = "/tmp/asg-check-exec-XXXXXX", argv[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct provider p;
    struct asg_config cfg;
    struct provider_instance *l;
    size_t n;
    char err[512] = "";
    exec_provider(&p, &cfg, SH "printf 'g-1\\nother-5\\ng-x\\ng2-3\\ng-22 127.0.0.1:9\\n'", 5000);
    ck_assert_msg(p.ops->list(&p, &l, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(l[0].id, "g-1");
    ck_assert_str_eq(l[1].id, "g-22");
    free(l);
    provider_free(&p);
    exec_provider(&p, &cfg, SH "seq -f g-%g 1 21", 5000);
    cfg.shm_capacity = 1; /* at most 4 x 1 + 16 = 20 lines */
    ck_assert_int_eq(p.ops->list(&p, &l, &n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "21 lines, more than 20"), "%s", err);
    provider_free(&p);
    /* Output closed, the command still running for a second: no spin. */
    exec_provider(&p, &cfg, SH "exec >&- 2>&-; sleep 1", 10000);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    ck_assert_msg(p.ops->list(&p, &l, &n, err, sizeof err) == 0, "%s", err);
    getrusage(RUSAGE_SELF, &r1);
    free(l);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    ck_assert_msg(cpu < 0.3, "%.2f s of CPU while the command slept 1 s", cpu);
    provider_free(&p);
    /* A failing list, asked about ten rows at once, runs once. */
    snprintf(argv, sizeof argv, SH "echo run >> %s/runs; exit 1", dir);
    exec_provider(&p, &cfg, argv, 5000);
    struct provider_handle h = {.id = "g-1"};
    for (int i = 0; i < 10; i++)
        ck_assert(!p.ops->gone(&p, &h));
    provider_free(&p);
    char runs[300];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    FILE *f = fopen(runs, "r");
    ck_assert_ptr_nonnull(f);
    int lines = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        lines += c == '\n';
    fclose(f);
    ck_assert_int_eq(lines, 1);
    unlink(runs);
    rmdir(dir);
}
END_TEST

static int load(const char *exec_section, char *err)
{
    char text[1024];
    struct asg_config c;
    snprintf(text, sizeof text, "provider = { kind = \"exec\"; exec = { %s }; };\n", exec_section);
    return config_load_string(text, "x.cfg", &c, err, 512);
}

START_TEST(test_config_checks_the_commands)
{
    char err[512];
    const char *ok = "launch = [\"/bin/l\", \"{id}\", \"--group={group}\", \"{manager}\"];"
                     "terminate = [\"/bin/t\", \"{id}\"]; list = [\"/bin/ls\", \"{group}\"];";
    ck_assert_msg(load(ok, err) == 0, "%s", err);
    ck_assert(load("terminate = [\"/bin/t\"]; list = [\"/bin/l\"];", err) != 0);
    ck_assert_msg(strstr(err, "provider.exec.launch"), "%s", err);
    ck_assert(load("launch = [\"l\"]; terminate = [\"/bin/t\"]; list = [\"/bin/l\"];", err) != 0);
    ck_assert_msg(strstr(err, "absolute path"), "%s", err);
    ck_assert(load("launch = [\"/bin/l\", \"{token}\"]; terminate = [\"/bin/t\"]; list = [\"/bin/l\"];", err) != 0);
    ck_assert_msg(strstr(err, "unknown placeholder"), "%s", err);
    ck_assert(load("launch = [\"/bin/l\"]; terminate = [\"/bin/t\"]; list = [\"/bin/l\", \"{id}\"];", err) != 0);
    ck_assert_msg(strstr(err, "provider.exec.list") && strstr(err, "placeholder"), "%s", err);
    ck_assert(load("launch = [\"/bin/l\"]; terminate = [\"/bin/t\"]; list = [\"/bin/l\"];"
                   "manager_address = \"no port\";", err) != 0);
    ck_assert_msg(strstr(err, "provider.exec.manager_address"), "%s", err);
}
END_TEST

Suite *exec_suite(void)
{
    const TTest *tests[] = {test_line_id_and_address, test_line_refused_with_reason,
                                         test_list_lines, test_launch_answers_for_its_id,
                                         test_config_checks_the_commands, test_commands_run_bounded,
                                         test_left_behind_child_is_not_waited_for,
                                         test_list_is_held_to_the_group, NULL};
    return suite_of("exec", "exec", NULL, NULL, 0, tests, NULL);
}
