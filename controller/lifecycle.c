/* Lifecycle hooks run by the controller (lifecycle.h). */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/ctlsock.h"
#include "../common/strbuf.h"
#include "../common/util.h"
#include "../shm/ops.h"
#include "calls.h"
#include "controller.h"
#include "ctl.h"
#include "lifecycle.h"
#include "rows.h"

#define HOOK_ARGS_MAX 64
#define HOOK_ENV_MAX 16

/* ---- the runs ---- */

static bool active(const struct hook_run *h) { return h->used && !h->orphan && ((h->pid > 0 && !h->exited) || h->easy); }

static int running_count(const struct ctl *c)
{
    int n = 0;
    for (int i = 0; i < HOOK_RUNS_MAX; i++)
        n += active(&c->hooks.runs[i]);
    return n;
}

static struct hook_run *run_of(struct ctl *c, uint32_t slot, uint64_t incarnation)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++) {
        struct hook_run *h = &c->hooks.runs[i];
        if (h->used && !h->orphan && h->slot == slot && h->incarnation == incarnation)
            return h;
    }
    return NULL;
}

static struct hook_run *free_run(struct ctl *c)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++)
        if (!c->hooks.runs[i].used)
            return &c->hooks.runs[i];
    return NULL;
}

static void end_http(struct ctl *c, struct hook_run *h)
{
    if (h->easy) {
        curl_multi_remove_handle(c->hooks.multi, h->easy);
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    curl_slist_free_all(h->headers);
    h->headers = NULL;
    free(h->body);
    h->body = NULL;
}

/* Whatever still runs of h is stopped: a command's whole process group
 * (what it started too), a transfer; the slot stays until the process is
 * reaped (only pids we started are ours to reap). */
static void run_end(struct ctl *c, struct hook_run *h)
{
    if (h->pid > 0 && !h->exited)
        kill(-h->pid, SIGKILL);
    if (h->outfd >= 0) {
        close(h->outfd);
        h->outfd = -1;
    }
    end_http(c, h);
    if (h->pid > 0 && !h->exited) {
        h->orphan = true;
        return;
    }
    memset(h, 0, sizeof *h);
    h->outfd = -1;
}

/* ---- output, logged a few lines a second ---- */

static void log_line(const struct ctl *c, struct hook_run *h, const char *s, size_t n)
{
    if (!hook_line_allowed(&h->lines, c->cfg.hook_log_lines_per_s, now_ms()))
        return;
    char clean[400];
    hook_line_clean(s, n, clean, sizeof clean);
    log_info("lifecycle: %s hook of %s: %s", hook_kind_name(h->kind), h->id, clean);
}

/* At most this much of a hook's output is read per turn of the loop: a
 * hook that floods its output (the pipe refills as fast as it is read)
 * must not keep the controller, sometimes holding the table lock, in
 * this loop; the rest waits for the next turn. */
#define HOOK_OUTPUT_PER_TURN (64 * 1024)

static void read_output(const struct ctl *c, struct hook_run *h)
{
    char buf[4096];
    for (size_t taken = 0; taken < HOOK_OUTPUT_PER_TURN; taken += sizeof buf) {
        ssize_t n = read(h->outfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                if (h->line_len)
                    log_line(c, h, h->line, h->line_len);
                h->line_len = 0;
                close(h->outfd);
                h->outfd = -1;
            }
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || h->line_len == sizeof h->line) {
                log_line(c, h, h->line, h->line_len);
                h->line_len = 0;
                if (buf[i] == '\n')
                    continue;
            }
            h->line[h->line_len++] = buf[i];
        }
    }
}

/* ---- starting one ---- */

