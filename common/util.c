#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *array_room(void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return items;
    *cap = *cap ? *cap * 2 : 16;
    items = realloc(items, *cap * size);
    if (!items)
        abort();
    return items;
}

bool copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size);
    if (n >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

bool parse_whole(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool valid_instance_id(const char *id, size_t len)
{
    if (len == 0 || len > 63 || !isalnum((unsigned char)id[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool valid_host(const char *h, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-')
            return false;
    }
    return true;
}

bool valid_address(const char *addr, size_t len, bool allow_port0,
                   char *err, size_t errsize)
{
    if (len == 0 || len > 63) {
        snprintf(err, errsize, "address must be 1..63 characters");
        return false;
    }
    if (memchr(addr, '\0', len)) {
        snprintf(err, errsize, "address contains a NUL byte");
        return false;
    }
    const char *colon = memrchr(addr, ':', len);
    if (!colon) {
        snprintf(err, errsize, "address '%.*s' is not host:port", (int)len, addr);
        return false;
    }
    if (!valid_host(addr, (size_t)(colon - addr))) {
        snprintf(err, errsize, "address '%.*s' has a bad host", (int)len, addr);
        return false;
    }
    size_t plen = len - (size_t)(colon - addr) - 1;
    long port = 0;
    if (plen == 0 || plen > 5)
        port = -1;
    for (size_t i = 0; i < plen && port >= 0; i++) {
        char c = colon[1 + i];
        port = isdigit((unsigned char)c) ? port * 10 + (c - '0') : -1;
    }
    if (port < (allow_port0 ? 0 : 1) || port > 65535) {
        snprintf(err, errsize, "address '%.*s' has a bad port", (int)len, addr);
        return false;
    }
    return true;
}

/* ---- logging ---- */

/* Process-wide because a process has one log (stderr or syslog's
 * connection) and one role name in it: the sink every role and library
 * writes through, set at the process's start. */
static char log_role[32] = "asg";
static bool log_syslog;
static int log_facility = LOG_DAEMON;
static enum log_level log_level = LOG_LVL_INFO;
/* Process-wide because stderr is the process's: whether it is systemd's
 * journal, -1 not yet asked (the first line asks), 0 no, 1 yes. A forked
 * role inherits the answer with stderr. */
static int log_journal = -1;

void log_set_role(const char *role)
{
    copy_str(log_role, sizeof log_role, role);
    if (log_syslog) {
        closelog();
        openlog("asgd", LOG_PID | LOG_NDELAY, log_facility);
    }
}

void log_use_syslog(bool on)
{
    log_syslog = on;
    if (on)
        openlog("asgd", LOG_PID | LOG_NDELAY, log_facility);
}

void log_set_facility(int facility)
{
    if (facility == log_facility)
        return;
    log_facility = facility;
    if (log_syslog) {
        closelog();
        openlog("asgd", LOG_PID | LOG_NDELAY, log_facility);
    }
}

void log_set_level(enum log_level lvl) { log_level = lvl; }

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected
 * to the service's stdout/stderr. The variable alone proves nothing (a
 * shell started from a unit passes it on to programs whose stderr is a
 * terminal or a file): stderr is the journal only when it is that very
 * file. */
bool log_stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char end;
    struct stat st;
    if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* A line for stderr. For the journal: "<N>" (the syslog priority, which
 * journald takes off and files the line under) and no time (journald
 * stamps each line itself); a newline inside the message would start a
 * line without its priority, so it becomes a space. For a person (asgd
 * -f on a terminal or into a file): the local time first. */
static int format_line(char *line, size_t size, enum log_level lvl, char *msg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (log_journal < 0)
        log_journal = log_stderr_is_journal();
    if (log_journal) {
        for (char *p = msg; (p = strchr(p, '\n')) != NULL;)
            *p = ' ';
        return snprintf(line, size, "<%d>%s[%d] %s: %s\n", prio[lvl], log_role, (int)getpid(),
                        names[lvl], msg);
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    return snprintf(line, size, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%d] %s: %s\n",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts.tv_nsec / 1000000, log_role, (int)getpid(), names[lvl], msg);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (lvl > log_level)
        return;
    int saved = errno;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_syslog) {
        syslog(prio[lvl], "%s: %s", log_role, msg);
    } else {
        char line[1200];
        int n = format_line(line, sizeof line, lvl, msg);
        if (n > (int)sizeof line - 1) {
            n = (int)sizeof line - 1;
            line[n - 1] = '\n'; /* cut, but still one whole line */
        }
        /* One write per line so that lines of several processes sharing
         * stderr never interleave. */
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
    errno = saved;
}

bool log_limit_take(struct log_limit *l, enum log_level lvl)
{
    int64_t now = now_ms();
    if (now - l->window_ms >= 1000) {
        if (l->suppressed)
            log_msg(lvl, "(%llu more like the last line in the last second, not logged)",
                    (unsigned long long)l->suppressed);
        l->window_ms = now;
        l->lines = 0;
        l->suppressed = 0;
    }
    if (l->lines >= LOG_LIMIT_PER_S) {
        l->suppressed++;
        return false;
    }
    l->lines++;
    return true;
}

void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
{
    if (!log_limit_take(l, lvl))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_msg(lvl, "%s", msg);
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- signals ---- */

/* Process-wide because signals are delivered to the process: the flags
 * (volatile sig_atomic_t, all the handler sets) and the self-pipe the
 * handler writes to so that a poll wakes up. */
struct sigflags g_sig;
static int self_pipe[2] = {-1, -1};
/* Process-wide because a signal's disposition is the process's: a role of
 * asgd leaves SIGINT to the supervisor (signals_leave_interrupt). */
static bool interrupt_left;

static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGHUP: g_sig.hup = 1; break;
    case SIGTERM:
    case SIGINT: g_sig.term = 1; break;
    case SIGCHLD: g_sig.chld = 1; break;
    default: break;
    }
    if (self_pipe[1] >= 0) {
        char b = (char)sig;
        ssize_t w = write(self_pipe[1], &b, 1);
        (void)w;
    }
    errno = saved;
}

int signals_install(bool want_chld)
{
    if (self_pipe[0] < 0 && pipe2(self_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (interrupt_left)
        signal(SIGINT, SIG_IGN);
    else
        sigaction(SIGINT, &sa, NULL);
    if (want_chld) {
        sa.sa_flags |= SA_NOCLDSTOP;
        sigaction(SIGCHLD, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    return self_pipe[0];
}

void signals_reset_pipe(void)
{
    if (self_pipe[0] >= 0) {
        close(self_pipe[0]);
        close(self_pipe[1]);
    }
    self_pipe[0] = self_pipe[1] = -1;
    g_sig.hup = g_sig.term = g_sig.chld = 0;
}

void signals_drain_pipe(void)
{
    char buf[64];
    while (self_pipe[0] >= 0 && read(self_pipe[0], buf, sizeof buf) > 0)
        ;
}

void signals_leave_interrupt(void) { interrupt_left = true; }

void signals_reset_defaults(void)
{
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void set_proc_title(int argc, char **argv, const char *title)
{
    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (argc < 1 || !argv || !argv[0])
        return;
    /* The argv strings are contiguous: overwrite them in place. */
    char *start = argv[0];
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    size_t room = (size_t)(end - start);
    size_t n = strlen(title);
    if (n > room)
        n = room;
    memcpy(start, title, n);
    memset(start + n, 0, room - n + 1);
}

/* One family's listening TCP sockets on port, through the kernel's
 * sock_diag netlink interface, each handed to visit: asked for LISTEN
 * sockets only, so the answer is as long as the machine's list of
 * listeners, however many connections it has (/proc/net/tcp lists every
 * socket: tens of thousands in TIME_WAIT on a busy server, seconds to
 * read). -1 when the kernel cannot be asked. */
static int scan_listeners(int family, int port, void (*visit)(const struct inet_diag_msg *, void *), void *arg)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } q;
    memset(&q, 0, sizeof q);
    q.nlh.nlmsg_len = sizeof q;
    q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    q.req.sdiag_family = (uint8_t)family;
    q.req.sdiag_protocol = IPPROTO_TCP;
    q.req.idiag_states = 1u << 10; /* TCP_LISTEN */
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &q, sizeof q, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof q) {
        close(fd);
        return -1;
    }
    long buf[8192 / sizeof(long)];
    for (;;) {
        ssize_t got;
        do
            got = recv(fd, buf, sizeof buf, 0);
        while (got < 0 && errno == EINTR);
        if (got <= 0)
            break;
        /* NLMSG_OK/NLMSG_NEXT spelled out: the macros compare the
         * kernel's unsigned length with an int, which clang refuses */
        size_t n = (size_t)got;
        for (size_t off = 0; n - off >= sizeof(struct nlmsghdr);) {
            struct nlmsghdr *h = (struct nlmsghdr *)((char *)buf + off);
            if (h->nlmsg_len < sizeof *h || h->nlmsg_len > n - off)
                break;
            off += NLMSG_ALIGN(h->nlmsg_len);
            if (off > n)
                off = n;
            if (h->nlmsg_type == NLMSG_DONE) {
                close(fd);
                return 0;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                int e = EIO; /* the kernel's own reason, when it sent one */
                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                    e = -((const struct nlmsgerr *)NLMSG_DATA(h))->error;
                close(fd);
                errno = e;
                return -1;
            }
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (h->nlmsg_len >= NLMSG_LENGTH(sizeof *m) && ntohs(m->id.idiag_sport) == port)
                visit(m, arg);
        }
    }
    close(fd);
    return -1;
}

/* Lowers *best to the accept queue of a listener of ours. */
static void shortest_queue(const struct inet_diag_msg *m, void *arg)
{
    long *best = arg;
    if (m->idiag_uid == (uint32_t)geteuid() && (*best < 0 || (long)m->idiag_rqueue < *best))
        *best = (long)m->idiag_rqueue;
}

struct port_owners {
    int listeners;
    long stranger; /* the first uid neither root nor ours, or -1 */
};

static void note_owner(const struct inet_diag_msg *m, void *arg)
{
    struct port_owners *o = arg;
    o->listeners++;
    if (o->stranger < 0 && m->idiag_uid != 0 && m->idiag_uid != (uint32_t)geteuid())
        o->stranger = (long)m->idiag_uid;
}

int tcp_port_trusted(int port, char *why, size_t n)
{
    struct port_owners o = {0, -1};
    errno = 0;
    /* Both families: a dual-stack [::] listener takes IPv4 connections. */
    if (scan_listeners(AF_INET, port, note_owner, &o) != 0 || scan_listeners(AF_INET6, port, note_owner, &o) != 0) {
        snprintf(why, n, "the kernel could not be asked who holds port %d (sock_diag%s%s)", port,
                 errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    if (o.stranger >= 0) {
        snprintf(why, n, "the port is held by uid %ld, neither root nor ours", o.stranger);
        return -1;
    }
    if (o.listeners == 0) {
        snprintf(why, n, "nothing listens on port %d, so nobody vouches for whoever will", port);
        return -1;
    }
    return 0;
}

long tcp_accept_queue(int port)
{
    long best = -1;
    scan_listeners(AF_INET, port, shortest_queue, &best);
    scan_listeners(AF_INET6, port, shortest_queue, &best);
    return best;
}
