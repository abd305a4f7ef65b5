/* The operator's service (see workload.h). */
#define _GNU_SOURCE
#include "workload.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/strbuf.h"
#include "../common/util.h"

#define CHECK_TIMEOUT_MS 2000

int workload_parse_check(const char *s, struct workload *w, char *why, size_t n)
{
    if (strcmp(s, "none") == 0) {
        w->check = SVC_CHECK_NONE;
    } else if (strcmp(s, "tcp") == 0) {
        w->check = SVC_CHECK_TCP;
    } else if (strncmp(s, "http:/", 6) == 0 && strlen(s + 5) < sizeof w->path &&
               strcspn(s + 5, " \r\n\t") == strlen(s + 5)) {
        w->check = SVC_CHECK_HTTP;
        copy_str(w->path, sizeof w->path, s + 5);
    } else {
        snprintf(why, n, "'%.60s': use tcp, none or http:/PATH (no spaces)", s);
        return -1;
    }
    w->check_given = true;
    return 0;
}

int workload_parse_requests(const char *s, struct workload *w, char *why, size_t n)
{
    if (strncmp(s, "http:/", 6) != 0 || strlen(s + 5) >= sizeof w->count_path ||
        strcspn(s + 5, " \r\n\t") != strlen(s + 5)) {
        snprintf(why, n, "'%.60s': use http:/PATH (no spaces), a path that answers the service's "
                 "request count", s);
        return -1;
    }
    copy_str(w->count_path, sizeof w->count_path, s + 5);
    return 0;
}

/* A free port on host (the kernel's choice); the service binds it a moment
 * later, as a service given --port 0 could not tell us its own. */
static int free_port(const char *host)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* argv with every "{port}" replaced; malloc'd strings. */
static char **substitute(char *const *argv, int port)
{
    size_t n = 0;
    while (argv[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        struct strbuf b = {0};
        for (const char *p = argv[i], *at; *p; p = at + 6) {
            if (!(at = strstr(p, "{port}"))) {
                sb_add(&b, p, strlen(p));
                break;
            }
            sb_add(&b, p, (size_t)(at - p));
            sb_printf(&b, "%d", port);
        }
        out[i] = b.s ? b.s : strdup("");
    }
    return out;
}

static void set_why(struct workload *w, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&w->why_mu);
    snprintf(w->why, sizeof w->why, fmt, detail);
    pthread_mutex_unlock(&w->why_mu);
}

/* connect() to the service with a deadline; the socket, or -1. */
static int dial(const struct workload *w)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
    const char *host = strcmp(w->host, "0.0.0.0") == 0 ? "127.0.0.1" : w->host;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, CHECK_TIMEOUT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path; what came back within the deadline (at most size-1 bytes,
 * until the first `want` bytes or the end), or -1. */
static ssize_t http_get(const struct workload *w, int fd, const char *path, char *resp, size_t size,
                        size_t want)
{
    char req[256];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: asg-agent\r\n\r\n",
                       path, w->host);
    if (len <= 0 || (size_t)len >= sizeof req || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        return -1;
    size_t got = 0;
    int64_t deadline = now_ms() + CHECK_TIMEOUT_MS;
    while (got < want && got + 1 < size && now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now_ms())) != 1)
            break;
        ssize_t r = recv(fd, resp + got, size - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    resp[got] = '\0';
    return (ssize_t)got;
}

/* The service's request counter: a 2xx answer whose body begins with a
 * whole number (what else it holds is ignored). */
static bool read_count(const struct workload *w, uint64_t *count)
{
    int fd = dial(w);
    if (fd < 0)
        return false;
    char resp[1024];
    ssize_t got = http_get(w, fd, w->count_path, resp, sizeof resp, sizeof resp - 1);
    close(fd);
    int code = 0;
    const char *body = got > 0 ? strstr(resp, "\r\n\r\n") : NULL;
    if (!body || sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1 || code < 200 || code > 299)
        return false;
    body += 4;
    body += strspn(body, " \t\r\n");
    if (*body < '0' || *body > '9' || strspn(body, "0123456789") > 19)
        return false;
    *count = strtoull(body, NULL, 10);
    return true;
}

