#define _GNU_SOURCE
#include "ctlsock.h"
#include "util.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t address(const char *shm_name, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* Abstract namespace: no file to clean up after a crash. */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "asg-controller%s", shm_name);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int ctlsock_listen(const char *shm_name)
{
    struct sockaddr_un a;
    socklen_t len = address(shm_name, &a);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&a, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
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
    if (req->magic != CTL_REQ_MAGIC || req->kind < REQ_SET_DESIRED || req->kind > REQ_TERMINATE) {
        snprintf(why, whysize, "request with a bad magic or kind %u", req->kind);
        return -1;
    }
    if (req->kind == REQ_TERMINATE &&
        (!memchr(req->id, 0, sizeof req->id) || !valid_instance_id(req->id, strlen(req->id)))) {
        snprintf(why, whysize, "terminate request with a bad instance id");
        return -1;
    }
    if (req->kind == REQ_SET_DESIRED && (req->value < 1 || req->value > 100000)) {
        snprintf(why, whysize, "desired size %d out of range", req->value);
        return -1;
    }
    return 1;
}

int ctlsock_send(const char *shm_name, const struct ctl_request *req)
{
    struct sockaddr_un a;
    socklen_t len = address(shm_name, &a);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t n = sendto(fd, req, sizeof *req, 0, (struct sockaddr *)&a, len);
    close(fd);
    return n == (ssize_t)sizeof *req ? 0 : -1;
}
