/* The operator's service (see workload.h). */
#define _GNU_SOURCE
#include "workload.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
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

static bool no_spaces(const char *s)
{
    return strcspn(s, " \r\n\t") == strlen(s);
}

/* "http(s)://NAME[:PORT]/PATH[?QUERY]", read with libcurl's URL parser:
 * the authority kept for Host and the TLS name, the path for the request. */
static int parse_check_url(const char *s, struct workload *w, char *why, size_t n)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL, *frag = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        snprintf(why, n, "'%.60s': not a URL", s);
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
               curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        snprintf(why, n, "'%.60s': no user name or #fragment in a check URL", s);
    } else {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        int a = snprintf(w->authority, sizeof w->authority, "%s%s%s", host, port ? ":" : "",
                         port ? port : "");
        int b = snprintf(w->path, sizeof w->path, "%s%s%s", path, query ? "?" : "",
                         query ? query : "");
        if (a < 0 || (size_t)a >= sizeof w->authority || b < 0 || (size_t)b >= sizeof w->path)
            snprintf(why, n, "'%.60s': too long", s);
        else
            rc = 0;
    }
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_free(frag);
    curl_url_cleanup(u);
    return rc;
}

int workload_parse_check(const char *s, struct workload *w, char *why, size_t n)
{
    bool tls = strncmp(s, "https:", 6) == 0;
    const char *rest = s + (tls ? 6 : 5);
    w->authority[0] = '\0';
    if (strcmp(s, "none") == 0) {
        w->check = SVC_CHECK_NONE;
    } else if (strcmp(s, "tcp") == 0) {
        w->check = SVC_CHECK_TCP;
    } else if ((tls || strncmp(s, "http:", 5) == 0) && rest[0] == '/' && rest[1] != '/' &&
               strlen(rest) < sizeof w->path && no_spaces(rest)) {
        w->check = SVC_CHECK_HTTP;
        copy_str(w->path, sizeof w->path, rest);
    } else if ((tls || strncmp(s, "http:", 5) == 0) && strncmp(rest, "//", 2) == 0 && no_spaces(s)) {
        if (parse_check_url(s, w, why, n) != 0)
            return -1;
        w->check = SVC_CHECK_HTTP;
    } else {
        snprintf(why, n, "'%.60s': use tcp, none, http:/PATH, https:/PATH or "
                 "http(s)://NAME/PATH (no spaces)", s);
        return -1;
    }
    w->tls = tls;
    w->check_given = true;
    return 0;
}

int workload_check_hosts(const char *host, char out[][48], int max)
{
    const char *v4 = "127.0.0.1", *v6 = "[::1]";
    struct in6_addr a6;
    int k = 0;
    if (max < 2)
        return 0;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0) {
        bool six_first = host[0] != '0';
        copy_str(out[k++], 48, six_first ? v6 : v4);
        copy_str(out[k++], 48, six_first ? v4 : v6);
    } else if (inet_pton(AF_INET6, host, &a6) == 1) {
        snprintf(out[k++], 48, "[%.40s]", host);
    } else {
        copy_str(out[k++], 48, host); /* a name: libcurl tries each of its addresses */
    }
    return k;
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
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(host, "0", &hints, &res) != 0)
        return -1;
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int port = -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
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

/* What a request keeps of the answer's body: up to `want` bytes, then
 * the transfer is cut (a health check wants none of it). */
struct reply {
    char buf[1024];
    size_t len, want;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct reply *r = user;
    size_t len = size * nmemb, room = r->want - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->buf + r->len, data, take);
    r->len += take;
    r->buf[r->len] = '\0';
    return r->len >= r->want ? 0 : len; /* 0: enough, stop here */
}

/* One attempt at the service through `via` (a URL host): a TCP connect
 * (path NULL) or GET path. The HTTP status (1 for a connect), or 0 with
 * why in detail. No proxy, no redirect followed, one deadline. */
static long attempt(const struct workload *w, const char *via, const char *path, struct reply *r,
                    char *detail, size_t n)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(detail, n, "out of memory");
        return 0;
    }
    char url[512], connect_to[128], errbuf[CURL_ERROR_SIZE] = "";
    bool named = path && w->authority[0];
    const char *scheme = path && w->tls ? "https" : "http";
    if (named)
        snprintf(url, sizeof url, "%s://%s%s", scheme, w->authority, path);
    else
        snprintf(url, sizeof url, "%s://%s:%d%s", scheme, via, w->port, path ? path : "/");
    /* A named check still goes to the service's own address and port. */
    snprintf(connect_to, sizeof connect_to, "::%s:%d", via, w->port);
    struct curl_slist *to = named ? curl_slist_append(NULL, connect_to) : NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, to);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* the service is here, not behind a proxy */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CHECK_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CHECK_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "asg-agent");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (!path)
        curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    if (w->tls && w->ca_file[0]) {
        curl_easy_setopt(h, CURLOPT_CAINFO, w->ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL); /* that CA alone, not the system's too */
    }
    if (w->tls && w->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    r->len = 0;
    r->buf[0] = '\0';
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (path)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    else if (rc == CURLE_OK)
        code = 1;
    if (code <= 0) {
        code = 0;
        snprintf(detail, n, "%s: %s", via, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(to);
    curl_easy_cleanup(h);
    return code;
}

/* attempt() through each place the service may be reached, until one
 * answers. */
static long request(const struct workload *w, const char *path, struct reply *r, char *detail,
                    size_t n)
{
    char hosts[2][48];
    int count = workload_check_hosts(w->host, hosts, 2);
    long code = 0;
    for (int i = 0; i < count && code == 0; i++)
        code = attempt(w, hosts[i], path, r, detail, n);
    return code;
}

/* The service's request counter: a 2xx answer whose body begins with a
 * whole number (what else it holds is ignored). */
static bool read_count(const struct workload *w, uint64_t *count)
{
    struct reply r = {.want = sizeof r.buf - 1};
    char detail[160];
    long code = request(w, w->count_path, &r, detail, sizeof detail);
    if (code < 200 || code > 299)
        return false;
    const char *body = r.buf + strspn(r.buf, " \t\r\n");
    if (*body < '0' || *body > '9' || strspn(body, "0123456789") > 19)
        return false;
    *count = strtoull(body, NULL, 10);
    return true;
}

/* The configured check; true when it passes, else why in detail. */
static bool check_once(const struct workload *w, char *detail, size_t n)
{
    struct reply r = {.want = 0};
    if (w->check == SVC_CHECK_NONE)
        return true;
    if (w->check == SVC_CHECK_TCP) {
        if (request(w, NULL, &r, detail, n) > 0)
            return true;
        char why[120];
        copy_str(why, sizeof why, detail);
        snprintf(detail, n, "nothing accepts on port %d (%s)", w->port, why);
        return false;
    }
    long code = request(w, w->path, &r, detail, n);
    if (code == 0)
        return false;
    snprintf(detail, n, "GET %.40s answered %ld", w->path, code);
    return code >= 200 && code < 400;
}

static void *checker(void *arg)
{
    struct workload *w = arg;
    while (!atomic_load(&w->stopping)) {
        char detail[160] = "";
        bool ok = check_once(w, detail, sizeof detail);
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
        curl_global_init(CURL_GLOBAL_DEFAULT); /* before the checker's thread uses libcurl */
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
