/* Provider `local`: instances are asg-agent processes on 127.0.0.1. */
#define _GNU_SOURCE
#include "provider.h"
#include "../common/identity.h"
#include "../common/pki.h"
#include "../common/proc.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The agent binary: the configured path, or asg-agent beside this program
 * (a build tree), or in ../bin from it (an install: asgd in sbin/, the
 * agent in bin/), so neither needs configuration. */
static int find_agent(struct provider *p, char *err, size_t errsize)
{
    if (p->cfg->local_agent_path[0]) {
        copy_str(p->agent_path, sizeof p->agent_path, p->cfg->local_agent_path);
    } else {
        char self[256];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            snprintf(err, errsize, "cannot find this program's path: %s", strerror(errno));
            return -1;
        }
        self[n] = '\0';
        const char *dir = dirname(self);
        snprintf(p->agent_path, sizeof p->agent_path, "%.230s/asg-agent", dir);
        if (access(p->agent_path, X_OK) != 0)
            snprintf(p->agent_path, sizeof p->agent_path, "%.220s/../bin/asg-agent", dir);
    }
    if (access(p->agent_path, X_OK) != 0) {
        snprintf(err, errsize, "provider.local.agent_path: %s is not executable: %s",
                 p->agent_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* One scan of /proc serves every lookup for FIND_CACHE_MS: reconciling a
 * thousand adopted rows must not read /proc a thousand times. */
#define FIND_CACHE_MS 200

/* How often /proc is read for the group's agents; a standby looks more
 * often: reading /proc costs little, and a warm table is what a standby
 * is for. */
#define LOCAL_RECONCILE_MS 10000
#define LOCAL_STANDBY_RECONCILE_MS 2000

struct local_priv {
    struct provider_instance *find_cache;
    size_t find_cache_n;
    int64_t find_cache_ms;
};

static int local_init(struct provider *p, char *err, size_t errsize)
{
    if (!(p->priv = calloc(1, sizeof(struct local_priv)))) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    pki_dir(p->cfg, p->tls_dir, sizeof p->tls_dir);
    /* Made by the supervisor on its first start (supervisor/asgd.c). */
    if (group_nonce_load(p->tls_dir, false, p->group_nonce, err, errsize) != 0)
        return -1;
    if (p->cfg->tls_mode == TLS_AUTO && !(p->ca = pki_ca_open(p->tls_dir, err, errsize)))
        return -1;
    return find_agent(p, err, errsize);
}

static void local_free(struct provider *p)
{
    struct local_priv *s = p->priv;
    if (!s)
        return;
    free(s->find_cache);
    free(s);
    p->priv = NULL;
}

static int local_kill_timeout_ms(const struct asg_config *cfg) { return cfg->local_kill_timeout_ms; }

static int local_reconcile_ms(const struct asg_config *cfg, bool standby)
{
    (void)cfg;
    return standby ? LOCAL_STANDBY_RECONCILE_MS : LOCAL_RECONCILE_MS;
}

/* The agent's environment: ours with the group's nonce first (and no other
 * value of it). Made before fork: the child only execs. */
static char **agent_environ(const char *nonce, char *entry, size_t size)
{
    static const char key[] = GROUP_NONCE_ENV "=";
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    snprintf(entry, size, "%s%s", key, nonce);
    size_t k = 0;
    env[k++] = entry;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, key, sizeof key - 1) != 0)
            env[k++] = *e;
    env[k] = NULL;
    return env;
}

/* The agent's command line: its id, the manager, its certificate (with
 * tls.mode auto) and the operator's service after "--". argv points into
 * seed, creds (CA, certificate, key paths) and service, which is split
 * in place. Returns the count. */
static int agent_argv(const struct provider *p, const char *id, char *seed, char *const creds[3],
                      char *service, char **argv)
{
    int n = 0;
    const char *fixed[] = {"asg-agent", "--listen", "127.0.0.1:0", "--id", id,
                           "--manager", p->manager_addr, "--seed", seed};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = (char *)fixed[i];
    if (p->ca) {
        argv[n++] = "--tls-ca";
        argv[n++] = creds[0];
        argv[n++] = "--tls-cert";
        argv[n++] = creds[1];
        argv[n++] = "--tls-key";
        argv[n++] = creds[2];
    }
    /* The operator's service: the agent runs it and reports its load. */
    if (service[0]) {
        argv[n++] = "--service-health";
        argv[n++] = (char *)p->cfg->local_service_health;
        argv[n++] = "--load-source";
        argv[n++] = "service";
        if (p->cfg->local_service_requests[0]) {
            argv[n++] = "--service-requests";
            argv[n++] = (char *)p->cfg->local_service_requests;
        }
        if (p->cfg->local_service_ca[0]) {
            argv[n++] = "--service-ca";
            argv[n++] = (char *)p->cfg->local_service_ca;
        }
        argv[n++] = "--";
        for (char *save = NULL, *a = strtok_r(service, (char[]){CONFIG_ARGV_SEP, 0}, &save); a;
             a = strtok_r(NULL, (char[]){CONFIG_ARGV_SEP, 0}, &save))
            argv[n++] = a;
    }
    argv[n] = NULL;
    return n;
}

