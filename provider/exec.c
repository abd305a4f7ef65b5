/* Provider `exec`: instances come from the operator's own commands
 * (provider.exec.launch, .terminate, .list), as external plugins work in
 * other autoscalers. asgd runs each one itself, fork and execve with the
 * argv as configured (no shell), a time limit after which that command,
 * and only it, is killed by its pid, and its output read up to a bound.
 *
 * The commands own their instances: asgd never signals anything they
 * started. The instance joins the manager the way an EC2 instance does
 * (agent --join): the launch command gets the manager's CA and a one-time
 * join token in its environment, never on a command line.
 *
 * Output grammar (provider.h, exec_parse_*): each line is
 *     ID [HOST:PORT]\n
 * launch prints exactly one, for the id it was given; list prints one per
 * instance of the group that exists. Anything else is an error that names
 * the command and the reason, and loses no instance: a launch whose answer
 * cannot be read is asked again with the same id (the command must answer
 * for an instance it already made rather than make a second), and a list
 * that cannot be read forgets nothing. */
#define _GNU_SOURCE
#include "provider.h"
#include "../common/identity.h"
#include "../common/pki.h"
#include "../common/strbuf.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_ARGS_MAX 64
#define EXEC_LAUNCH_OUT_MAX 4096
#define EXEC_LIST_OUT_MAX (1024 * 1024)
#define EXEC_STDERR_KEEP 400
/* A cached listing serves gone() this long. */
#define EXEC_CACHE_MS 2000

struct exec_priv {
    char *ca_pem;                    /* tls.mode auto: handed to every launch */
    struct provider_instance *cache; /* the last listing */
    size_t ncache;
    bool cache_ok;
    int64_t cache_ms;                /* when it was taken, or last failed */
};

static struct exec_priv *priv(struct provider *p) { return p->priv; }

/* ---- the output grammar ---- */

/* What fits of s in out (size - 1 characters), for a message: anything
 * unprintable as '?'. */
static void shown(const char *s, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++)
        out[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[n] = '\0';
}