static void facts_of(const struct ctl *c, const struct table_row *r, int kind, struct hook_facts *f)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    copy_str(f->group, sizeof f->group, c->cfg.group_name);
    copy_str(f->instance, sizeof f->instance, r->id);
    copy_str(f->addr, sizeof f->addr, r->addr);
    copy_str(f->service_addr, sizeof f->service_addr, r->service_addr);
    f->spec_gen = r->spec_gen;
    copy_str(f->reason, sizeof f->reason, r->reason);
    f->timeout_s = lifecycle_hook_cfg(c, kind)->timeout_s;
}

/* A directory on the way to a hook's program: root's or asgd's user's,
 * and writable by nobody else (sticky, as /tmp, only stops others from
 * renaming what is not theirs: the program here is root's or ours). */
static const char *dir_refused(const char *dir, char *why, size_t n)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        snprintf(why, n, "%.200s: %s", dir, strerror(errno));
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(why, n, "its directory %.200s belongs to uid %u, neither root nor asgd's (%u): they could put "
                 "another program in its place", dir, (unsigned)st.st_uid, (unsigned)geteuid());
    else if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
        snprintf(why, n, "its directory %.200s is writable by its group or others: they could put another "
                 "program in its place", dir);
    else
        return NULL;
    return why;
}

/* The program a hook runs must be a regular file that only root or asgd's
 * own user can change, in directories only they can change: a hook runs
 * as asgd's user (as root, if asgd runs as root), so a program another
 * user could rewrite, or replace, would be theirs to run as ours. Its
 * path with every link resolved goes into resolved (what is run, so that
 * a link changed after the check changes nothing). NULL, or why not. */
const char *lifecycle_program_refused(const char *path, char *resolved, size_t rsize, char *why, size_t n)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) != 0) {
        snprintf(why, n, "%.200s: %s", path, strerror(errno));
        return why;
    }
    if (!S_ISREG(st.st_mode))
        snprintf(why, n, "%.200s is not a regular file", path);
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(why, n, "%.200s belongs to uid %u, neither root nor asgd's (%u)", path, (unsigned)st.st_uid,
                 (unsigned)geteuid());
    else if (st.st_mode & 022)
        snprintf(why, n, "%.200s is writable by its group or others", path);
    else if (access(real, X_OK) != 0)
        snprintf(why, n, "%.200s is not executable", path);
    else if (strlen(real) >= rsize)
        snprintf(why, n, "%.200s: its path is too long", path);
    else {
        char dir[PATH_MAX];
        copy_str(dir, sizeof dir, real);
        for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
            *slash = '\0';
            if (dir_refused(dir[0] ? dir : "/", why, n))
                return why;
            if (!dir[0])
                break;
        }
        copy_str(resolved, rsize, real);
        return NULL;
    }
    return why;
}

/* The child: its own process group (killed whole at the timeout), the
 * JSON on stdin, output to our pipe, no descriptor of ours, default
 * signals. Only async-signal-safe calls between fork and exec. */
static void child(int in, int out, const char *program, char **argv, char **envp)
{
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(127);
    close_range(3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_DFL); /* the controller ignores it (an ignored signal stays so across exec) */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(program, argv, envp);
    _exit(127);
}