/* In the forked child: becomes the agent, or reports exec's errno on
 * report and exits. */
static _Noreturn void run_agent(const struct provider *p, const char *id, char *seed, char *const creds[3],
                      char **env, int report)
{
    /* Own session: a Ctrl-C at the manager's terminal must not reach
     * the fleet; the manager stops its agents itself when it drains. */
    setsid();
    signals_reset_defaults();
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        if (devnull > STDERR_FILENO)
            close(devnull);
    }
    char service[sizeof p->cfg->local_service]; /* the child's own copy, split in place */
    copy_str(service, sizeof service, p->cfg->local_service);
    char *argv[32 + sizeof p->cfg->local_service / 2];
    agent_argv(p, id, seed, creds, service, argv);
    execve(p->agent_path, argv, env);
    int e = errno;
    if (write(report, &e, sizeof e) != (ssize_t)sizeof e)
        _exit(126);
    _exit(127);
}

/* exec's outcome, known at once: the pipe closes by itself on a
 * successful exec (close-on-exec), or carries the child's errno (then the
 * child is reaped). 0 when the agent runs. */
static int exec_outcome(int report, pid_t pid)
{
    int child_errno = 0;
    ssize_t n;
    do
        n = read(report, &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(report);
    if (n != (ssize_t)sizeof child_errno)
        return 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return child_errno ? child_errno : EIO;
}

static int local_launch(struct provider *p, const char *id, struct provider_instance *out,
                        char *err, size_t errsize)
{
    if (access(p->agent_path, X_OK) != 0) {
        snprintf(err, errsize, "%s is not executable: %s", p->agent_path, strerror(errno));
        return LAUNCH_FAILED;
    }
    if (!p->manager_addr[0]) {
        snprintf(err, errsize, "the monitor has not published its address yet");
        return LAUNCH_FAILED;
    }
    char seed[32], ca[300], cert[300], key[300];
    char *const creds[3] = {ca, cert, key};
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)(p->seed++));
    /* Its own certificate, CN = its id: it can speak for itself only. */
    pki_agent_paths(p->tls_dir, id, cert, key, sizeof cert);
    if (p->ca && pki_issue(p->ca, id, cert, key, err, errsize) != 0)
        return LAUNCH_FAILED;
    snprintf(ca, sizeof ca, "%s/%s", p->tls_dir, PKI_CA_CERT);
    /* The group's mark: readable in /proc/PID/environ by our uid only
     * (argv is world-readable), and checked before we adopt or signal. */
    char nonce_entry[sizeof GROUP_NONCE_ENV + GROUP_NONCE_HEX + 1];
    char **env = agent_environ(p->group_nonce, nonce_entry, sizeof nonce_entry);
    if (!env) {
        snprintf(err, errsize, "out of memory");
        return LAUNCH_FAILED;
    }
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, errsize, "pipe: %s", strerror(errno));
        free(env);
        return LAUNCH_FAILED;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        run_agent(p, id, seed, creds, env, report[1]);
    }
    int fork_errno = errno;
    free(env);
    close(report[1]);
    if (pid < 0) {
        snprintf(err, errsize, "fork: %s", strerror(fork_errno));
        close(report[0]);
        return LAUNCH_FAILED;
    }
    int child_errno = exec_outcome(report[0], pid);
    if (child_errno) {
        snprintf(err, errsize, "exec %s: %s", p->agent_path, strerror(child_errno));
        if (p->ca)
            pki_forget_agent(p->tls_dir, id);
        return LAUNCH_FAILED;
    }
    memset(out, 0, sizeof *out);
    copy_str(out->id, sizeof out->id, id);
    out->pid = pid;
    out->pid_start = pid_start_time(pid);
    out->alive = true;
    return LAUNCH_OK;
}

/* The agents of the group, of any id, as a scan at most FIND_CACHE_MS
 * old found them. Without the provider's state (a bare provider in a
 * test) /proc is read each time, and the caller frees the list. */