int exec_parse_line(const char *line, size_t len, struct provider_instance *out, char *why, size_t n)
{
    char seen[48];
    shown(line, len, seen, sizeof seen);
    memset(out, 0, sizeof *out);
    if (len > EXEC_LINE_MAX) {
        snprintf(why, n, "a line of %zu bytes (at most %d)", len, EXEC_LINE_MAX);
        return -1;
    }
    if (memchr(line, '\0', len)) {
        snprintf(why, n, "a NUL byte in \"%s\"", seen);
        return -1;
    }
    const char *sp = memchr(line, ' ', len);
    size_t idlen = sp ? (size_t)(sp - line) : len;
    if (!valid_instance_id(line, idlen)) {
        snprintf(why, n, "\"%s\" is not ID [HOST:PORT]: the id must be 1..63 of A-Z a-z 0-9 . _ - "
                 "starting with a letter or digit", seen);
        return -1;
    }
    memcpy(out->id, line, idlen);
    out->id[idlen] = '\0';
    if (sp) {
        char err[128];
        size_t alen = len - idlen - 1;
        if (!valid_address(sp + 1, alen, false, err, sizeof err) || alen >= sizeof out->addr) {
            snprintf(why, n, "\"%s\": the address after the id: %s", seen, err);
            return -1;
        }
        memcpy(out->addr, sp + 1, alen);
        out->addr[alen] = '\0';
    }
    out->alive = true;
    copy_str(out->state, sizeof out->state, "running");
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An id that n instances share with another, or NULL: sorted, so a
 * listing of a hundred thousand lines costs n log n, not n^2. */
static const char *listed_twice(const struct provider_instance *list, size_t n)
{
    const char **ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < n; i++)
        ids[i] = list[i].id;
    qsort(ids, n, sizeof *ids, by_id);
    const char *twice = NULL;
    for (size_t i = 1; i < n && !twice; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            twice = ids[i];
    free(ids);
    return twice;
}

int exec_parse_list(const char *text, size_t len, struct provider_instance **out, size_t *n,
                    char *why, size_t wn)
{
    *out = NULL;
    *n = 0;
    if (len && text[len - 1] != '\n') {
        snprintf(why, wn, "the last line does not end with a newline (cut short?)");
        return -1;
    }
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    struct provider_instance *list = calloc(lines ? lines : 1, sizeof *list);
    if (!list) {
        snprintf(why, wn, "out of memory");
        return -1;
    }
    char err[160];
    for (size_t at = 0, k = 0; at < len; k++) {
        const char *nl = memchr(text + at, '\n', len - at);
        if (exec_parse_line(text + at, (size_t)(nl - text - at), &list[k], err, sizeof err) != 0) {
            snprintf(why, wn, "line %zu: %s", k + 1, err);
            free(list);
            return -1;
        }
        at = (size_t)(nl - text) + 1;
    }
    const char *twice = listed_twice(list, lines);
    if (twice) {
        snprintf(why, wn, "instance %s listed twice", twice);
        free(list);
        return -1;
    }
    *out = list;
    *n = lines;
    return 0;
}

int exec_parse_launch(const char *text, size_t len, const char *id, struct provider_instance *out,
                      char *why, size_t wn)
{
    struct provider_instance *list;
    size_t n;
    if (exec_parse_list(text, len, &list, &n, why, wn) != 0)
        return -1;
    int rc = -1;
    if (n != 1)
        snprintf(why, wn, "%zu lines, not the one line ID [HOST:PORT]", n);
    else if (strcmp(list[0].id, id) != 0)
        snprintf(why, wn, "answered for instance %s, asked for %s", list[0].id, id);
    else
        rc = 0;
    if (rc == 0)
        *out = list[0];
    free(list);
    return rc;
}

/* ---- running one command ---- */

struct exec_call {
    const char *key;        /* provider.exec.launch, ... */
    const char *argv_cfg;   /* CONFIG_ARGV_SEP-joined */
    const char *id;         /* NULL for list */
    bool force;             /* terminate without grace */
    const char *join_token; /* launch with tls.mode auto */
    size_t out_max;
    /* what happened */
    struct strbuf out;
    bool out_over;
    char err[EXEC_STDERR_KEEP + 1];
    size_t err_len;
    bool started;           /* the program was executed */
    int status;
    bool timed_out;
};

/* Where the commands' instances register: provider.exec.manager_address,
 * else the monitor's own address(es). */
static const char *commands_manager(const struct provider *p)
{
    return p->cfg->exec_manager_address[0] ? p->cfg->exec_manager_address : p->manager_addr;
}

/* word with {id}, {group} and {manager} filled in (malloc'd). */
static char *fill_word(const struct provider *p, const char *word, const char *id)
{
    struct strbuf b = {0};
    const char *manager = commands_manager(p);
    for (const char *s = word; *s;) {
        if (id && strncmp(s, "{id}", 4) == 0) {
            sb_add(&b, id, strlen(id));
            s += 4;
        } else if (strncmp(s, "{group}", 7) == 0) {
            sb_add(&b, p->cfg->group_name, strlen(p->cfg->group_name));
            s += 7;
        } else if (strncmp(s, "{manager}", 9) == 0) {
            sb_add(&b, manager, strlen(manager));
            s += 9;
        } else {
            sb_add(&b, s++, 1);
        }
    }
    sb_add(&b, "", 0);
    return b.s;
}

static void free_words(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
}

static int make_argv(const struct provider *p, const struct exec_call *call, char **argv)
{
    char words[sizeof p->cfg->exec_launch];
    copy_str(words, sizeof words, call->argv_cfg);
    size_t n = 0;
    char sep[2] = {CONFIG_ARGV_SEP, '\0'};
    for (char *save = NULL, *w = strtok_r(words, sep, &save); w; w = strtok_r(NULL, sep, &save)) {
        if (n == EXEC_ARGS_MAX) {
            argv[n] = NULL;
            free_words(argv);
            return -1;
        }
        argv[n++] = fill_word(p, w, call->id);
    }
    argv[n] = NULL;
    return n ? 0 : -1;
}

/* Names asgd sets for the commands (an inherited value never passes),
 * and the variable holding the API token (status.token = "env:NAME"):
 * the commands have no use for it. */
static bool kept_back(const struct provider *p, const char *entry)
{
    static const char *const names[] = {"ASG_INSTANCE_ID=", "ASG_GROUP=", "ASG_MANAGER=", "ASG_CA_PEM=",
                                        "ASG_JOIN_TOKEN=", "ASG_TERMINATE_FORCE=", GROUP_NONCE_ENV "="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return true;
    const char *tok = p->cfg->status_token;
    if (strncmp(tok, "env:", 4) != 0 || !tok[4])
        return false;
    size_t n = strlen(tok + 4);
    return strncmp(entry, tok + 4, n) == 0 && entry[n] == '=';
}

static char *env_entry(const char *name, const char *value)
{
    struct strbuf b = {0};
    sb_printf(&b, "%s=%s", name, value);
    return b.s;
}

/* The command's environment: ours (minus what we set) and what the
 * instance needs to find and trust the manager. *mine gets the entries
 * made here, to free (and wipe) after. */
static char **make_env(struct provider *p, const struct exec_call *call, char **mine)
{
    size_t n = 0, k = 0, m = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 8, sizeof *env);
    if (!env)
        return NULL;
    const char *manager = commands_manager(p);
    mine[m++] = env_entry("ASG_GROUP", p->cfg->group_name);
    mine[m++] = env_entry("ASG_MANAGER", manager);
    if (call->id)
        mine[m++] = env_entry("ASG_INSTANCE_ID", call->id);
    if (call->force)
        mine[m++] = env_entry("ASG_TERMINATE_FORCE", "1");
    if (call->join_token && priv(p)->ca_pem) {
        mine[m++] = env_entry("ASG_CA_PEM", priv(p)->ca_pem);
        mine[m++] = env_entry("ASG_JOIN_TOKEN", call->join_token);
    }
    mine[m] = NULL;
    for (size_t i = 0; i < m; i++)
        env[k++] = mine[i];
    for (char **e = environ; *e; e++)
        if (!kept_back(p, *e))
            env[k++] = *e;
    env[k] = NULL;
    return env;
}

/* In the child: only exec. Its own session (a Ctrl-C at the manager's
 * terminal is not for it), default signals, stdin from /dev/null, our
 * other descriptors closed on exec. */
static void child_exec(char **argv, char **env, int devnull, int out, int err, int report)
{
    setsid();
    signals_reset_defaults();
    dup2(devnull, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) /* before Linux 5.11 */
        for (int fd = 3; fd < 4096; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    execve(argv[0], argv, env);
    int e = errno;
    if (write(report, &e, sizeof e) != (ssize_t)sizeof e)
        _exit(126);
    _exit(127);
}

/* One read from fd into the call's stdout (up to out_max, the rest
 * counted as too much) or stderr (the first bytes kept): what read()
 * returned, 0 at EOF. */
static ssize_t take(struct exec_call *call, int fd, bool is_out)
{
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0)
        return got;
    if (is_out && call->out.len + (size_t)got <= call->out_max) {
        sb_add(&call->out, buf, (size_t)got);
    } else if (is_out) {
        call->out_over = true;
    } else if (call->err_len < EXEC_STDERR_KEEP) {
        size_t room = EXEC_STDERR_KEEP - call->err_len, keep = (size_t)got < room ? (size_t)got : room;
        memcpy(call->err + call->err_len, buf, keep);
        call->err_len += keep;
        call->err[call->err_len] = '\0';
    }
    return got;
}

/* Reads both pipes until the command exits or its time is up (then it is
 * killed: by its pid, which is still ours to signal since we have not
 * reaped it). Once it has exited, what is already in the pipes is read and
 * no more: a process it left behind may hold them open for ever. */
static void collect(struct exec_call *call, pid_t pid, int fds[2], int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool open_[2] = {true, true}, exited = false;
    while (!exited) {
        /* A closed pipe leaves the poll (its POLLHUP would wake it at once,
         * a spin until the command exits). */
        struct pollfd pf[2] = {{open_[0] ? fds[0] : -1, POLLIN, 0}, {open_[1] ? fds[1] : -1, POLLIN, 0}};
        int64_t left = deadline - now_ms();
        poll(pf, 2, left <= 0 ? 0 : left < 50 ? (int)left : 50);
        for (int i = 0; i < 2; i++)
            if (open_[i] && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t got = take(call, fds[i], i == 0);
                open_[i] = got > 0 || (got < 0 && errno == EINTR);
            }
        pid_t w = waitpid(pid, &call->status, WNOHANG);
        if (w < 0 && errno != EINTR)
            call->status = 127 << 8; /* cannot be: it is ours to reap; a failure, not a success */
        exited = w == pid || (w < 0 && errno != EINTR);
        if (!exited && now_ms() >= deadline) {
            call->timed_out = true;
            kill(pid, SIGKILL);
            while (waitpid(pid, &call->status, 0) < 0 && errno == EINTR)
                ;
            exited = true;
        }
    }
    /* Bounded: something left behind may still be writing. */
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        for (int k = 0; open_[i] && k < 300 && take(call, fds[i], i == 0) > 0; k++)
            ;
    }
}

