#define _GNU_SOURCE
#include "ctlsock.h"
#include "suspend.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* [0] the controller reads, [1] the status role writes. Process-wide
 * because the pair is made once by the supervisor before it forks and is
 * inherited: each process holds the two descriptors its manager made.
 * (Several groups in one process would each need their own pair: then it
 * moves into the roles' structs.) */
static int pair[2] = {-1, -1};

int ctlsock_pair_open(void)
{
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) != 0) {
        pair[0] = pair[1] = -1;
        return -1;
    }
    int on = 1;
    if (setsockopt(pair[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
        int e = errno;
        close(pair[0]);
        close(pair[1]);
        pair[0] = pair[1] = -1;
        errno = e;
        return -1;
    }
    return 0;
}

int ctlsock_receiver(void)
{
    return pair[0];
}

/* What is wrong with a request's fields, or NULL: a kind we know, and each
 * of its fields in range. Static strings: the why of a refusal. */
static const char *ctl_request_invalid(const struct ctl_request *req)
{
    if (req->magic != CTL_REQ_MAGIC || req->kind < REQ_SET_DESIRED || req->kind > REQ_LIFECYCLE)
        return "request with a bad magic or kind";
    bool has_id = memchr(req->id, 0, sizeof req->id) != NULL;
    bool names_instance = req->kind == REQ_TERMINATE || req->kind == REQ_PROTECT || req->kind == REQ_STANDBY ||
                          req->kind == REQ_LIFECYCLE;
    if (names_instance && (!has_id || !valid_instance_id(req->id, strlen(req->id))))
        return "instance request with a bad instance id";
    if (req->kind == REQ_PROTECT && req->value != 0 && req->value != 1)
        return "protect request with a bad value (0 off, 1 on)";
    if (req->kind == REQ_STANDBY && (req->value < SB_EXIT || req->value > SB_ENTER_DECREMENT))
        return "standby request with a bad action";
    if (req->kind == REQ_LIFECYCLE && (req->value < 1 || req->value > 3)) /* common/lifecycle_msg.h */
        return "lifecycle request with a bad action";
    if (req->kind == REQ_SET_DESIRED && (req->value < 0 || req->value > 100000))
        return "desired size out of range";
    if (req->kind == REQ_ROLLOUT && (req->value < RA_START || req->value >= RA_COUNT))
        return "rollout request with a bad action";
    if (req->kind == REQ_SUSPEND && ((req->value != 0 && req->value != 1) || req->given == 0 ||
                                     (req->given & ~SUSP_ALL) || !has_id ||
                                     !suspend_by_valid(req->id, strlen(req->id))))
        return "suspend request with a bad action, processes or caller";
    const char *bad;
    if (req->kind == REQ_ROLLOUT && (bad = rollout_settings_invalid(&req->set)) != NULL)
        return bad;
    return NULL;
}

int ctlsock_recv(int fd, struct ctl_request *req, char *why, size_t whysize)
{
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    char buf[sizeof *req + 1];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return 0;
    const struct ucred *cred = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
            cred = (const struct ucred *)CMSG_DATA(c);
    if (!cred || cred->uid != getuid()) {
        snprintf(why, whysize, "request from uid %d refused: not this manager's user",
                 cred ? (int)cred->uid : -1);
        return -1;
    }
    if ((size_t)n != sizeof *req) {
        snprintf(why, whysize, "request of %zd bytes, expected %zu", n, sizeof *req);
        return -1;
    }
    memcpy(req, buf, sizeof *req);
    const char *bad = ctl_request_invalid(req);
    if (bad) {
        snprintf(why, whysize, "%s", bad);
        return -1;
    }
    return 1;
}

int ctlsock_send(const struct ctl_request *req)
{
    if (pair[1] < 0)
        return -1;
    ssize_t n;
    do
        n = send(pair[1], req, sizeof *req, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof *req ? 0 : -1;
}

const char *rollout_settings_invalid(const struct rollout_settings *s)
{
    if (s->surge < 0 || s->surge > (s->surge_pct ? 100 : 100000))
        return "max surge out of range (0..100000, or 0..100%)";
    if (s->unavailable < 0 || s->unavailable > (s->unavailable_pct ? 100 : 100000))
        return "max unavailable out of range (0..100000, or 0..100%)";
    if (s->surge_pct > 1 || s->unavailable_pct > 1 || s->rollback > 1)
        return "a flag other than 0 or 1";
    if (s->canary < 0 || s->canary > 100000)
        return "canary out of range (0..100000)";
    if (s->canary_weight < 0 || s->canary_weight > 100)
        return "canary weight out of range (0..100%)";
    if (s->bake_ms < 0 || s->bake_ms > 86400000)
        return "bake time out of range (0..86400 s)";
    if (s->npause > ROLLOUT_PAUSES)
        return "more than 4 pause points";
    for (int i = 0; i < s->npause; i++)
        if (s->pause_at[i] < 1 || s->pause_at[i] > 99 || (i && s->pause_at[i] <= s->pause_at[i - 1]))
            return "pause points must be ascending percentages within 1..99";
    return NULL;
}

int rollout_percent_parse(const char *s, int *pct)
{
    char num[8];
    size_t n = strlen(s);
    if (n && s[n - 1] == '%')
        n--;
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    long v;
    if (!parse_whole(num, 0, 100, &v))
        return -1;
    *pct = (int)v;
    return 0;
}

int rollout_pauses_parse(const char *list, struct rollout_settings *s, char *why, size_t whysize)
{
    struct rollout_settings got = *s;
    got.npause = 0;
    memset(got.pause_at, 0, sizeof got.pause_at);
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char one[8];
        int v;
        if (n == 0 || n >= sizeof one) {
            snprintf(why, whysize, "'%.40s': an empty or overlong checkpoint", list);
            return -1;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        if (got.npause == ROLLOUT_PAUSES) {
            snprintf(why, whysize, "'%.40s': more than %d checkpoints", list, ROLLOUT_PAUSES);
            return -1;
        }
        if (rollout_percent_parse(one, &v) != 0 || v < 1 || v > 99) {
            snprintf(why, whysize, "'%s' is not a percentage within 1..99", one);
            return -1;
        }
        got.pause_at[got.npause++] = v;
        if (!comma)
            break;
        p = comma + 1;
    }
    const char *bad = rollout_settings_invalid(&got);
    if (bad) {
        snprintf(why, whysize, "%s", bad);
        return -1;
    }
    *s = got;
    return 0;
}