static bool scan_cached(struct provider *p, struct provider_instance **list, size_t *n)
{
    struct local_priv *s = p->priv;
    if (!s) {
        if (local_scan_proc(NULL, p->group_nonce, list, n) == 0)
            return true;
        free(*list);
        *list = NULL;
        return false;
    }
    int64_t now = now_ms();
    if (!s->find_cache_ms || now - s->find_cache_ms > FIND_CACHE_MS) {
        free(s->find_cache);
        s->find_cache = NULL;
        s->find_cache_n = 0;
        s->find_cache_ms = 0;
        if (local_scan_proc(NULL, p->group_nonce, &s->find_cache, &s->find_cache_n) != 0)
            return false;
        s->find_cache_ms = now;
    }
    *list = s->find_cache;
    *n = s->find_cache_n;
    return true;
}

/* The local agent of h found by its exact id, in the group's naming or
 * not (an agent adopted on registration may have an id of its own), if
 * it passes every check of local_row_agent. */
static pid_t find_by_id(struct provider *p, const struct provider_handle *h)
{
    struct provider_instance *list = NULL;
    size_t n = 0;
    if (!scan_cached(p, &list, &n))
        return 0;
    pid_t pid = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].id, h->id) == 0 && local_row_agent(p->group_nonce, h, list[i].pid))
            pid = list[i].pid;
    if (!p->priv)
        free(list);
    return pid;
}

static int local_terminate(struct provider *p, const struct provider_handle *h, bool force,
                           char *err, size_t errsize)
{
    pid_t pid = local_row_agent(p->group_nonce, h, h->pid);
    if (!pid && h->pid <= 0)
        pid = find_by_id(p, h);
    if (p->ca)
        pki_forget_agent(p->tls_dir, h->id); /* read at its start; not needed again */
    if (!pid)
        return 0; /* already gone, or not ours to signal */
    if (local_signal_row(p->group_nonce, h, pid, force ? SIGKILL : SIGTERM) < 0) {
        snprintf(err, errsize, "kill %d: %s", (int)pid, strerror(errno));
        return -1;
    }
    return 0;
}

static bool local_gone(struct provider *p, const struct provider_handle *h)
{
    if (h->pid > 0)
        return local_row_agent(p->group_nonce, h, h->pid) == 0;
    /* Adopted on registration: it may run where /proc cannot see it (in
     * a swarm, on another machine). Once seen, it is there until probes
     * mark it unhealthy, and then this is asked again: a missed probe or
     * two is not a death (at 10,000 agents that freed rows by the
     * thousand, and launched as many replacements). */
    if (h->flags & PROVIDER_H_ANSWERING)
        return false;
    return find_by_id(p, h) == 0;
}

