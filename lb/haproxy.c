/* lb.kind = "haproxy": servers of one backend, through HAProxy's runtime
 * API (its stats socket, which must be at `level admin`).
 *
 * HAProxy reads one command per connection and closes it after the
 * answer, so each call here is connect, write one line, read to EOF, all
 * under one deadline. Answers are text meant for people; the few this
 * file relies on are matched exactly, and anything else is an error that
 * quotes HAProxy's first line. */
#define _GNU_SOURCE
#include "lb.h"
#include "../common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* `show stat` of a backend of 10,000 servers is about 6 MB. */
#define HAPROXY_ANSWER_MAX (32u << 20)

struct haproxy {
    char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char backend[64];
    int timeout_ms;
};

static struct haproxy *hap(struct lb *lb) { return lb->priv; }

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* The process at the other end of a connected socket must be root's or
 * ours: the file's owner (checked before connecting) says who made the
 * path, not who answers on it now (the path may have been swapped since,
 * or the listener handed to another user). */
static int check_peer(int fd, const char *path, char *err, size_t errsize)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof cr) {
        snprintf(err, errsize, "refused HAProxy socket %.100s: cannot learn who listens on it: %s", path,
                 strerror(errno));
        return -1;
    }
    if (cr.uid != 0 && cr.uid != geteuid()) {
        snprintf(err, errsize,
                 "refused HAProxy socket %.100s: the process listening on it runs as uid %u, not root or "
                 "asgd's uid %u", path, (unsigned)cr.uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

static int connect_socket(const char *path, char *err, size_t errsize)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!copy_str(sa.sun_path, sizeof sa.sun_path, path)) {
        snprintf(err, errsize, "HAProxy socket %.80s: path too long", path);
        return -1;
    }
    /* Whoever answers on this socket steers the group (request rates,
     * drains): only HAProxy started by root or by asgd's own user. */
    struct stat st;
    if (lstat(path, &st) != 0) {
        snprintf(err, errsize, "HAProxy socket %.100s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errsize, "HAProxy socket %.100s: not a socket", path);
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errsize, "refused HAProxy socket %.100s: owned by uid %u, not root or asgd's uid %u",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errsize, "socket: %s", strerror(errno));
        return -1;
    }
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof sa)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        snprintf(err, errsize, "HAProxy socket %.100s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (check_peer(fd, path, err, errsize) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *s, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int read_all(int fd, char **out, int64_t deadline, char *err, size_t errsize)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= HAPROXY_ANSWER_MAX) {
                snprintf(err, errsize, "HAProxy's answer is larger than %u bytes", HAPROXY_ANSWER_MAX);
                free(buf);
                return -1;
            }
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r > 0) {
            len += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            if (wait_fd(fd, POLLIN, deadline) != 0) {
                snprintf(err, errsize, "HAProxy did not answer in time");
                free(buf);
                return -1;
            }
        } else {
            snprintf(err, errsize, "reading HAProxy's answer: %s", strerror(errno));
            free(buf);
            return -1;
        }
    }
    if (memchr(buf, '\0', len)) {
        snprintf(err, errsize, "HAProxy's answer holds a NUL byte");
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

int haproxy_command(const char *socket_path, int timeout_ms, const char *cmd, char **out,
                    char *err, size_t errsize)
{
    *out = NULL;
    if (strchr(cmd, '\n') || strchr(cmd, ';')) {
        snprintf(err, errsize, "refusing a command of more than one line");
        return -1;
    }
    int64_t deadline = now_ms() + timeout_ms;
    int fd = connect_socket(socket_path, err, errsize);
    if (fd < 0)
        return -1;
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    int rc = -1;
    if (n <= 0 || (size_t)n >= sizeof line)
        snprintf(err, errsize, "command too long");
    else if (send_all(fd, line, (size_t)n, deadline) != 0)
        snprintf(err, errsize, "HAProxy socket %.100s: cannot send: %s", socket_path,
                 errno ? strerror(errno) : "timed out");
    else
        rc = read_all(fd, out, deadline, err, errsize);
    close(fd);
    return rc;
}

/* ---- show stat ---- */

/* Splits one CSV line in place (HAProxy quotes a field with commas or
 * quotes in it and doubles the quotes). Returns the number of fields. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *w = p;
        fields[n++] = w;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    break;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                *w++ = *p++;
        }
        bool more = *p == ',';
        if (more)
            p++;
        *w = '\0';
        if (!more)
            break;
    }
    return n;
}

/* The columns read; from C_REQ_TOT on, a column may be missing (an older
 * HAProxy). Weights: "uweight" is the weight `set weight` sets, "weight"
 * the effective one (lower during a slow start, other in maintenance); the
 * first is read where there is one, so that a weight set is read back as
 * set. */
enum { C_PX, C_SV, C_STATUS, C_SCUR, C_QCUR, C_STOT, C_TYPE, C_REQ_TOT, C_ADDR, C_5XX, C_WEIGHT, C_UWEIGHT,
       C_WRETR, C_COUNT };
#define C_REQUIRED C_REQ_TOT
static const char *const stat_columns[C_COUNT] = {"pxname", "svname",  "status",   "scur",   "qcur",
                                                  "stot",   "type",    "req_tot",  "addr",   "hrsp_5xx",
                                                  "weight", "uweight",  "wretr"};

#define STAT_FIELDS_MAX 256

static int stat_header(char *line, int *col, char *err, size_t errsize)
{
    if (strncmp(line, "# ", 2) != 0) {
        snprintf(err, errsize, "HAProxy's show stat has no header line (it began \"%.60s\")", line);
        return -1;
    }
    char *f[STAT_FIELDS_MAX];
    size_t n = csv_split(line + 2, f, STAT_FIELDS_MAX);
    for (int c = 0; c < C_COUNT; c++) {
        col[c] = -1;
        for (size_t i = 0; i < n; i++)
            if (strcmp(f[i], stat_columns[c]) == 0)
                col[c] = (int)i;
        if (col[c] < 0 && c < C_REQUIRED) {
            snprintf(err, errsize, "HAProxy's show stat has no column %s", stat_columns[c]);
            return -1;
        }
    }
    return 0;
}

static int admin_of(const char *status)
{
    if (strncmp(status, "MAINT", 5) == 0)
        return LBM_MAINT;
    if (strncmp(status, "DRAIN", 5) == 0)
        return LBM_DRAIN;
    if (strncmp(status, "UP", 2) == 0 || strncmp(status, "DOWN", 4) == 0 ||
        strcmp(status, "no check") == 0 || strncmp(status, "NOLB", 4) == 0)
        return LBM_READY;
    return LBM_OTHER;
}

static bool stat_number(const char *s, uint64_t *out)
{
    long v;
    if (s[0] == '\0') {
        *out = 0;
        return true;
    }
    if (!parse_whole(s, 0, INT64_MAX, &v))
        return false;
    *out = (uint64_t)v;
    return true;
}

/* An optional column's field, "" when HAProxy has no such column (or
 * leaves it empty: tcp mode has no HTTP counters). */
static const char *optional(char **f, const int *col, int c) { return col[c] >= 0 ? f[col[c]] : ""; }

static int stat_row(char **f, size_t nf, const int *col, int lineno, struct lb_member *m,
                    char *err, size_t errsize)
{
    for (int c = 0; c < C_COUNT; c++)
        if (col[c] >= (int)nf) {
            snprintf(err, errsize, "HAProxy's show stat line %d has %zu fields, too few", lineno, nf);
            return -1;
        }
    memset(m, 0, sizeof *m);
    uint64_t scur, qcur, stot, req = 0, errors = 0, weight = 0, retried = 0;
    const char *reqs = optional(f, col, C_REQ_TOT), *e5 = optional(f, col, C_5XX);
    const char *w = col[C_UWEIGHT] >= 0 ? f[col[C_UWEIGHT]] : optional(f, col, C_WEIGHT);
    if (!copy_str(m->name, sizeof m->name, f[col[C_SV]]) || !stat_number(f[col[C_SCUR]], &scur) ||
        !stat_number(f[col[C_QCUR]], &qcur) || !stat_number(f[col[C_STOT]], &stot) ||
        !stat_number(reqs, &req) || !stat_number(e5, &errors) || !stat_number(w, &weight) ||
        !stat_number(optional(f, col, C_WRETR), &retried) ||
        scur > UINT32_MAX || qcur > UINT32_MAX || weight > LB_WEIGHT_MAX) {
        snprintf(err, errsize, "HAProxy's show stat line %d: a bad name or number", lineno);
        return -1;
    }
    if (col[C_ADDR] >= 0)
        copy_str(m->addr, sizeof m->addr, f[col[C_ADDR]]);
    m->admin = admin_of(f[col[C_STATUS]]);
    m->sessions = (uint32_t)(scur + qcur);
    /* An attempt HAProxy retried on another server (retry-on 503, a
     * failed connection) is in neither req_tot nor hrsp_5xx, but wretr: a
     * server answering only 503 behind retry-on 503 would otherwise look
     * idle, never bad. Counted as a request it got and failed. */
    m->has_requests = reqs[0] != '\0';
    m->requests = m->has_requests ? req + retried : stot;
    m->has_errors = e5[0] != '\0';
    m->errors = m->has_errors ? errors + retried : 0;
    m->has_weight = w[0] != '\0';
    m->weight = (uint32_t)weight;
    return 0;
}

/* Whether a split line is a row of this type ("1" the backend's own, "2" a
 * server) of this backend; a line too short to say is not (the header may
 * put pxname after type: both are checked to be there). */
static bool row_is(char **f, size_t nf, const int *col, const char *type, const char *backend)
{
    return nf > (size_t)col[C_TYPE] && nf > (size_t)col[C_PX] && strcmp(f[col[C_TYPE]], type) == 0 &&
           strcmp(f[col[C_PX]], backend) == 0;
}

int haproxy_parse_stat(const char *csv, const char *backend, struct lb_member **out, size_t *n,
                       char *err, size_t errsize)
{
    *out = NULL;
    *n = 0;
    char *text = strdup(csv);
    if (!text)
        abort();
    int col[C_COUNT], lineno = 0, rc = 0;
    size_t cap = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (lineno == 1) {
            rc = stat_header(line, col, err, errsize);
            continue;
        }
        char *f[STAT_FIELDS_MAX];
        size_t nf = csv_split(line, f, STAT_FIELDS_MAX);
        if (!row_is(f, nf, col, "2", backend))
            continue; /* not a server of this backend */
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = realloc(*out, cap * sizeof **out);
            if (!*out)
                abort();
        }
        rc = stat_row(f, nf, col, lineno, &(*out)[*n], err, errsize);
        if (rc == 0)
            (*n)++;
    }
    if (lineno == 0) {
        snprintf(err, errsize, "HAProxy's show stat was empty");
        rc = -1;
    }
    free(text);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* The backend's own row: a request HAProxy holds for want of a server
 * (in its queue, or waiting in an http-request action before it) is a
 * session at the backend already, so a group with no instance sees it. */