static int start_command(const struct ctl *c, struct hook_run *h, const struct hook_facts *f, const char *json,
                         char *why, size_t n)
{
    char cmd[sizeof c->cfg.hook_launching.command];
    copy_str(cmd, sizeof cmd, lifecycle_hook_cfg(c, h->kind)->command);
    char *argv[HOOK_ARGS_MAX + 1];
    int argc = 0;
    for (char *p = cmd, *end; p && argc < HOOK_ARGS_MAX; p = end ? end + 1 : NULL) {
        end = strchr(p, CONFIG_ARGV_SEP);
        if (end)
            *end = '\0';
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    char program[PATH_MAX];
    if (lifecycle_program_refused(argv[0], program, sizeof program, why, n))
        return -1;
    char envbuf[1024];
    char *envp[HOOK_ENV_MAX];
    if (hook_env(f, envbuf, sizeof envbuf, envp, HOOK_ENV_MAX) < 0) {
        snprintf(why, n, "its environment does not fit");
        return -1;
    }
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        snprintf(why, n, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        snprintf(why, n, "pipe: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        return -1;
    }
    /* The JSON is far below a pipe's capacity: written whole now, the
     * child reads it when it likes. */
    size_t len = strlen(json);
    ssize_t w = write(in[1], json, len);
    close(in[1]);
    pid_t pid = w == (ssize_t)len ? fork() : -1;
    if (pid == 0)
        child(in[0], out[1], program, argv, envp);
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        snprintf(why, n, "cannot start it: %s", w == (ssize_t)len ? strerror(errno) : "stdin not written");
        close(out[0]);
        return -1;
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    h->pid = pid;
    h->outfd = out[0];
    return 0;
}

/* An answer longer than reply cannot be read whole: cut there (returning
 * less than given ends the transfer), so that a truncated body is never
 * judged as if it were the hook's word, and a huge one is not read to its
 * end. */
static size_t on_reply(char *data, size_t size, size_t nmemb, void *arg)
{
    struct hook_run *h = arg;
    size_t n = size * nmemb;
    size_t room = sizeof h->reply - 1 - h->reply_len;
    if (n > room) {
        h->reply_too_long = true;
        return 0;
    }
    memcpy(h->reply + h->reply_len, data, n);
    h->reply_len += n;
    h->reply[h->reply_len] = '\0';
    return n;
}

static int start_http(struct ctl *c, struct hook_run *h, const char *json, char *why, size_t n)
{
    if (!c->hooks.multi && !(c->hooks.multi = curl_multi_init())) {
        snprintf(why, n, "curl: cannot make a multi handle");
        return -1;
    }
    CURL *e = curl_easy_init();
    h->body = strdup(json);
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!e || !h->body || !h->headers) {
        if (e)
            curl_easy_cleanup(e);
        end_http(c, h);
        snprintf(why, n, "curl: out of memory");
        return -1;
    }
    const struct lifecycle_hook_config *cfg = lifecycle_hook_cfg(c, h->kind);
    curl_easy_setopt(e, CURLOPT_URL, cfg->http);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_s * 1000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    if (curl_multi_add_handle(c->hooks.multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        end_http(c, h);
        snprintf(why, n, "curl: cannot add the transfer");
        return -1;
    }
    h->easy = e;
    return 0;
}

/* ---- outcomes ---- */

/* Lock held: result (HO_CONTINUE or HO_ABANDON) applied to r, said with
 * how it came. At launch, continue makes it running (into the balancer at
 * the next step); abandon stops it and counts as a failed launch, so that
 * its replacement comes with the launch backoff. On the way out either
 * lets the provider stop it (AWS's abandon too: only what follows
 * differs, and here nothing does). */
static void apply(struct ctl *c, struct table_row *r, int kind, int result, const char *how, int64_t now)
{
    const char *word = hook_outcome_name(result);
    if (kind == HOOK_LAUNCHING && result == HO_CONTINUE) {
        if (table_hook_continue(c->t, r, "its launching hook continued", 0, now))
            table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO, "lifecycle: launching hook of %s: continue (%.80s): running",
                       r->id, how);
        c->lb_now = true;
    } else if (kind == HOOK_LAUNCHING) {
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_WARN,
                   "lifecycle: launching hook of %s: abandon (%.80s): terminated and replaced", r->id, how);
        ctl_stop_row(c, r, "its launching hook abandoned it", false, now);
        ctl_launch_backoff(c, now);
    } else {
        if (table_hook_continue(c->t, r, "its terminating hook let it go", now + ctl_kill_timeout(c), now)) {
            table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO, "lifecycle: terminating hook of %s: %s (%.80s): stopping it",
                       r->id, word, how);
            ctl_add_op(c, OP_TERMINATE, r);
        }
    }
    c->eval_now = true;
}