static int spawn(struct exec_call *call, char **argv, char **env, char *err, size_t errsize, pid_t *pid,
                 int fds[2])
{
    int out[2] = {-1, -1}, er[2] = {-1, -1}, report[2] = {-1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0 ||
        pipe2(report, O_CLOEXEC) != 0 || (*pid = fork()) < 0) {
        snprintf(err, errsize, "%s: cannot start %s: %s", call->key, argv[0], strerror(errno));
        int all[] = {devnull, out[0], out[1], er[0], er[1], report[0], report[1]};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i] >= 0)
                close(all[i]);
        return -1;
    }
    if (*pid == 0)
        child_exec(argv, env, devnull, out[1], er[1], report[1]);
    close(devnull);
    close(out[1]);
    close(er[1]);
    close(report[1]);
    int child_errno = 0;
    ssize_t n;
    while ((n = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
        ;
    close(report[0]);
    fds[0] = out[0];
    fds[1] = er[0];
    if (n != (ssize_t)sizeof child_errno) {
        call->started = true;
        return 0;
    }
    while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    close(fds[1]);
    snprintf(err, errsize, "%s: cannot run %s: %s", call->key, argv[0], strerror(child_errno));
    return -1;
}

/* The first line of what the command said on stderr, for a message. */
static void stderr_line(const struct exec_call *call, char *out, size_t size)
{
    size_t len = strcspn(call->err, "\n");
    shown(call->err, len, out, size);
}

/* Runs the command; 0 when it exited 0 in time with output within its
 * bound, else -1 with why in err (and call->status/timed_out saying how). */
static int exec_run(struct provider *p, struct exec_call *call, char *err, size_t errsize)
{
    char *argv[EXEC_ARGS_MAX + 1] = {NULL}, *mine[8] = {NULL};
    if (make_argv(p, call, argv) != 0) {
        snprintf(err, errsize, "%s: empty, or more than %d words", call->key, EXEC_ARGS_MAX);
        return -1;
    }
    char **env = make_env(p, call, mine);
    pid_t pid = 0;
    int fds[2];
    int rc = env ? spawn(call, argv, env, err, errsize, &pid, fds) : -1;
    if (!env)
        snprintf(err, errsize, "out of memory");
    if (rc == 0) {
        collect(call, pid, fds, p->cfg->exec_timeout_ms);
        close(fds[0]);
        close(fds[1]);
        char said[120];
        stderr_line(call, said, sizeof said);
        if (call->timed_out)
            snprintf(err, errsize, "%s (%s) did not finish within %d ms (provider.exec.timeout_ms): killed",
                     call->key, argv[0], p->cfg->exec_timeout_ms);
        else if (!WIFEXITED(call->status) || WEXITSTATUS(call->status) != 0)
            snprintf(err, errsize, "%s (%s) %s %d%s%s", call->key, argv[0],
                     WIFEXITED(call->status) ? "exited with status" : "killed by signal",
                     WIFEXITED(call->status) ? WEXITSTATUS(call->status) : WTERMSIG(call->status),
                     said[0] ? ": " : "", said);
        else if (call->out_over)
            snprintf(err, errsize, "%s (%s) printed more than %zu bytes", call->key, argv[0], call->out_max);
        rc = call->timed_out || !WIFEXITED(call->status) || WEXITSTATUS(call->status) != 0 ||
             call->out_over ? -1 : 0;
    }
    for (size_t i = 0; mine[i]; i++) {
        OPENSSL_cleanse(mine[i], strlen(mine[i])); /* the join token */
        free(mine[i]);
    }
    free(env);
    free_words(argv);
    return rc;
}

static void call_free(struct exec_call *call) { sb_free(&call->out); }

/* The command's program, for a message. */
static const char *program(const char *argv_cfg, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)strcspn(argv_cfg, (char[]){CONFIG_ARGV_SEP, '\0'}), argv_cfg);
    return out;
}