int haproxy_parse_backend(const char *csv, const char *backend, struct lb_demand *d, char *err,
                          size_t errsize)
{
    memset(d, 0, sizeof *d);
    char *text = strdup(csv);
    if (!text)
        abort();
    int col[C_COUNT], lineno = 0, rc = -1;
    char *save = NULL;
    snprintf(err, errsize, "HAProxy's show stat has no BACKEND row for %s", backend);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (lineno == 1) {
            if (stat_header(line, col, err, errsize) != 0)
                break;
            continue;
        }
        char *f[STAT_FIELDS_MAX];
        size_t nf = csv_split(line, f, STAT_FIELDS_MAX);
        if (!row_is(f, nf, col, "1", backend))
            continue;
        uint64_t stot, scur, qcur;
        if (nf <= (size_t)col[C_QCUR] || nf <= (size_t)col[C_SCUR] || nf <= (size_t)col[C_STOT] ||
            !stat_number(f[col[C_STOT]], &stot) || !stat_number(f[col[C_SCUR]], &scur) ||
            !stat_number(f[col[C_QCUR]], &qcur) || scur > UINT32_MAX || qcur > UINT32_MAX) {
            snprintf(err, errsize, "HAProxy's show stat line %d: a bad number in the BACKEND row", lineno);
            break;
        }
        d->sessions = stot;
        d->current = (uint32_t)scur;
        d->queued = (uint32_t)qcur;
        rc = 0;
        break;
    }
    free(text);
    return rc;
}

