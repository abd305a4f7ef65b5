/* The monitor's public listener, relaying to its gRPC server (see
 * relay.h). One thread, one epoll set, level-triggered; a mutex guards the
 * connection table against the handlers (relay_peer_host, relay_vouch),
 * which run on the monitor's own loop. */
#define _GNU_SOURCE
#include "relay.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/util.h"
#include "../shm/table.h"

/* Bytes buffered per direction of a connection: our messages are a few
 * hundred bytes, certificates a few KB. */
#define RELAY_BUF 8192
/* Deadlines and gRPC's progress are looked at this often. */
#define TICK_MS 100
/* Listener events handled per wake-up: the relay's own connections get
 * their turn between bursts of accepts. */
#define ACCEPTS_PER_WAKE 256
/* After EMFILE with nothing to drop, the listener rests this long. */
#define PAUSE_MS 100
#define HOST_BUCKETS 1024
#define NAME_PREFIX "asg-relay-"

enum { SIDE_CLIENT, SIDE_GRPC };

/* What epoll carries for a connection's side: its slot, its generation
 * (an event left over from a connection closed in the same batch never
 * reaches the one that took its slot) and the side. */
#define EV_LISTENER UINT64_MAX
#define EV_KEY(c, side) ((uint64_t)(c)->gen << 32 | (uint64_t)(c)->slot << 1 | (uint64_t)(side))

/* How far an unauthenticated connection has got; over a budget, the
 * oldest of the lowest stage goes first. A stranger reopening idle
 * connections, or ones that send the first bytes of a TLS record, as fast
 * as they are dropped churned the budget in tens of milliseconds, shorter
 * than a legitimate handshake on a busy machine: each later stage takes
 * more than bytes sent blind. */
enum stage {
    STAGE_IDLE,       /* has sent nothing */
    STAGE_SPOKE,      /* has sent a whole ClientHello: relayed to gRPC */
    STAGE_ANSWERED,   /* gRPC answered it (a whole ClientHello, then) */
    STAGE_EXCHANGED,  /* it answered gRPC in turn (a handshake under way) */
    STAGES
};

struct conn {
    int fd[2];                 /* [SIDE_CLIENT]: TCP; [SIDE_GRPC]: Unix, -1 until the client speaks */
    uint32_t ev[2];            /* events armed on each side */
    uint8_t *buf[2];           /* bytes read from side s, not yet written to the other */
    size_t len[2];
    uint32_t slot, gen;        /* its abstract name: NAME_PREFIX pid-name-slot-gen */
    uint64_t name;             /* random, new for each connection (see connect_grpc) */
    struct in6_addr src;       /* IPv4 as v4-mapped */
    char host[INET6_ADDRSTRLEN];
    int64_t since_ms;
    bool used, authed, taken;
    bool replied;               /* gRPC has sent it something */
    bool closing;               /* the client's side is closed; gRPC's not yet */
    enum stage stage;
    struct conn *prev, *next;   /* its stage's list or the authed list, oldest first */
    struct conn *hprev, *hnext; /* its address's bucket (unauthenticated only), oldest first */
};

struct list {
    struct conn *head, *tail;
    uint32_t n;
};