/* ---- the provider's operations ---- */

static int exec_launch(struct provider *p, const char *id, struct provider_instance *out,
                       char *err, size_t errsize)
{
    const char *manager = commands_manager(p);
    if (!manager[0]) {
        snprintf(err, errsize, "no manager address for the instances yet");
        return LAUNCH_FAILED;
    }
    char tok[72], join_token[PKI_JOIN_TOKEN_LEN + 1] = "";
    provider_launch_token(p, id, tok, sizeof tok);
    if (p->ca && pki_join_token(p->ca, tok, join_token) != 0) {
        snprintf(err, errsize, "cannot make the join token");
        return LAUNCH_FAILED;
    }
    struct exec_call call = {.key = "provider.exec.launch", .argv_cfg = p->cfg->exec_launch, .id = id,
                             .join_token = p->ca ? join_token : NULL, .out_max = EXEC_LAUNCH_OUT_MAX};
    int rc = exec_run(p, &call, err, errsize);
    OPENSSL_cleanse(join_token, sizeof join_token);
    char why[200], prog[128];
    if (rc == 0 && exec_parse_launch(call.out.s ? call.out.s : "", call.out.len, id, out, why, sizeof why) != 0) {
        snprintf(err, errsize, "provider.exec.launch (%s) answered badly: %s",
                 program(p->cfg->exec_launch, prog, sizeof prog), why);
        rc = -1;
    }
    bool failed = !call.started ||
                  (!call.timed_out && WIFEXITED(call.status) && WEXITSTATUS(call.status) != 0);
    call_free(&call);
    if (rc == 0) {
        copy_str(out->token, sizeof out->token, tok);
        return LAUNCH_OK;
    }
    /* A command that could not run, or said it failed, started nothing
     * (its contract); any other failure (killed, no answer, a bad one) may
     * have started the instance: it is asked again with the same id. */
    return failed ? LAUNCH_FAILED : LAUNCH_UNKNOWN;
}