/* GET path: healthy on a 2xx or 3xx status line within the deadline. */
static bool http_ok(const struct workload *w, int fd, char *detail, size_t n)
{
    char resp[64] = "";
    if (http_get(w, fd, w->path, resp, sizeof resp, 12) < 0) {
        snprintf(detail, n, "cannot send the request");
        return false;
    }
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
        snprintf(detail, n, "no HTTP answer to GET %.40s", w->path);
        return false;
    }
    snprintf(detail, n, "GET %.40s answered %d", w->path, code);
    return code >= 200 && code < 400;
}

static void *checker(void *arg)
{
    struct workload *w = arg;
    while (!atomic_load(&w->stopping)) {
        bool ok = true;
        char detail[80] = "";
        if (w->check != SVC_CHECK_NONE) {
            int fd = dial(w);
            if (fd < 0) {
                ok = false;
                snprintf(detail, sizeof detail, "nothing accepts on port %d", w->port);
            } else {
                ok = w->check == SVC_CHECK_TCP || http_ok(w, fd, detail, sizeof detail);
                close(fd);
            }
        }
        if (!ok)
            set_why(w, "service check failed: %s", detail);
        atomic_store(&w->healthy, ok);
        uint64_t count;
        if (w->count_path[0]) {
            bool known = read_count(w, &count);
            if (known)
                atomic_store(&w->requests, count);
            atomic_store(&w->requests_known, known);
        }
        for (int slept = 0; slept < WORKLOAD_CHECK_MS && !atomic_load(&w->stopping); slept += 50)
            sleep_ms(50);
    }
    return NULL;
}

static void exec_service(struct workload *w, char **argv, const char *id, int report, pid_t agent)
{
    setpgid(0, 0); /* its own group: stopped, and sampled, as a whole */
    signals_reset_defaults();
    /* An agent that dies without stopping it (SIGKILL, a crash) must not
     * leave it serving, unwatched, on a port the next agent may be given:
     * the kernel sends it SIGTERM then. An agent already gone: stop now. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != agent)
        _exit(125);
    char port[16];
    snprintf(port, sizeof port, "%d", w->port);
    setenv("ASG_SERVICE_PORT", port, 1);
    setenv("ASG_INSTANCE_ID", id, 1);
    execvp(argv[0], argv);
    int e = errno;
    if (write(report, &e, sizeof e) != (ssize_t)sizeof e)
        _exit(126);
    _exit(127);
}

int workload_start(struct workload *w, const char *instance_id, char *err, size_t errsize)
{
    if (w->port == 0 && (w->port = free_port(strcmp(w->host, "0.0.0.0") ? w->host : "0.0.0.0")) <= 0) {
        snprintf(err, errsize, "no free port for the service on %s", w->host);
        return -1;
    }
    char **argv = substitute(w->argv, w->port);
    int report[2];
    if (!argv || pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, errsize, "cannot start the service: %s", strerror(errno));
        return -1;
    }
    pid_t agent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        exec_service(w, argv, instance_id, report[1], agent);
    }
    close(report[1]);
    int child_errno = 0;
    ssize_t n = pid > 0 ? read(report[0], &child_errno, sizeof child_errno) : -1;
    while (n < 0 && errno == EINTR)
        n = read(report[0], &child_errno, sizeof child_errno);
    close(report[0]);
    int rc = 0;
    if (pid < 0 || n == (ssize_t)sizeof child_errno) {
        snprintf(err, errsize, "cannot run %s: %s", argv[0], strerror(pid < 0 ? errno : child_errno));
        if (pid > 0)
            waitpid(pid, NULL, 0);
        rc = -1;
    } else {
        setpgid(pid, pid); /* also here: no race with the child's own call */
        w->pid = pid;
        atomic_store(&w->healthy, w->check == SVC_CHECK_NONE);
        pthread_mutex_init(&w->why_mu, NULL);
        set_why(w, "service check failed: %s", "not checked yet");
        w->checker_up = pthread_create(&w->checker, NULL, checker, w) == 0;
        log_info("service started (pid %d, port %d): %s", (int)pid, w->port, argv[0]);
    }
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
    return rc;
}