/* ---- the balancer ---- */

/* The first line of an answer, for messages. */
static const char *first_line(const char *s, char *buf, size_t size)
{
    size_t n = strcspn(s, "\r\n");
    if (n >= size)
        n = size - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
            buf[i] = '?';
    return n ? buf : "(an empty answer)";
}

static bool blank(const char *s) { return s[strspn(s, " \r\n")] == '\0'; }

/* Runs cmd; 0 when HAProxy answered one of the expected texts (NULL: an
 * empty answer), 1 when it said the server does not exist, -1 otherwise. */
static int expect(struct lb *lb, const char *cmd, const char *ok1, const char *ok2, char *err,
                  size_t errsize)
{
    struct haproxy *h = hap(lb);
    char *ans = NULL, line[120];
    if (haproxy_command(h->socket, h->timeout_ms, cmd, &ans, err, errsize) != 0)
        return -1;
    int rc;
    if ((!ok1 && blank(ans)) || (ok1 && strstr(ans, ok1)) || (ok2 && strstr(ans, ok2))) {
        rc = 0;
    } else if (strstr(ans, "No such server")) {
        rc = 1;
    } else {
        const char *l = first_line(ans, line, sizeof line);
        if (strstr(ans, "Permission denied"))
            snprintf(err, errsize, "HAProxy refused \"%.60s\": %s (the stats socket needs `level admin`)",
                     cmd, l);
        else if (strstr(ans, "No such backend") || strstr(ans, "No such proxy"))
            snprintf(err, errsize, "HAProxy has no backend %s (lb.haproxy.backend)", h->backend);
        else
            snprintf(err, errsize, "HAProxy answered \"%.60s\" with: %s", cmd, l);
        rc = -1;
    }
    free(ans);
    return rc;
}