/* Lock held: the outcome of h's hook, for its row r; h ends unless the
 * result comes later. */
static void outcome(struct ctl *c, struct hook_run *h, struct table_row *r, int out, const char *how, int64_t now)
{
    int def = lifecycle_hook_cfg(c, h->kind)->default_result;
    int result = hook_result_of(out, def);
    if (result < 0) {
        h->later = true;
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO,
                   "lifecycle: %s hook of %s: the result comes later (asgctl lifecycle complete, or the default "
                   "%s in %lld s)", hook_kind_name(h->kind), r->id, config_hook_result_names[def],
                   (long long)((h->deadline_ms - now + 999) / 1000));
        if (h->outfd >= 0)
            read_output(c, h);
        end_http(c, h);
        return;
    }
    char said[160];
    if (out == HO_DEFAULT)
        snprintf(said, sizeof said, "%.100s; its default", how);
    else
        copy_str(said, sizeof said, how);
    if (h->lines.dropped)
        log_warn("lifecycle: %s hook of %s: %llu line(s) of its output not logged (lifecycle.log_lines_per_s %d)",
                 hook_kind_name(h->kind), r->id, (unsigned long long)h->lines.dropped, c->cfg.hook_log_lines_per_s);
    if (h->outfd >= 0)
        read_output(c, h);
    int kind = h->kind;
    run_end(c, h);
    apply(c, r, kind, result, said, now);
}

/* A finished command or transfer: its outcome. */
static void judge(struct ctl *c, struct hook_run *h, struct table_row *r, int64_t now)
{
    char how[96];
    if (h->exited) {
        if (WIFEXITED(h->status))
            snprintf(how, sizeof how, "exited %d", WEXITSTATUS(h->status));
        else
            snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(h->status));
        int out = hook_exit_outcome(h->status);
        h->pid = 0;
        h->exited = false; /* judged once */
        outcome(c, h, r, out, how, now);
    } else if (h->http_done) {
        if (h->http_ok)
            snprintf(how, sizeof how, "HTTP %ld", h->http_code);
        else
            snprintf(how, sizeof how, "POST failed: %.70s", h->reply);
        int out = hook_http_outcome(h->http_ok, h->http_code, h->reply, h->reply_len);
        h->http_done = false;
        end_http(c, h);
        outcome(c, h, r, out, how, now);
    }
}

/* Lock held: the row a run is for, if it still waits for that hook. */
static struct table_row *waiting_row(struct ctl *c, const struct hook_run *h)
{
    struct table_row *r = table_row_at(c->t, h->slot, h->incarnation);
    uint32_t want = h->kind == HOOK_LAUNCHING ? ROW_LAUNCH_WAIT : ROW_TERM_WAIT;
    return r && r->state == want ? r : NULL;
}

static void check_runs(struct ctl *c, int64_t now)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++) {
        struct hook_run *h = &c->hooks.runs[i];
        if (!h->used || h->orphan)
            continue;
        struct table_row *r = waiting_row(c, h);
        if (!r) {
            table_note(c->t, EV_LIFECYCLE, h->id, LOG_LVL_INFO,
                       "lifecycle: %s hook of %s stopped: the instance no longer waits for it",
                       hook_kind_name(h->kind), h->id);
            run_end(c, h);
            continue;
        }
        judge(c, h, r, now);
        if (!h->used || h->orphan || !hook_timed_out(h->deadline_ms, now))
            continue;
        char how[96];
        snprintf(how, sizeof how, "no answer within its timeout, %d s%s", lifecycle_hook_cfg(c, h->kind)->timeout_s,
                 h->pid > 0 && !h->exited ? ": its processes killed" : "");
        outcome(c, h, r, HO_DEFAULT, how, now);
    }
}

/* Lock held: starts r's hook of kind, or applies its default when it
 * cannot start. */