void workload_reap(struct workload *w)
{
    if (w->pid <= 0)
        return;
    int st;
    pid_t r;
    do
        r = waitpid(w->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r != w->pid)
        return;
    w->exit_status = st;
    w->pid = 0;
    if (WIFSIGNALED(st))
        log_warn("service exited: killed by signal %d", WTERMSIG(st));
    else
        log_warn("service exited with status %d", WEXITSTATUS(st));
}

bool workload_ok(struct workload *w, char *why, size_t n)
{
    if (w->pid <= 0) {
        if (WIFSIGNALED(w->exit_status))
            snprintf(why, n, "service exited: killed by signal %d", WTERMSIG(w->exit_status));
        else
            snprintf(why, n, "service exited with status %d", WEXITSTATUS(w->exit_status));
        return false;
    }
    if (atomic_load(&w->healthy))
        return true;
    pthread_mutex_lock(&w->why_mu);
    copy_str(why, n, w->why);
    pthread_mutex_unlock(&w->why_mu);
    return false;
}

/* utime + stime of every process in the service's group, in clock ticks. */
static unsigned long long group_ticks(pid_t pgid, unsigned long long *rss_pages)
{
    unsigned long long ticks = 0;
    *rss_pages = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        const char *p = strrchr(buf, ')'); /* the name may hold spaces */
        int grp;
        unsigned long long ut, st, rss;
        if (p && sscanf(p + 2, "%*c %*d %d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%*d %*d %*u %*u %llu", &grp, &ut, &st, &rss) == 4 && grp == pgid) {
            ticks += ut + st;
            *rss_pages += rss;
        }
    }
    if (d)
        closedir(d);
    return ticks;
}

void workload_sample(struct workload *w)
{
    if (w->pid <= 0) {
        w->cpu = w->mem = 0;
        return;
    }
    unsigned long long rss;
    unsigned long long ticks = group_ticks(w->pid, &rss);
    int64_t now = now_ms();
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    long total_pages = sysconf(_SC_PHYS_PAGES);
    if (w->last_ms && now > w->last_ms && ticks >= w->last_ticks && hz > 0) {
        double busy = (double)(ticks - w->last_ticks) / (double)hz / ((double)(now - w->last_ms) / 1000.0);
        double cpu = busy / (w->cpus > 0 ? w->cpus : 1.0);
        w->cpu = cpu < 0 ? 0 : cpu > 1 ? 1 : cpu;
    }
    w->last_ticks = ticks;
    w->last_ms = now;
    if (total_pages > 0 && page > 0)
        w->mem = (double)rss / (double)total_pages;
}

/* True once the service has exited, without reaping it: while it is an
 * unreaped child its pid, and so its process group id, cannot be reused. */
static bool exited(pid_t pid)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        if (errno != EINTR)
            return true;
    return info.si_pid == pid;
}

void workload_stop(struct workload *w)
{
    atomic_store(&w->stopping, true);
    if (w->checker_up)
        pthread_join(w->checker, NULL);
    w->checker_up = false;
    if (w->pid <= 0)
        return; /* exited and reaped earlier: its group id may be another's now */
    pid_t group = w->pid;
    kill(-group, SIGTERM);
    int64_t deadline = now_ms() + w->stop_timeout_ms;
    while (!exited(group) && now_ms() < deadline)
        sleep_ms(20);
    if (!exited(group))
        log_warn("service (pid %d) did not stop within %d ms: SIGKILL", (int)group, w->stop_timeout_ms);
    /* The leader is not reaped yet, so the group is still ours: whatever
     * it left running goes too. */
    kill(-group, SIGKILL);
    int st;
    while (waitpid(group, &st, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
    w->exit_status = st;
    log_info("service stopped");
}