/* A listing longer than a few tables' worth is refused before it is
 * parsed: a command cannot make the controller hold or sort millions. */
static bool list_too_long(const struct provider *p, const struct exec_call *call, char *why, size_t wn)
{
    size_t lines = 0, max = 4 * (size_t)p->cfg->shm_capacity + 16;
    for (const char *c = call->out.s, *end = c ? c + call->out.len : NULL; c && c < end; c++)
        lines += *c == '\n';
    if (lines <= max)
        return false;
    snprintf(why, wn, "%zu lines, more than %zu (4 x shm.capacity + 16)", lines, max);
    return true;
}

/* Only ids this manager hands out (GROUP-N) are the group's: an instance
 * listed under any other id is not adopted, nor ever terminated. */
static void keep_the_groups(const struct provider *p, struct provider_instance **out, size_t *n)
{
    size_t kept = 0;
    char first[PROVIDER_ID_MAX] = "";
    for (size_t i = 0; i < *n; i++) {
        if (provider_id_of_group((*out)[i].id, p->cfg->group_name))
            (*out)[kept++] = (*out)[i];
        else if (!first[0])
            copy_str(first, sizeof first, (*out)[i].id);
    }
    if (kept < *n)
        log_warn("provider.exec.list: %zu instance(s) not of group %s (ids %s-N) ignored, the first %s",
                 *n - kept, p->cfg->group_name, p->cfg->group_name, first);
    *n = kept;
}