static void start(struct ctl *c, struct table_row *r, int kind, int64_t now)
{
    struct hook_run *h = free_run(c);
    if (!h)
        return;
    memset(h, 0, sizeof *h);
    h->used = true;
    h->kind = kind;
    h->slot = (uint32_t)(r - c->t->rows);
    h->incarnation = r->incarnation;
    copy_str(h->id, sizeof h->id, r->id);
    h->outfd = -1;
    h->started_ms = now;
    h->deadline_ms = hook_deadline(now, lifecycle_hook_cfg(c, kind)->timeout_s);
    struct hook_facts f;
    facts_of(c, r, kind, &f);
    struct strbuf json = {0};
    hook_json(&f, &json);
    char why[300] = "";
    bool http = lifecycle_hook_cfg(c, kind)->http[0] != '\0';
    int rc = http ? start_http(c, h, json.s, why, sizeof why) : start_command(c, h, &f, json.s, why, sizeof why);
    sb_free(&json);
    if (rc != 0) {
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_ERROR, "lifecycle: %s hook of %s cannot run: %.200s",
                   hook_kind_name(kind), r->id, why);
        outcome(c, h, r, HO_DEFAULT, "it could not run", now);
        return;
    }
    table_hook_deadline(c->t, r, h->deadline_ms);
    if (http)
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO, "lifecycle: %s hook of %s started (POST, timeout %d s)",
                   hook_kind_name(kind), r->id, lifecycle_hook_cfg(c, kind)->timeout_s);
    else
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO, "lifecycle: %s hook of %s started (pid %d, timeout %d s)",
                   hook_kind_name(kind), r->id, (int)h->pid, lifecycle_hook_cfg(c, kind)->timeout_s);
}

/* Lock held: rows waiting without a run get one, oldest wait first, within
 * lifecycle.max_concurrent; a wait whose hook was removed from the config
 * (a reload) ends at once. */
static void start_waiting(struct ctl *c, int64_t now)
{
    /* Each pass starts one hook or ends a wait (or returns): bounded by
     * the rows, whatever a state change refused. */
    for (uint32_t pass = 0; pass <= c->t->capacity; pass++) {
        int room = c->cfg.hook_max_concurrent - running_count(c);
        struct table_row *best = NULL;
        for (uint32_t i = 0; i < c->t->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->state != ROW_LAUNCH_WAIT && r->state != ROW_TERM_WAIT)
                continue;
            int kind = r->state == ROW_LAUNCH_WAIT ? HOOK_LAUNCHING : HOOK_TERMINATING;
            if (run_of(c, i, r->incarnation))
                continue;
            if (!lifecycle_hook_set(c, kind) || c->hooks.off) {
                apply(c, r, kind, HO_CONTINUE, c->hooks.off ? "the manager stops" : "no such hook configured any more",
                      now);
                continue;
            }
            if (!best || r->state_since_ms < best->state_since_ms)
                best = r;
        }
        if (!best || room <= 0 || !free_run(c))
            return;
        start(c, best, best->state == ROW_LAUNCH_WAIT ? HOOK_LAUNCHING : HOOK_TERMINATING, now);
    }
}

static void read_all(struct ctl *c)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++) {
        struct hook_run *h = &c->hooks.runs[i];
        if (h->used && h->outfd >= 0)
            read_output(c, h);
    }
    if (!c->hooks.multi)
        return;
    int still;
    curl_multi_perform(c->hooks.multi, &still);
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->hooks.multi, &still)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *p = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
        struct hook_run *h = (struct hook_run *)p;
        if (!h)
            continue;
        h->http_done = true;
        h->http_ok = m->data.result == CURLE_OK && !h->reply_too_long;
        if (h->http_ok)
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &h->http_code);
        else if (h->reply_too_long)
            snprintf(h->reply, sizeof h->reply, "its answer is longer than %d bytes", HOOK_REPLY_MAX - 1);
        else
            copy_str(h->reply, sizeof h->reply, curl_easy_strerror(m->data.result));
    }
}