struct relay {
    int lfd, ep;
    bool listening;
    int64_t paused_until;
    char inner[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct relay_limits lim;
    struct relay_counters cnt;
    pthread_t thread;
    pthread_mutex_t mu;
    atomic_bool stop;
    int pid;
    struct conn *conns;
    uint32_t *free_slots, nfree;
    struct list unauth[STAGES], authed;
    /* Closed on the client's side, waiting for gRPC to close its end:
     * until then gRPC holds a descriptor for it, so the slot stays taken,
     * and gRPC closing it is progress the supervisor can see. */
    struct list closing;
    uint32_t nunauth;
    struct conn *bhead[HOST_BUCKETS], *btail[HOST_BUCKETS];
    struct log_limit limit;
    int64_t next_tick;
    int deaf_fd;               /* the test hook's listener (grpc_path), -1 */
    char deaf_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- lists ---- */

static void list_push(struct list *l, struct conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static void list_del(struct list *l, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

static uint32_t bucket_of(const struct in6_addr *a)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ a->s6_addr[i]) * 16777619u;
    return h % HOST_BUCKETS;
}

static void bucket_push(struct relay *r, struct conn *c)
{
    uint32_t b = bucket_of(&c->src);
    c->hprev = r->btail[b];
    c->hnext = NULL;
    if (r->btail[b])
        r->btail[b]->hnext = c;
    else
        r->bhead[b] = c;
    r->btail[b] = c;
}

static void bucket_del(struct relay *r, struct conn *c)
{
    uint32_t b = bucket_of(&c->src);
    if (c->hprev)
        c->hprev->hnext = c->hnext;
    else
        r->bhead[b] = c->hnext;
    if (c->hnext)
        c->hnext->hprev = c->hprev;
    else
        r->btail[b] = c->hprev;
    c->hprev = c->hnext = NULL;
}

/* The unauthenticated connections from src: how many, and the one to
 * drop first (the oldest of the lowest stage). */
static uint32_t from_host(struct relay *r, const struct in6_addr *src, struct conn **victim)
{
    uint32_t n = 0;
    *victim = NULL;
    for (struct conn *c = r->bhead[bucket_of(src)]; c; c = c->hnext)
        if (memcmp(&c->src, src, sizeof *src) == 0) {
            if (!*victim || c->stage < (*victim)->stage)
                *victim = c;
            n++;
        }
    return n;
}

/* The unauthenticated connection to drop first, of all. */
static struct conn *first_victim(struct relay *r)
{
    for (int st = 0; st < STAGES; st++)
        if (r->unauth[st].head)
            return r->unauth[st].head;
    return NULL;
}

static void promote(struct relay *r, struct conn *c, enum stage st)
{
    if (c->authed || c->stage >= st)
        return;
    list_del(&r->unauth[c->stage], c);
    c->stage = st;
    list_push(&r->unauth[st], c);
}

/* ---- connections ---- */

/* Takes c off the list it is on. */
static void unlist(struct relay *r, struct conn *c)
{
    if (c->closing) {
        list_del(&r->closing, c);
    } else if (c->authed) {
        list_del(&r->authed, c);
    } else {
        list_del(&r->unauth[c->stage], c);
        r->nunauth--;
        bucket_del(r, c);
    }
}

static void conn_free(struct relay *r, struct conn *c)
{
    for (int s = 0; s < 2; s++) {
        if (c->fd[s] >= 0)
            close(c->fd[s]); /* leaves the epoll set with it */
        free(c->buf[s]);
    }
    unlist(r, c);
    uint32_t slot = c->slot, gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->slot = slot;
    c->gen = gen;
    r->free_slots[r->nfree++] = slot;
}

static void arm(struct relay *r, struct conn *c, int s, uint32_t ev);

/* Closes a connection. Its gRPC end, if gRPC has not closed it already
 * (grpc_gone), is only shut for writing: gRPC reads the end of it and
 * closes its side, and the slot is freed then (closing_done). */
static void conn_close(struct relay *r, struct conn *c, bool grpc_gone)
{
    if (c->fd[SIDE_GRPC] < 0 || grpc_gone || c->closing) {
        conn_free(r, c);
        return;
    }
    unlist(r, c);
    close(c->fd[SIDE_CLIENT]);
    c->fd[SIDE_CLIENT] = -1;
    c->ev[SIDE_CLIENT] = 0;
    c->len[SIDE_CLIENT] = c->len[SIDE_GRPC] = 0;
    shutdown(c->fd[SIDE_GRPC], SHUT_WR);
    c->closing = true;
    c->since_ms = now_ms();
    list_push(&r->closing, c);
    arm(r, c, SIDE_GRPC, EPOLLIN | EPOLLRDHUP);
}

/* A closing connection's gRPC end has something: the rest of what gRPC
 * sent is discarded; at its end gRPC has let go of it. */
static void closing_event(struct relay *r, struct conn *c)
{
    uint8_t junk[4096];
    for (;;) {
        ssize_t n = recv(c->fd[SIDE_GRPC], junk, sizeof junk, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        atomic_fetch_add(r->cnt.grpc_took, 1);
        conn_free(r, c);
        return;
    }
}

/* Closes an unauthenticated connection for the relay's own reason
 * (budget, deadline, junk): counted and logged, a few lines a second. */
static void drop(struct relay *r, struct conn *c, const char *why)
{
    atomic_fetch_add(r->cnt.dropped, 1);
    log_limited(&r->limit, LOG_LVL_WARN, "monitor: connection from %s dropped unauthenticated after %lld ms: %s",
                c->host, (long long)(now_ms() - c->since_ms), why);
    conn_close(r, c, false);
}

static void arm(struct relay *r, struct conn *c, int s, uint32_t ev)
{
    if (c->fd[s] < 0 || c->ev[s] == ev)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = EV_KEY(c, s)};
    epoll_ctl(r->ep, c->ev[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd[s], &e);
    c->ev[s] = ev;
}

/* What each side waits for: room to read into, bytes to write. */
static void rearm(struct relay *r, struct conn *c)
{
    for (int s = 0; s < 2; s++)
        arm(r, c, s, (c->len[s] < RELAY_BUF ? EPOLLIN : 0) | (c->len[!s] ? EPOLLOUT : 0) | EPOLLRDHUP);
}

/* Writes what side s sent to the other side. -1 when that side is gone. */
static int flush(struct conn *c, int s)
{
    int to = !s;
    if (!c->len[s] || c->fd[to] < 0)
        return 0;
    ssize_t n = send(c->fd[to], c->buf[s], c->len[s], MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    memmove(c->buf[s], c->buf[s] + n, c->len[s] - (size_t)n);
    c->len[s] -= (size_t)n;
    return 0;
}

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/* Is what the client sent so far a whole first flight of what gRPC
 * expects: with TLS, one handshake record holding a ClientHello (a real
 * client sends it in one piece); in plaintext, the HTTP/2 preface? 1 yes,
 * 0 not yet, -1 never. Only then is gRPC given the connection: a
 * stranger sending the first bytes of a record and nothing more stays
 * with the idle ones (dropped first) and costs gRPC nothing. */
static int first_flight(const struct relay *r, const uint8_t *b, size_t n)
{
    if (!r->lim.tls) {
        size_t k = n < sizeof H2_PREFACE - 1 ? n : sizeof H2_PREFACE - 1;
        if (memcmp(b, H2_PREFACE, k) != 0)
            return -1;
        return k == sizeof H2_PREFACE - 1;
    }
    /* content type 22 (handshake), version 3.x, length 4..16384 */
    if (b[0] != 0x16 || (n > 1 && b[1] != 0x03))
        return -1;
    if (n < 5)
        return 0;
    size_t len = (size_t)b[3] << 8 | b[4];
    if (len < 4 || len > 16384)
        return -1;
    if (n > 5 && b[5] != 0x01) /* handshake type: ClientHello */
        return -1;
    return n >= 5 + len || n >= RELAY_BUF;
}

/* The test hook monitor:grpc-deaf: from its Nth relayed connection on,
 * the relay dials a listener of its own that never accepts, as gRPC
 * 1.51's did after EMFILE. Its path, made on first use. */
static const char *grpc_path(struct relay *r)
{
    if (!fault_reached("monitor", "grpc-deaf"))
        return r->inner;
    if (r->deaf_fd < 0) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(r->deaf_path, sizeof r->deaf_path, "%.100s.deaf", r->inner);
        copy_str(a.sun_path, sizeof a.sun_path, r->deaf_path);
        unlink(r->deaf_path);
        r->deaf_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (r->deaf_fd >= 0 && (bind(r->deaf_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->deaf_fd, 64) != 0)) {
            close(r->deaf_fd);
            r->deaf_fd = -1;
        }
    }
    return r->deaf_path;
}

/* Opens the connection's Unix end to gRPC, bound to its abstract name.
 * Abstract names are listed in /proc/net/unix for every local user to
 * read, and whoever binds a name first owns it: a name anyone could
 * predict (a per-process nonce, slot and generation) let a stranger bind
 * the next thousands and keep every registration out. So each
 * connection's name has 64 random bits of its own, drawn here. */
static int connect_grpc(struct relay *r, struct conn *c)
{
    if (getrandom(&c->name, sizeof c->name, 0) != (ssize_t)sizeof c->name)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    int n = snprintf(me.sun_path + 1, sizeof me.sun_path - 1, NAME_PREFIX "%d-%016llx-%u-%u", r->pid,
                     (unsigned long long)c->name, c->slot, c->gen);
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    copy_str(to.sun_path, sizeof to.sun_path, grpc_path(r));
    if (bind(fd, (struct sockaddr *)&me, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    c->fd[SIDE_GRPC] = fd;
    return 0;
}

/* Reads what side s has; false when the connection is to be closed. */
static bool read_side(struct relay *r, struct conn *c, int s)
{
    if (!c->buf[s] && !(c->buf[s] = malloc(RELAY_BUF)))
        return false;
    if (c->len[s] == RELAY_BUF)
        return true; /* full: read again once the other side took some */
    ssize_t n = recv(c->fd[s], c->buf[s] + c->len[s], RELAY_BUF - c->len[s], MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return false;
    if (n < 0)
        return true;
    c->len[s] += (size_t)n;
    if (s == SIDE_GRPC) {
        c->replied = true;
        promote(r, c, STAGE_ANSWERED);
    } else if (c->replied) {
        promote(r, c, STAGE_EXCHANGED);
    }
    if (s == SIDE_CLIENT && c->fd[SIDE_GRPC] < 0) {
        int whole = first_flight(r, c->buf[s], c->len[s]);
        if (whole < 0) {
            drop(r, c, r->lim.tls ? "not a TLS ClientHello" : "not HTTP/2");
            return true; /* closed here */
        }
        if (whole == 0)
            return true; /* the rest of it, or its deadline */
        if (connect_grpc(r, c) != 0) {
            /* EAGAIN: gRPC's queue is full, it is not taking connections */
            drop(r, c, errno == EAGAIN ? "the gRPC server's queue is full" : "cannot reach the gRPC server");
            return true;
        }
        promote(r, c, STAGE_SPOKE);
    }
    return true;
}

static void on_event(struct relay *r, uint64_t key, uint32_t ev)
{
    uint32_t slot = (uint32_t)(key >> 1) & 0x7fffffffu, gen = (uint32_t)(key >> 32);
    int s = (int)(key & 1);
    if (slot >= r->lim.total)
        return;
    struct conn *c = &r->conns[slot];
    if (!c->used || c->gen != gen || c->fd[s] < 0)
        return; /* closed since, perhaps reused */
    if (c->closing) {
        closing_event(r, c);
        return;
    }
    bool open = true;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        open = read_side(r, c, s);
    if (!c->used || c->gen != gen || c->closing)
        return; /* dropped while reading */
    if (open && flush(c, s) != 0)
        open = false;
    if (open && (ev & EPOLLOUT) && flush(c, !s) != 0)
        open = false;
    if (!open) {
        flush(c, s); /* its last words (a TLS alert, a GOAWAY), if they fit */
        conn_close(r, c, s == SIDE_GRPC);
        return;
    }
    rearm(r, c);
}

/* ---- budgets ---- */

static struct conn *conn_new(struct relay *r, int fd, const struct sockaddr_storage *ss)
{
    struct conn *c = &r->conns[r->free_slots[--r->nfree]];
    c->used = true;
    c->fd[SIDE_CLIENT] = fd;
    c->fd[SIDE_GRPC] = -1;
    c->since_ms = now_ms();
    if (ss->ss_family == AF_INET6) {
        c->src = ((const struct sockaddr_in6 *)ss)->sin6_addr;
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        c->src.s6_addr[10] = c->src.s6_addr[11] = 0xff;
        memcpy(&c->src.s6_addr[12], &v4->sin_addr, 4);
    }
    if (IN6_IS_ADDR_V4MAPPED(&c->src))
        inet_ntop(AF_INET, &c->src.s6_addr[12], c->host, sizeof c->host);
    else
        inet_ntop(AF_INET6, &c->src, c->host, sizeof c->host);
    c->stage = STAGE_IDLE;
    list_push(&r->unauth[STAGE_IDLE], c);
    r->nunauth++;
    bucket_push(r, c);
    rearm(r, c);
    return c;
}

/* Makes room for one more connection from src: an unauthenticated one
 * goes first (the oldest of the lowest stage), from the same address when
 * that address is over its budget; an authenticated one only when the
 * table is full of them. */
static void make_room(struct relay *r, const struct in6_addr *src)
{
    struct conn *victim;
    if (from_host(r, src, &victim) >= r->lim.per_host && victim)
        drop(r, victim, "over the budget of unauthenticated connections from one address");
    if (r->nunauth >= r->lim.unauth && (victim = first_victim(r)))
        drop(r, victim, "over the budget of unauthenticated connections");
    if (r->nfree == 0 && (victim = first_victim(r)))
        drop(r, victim, "every relayed connection in use");
    if (r->nfree == 0 && r->authed.head)
        conn_close(r, r->authed.head, false); /* an agent reconnects when it next calls */
}

static void pause_listener(struct relay *r, int64_t until)
{
    if (r->listening)
        epoll_ctl(r->ep, EPOLL_CTL_DEL, r->lfd, NULL);
    r->listening = false;
    r->paused_until = until;
}

/* Takes up to ACCEPTS_PER_WAKE connections from the listener. */
static void accept_some(struct relay *r)
{
    for (int k = 0; k < ACCEPTS_PER_WAKE && r->listening; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(r->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Descriptors ran out: free the oldest unauthenticated
                 * one's; with none to free, rest rather than spin. */
                struct conn *victim = first_victim(r);
                if (victim)
                    drop(r, victim, "out of descriptors");
                else
                    pause_listener(r, now_ms() + PAUSE_MS);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            return; /* EAGAIN: the queue is empty */
        }
        atomic_fetch_add(r->cnt.accepted, 1);
        struct conn probe;
        memset(&probe, 0, sizeof probe);
        if (ss.ss_family == AF_INET6)
            probe.src = ((struct sockaddr_in6 *)&ss)->sin6_addr;
        else {
            probe.src.s6_addr[10] = probe.src.s6_addr[11] = 0xff;
            memcpy(&probe.src.s6_addr[12], &((struct sockaddr_in *)&ss)->sin_addr, 4);
        }
        make_room(r, &probe.src);
        if (r->nfree == 0) {
            /* every slot waits for gRPC to let go of it */
            atomic_fetch_add(r->cnt.dropped, 1);
            close(fd);
            continue;
        }
        conn_new(r, fd, &ss);
        if (fault_reached("monitor", "relay-deaf"))
            pause_listener(r, INT64_MAX); /* a test's deaf listener: no more accepts */
    }
}

/* 1 while gRPC has not read the first bytes relayed to it. */
static uint32_t grpc_waits(struct relay *r, struct conn *c)
{
    int queued = 0;
    if (ioctl(c->fd[SIDE_GRPC], SIOCOUTQ, &queued) != 0 || queued > 0)
        return 1;
    c->taken = true;
    atomic_fetch_add(r->cnt.grpc_took, 1);
    return 0;
}

/* Every TICK_MS: deadlines, gRPC's progress, a rested listener. */
static void tick(struct relay *r, int64_t now)
{
    /* gRPC has read a relayed connection's first bytes when none of them
     * is left in the socket's send queue: it accepted it and is serving
     * it. Bytes left there for long mean a gRPC that takes no
     * connections: the supervisor watches for that (grpc_waiting). */
    uint32_t waiting = 0;
    for (struct conn *c = r->closing.head, *next; c; c = next) {
        next = c->next;
        if (now - c->since_ms >= r->lim.handshake_ms)
            conn_free(r, c); /* gRPC never let go: the supervisor sees waiting */
        else
            waiting++;
    }
    for (int st = 0; st < STAGES; st++)
        for (struct conn *c = r->unauth[st].head, *next; c; c = next) {
            next = c->next;
            if (now - c->since_ms >= r->lim.handshake_ms)
                drop(r, c, "not authenticated in time");
            else if (st != STAGE_IDLE && !c->taken)
                waiting += grpc_waits(r, c);
        }
    atomic_store(r->cnt.grpc_waiting, waiting);
    if (!r->listening && now >= r->paused_until) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = EV_LISTENER};
        if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->lfd, &e) == 0)
            r->listening = true;
    }
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct epoll_event evs[256];
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the monitor loop's */
    while (!atomic_load(&r->stop)) {
        int n = epoll_wait(r->ep, evs, 256, TICK_MS);
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == EV_LISTENER)
                accept_some(r);
            else
                on_event(r, evs[i].data.u64, evs[i].events);
        }
        int64_t now = now_ms();
        if (now >= r->next_tick) {
            tick(r, now);
            r->next_tick = now + TICK_MS;
        }
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

/* ---- public ---- */

int relay_listen(const char *addr, char *bound, size_t bsize, char *err, size_t errsize)
{
    char host[TABLE_ADDR_MAX];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        snprintf(err, errsize, "%s: not host:port", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    /* gRPC bound 0.0.0.0 as [::], taking IPv6 clients too: so do we */
    bool any4 = strcmp(h, "0.0.0.0") == 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int rc = getaddrinfo(any4 ? "::" : h, colon + 1, &hints, &ai);
    if (rc != 0 && any4)
        rc = getaddrinfo(h, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errsize, "%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && any4)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errsize, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(bound, bsize, "%.*s:%d", (int)(colon - addr), addr, port);
    return fd;
}

struct relay *relay_start(int listen_fd, const char *inner_path, const struct relay_limits *lim,
                          const struct relay_counters *cnt, char *err, size_t errsize)
{
    struct relay *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->lfd = listen_fd;
    r->lim = *lim;
    r->cnt = *cnt;
    r->pid = (int)getpid();
    r->deaf_fd = -1;
    r->paused_until = 0;
    copy_str(r->inner, sizeof r->inner, inner_path);
    r->conns = calloc(lim->total, sizeof *r->conns);
    r->free_slots = calloc(lim->total, sizeof *r->free_slots);
    if (!r->conns || !r->free_slots)
        abort();
    for (uint32_t i = 0; i < lim->total; i++) {
        r->conns[i].slot = i;
        r->free_slots[r->nfree++] = lim->total - 1 - i;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = EV_LISTENER};
    r->listening = r->ep >= 0 && epoll_ctl(r->ep, EPOLL_CTL_ADD, listen_fd, &e) == 0;
    if (!r->listening || pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        snprintf(err, errsize, "cannot start the relay: %s", strerror(errno));
        if (r->ep >= 0)
            close(r->ep);
        close(listen_fd);
        free(r->conns);
        free(r->free_slots);
        free(r);
        return NULL;
    }
    return r;
}

void relay_stop(struct relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    for (uint32_t i = 0; i < r->lim.total; i++)
        if (r->conns[i].used)
            conn_free(r, &r->conns[i]);
    close(r->lfd);
    close(r->ep);
    if (r->deaf_fd >= 0) {
        unlink(r->deaf_path);
        close(r->deaf_fd);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->conns);
    free(r->free_slots);
    free(r);
}

/* The connection gRPC names peer: gRPC 1.51 reports a client bound to an
 * abstract name as "unix-abstract:" and the name, here
 * asg-relay-PID-NAME-SLOT-GEN (seen from grpc_call_get_peer in a
 * handler). Ours only when pid, the connection's random name, slot and
 * generation all match. With r->mu held. */
static struct conn *by_peer(struct relay *r, const char *peer)
{
    const char *p = peer ? strstr(peer, NAME_PREFIX) : NULL;
    int pid;
    unsigned long long name;
    unsigned slot, gen;
    char tail;
    if (!p || sscanf(p + strlen(NAME_PREFIX), "%d-%16llx-%u-%u%c", &pid, &name, &slot, &gen, &tail) != 4 ||
        pid != r->pid || slot >= r->lim.total)
        return NULL;
    struct conn *c = &r->conns[slot];
    return c->used && c->gen == gen && c->name == name ? c : NULL;
}

bool relay_peer_host(struct relay *r, const char *grpc_peer, char *host, size_t size)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->mu);
    struct conn *c = by_peer(r, grpc_peer);
    bool ok = c && copy_str(host, size, c->host);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void relay_vouch(struct relay *r, const char *grpc_peer)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    struct conn *c = by_peer(r, grpc_peer);
    if (c && !c->authed && !c->closing) {
        list_del(&r->unauth[c->stage], c);
        r->nunauth--;
        bucket_del(r, c);
        c->authed = true;
        c->taken = true;
        list_push(&r->authed, c);
    }
    pthread_mutex_unlock(&r->mu);
}

bool relay_inner_path(const char *dir, int pid, char *out, size_t size)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(path, sizeof path, "%s/monitor-%d.sock", dir, pid);
    return n > 0 && (size_t)n < sizeof path && copy_str(out, size, path);
}

void relay_clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        char tail[8];
        if (sscanf(e->d_name, "monitor-%d.so%7s", &pid, tail) != 2 || strcmp(tail, "ck") != 0 || pid <= 0 ||
            pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}