static int exec_list(struct provider *p, struct provider_instance **out, size_t *n,
                     char *err, size_t errsize)
{
    struct exec_priv *s = priv(p);
    *out = NULL;
    *n = 0;
    struct exec_call call = {.key = "provider.exec.list", .argv_cfg = p->cfg->exec_list,
                             .out_max = EXEC_LIST_OUT_MAX};
    int rc = exec_run(p, &call, err, errsize);
    char why[200], prog[128];
    if (rc == 0 && (list_too_long(p, &call, why, sizeof why) ||
                    exec_parse_list(call.out.s ? call.out.s : "", call.out.len, out, n, why, sizeof why) != 0)) {
        snprintf(err, errsize, "provider.exec.list (%s) answered badly: %s",
                 program(p->cfg->exec_list, prog, sizeof prog), why);
        rc = -1;
    }
    call_free(&call);
    s->cache_ms = now_ms();
    if (rc != 0) {
        s->cache_ok = false; /* unknown: nothing is declared gone */
        return -1;
    }
    keep_the_groups(p, out, n);
    free(s->cache);
    s->cache = malloc((*n ? *n : 1) * sizeof *s->cache);
    if (s->cache)
        memcpy(s->cache, *out, *n * sizeof **out);
    s->ncache = s->cache ? *n : 0;
    s->cache_ok = s->cache != NULL;
    return 0;
}

static void exec_refresh(struct provider *p)
{
    struct provider_instance *list;
    size_t n;
    char err[512];
    if (exec_list(p, &list, &n, err, sizeof err) != 0) {
        log_warn("exec: cannot list the group: %s", err);
        return;
    }
    free(list);
}

/* terminate must succeed for an instance already gone: the command's
 * contract, so that asking again is always safe. */
static int exec_terminate(struct provider *p, const struct provider_handle *h, bool force,
                          char *err, size_t errsize)
{
    struct exec_call call = {.key = "provider.exec.terminate", .argv_cfg = p->cfg->exec_terminate,
                             .id = h->id, .force = force, .out_max = EXEC_LAUNCH_OUT_MAX};
    int rc = exec_run(p, &call, err, errsize);
    call_free(&call);
    priv(p)->cache_ok = false; /* what is listed changes now */
    return rc;
}

/* Gone once a good listing lacks it; with no good listing, never. A
 * listing, taken or failed, serves for EXEC_CACHE_MS: a failing command
 * is not run again for every row. */
static bool exec_gone(struct provider *p, const struct provider_handle *h)
{
    struct exec_priv *s = priv(p);
    if (now_ms() - s->cache_ms > EXEC_CACHE_MS)
        exec_refresh(p);
    if (!s->cache_ok)
        return false;
    for (size_t i = 0; i < s->ncache; i++)
        if (strcmp(s->cache[i].id, h->id) == 0)
            return false;
    return true;
}

static void exec_free(struct provider *p);

static int exec_init(struct provider *p, char *err, size_t errsize)
{
    struct exec_priv *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    p->priv = s;
    if (provider_join_ca(p, &s->ca_pem, err, errsize) != 0) {
        exec_free(p);
        return -1;
    }
    return 0;
}

static void exec_free(struct provider *p)
{
    struct exec_priv *s = priv(p);
    if (!s)
        return;
    free(s->cache);
    free(s->ca_pem);
    free(s);
    p->priv = NULL;
}

static const struct provider_ops exec_ops = {
    .name = "exec",
    .launch = exec_launch,
    .terminate = exec_terminate,
    .gone = exec_gone,
    .list = exec_list,
    .refresh = exec_refresh,
};

/* terminate is run again (force set) for an instance still listed after
 * provider.exec.terminate_timeout_ms. */
static int exec_kill_timeout_ms(const struct asg_config *cfg) { return cfg->exec_terminate_timeout_ms; }

static int exec_reconcile_ms(const struct asg_config *cfg, bool standby)
{
    (void)standby;
    return cfg->exec_reconcile_interval_ms;
}

/* The commands own their instances (no processes of ours to signal);
 * instances join for their certificate, as EC2's do. */
const struct provider_def provider_exec = {
    .kind = PROVIDER_EXEC,
    .ops = &exec_ops,
    .caps = PROVIDER_CAP_JOIN,
    .init = exec_init,
    .free = exec_free,
    .kill_timeout_ms = exec_kill_timeout_ms,
    .reconcile_ms = exec_reconcile_ms,
};