static int local_list(struct provider *p, struct provider_instance **out, size_t *n,
                      char *err, size_t errsize)
{
    if (local_scan_proc(p->cfg->group_name, p->group_nonce, out, n) != 0) {
        snprintf(err, errsize, "cannot scan /proc: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* When a process started, as ISO 8601 UTC: boot time + start ticks. */
static void start_time_iso(uint64_t ticks, char *out, size_t size)
{
    /* Process-wide because it is the machine's boot time: read once. */
    static long long btime = -1;
    out[0] = '\0';
    if (btime < 0) {
        FILE *f = fopen("/proc/stat", "r");
        char line[256];
        btime = 0;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "btime %lld", &btime) == 1)
                break;
        if (f)
            fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (btime <= 0 || hz <= 0 || ticks == 0)
        return;
    time_t t = (time_t)(btime + (long long)(ticks / (uint64_t)hz));
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads /proc/PID/cmdline into argv-like pieces; returns the count. */
static int read_cmdline(pid_t pid, char *buf, size_t size, char **args, int maxargs)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, size - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = '\0';
    int n = 0;
    for (char *s = buf; s < buf + len && n < maxargs; s += strlen(s) + 1)
        args[n++] = s;
    return n;
}

/* An asg-agent process of our uid, judged by what the kernel says it runs
 * (/proc/PID/exe), not by its argv, which any process can set: we never
 * signal a process another user started, nor one that only calls itself
 * asg-agent. */
static bool our_agent_process(pid_t pid)
{
    char exe[512];
    if (!pid_exe_if_ours(pid, exe, sizeof exe))
        return false;
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    return strcmp(base, "asg-agent") == 0;
}

enum nonce_seen { NONCE_UNREADABLE, NONCE_NONE, NONCE_OTHER, NONCE_OURS };

/* What GROUP_NONCE_ENV says in pid's environment as the kernel keeps it
 * (/proc/PID/environ: only our uid may read it), the first value as getenv
 * would see it. An empty nonce of ours matches nothing. */
static enum nonce_seen environ_nonce(pid_t pid, const char *nonce)
{
    static const char key[] = GROUP_NONCE_ENV "=";
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NONCE_UNREADABLE;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t got = 0;
    while (buf && (got = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)got;
        if (len == cap && cap < (1u << 20)) {
            char *grown = realloc(buf, 2 * cap + 1);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        } else if (len == cap) {
            break; /* a megabyte of environment: what we launch puts ours first */
        }
    }
    close(fd);
    if (!buf || got < 0) {
        free(buf);
        return NONCE_UNREADABLE;
    }
    buf[len] = '\0';
    enum nonce_seen seen = NONCE_NONE;
    for (char *e = buf; e < buf + len; e += strlen(e) + 1)
        if (strncmp(e, key, sizeof key - 1) == 0) {
            seen = nonce[0] && strcmp(e + sizeof key - 1, nonce) == 0 ? NONCE_OURS : NONCE_OTHER;
            break;
        }
    explicit_bzero(buf, len);
    free(buf);
    return seen;
}

/* pid's agent id (its --id) if it is an asg-agent of our uid; what its
 * environment says of the nonce goes to *seen. */
static bool agent_identity(pid_t pid, const char *nonce, char *id, size_t size, enum nonce_seen *seen)
{
    char buf[1024], *args[16];
    int argc = read_cmdline(pid, buf, sizeof buf, args, 16);
    if (argc < 3 || !our_agent_process(pid))
        return false;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(args[i], "--id") == 0) {
            if (!copy_str(id, size, args[i + 1]))
                return false;
            *seen = environ_nonce(pid, nonce);
            return true;
        }
    return false;
}

pid_t local_row_agent(const char *nonce, const struct provider_handle *h, pid_t pid)
{
    if (pid <= 0 || !pid_alive(pid))
        return 0;
    /* A row's own pid must still be the process it recorded; a start time
     * of 0 (a row adopted without one, a planted or damaged row) proves
     * nothing, and the checks below still apply. */
    uint64_t start = pid_start_time(pid);
    if (!start || (pid == h->pid && h->pid_start && start != h->pid_start))
        return 0;
    char id[PROVIDER_ID_MAX];
    enum nonce_seen seen = NONCE_UNREADABLE;
    if (!agent_identity(pid, nonce, id, sizeof id, &seen) || strcmp(id, h->id) != 0)
        return 0;
    if (seen == NONCE_OURS || (seen == NONCE_NONE && (h->flags & PROVIDER_H_JOINED)))
        return pid;
    return 0;
}

int local_signal_row(const char *nonce, const struct provider_handle *h, pid_t pid, int sig)
{
    if (!local_row_agent(nonce, h, pid))
        return 0;
    if (kill(pid, sig) != 0)
        return errno == ESRCH ? 0 : -1;
    return 1;
}

int local_scan_proc(const char *group, const char *nonce, struct provider_instance **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char id[PROVIDER_ID_MAX];
        enum nonce_seen seen = NONCE_UNREADABLE;
        if (!agent_identity((pid_t)pid, nonce, id, sizeof id, &seen))
            continue;
        /* Another group's (another nonce) never; one started by hand (no
         * nonce) only when asked for any id, for a row that joined. */
        if (seen == NONCE_OTHER || seen == NONCE_UNREADABLE || (group && seen != NONCE_OURS))
            continue;
        if ((group && !provider_id_of_group(id, group)) || !pid_alive((pid_t)pid))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct provider_instance *grown = realloc(*out, cap * sizeof **out);
            if (!grown) {
                closedir(d);
                return -1;
            }
            *out = grown;
        }
        struct provider_instance *pi = &(*out)[(*n)++];
        memset(pi, 0, sizeof *pi);
        copy_str(pi->id, sizeof pi->id, id);
        pi->alive = true;
        pi->no_nonce = seen == NONCE_NONE;
        copy_str(pi->state, sizeof pi->state, "running");
        pi->pid = (int32_t)pid;
        pi->pid_start = pid_start_time((pid_t)pid);
        start_time_iso(pi->pid_start, pi->launch_time, sizeof pi->launch_time);
    }
    closedir(d);
    return 0;
}

static const struct provider_ops local_ops = {
    .name = "local",
    .launch = local_launch,
    .terminate = local_terminate,
    .gone = local_gone,
    .list = local_list,
};

const struct provider_def provider_local = {
    .kind = PROVIDER_LOCAL,
    .ops = &local_ops,
    .caps = PROVIDER_CAP_PROCESSES,
    .init = local_init,
    .free = local_free,
    .kill_timeout_ms = local_kill_timeout_ms,
    .reconcile_ms = local_reconcile_ms,
};