/* Anything to do: a hook configured or running; else a look at the rows
 * once a second (a reload may have removed a hook instances wait for). */
static bool step_due(struct ctl *c, int64_t now)
{
    if (lifecycle_hook_set(c, HOOK_LAUNCHING) || lifecycle_hook_set(c, HOOK_TERMINATING) || lifecycle_wait_ms(c) >= 0)
        return true;
    if (now < c->hooks.next_look_ms)
        return false;
    c->hooks.next_look_ms = now + 1000;
    return true;
}

void lifecycle_step(struct ctl *c)
{
    if (!step_due(c, now_ms()))
        return;
    read_all(c);
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    int64_t now = now_ms();
    check_runs(c, now);
    start_waiting(c, now);
    table_unlock(c->t);
    ctl_execute(c);
}

int lifecycle_wait_ms(const struct ctl *c)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++)
        if (c->hooks.runs[i].used && !c->hooks.runs[i].orphan)
            return 50;
    return -1;
}

bool lifecycle_reaped(struct ctl *c, pid_t pid, int status)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++) {
        struct hook_run *h = &c->hooks.runs[i];
        if (!h->used || h->pid != pid || h->exited)
            continue;
        if (h->orphan) {
            memset(h, 0, sizeof *h);
            h->outfd = -1;
        } else {
            h->exited = true;
            h->status = status;
        }
        return true;
    }
    return false;
}

void lifecycle_request(struct ctl *c, const struct ctl_request *rq, int64_t now)
{
    struct table_row *r = table_find(c->t, rq->id);
    uint32_t slot = r ? (uint32_t)(r - c->t->rows) : 0;
    struct hook_run *h = r ? run_of(c, slot, r->incarnation) : NULL;
    const char *no = r ? lifecycle_action_refused(rq->value, r->state, h != NULL) : "no such instance";
    if (no) {
        table_note(c->t, EV_OPERATOR, rq->id, LOG_LVL_WARN, "operator: lifecycle %s %s refused: %s",
                   lifecycle_action_name(rq->value), rq->id, no);
        return;
    }
    int kind = r->state == ROW_LAUNCH_WAIT ? HOOK_LAUNCHING : HOOK_TERMINATING;
    if (rq->value == LC_HEARTBEAT) {
        h->deadline_ms = hook_deadline(now, lifecycle_hook_cfg(c, kind)->timeout_s); /* from now: a fresh timeout_s */
        table_hook_deadline(c->t, r, h->deadline_ms);
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO,
                   "operator: lifecycle heartbeat %s: its %s hook has %d s more", r->id, hook_kind_name(kind),
                   lifecycle_hook_cfg(c, kind)->timeout_s);
        return;
    }
    if (h)
        run_end(c, h);
    apply(c, r, kind, rq->value == LC_CONTINUE ? HO_CONTINUE : HO_ABANDON, "the operator's word", now);
}

void lifecycle_stop_all(struct ctl *c)
{
    c->hooks.off = true;
    for (int i = 0; i < HOOK_RUNS_MAX; i++)
        if (c->hooks.runs[i].used && !c->hooks.runs[i].orphan)
            run_end(c, &c->hooks.runs[i]);
    int64_t now = now_ms();
    for (uint32_t i = 0; i < c->t->capacity; i++)
        if (c->t->rows[i].state == ROW_TERM_WAIT)
            apply(c, &c->t->rows[i], HOOK_TERMINATING, HO_CONTINUE, "the manager stops", now);
}

void lifecycle_free(struct ctl *c)
{
    for (int i = 0; i < HOOK_RUNS_MAX; i++)
        if (c->hooks.runs[i].used)
            run_end(c, &c->hooks.runs[i]);
    if (c->hooks.multi)
        curl_multi_cleanup(c->hooks.multi);
    c->hooks.multi = NULL;
}