static int hap_list(struct lb *lb, struct lb_member **out, size_t *n, char *err, size_t errsize)
{
    struct haproxy *h = hap(lb);
    char cmd[128], *ans = NULL, line[120];
    snprintf(cmd, sizeof cmd, "show stat %s 6 -1", h->backend); /* the backend's row and its servers' */
    if (haproxy_command(h->socket, h->timeout_ms, cmd, &ans, err, errsize) != 0)
        return -1;
    int rc;
    if (strncmp(ans, "# ", 2) != 0) {
        if (strstr(ans, "No such") || blank(ans))
            snprintf(err, errsize, "HAProxy has no backend %s (lb.haproxy.backend): %s", h->backend,
                     first_line(ans, line, sizeof line));
        else
            snprintf(err, errsize, "HAProxy answered show stat with: %s", first_line(ans, line, sizeof line));
        rc = -1;
    } else {
        rc = haproxy_parse_stat(ans, h->backend, out, n, err, errsize);
    }
    /* Without the backend's row, no demand is seen: scale to zero waits. */
    struct lb_demand d;
    char why[160];
    if (rc == 0 && haproxy_parse_backend(ans, h->backend, &d, why, sizeof why) == 0) {
        d.read_ms = now_ms();
        lb->demand = d;
    } else if (rc == 0) {
        log_debug("%s", why);
    }
    free(ans);
    return rc;
}

static int hap_add(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "add server %s/%s %s weight %d", hap(lb)->backend, name, addr, LB_WEIGHT_BASE);
    int rc = expect(lb, cmd, "New server registered", "Already exists a server", err, errsize);
    if (rc != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "set server %s/%s state ready", hap(lb)->backend, name);
    return expect(lb, cmd, NULL, NULL, err, errsize) == 0 ? 0 : -1;
}

static int hap_drain(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize)
{
    (void)addr;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "set server %s/%s state drain", hap(lb)->backend, name);
    int rc = expect(lb, cmd, NULL, NULL, err, errsize);
    return rc < 0 ? -1 : 0; /* not there: nothing to drain */
}

/* HAProxy deletes only a server in maintenance with no connection left. */
static int hap_remove(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize)
{
    (void)addr;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "set server %s/%s state maint", hap(lb)->backend, name);
    int rc = expect(lb, cmd, NULL, NULL, err, errsize);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    snprintf(cmd, sizeof cmd, "del server %s/%s", hap(lb)->backend, name);
    rc = expect(lb, cmd, "Server deleted", NULL, err, errsize);
    return rc < 0 ? -1 : 0;
}

/* HAProxy answers nothing when it took the weight, and says why not
 * otherwise (a weight out of range, no such server). */
static int hap_set_weight(struct lb *lb, const char *name, const char *addr, uint32_t weight, char *err,
                          size_t errsize)
{
    (void)addr;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "set weight %s/%s %u", hap(lb)->backend, name, (unsigned)weight);
    int rc = expect(lb, cmd, NULL, NULL, err, errsize);
    if (rc == 1)
        snprintf(err, errsize, "HAProxy has no server %s/%s to weigh", hap(lb)->backend, name);
    return rc == 0 ? 0 : -1;
}

const struct lb_ops lb_haproxy_ops = {
    .name = "haproxy",
    .list = hap_list,
    .add = hap_add,
    .drain = hap_drain,
    .remove = hap_remove,
    .set_weight = hap_set_weight,
};

int lb_haproxy_init(struct lb *lb, char *err, size_t errsize)
{
    struct haproxy *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    if (!copy_str(h->socket, sizeof h->socket, lb->cfg->lb_haproxy_socket)) {
        snprintf(err, errsize, "lb.haproxy.socket is longer than a Unix socket path may be");
        free(h);
        return -1;
    }
    copy_str(h->backend, sizeof h->backend, lb->cfg->lb_haproxy_backend);
    h->timeout_ms = lb->cfg->lb_call_timeout_ms;
    lb->priv = h;
    lb->ops = &lb_haproxy_ops;
    return 0;
}
