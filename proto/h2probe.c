/* The probe engine (see h2probe.h): gRPC unary calls over HTTP/2 (RFC
 * 9113) written and parsed here, HPACK (RFC 7541) by nghttp2, TLS by
 * OpenSSL. Every frame from a peer is length- and range-checked before
 * use; a peer that breaks the protocol loses its connection, never the
 * process. */
#define _GNU_SOURCE
#include "h2probe.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum frame_type {
    F_DATA, F_HEADERS, F_PRIORITY, F_RST_STREAM, F_SETTINGS,
    F_PUSH_PROMISE, F_PING, F_GOAWAY, F_WINDOW_UPDATE, F_CONTINUATION
};
#define FL_END_STREAM 0x1
#define FL_ACK 0x1
#define FL_END_HEADERS 0x4
#define FL_PADDED 0x8
#define FL_PRIORITY 0x20

#define FRAME_HDR 9
#define MAX_FRAME 16384          /* SETTINGS_MAX_FRAME_SIZE: the default, never raised */
#define DEFAULT_WINDOW 65535
#define STREAM_WINDOW (1 << 20)  /* our SETTINGS_INITIAL_WINDOW_SIZE */
#define CONN_WINDOW (1 << 30)    /* what the peer may send on a connection before our update */
#define MAX_WINDOW 0x7fffffffLL
#define BLOCK_MAX (16 * 1024)    /* header bytes in one block: more is a flood */
#define OUT_MAX (64 * 1024)      /* unsent bytes: more, and the peer is not reading */
#define LAST_STREAM 0x7ffffff0u  /* stream ids run out: a new connection */
#define CANCEL 0x8               /* RST_STREAM error code */

_Static_assert(H2P_REPLY_MAX == 4096, "the message in on_data");

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum conn_state { C_IDLE, C_CONNECTING, C_TLS, C_READY };

/* How our requests' header block is written on a connection (see
 * header_blocks). */
enum hd_mode { HD_FIRST, HD_INDEXED, HD_PLAIN };
#define HPACK_TABLE 4096        /* the peer's table until its SETTINGS say otherwise */

struct call {
    bool active;            /* started and not yet reported */
    bool done;              /* its outcome is known: in the done list */
    uint32_t stream;
    void *user;
    int64_t deadline_ms;
    int http_status;
    int grpc_status;        /* -1 until the peer says */
    uint8_t blocks;         /* header blocks finished on its stream */
    int status;             /* the outcome */
    char details[64];
    uint8_t *msg;           /* the reply's DATA, prefix included */
    uint32_t msg_len;
};

struct h2p_conn {
    struct h2p *e;
    int fd;
    enum conn_state state;
    bool tls_wants_write;
    bool goaway;            /* the peer is closing: the next call reconnects */
    bool freed;
    SSL *ssl;
    nghttp2_hd_inflater *hd;
    uint8_t *in;            /* a partial frame, carried to the next read */
    uint32_t in_len;
    uint8_t *out;           /* bytes the socket has not taken yet */
    uint32_t out_len, out_cap;
    uint32_t request_mark;  /* out_len before the last request was queued */
    uint32_t request_data;  /* and its DATA, counted against the window */
    int64_t connect_deadline_ms; /* a handshake not done by then is given up */
    uint32_t next_stream;
    int64_t send_window;    /* the peer's connection window for our DATA */
    int64_t stream_window;  /* and each new stream's */
    uint32_t recv_unacked;  /* DATA received since our last WINDOW_UPDATE */
    enum hd_mode hd_mode;
    int64_t table_min;      /* the peer shrank its table: sizes to signal, or -1 */
    int64_t table_last;
    uint32_t hd_stream;     /* the header block being read, its stream */
    bool hd_end_stream;
    bool hd_continues;      /* CONTINUATION frames must follow */
    uint32_t hd_bytes;
    uint32_t events;        /* registered with epoll */
    size_t heap_idx;        /* in e->timers while a call is out */
    struct h2p_conn *done_next;
    struct h2p_conn *grave_next;
    struct call call;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    socklen_t addr_len;     /* 0: not a numeric address */
};

struct h2p {
    int epfd;
    SSL_CTX *ssl;
    char peer_name[64];
    rpc_done_fn fn;
    struct block {
        uint8_t bytes[192];
        size_t len;
    } blocks[3];            /* the request's header block, by enum hd_mode */
    size_t table_use;       /* what HD_FIRST adds to the peer's table */
    struct h2p_conn **timers; /* a binary heap by deadline */
    size_t ntimers, timers_cap;
    struct h2p_conn *done_head, *done_tail;
    struct h2p_conn *grave;
    size_t in_flight;
    size_t conns;
    int64_t last_event_us;  /* when a wait last found something to read */
    int64_t prev_event_us;  /* and the time before */
    uint8_t rbuf[FRAME_HDR + MAX_FRAME + 64 * 1024]; /* a carried frame, then one read */
};

static void put24(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); put24(p + 1, v); }
static uint32_t get24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | get24(p + 1); }
static uint32_t get31(const uint8_t *p) { return get32(p) & 0x7fffffffu; }

static size_t frame_header(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
    put24(p, len);
    p[3] = type;
    p[4] = flags;
    put32(p + 5, stream & 0x7fffffffu);
    return FRAME_HDR;
}

/* ---- deadlines: a binary heap of connections with a call out ---- */

static bool earlier(const struct h2p_conn *a, const struct h2p_conn *b)
{
    return a->call.deadline_ms < b->call.deadline_ms;
}

static void heap_set(struct h2p *e, size_t i, struct h2p_conn *c)
{
    e->timers[i] = c;
    c->heap_idx = i;
}

static void heap_up(struct h2p *e, size_t i)
{
    struct h2p_conn *c = e->timers[i];
    while (i > 0 && earlier(c, e->timers[(i - 1) / 2])) {
        heap_set(e, i, e->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(e, i, c);
}

static void heap_down(struct h2p *e, size_t i)
{
    struct h2p_conn *c = e->timers[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= e->ntimers)
            break;
        if (k + 1 < e->ntimers && earlier(e->timers[k + 1], e->timers[k]))
            k++;
        if (!earlier(e->timers[k], c))
            break;
        heap_set(e, i, e->timers[k]);
        i = k;
    }
    heap_set(e, i, c);
}

static void heap_push(struct h2p *e, struct h2p_conn *c)
{
    if (e->ntimers == e->timers_cap) {
        e->timers_cap = e->timers_cap ? 2 * e->timers_cap : 64;
        e->timers = realloc(e->timers, e->timers_cap * sizeof *e->timers);
        if (!e->timers)
            abort();
    }
    heap_set(e, e->ntimers++, c);
    heap_up(e, c->heap_idx);
}

static void heap_remove(struct h2p *e, struct h2p_conn *c)
{
    size_t i = c->heap_idx;
    if (i == SIZE_MAX)
        return;
    c->heap_idx = SIZE_MAX;
    struct h2p_conn *last = e->timers[--e->ntimers];
    if (i == e->ntimers)
        return;
    heap_set(e, i, last);
    heap_up(e, i);
    heap_down(e, last->heap_idx);
}

/* ---- outcomes ---- */

/* The call's outcome, reported by the next h2p_poll. details is kept
 * printable: it reaches the log and it may come from the peer. */
static void call_finish(struct h2p_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_finish(struct h2p_conn *c, int status, const char *fmt, ...)
{
    struct call *k = &c->call;
    if (!k->active || k->done)
        return;
    k->done = true;
    k->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->details, sizeof k->details, fmt, ap);
    va_end(ap);
    for (char *p = k->details; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    heap_remove(c->e, c);
    c->done_next = NULL;
    if (c->e->done_tail)
        c->e->done_tail->done_next = c;
    else
        c->e->done_head = c;
    c->e->done_tail = c;
}

static void done_unlink(struct h2p *e, struct h2p_conn *c)
{
    struct h2p_conn **pp = &e->done_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->done_next;
    }
    if (!*pp)
        return;
    *pp = c->done_next;
    if (e->done_tail == c)
        e->done_tail = prev;
}

/* Reports at most the calls finished before it began: a callback that
 * starts a call failing at once is reported by the next poll. */
static int report(struct h2p *e)
{
    int n = 0;
    for (struct h2p_conn *c = e->done_head; c; c = c->done_next)
        n++;
    for (int k = 0; k < n && e->done_head; k++) {
        struct h2p_conn *c = e->done_head;
        e->done_head = c->done_next;
        if (!e->done_head)
            e->done_tail = NULL;
        struct call *call = &c->call;
        void *user = call->user;
        int st = call->status;
        char details[sizeof call->details];
        memcpy(details, call->details, sizeof details);
        uint8_t *msg = call->msg;
        size_t len = st == GRPC_STATUS_OK ? call->msg_len - 5 : 0;
        call->msg = NULL;
        call->active = call->done = false;
        e->in_flight--;
        e->fn(user, (grpc_status_code)st, details, msg ? msg + 5 : (const uint8_t *)"", len);
        free(msg);
    }
    return n;
}

/* ---- the connection ---- */

static void conn_close(struct h2p_conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* leaves the epoll set with it */
    c->fd = -1;
    c->state = C_IDLE;
    c->events = 0;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->hd)
        nghttp2_hd_inflate_del(c->hd);
    c->hd = NULL;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->out_len = c->out_cap = 0;
}

/* The connection is unusable: its call fails with why, and it closes. */
static void conn_error(struct h2p_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(struct h2p_conn *c, const char *fmt, ...)
{
    char why[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    call_finish(c, GRPC_STATUS_UNAVAILABLE, "%s", why);
    conn_close(c);
}

static void update_events(struct h2p_conn *c)
{
    if (c->fd < 0)
        return;
    uint32_t want = EPOLLIN;
    if (c->state == C_CONNECTING || (c->state == C_READY && c->out_len) ||
        (c->state == C_TLS && c->tls_wants_write))
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(c->e->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_error(c, "epoll: %s", strerror(errno));
        return;
    }
    c->events = want;
}

static const char *tls_reason(const struct h2p_conn *c)
{
    long v = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (v != X509_V_OK)
        return X509_verify_cert_error_string(v);
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    return r ? r : "connection closed";
}

/* Bytes written, 0 when the socket is full, -1 after conn_error. */
static ssize_t conn_write(struct h2p_conn *c, const uint8_t *p, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_write(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
            return 0;
        conn_error(c, "TLS write: %s", tls_reason(c));
        return -1;
    }
    for (;;) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        conn_error(c, "write: %s", strerror(errno));
        return -1;
    }
}

static void out_append(struct h2p_conn *c, const uint8_t *p, size_t n)
{
    if (c->out_len + n > OUT_MAX) {
        conn_error(c, "the agent reads nothing: %u bytes wait", (unsigned)(c->out_len + n));
        return;
    }
    if (c->out_len + n > c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out)
            abort();
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

static void flush(struct h2p_conn *c)
{
    if (c->state != C_READY || c->fd < 0)
        return;
    if (c->out_len) {
        ssize_t w = conn_write(c, c->out, c->out_len);
        if (w < 0)
            return;
        c->out_len -= (uint32_t)w;
        if (c->out_len == 0) {
            /* an idle connection holds no buffer */
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        } else {
            memmove(c->out, c->out + w, c->out_len);
        }
    }
    update_events(c);
}

/* Writes at once what the socket takes; the rest waits in c->out. Before
 * the connection is ready everything waits, behind the preface. */
static void send_bytes(struct h2p_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == C_READY && c->fd >= 0 && c->out_len == 0) {
        ssize_t w = conn_write(c, p, n);
        if (w < 0)
            return;
        p += w;
        n -= (size_t)w;
        if (n == 0)
            return;
    }
    out_append(c, p, n);
    update_events(c);
}

static void send_frame(struct h2p_conn *c, uint8_t type, uint8_t flags, uint32_t stream,
                       const uint8_t *payload, uint32_t len)
{
    uint8_t f[FRAME_HDR + 16];
    frame_header(f, len, type, flags, stream);
    if (len)
        memcpy(f + FRAME_HDR, payload, len);
    out_append(c, f, FRAME_HDR + len);
}

static void send_u32_frame(struct h2p_conn *c, uint8_t type, uint32_t stream, uint32_t v)
{
    uint8_t p[4];
    put32(p, v);
    send_frame(c, type, 0, stream, p, 4);
}

/* The client's opening: preface, our settings (no push; streams may send
 * us STREAM_WINDOW), and the connection's window raised to CONN_WINDOW. */
static void queue_preface(struct h2p_conn *c)
{
    uint8_t s[12];
    s[0] = 0, s[1] = 2, put32(s + 2, 0);             /* ENABLE_PUSH 0 */
    s[6] = 0, s[7] = 4, put32(s + 8, STREAM_WINDOW); /* INITIAL_WINDOW_SIZE */
    out_append(c, (const uint8_t *)PREFACE, sizeof PREFACE - 1);
    send_frame(c, F_SETTINGS, 0, 0, s, sizeof s);
    send_u32_frame(c, F_WINDOW_UPDATE, 0, CONN_WINDOW - DEFAULT_WINDOW);
}

static void conn_reset_protocol(struct h2p_conn *c)
{
    c->next_stream = 1;
    c->send_window = DEFAULT_WINDOW;
    c->stream_window = DEFAULT_WINDOW;
    c->recv_unacked = 0;
    c->hd_continues = false;
    c->goaway = false;
    c->hd_mode = HD_FIRST;
    c->table_min = c->table_last = -1;
    if (nghttp2_hd_inflate_new(&c->hd) != 0)
        abort();
}

/* Starts connecting; false when it failed at once (the call then has its
 * outcome). */
static bool conn_open(struct h2p_conn *c, int timeout_ms)
{
    if (!c->addr_len) {
        call_finish(c, GRPC_STATUS_UNAVAILABLE, "address is not IP:PORT");
        return false;
    }
    int fd = socket(c->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        call_finish(c, GRPC_STATUS_UNAVAILABLE, "socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, &c->addr.sa, c->addr_len) != 0 && errno != EINPROGRESS) {
        call_finish(c, GRPC_STATUS_UNAVAILABLE, "connect: %s", strerror(errno));
        close(fd);
        return false;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->connect_deadline_ms = now_ms() + (timeout_ms > RPC_CONNECT_MS ? timeout_ms : RPC_CONNECT_MS);
    conn_reset_protocol(c);
    queue_preface(c);
    update_events(c);
    return c->fd >= 0;
}

static void tls_handshake(struct h2p_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
        if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
            conn_error(c, "TLS: the agent did not choose HTTP/2 (ALPN)");
            return;
        }
        c->state = C_READY;
        c->tls_wants_write = false;
        flush(c);
        return;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->tls_wants_write = err == SSL_ERROR_WANT_WRITE;
        update_events(c);
        return;
    }
    conn_error(c, "TLS handshake: %s", tls_reason(c));
}

static void on_connected(struct h2p_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        conn_error(c, "connect: %s", strerror(err));
        return;
    }
    if (!c->e->ssl) {
        c->state = C_READY;
        flush(c);
        return;
    }
    if (!(c->ssl = SSL_new(c->e->ssl)) || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_set1_host(c->ssl, c->e->peer_name) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, c->e->peer_name) != 1) {
        conn_error(c, "TLS: %s", tls_reason(c));
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = C_TLS;
    tls_handshake(c);
}

/* ---- frames from the peer ---- */

static int http_to_grpc(int http)
{
    switch (http) {
    case 400: return GRPC_STATUS_INTERNAL;
    case 401: return GRPC_STATUS_UNAUTHENTICATED;
    case 403: return GRPC_STATUS_PERMISSION_DENIED;
    case 404: return GRPC_STATUS_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_UNKNOWN;
    }
}

static bool ours(const struct h2p_conn *c, uint32_t stream)
{
    return c->call.active && !c->call.done && stream == c->call.stream;
}

/* Ends the call on its stream before the peer did: the peer is told. */
static void stream_fail(struct h2p_conn *c, int status, const char *why)
{
    send_u32_frame(c, F_RST_STREAM, c->call.stream, CANCEL);
    call_finish(c, status, "%s", why);
}

/* The peer closed our stream: judge its answer. */
static void stream_end(struct h2p_conn *c)
{
    struct call *k = &c->call;
    if (k->http_status != 200) {
        call_finish(c, http_to_grpc(k->http_status), "HTTP status %d", k->http_status);
    } else if (k->grpc_status < 0) {
        call_finish(c, GRPC_STATUS_INTERNAL, "answer without grpc-status");
    } else if (k->grpc_status != GRPC_STATUS_OK) {
        call_finish(c, k->grpc_status, "%s", k->details);
    } else if (k->msg_len < 5 || k->msg[0] != 0 || get32(k->msg + 1) != k->msg_len - 5) {
        call_finish(c, GRPC_STATUS_INTERNAL, "answer is not one uncompressed message");
    } else {
        call_finish(c, GRPC_STATUS_OK, "%s", "");
    }
}

static int parse_status(const uint8_t *v, size_t n, int max)
{
    int x = 0;
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x <= max ? x : -1;
}

static bool name_is(const nghttp2_nv *nv, const char *name)
{
    return nv->namelen == strlen(name) && memcmp(nv->name, name, nv->namelen) == 0;
}

static void on_header(struct h2p_conn *c, const nghttp2_nv *nv)
{
    struct call *k = &c->call;
    if (name_is(nv, ":status") && k->blocks == 0) {
        k->http_status = parse_status(nv->value, nv->valuelen, 999);
    } else if (name_is(nv, "grpc-status")) {
        int st = parse_status(nv->value, nv->valuelen, 99);
        /* a code gRPC does not define is UNKNOWN, as gRPC itself reads it */
        k->grpc_status = st < 0 ? GRPC_STATUS_UNKNOWN : st > GRPC_STATUS_UNAUTHENTICATED ? GRPC_STATUS_UNKNOWN : st;
    } else if (name_is(nv, "grpc-message")) {
        size_t n = nv->valuelen < sizeof k->details - 1 ? nv->valuelen : sizeof k->details - 1;
        memcpy(k->details, nv->value, n);
        k->details[n] = '\0';
    }
}

/* One fragment of a header block; every block goes through the decoder,
 * whatever its stream, to keep the peer's table and ours the same. */
static bool header_fragment(struct h2p_conn *c, const uint8_t *p, size_t n, bool final)
{
    c->hd_bytes += (uint32_t)n;
    if (c->hd_bytes > BLOCK_MAX) {
        conn_error(c, "header block over %d bytes", BLOCK_MAX);
        return false;
    }
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(c->hd, &nv, &flags, p, n, final);
        if (r < 0) {
            conn_error(c, "header compression: %s", nghttp2_strerror((int)r));
            return false;
        }
        p += r;
        n -= (size_t)r;
        if ((flags & NGHTTP2_HD_INFLATE_EMIT) && ours(c, c->hd_stream))
            on_header(c, &nv);
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(c->hd);
            break;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
            break;
    }
    if (final && ours(c, c->hd_stream)) {
        c->call.blocks++;
        if (c->hd_end_stream)
            stream_end(c);
        else if (c->call.blocks > 1)
            stream_fail(c, GRPC_STATUS_INTERNAL, "trailers that do not end the stream");
    }
    return true;
}

/* Strips padding (and priority fields); false on a malformed frame. */
static bool unpad(uint8_t flags, bool priority, const uint8_t **p, uint32_t *n)
{
    uint32_t pad = 0;
    if (flags & FL_PADDED) {
        if (*n < 1)
            return false;
        pad = (*p)[0];
        (*p)++, (*n)--;
    }
    if (priority && (flags & FL_PRIORITY)) {
        if (*n < 5)
            return false;
        *p += 5, *n -= 5;
    }
    if (pad > *n)
        return false;
    *n -= pad;
    return true;
}

static bool on_data(struct h2p_conn *c, uint8_t flags, uint32_t stream, const uint8_t *p, uint32_t n)
{
    c->recv_unacked += n;
    if (c->recv_unacked >= CONN_WINDOW / 2) {
        send_u32_frame(c, F_WINDOW_UPDATE, 0, c->recv_unacked);
        c->recv_unacked = 0;
    }
    if (stream == 0 || !unpad(flags, false, &p, &n)) {
        conn_error(c, "malformed DATA frame");
        return false;
    }
    if (!ours(c, stream))
        return true;
    struct call *k = &c->call;
    if (k->blocks == 0) {
        stream_fail(c, GRPC_STATUS_INTERNAL, "DATA before the answer's headers");
        return true;
    }
    if (k->msg_len + n > H2P_REPLY_MAX) {
        stream_fail(c, GRPC_STATUS_INTERNAL, "answer longer than 4096 bytes");
        return true;
    }
    if (n) {
        uint8_t *m = realloc(k->msg, k->msg_len + n);
        if (!m)
            abort();
        memcpy(m + k->msg_len, p, n);
        k->msg = m;
        k->msg_len += n;
    }
    if (flags & FL_END_STREAM)
        stream_end(c);
    return true;
}

static bool on_headers(struct h2p_conn *c, uint8_t flags, uint32_t stream, const uint8_t *p, uint32_t n)
{
    if (stream == 0 || !unpad(flags, true, &p, &n)) {
        conn_error(c, "malformed HEADERS frame");
        return false;
    }
    c->hd_stream = stream;
    c->hd_end_stream = flags & FL_END_STREAM;
    c->hd_bytes = 0;
    c->hd_continues = !(flags & FL_END_HEADERS);
    return header_fragment(c, p, n, !c->hd_continues);
}

/* SETTINGS_HEADER_TABLE_SIZE: our fields stay indexed while they fit. */
static void peer_table(struct h2p_conn *c, uint32_t v)
{
    if (v >= HPACK_TABLE && c->table_min < 0)
        return; /* we keep using 4096, as we may */
    if (c->table_min < 0 || v < c->table_min)
        c->table_min = v;
    c->table_last = v < HPACK_TABLE ? v : HPACK_TABLE;
    if (v < c->e->table_use)
        c->hd_mode = HD_PLAIN;
}

static bool on_settings(struct h2p_conn *c, uint8_t flags, uint32_t stream, const uint8_t *p, uint32_t n)
{
    if (stream != 0 || ((flags & FL_ACK) ? n != 0 : n % 6 != 0)) {
        conn_error(c, "malformed SETTINGS frame");
        return false;
    }
    if (flags & FL_ACK)
        return true;
    for (uint32_t i = 0; i < n; i += 6) {
        unsigned id = (unsigned)p[i] << 8 | p[i + 1];
        uint32_t v = get32(p + i + 2);
        if ((id == 4 && v > MAX_WINDOW) || (id == 5 && (v < MAX_FRAME || v > 0xffffff)) || (id == 2 && v > 1)) {
            conn_error(c, "SETTINGS %u = %u is out of range", id, v);
            return false;
        }
        if (id == 4)
            c->stream_window = v;
        if (id == 1)
            peer_table(c, v);
    }
    send_frame(c, F_SETTINGS, FL_ACK, 0, NULL, 0);
    return true;
}

static bool on_control(struct h2p_conn *c, uint8_t type, uint8_t flags, uint32_t stream,
                       const uint8_t *p, uint32_t n)
{
    switch (type) {
    case F_RST_STREAM:
        if (n != 4 || stream == 0)
            break;
        if (ours(c, stream))
            call_finish(c, GRPC_STATUS_UNAVAILABLE, "stream reset by the agent (code %u)", get32(p));
        return true;
    case F_PING:
        if (n != 8 || stream != 0)
            break;
        if (!(flags & FL_ACK))
            send_frame(c, F_PING, FL_ACK, 0, p, 8);
        return true;
    case F_GOAWAY:
        if (n < 8 || stream != 0)
            break;
        c->goaway = true;
        if (c->call.active && c->call.stream > get31(p))
            call_finish(c, GRPC_STATUS_UNAVAILABLE, "the agent is going away");
        return true;
    case F_WINDOW_UPDATE:
        if (n != 4)
            break;
        if (stream == 0) {
            if (get31(p) == 0 || c->send_window + get31(p) > MAX_WINDOW)
                break;
            c->send_window += get31(p);
        }
        return true;
    case F_PUSH_PROMISE:
        conn_error(c, "PUSH_PROMISE, though push is off");
        return false;
    default:
        return true; /* PRIORITY, and types we do not know, are ignored */
    }
    conn_error(c, "malformed frame of type %u", type);
    return false;
}

/* One whole frame; false once the connection is closed. */
static bool on_frame(struct h2p_conn *c, const uint8_t *f)
{
    uint32_t n = get24(f);
    uint8_t type = f[3], flags = f[4];
    uint32_t stream = get31(f + 5);
    const uint8_t *p = f + FRAME_HDR;
    if (c->hd_continues) {
        if (type != F_CONTINUATION || stream != c->hd_stream) {
            conn_error(c, "header block interrupted by a frame of type %u", type);
            return false;
        }
        c->hd_continues = !(flags & FL_END_HEADERS);
        return header_fragment(c, p, n, !c->hd_continues);
    }
    switch (type) {
    case F_DATA: return on_data(c, flags, stream, p, n);
    case F_HEADERS: return on_headers(c, flags, stream, p, n);
    case F_SETTINGS: return on_settings(c, flags, stream, p, n);
    case F_CONTINUATION:
        conn_error(c, "CONTINUATION without HEADERS");
        return false;
    default: return on_control(c, type, flags, stream, p, n);
    }
}

/* buf holds the carried partial frame and what was just read: every
 * whole frame is handled, the rest is carried again. */
static void take_input(struct h2p_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (c->state == C_READY && len - off >= FRAME_HDR) {
        uint32_t n = get24(buf + off);
        if (n > MAX_FRAME) {
            conn_error(c, "frame of %u bytes (at most %d)", n, MAX_FRAME);
            return;
        }
        if (len - off < FRAME_HDR + n)
            break;
        if (!on_frame(c, buf + off))
            return;
        off += FRAME_HDR + n;
    }
    if (c->state != C_READY || off == len)
        return;
    c->in_len = (uint32_t)(len - off);
    c->in = malloc(c->in_len);
    if (!c->in)
        abort();
    memcpy(c->in, buf + off, c->in_len);
}

/* >0 bytes read, 0 end of stream, -1 nothing to read now, -2 after
 * conn_error. */
static ssize_t conn_recv(struct h2p_conn *c, uint8_t *p, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            return -1;
        if (err == SSL_ERROR_ZERO_RETURN)
            return 0;
        conn_error(c, "TLS read: %s", tls_reason(c));
        return -2;
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        conn_error(c, "read: %s", strerror(errno));
        return -2;
    }
}

static void conn_read(struct h2p_conn *c)
{
    struct h2p *e = c->e;
    /* a few reads per wake-up, so that one chatty peer cannot hold the
     * loop; what is left waits in the socket and wakes us again */
    for (int i = 0; i < 4 && c->state == C_READY; i++) {
        size_t carry = c->in_len, room = sizeof e->rbuf - carry;
        ssize_t n = conn_recv(c, e->rbuf + carry, room);
        if (n == -1 || n == -2)
            break;
        if (n == 0) {
            conn_error(c, "connection closed by the agent");
            return;
        }
        if (carry) {
            memcpy(e->rbuf, c->in, carry);
            free(c->in);
            c->in = NULL;
            c->in_len = 0;
        }
        take_input(c, e->rbuf, carry + (size_t)n);
        if (!c->ssl && (size_t)n < room)
            break; /* the socket is empty */
    }
    flush(c);
}

static void on_event(struct h2p_conn *c, uint32_t events)
{
    if (c->freed || c->fd < 0)
        return;
    switch (c->state) {
    case C_CONNECTING:
        on_connected(c);
        break;
    case C_TLS:
        tls_handshake(c);
        break;
    case C_READY:
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            conn_read(c);
        else
            flush(c);
        break;
    case C_IDLE:
        break;
    }
}

/* Calls whose deadline passed: the stream is reset, the connection kept
 * (a slow agent is not a broken one), unless it never got ready. */
static void expire(struct h2p *e, int64_t now)
{
    while (e->ntimers && e->timers[0]->call.deadline_ms <= now) {
        struct h2p_conn *c = e->timers[0];
        if (c->state == C_READY) {
            send_u32_frame(c, F_RST_STREAM, c->call.stream, CANCEL);
            call_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
            flush(c);
        } else {
            /* The handshake goes on for the next call (on a busy machine
             * a TLS handshake outlasts a 100 ms probe; begun again for
             * each probe it would never finish), until its own deadline;
             * the request that waited behind it is withdrawn. */
            call_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded %s",
                        c->state == C_TLS ? "in the TLS handshake" : "connecting");
            c->out_len = c->request_mark;
            c->send_window += c->request_data;
            if (now >= c->connect_deadline_ms)
                conn_close(c);
        }
    }
}

/* ---- the API ---- */

/* An HPACK integer with an n-bit prefix under the bits in first. */
static size_t hpack_int(uint8_t *p, uint8_t first, int bits, uint64_t v)
{
    uint64_t max = (1u << bits) - 1;
    size_t k = 0;
    if (v < max) {
        p[k++] = (uint8_t)(first | v);
        return k;
    }
    p[k++] = (uint8_t)(first | max);
    for (v -= max; v >= 128; v >>= 7)
        p[k++] = (uint8_t)(v % 128 + 128);
    p[k++] = (uint8_t)v;
    return k;
}

/* A peer that shrank its table below our use of it is told, at the start
 * of our next block, that we now use that size (the smallest first, as
 * RFC 7541 asks): at most two updates of at most 6 bytes. */
static size_t table_updates(struct h2p_conn *c, uint8_t *p)
{
    size_t n = 0;
    if (c->table_min < 0)
        return 0;
    n += hpack_int(p, 0x20, 5, (uint64_t)c->table_min);
    if (c->table_last != c->table_min)
        n += hpack_int(p + n, 0x20, 5, (uint64_t)c->table_last);
    c->table_min = c->table_last = -1;
    return n;
}

static void send_request(struct h2p_conn *c, const uint8_t *req, size_t len)
{
    struct h2p *e = c->e;
    if ((int64_t)len + 5 > c->send_window || (int64_t)len + 5 > c->stream_window) {
        call_finish(c, GRPC_STATUS_UNAVAILABLE, "the agent's flow-control window is closed");
        return;
    }
    uint8_t buf[2 * FRAME_HDR + 12 + sizeof e->blocks[0].bytes + 5 + H2P_REQUEST_MAX];
    uint32_t stream = c->next_stream;
    c->next_stream += 2;
    c->call.stream = stream;
    size_t n = FRAME_HDR, start = n;
    n += table_updates(c, buf + n);
    const struct block *b = &e->blocks[c->hd_mode];
    memcpy(buf + n, b->bytes, b->len);
    n += b->len;
    frame_header(buf, (uint32_t)(n - start), F_HEADERS, FL_END_HEADERS, stream);
    if (c->hd_mode == HD_FIRST)
        c->hd_mode = HD_INDEXED;
    n += frame_header(buf + n, (uint32_t)(5 + len), F_DATA, FL_END_STREAM, stream);
    buf[n] = 0; /* not compressed */
    put32(buf + n + 1, (uint32_t)len);
    memcpy(buf + n + 5, req, len);
    n += 5 + len;
    c->send_window -= (int64_t)len + 5;
    c->request_mark = c->out_len;
    c->request_data = (uint32_t)len + 5;
    send_bytes(c, buf, n);
}

int h2p_call(struct h2p_conn *c, const uint8_t *req, size_t len, int timeout_ms, void *user)
{
    if (c->call.active || c->freed || len > H2P_REQUEST_MAX)
        return -1;
    memset(&c->call, 0, sizeof c->call);
    c->call.active = true;
    c->call.user = user;
    c->call.grpc_status = -1;
    c->call.deadline_ms = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    c->e->in_flight++;
    heap_push(c->e, c);
    if (c->fd >= 0 && (c->goaway || c->next_stream > LAST_STREAM ||
                       (c->state != C_READY && now_ms() >= c->connect_deadline_ms)))
        conn_close(c);
    if (c->fd < 0 && !conn_open(c, timeout_ms))
        return 0;
    send_request(c, req, len);
    return 0;
}

static socklen_t parse_addr(const char *addr, struct h2p_conn *c)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
        return 0;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    long port;
    if (!parse_whole(colon + 1, 1, 65535, &port))
        return 0;
    memset(&c->addr, 0, sizeof c->addr);
    if (inet_pton(AF_INET, host, &c->addr.in4.sin_addr) == 1) {
        c->addr.in4.sin_family = AF_INET;
        c->addr.in4.sin_port = htons((uint16_t)port);
        return sizeof c->addr.in4;
    }
    if (inet_pton(AF_INET6, host, &c->addr.in6.sin6_addr) == 1) {
        c->addr.in6.sin6_family = AF_INET6;
        c->addr.in6.sin6_port = htons((uint16_t)port);
        return sizeof c->addr.in6;
    }
    return 0;
}

struct h2p_conn *h2p_conn_new(struct h2p *e, const char *addr)
{
    struct h2p_conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->e = e;
    c->fd = -1;
    c->heap_idx = SIZE_MAX;
    c->addr_len = parse_addr(addr, c);
    e->conns++;
    return c;
}

static void bury(struct h2p *e)
{
    while (e->grave) {
        struct h2p_conn *c = e->grave;
        e->grave = c->grave_next;
        free(c);
    }
}

void *h2p_conn_free(struct h2p_conn *c)
{
    if (!c)
        return NULL;
    struct h2p *e = c->e;
    void *user = NULL;
    if (c->call.active) {
        user = c->call.user;
        if (c->call.done)
            done_unlink(e, c);
        heap_remove(e, c);
        free(c->call.msg);
        c->call.active = false;
        e->in_flight--;
    }
    conn_close(c);
    c->freed = true;
    /* freed after the current poll: its events may still be in hand */
    c->grave_next = e->grave;
    e->grave = c;
    e->conns--;
    return user;
}

/* epoll_wait to the microsecond (a 1 ms probe interval is otherwise
 * rounded to 1-2 ms); epoll_wait's milliseconds where the kernel lacks it. */
static int wait_events(int epfd, struct epoll_event *ev, int max, int64_t timeout_us)
{
    /* Process-wide because it is the kernel's: learnt once. */
    static bool no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = {timeout_us / 1000000, (timeout_us % 1000000) * 1000};
        int n = epoll_pwait2(epfd, ev, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n < 0 ? 0 : n;
        no_pwait2 = true;
    }
    int n = epoll_wait(epfd, ev, max, (int)((timeout_us + 999) / 1000));
    return n < 0 ? 0 : n; /* EINTR: the caller's loop looks at its flags */
}

/* Busy-polling under load: when many calls are out and answers arrive
 * less than SPIN_US apart, sleeping in the kernel between them costs a
 * context switch each time, paid partly by the peer whose answer wakes us
 * (on loopback the sender runs the receiver's wake-up). Then the engine
 * looks again without sleeping, and sleeps once SPIN_US pass with
 * nothing. It spins only above 20,000 wake-ups a second, where waking
 * would cost a good part of a core anyway; at the shipped probe rate
 * (10,000 agents every second: a few calls out at a time) never. */
#define SPIN_MIN_IN_FLIGHT 64
#define SPIN_US 50

static bool answers_streaming(const struct h2p *e, int64_t now)
{
    return e->in_flight >= SPIN_MIN_IN_FLIGHT && now - e->last_event_us < SPIN_US &&
           e->last_event_us - e->prev_event_us < SPIN_US;
}

int h2p_poll(struct h2p *e, int64_t timeout_us)
{
    if (e->done_head || timeout_us < 0)
        timeout_us = 0;
    if (answers_streaming(e, now_us()))
        timeout_us = 0;
    if (e->ntimers) {
        int64_t left = e->timers[0]->call.deadline_ms * 1000 - now_us();
        if (left < timeout_us)
            timeout_us = left < 0 ? 0 : left;
    }
    struct epoll_event ev[256];
    int n = wait_events(e->epfd, ev, 256, timeout_us);
    if (n > 0) {
        e->prev_event_us = e->last_event_us;
        e->last_event_us = now_us();
    }
    int reported = 0;
    /* Each answer is reported as soon as it is read, so that the next
     * call to that peer leaves while the rest of the batch is read: the
     * peers work while we do. (A callback may free a connection whose
     * event is still in ev: it is buried only at the end.) */
    for (int i = 0; i < n; i++) {
        on_event(ev[i].data.ptr, ev[i].events);
        reported += report(e);
    }
    expire(e, now_ms());
    reported += report(e);
    bury(e);
    return reported;
}

size_t h2p_in_flight(const struct h2p *e) { return e->in_flight; }

static X509 *read_x509(BIO *b) { return PEM_read_bio_X509(b, NULL, NULL, NULL); }

/* The CA certificates in pem into ctx's store: how many, or -1. */
static int add_cas(SSL_CTX *ctx, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b)
        return -1;
    int cas = 0;
    for (X509 *x; (x = read_x509(b)); cas++) {
        int ok = X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
        X509_free(x);
        if (!ok) {
            BIO_free(b);
            return -1;
        }
    }
    BIO_free(b);
    ERR_clear_error();
    return cas;
}

/* Our certificate (and any chain after it) and its key; *what names the
 * part that failed. */
static int use_identity(SSL_CTX *ctx, const struct rpc_tls *t, const char **what)
{
    *what = "tls.cert";
    X509 *x = NULL;
    BIO *b = BIO_new_mem_buf(t->cert, -1);
    if (!b || !(x = read_x509(b)) || SSL_CTX_use_certificate(ctx, x) != 1) {
        X509_free(x);
        BIO_free(b);
        return -1;
    }
    X509_free(x);
    while ((x = read_x509(b)))
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            BIO_free(b);
            return -1;
        }
    ERR_clear_error();
    BIO_free(b);
    *what = "tls.key";
    EVP_PKEY *k = NULL;
    b = BIO_new_mem_buf(t->key ? t->key : "", -1);
    int rc = b && (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) && SSL_CTX_use_PrivateKey(ctx, k) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1 ? 0 : -1;
    EVP_PKEY_free(k);
    BIO_free(b);
    return rc;
}

/* The client side of mutual TLS from PEM text: peers verified against
 * t->ca, our certificate and key shown, HTTP/2 by ALPN. */
static SSL_CTX *tls_context(const struct rpc_tls *t, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *what = "context";
    int cas = 0;
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    what = "tls.ca";
    if ((cas = add_cas(ctx, t->ca)) <= 0)
        goto fail;
    if (t->cert && use_identity(ctx, t, &what) != 0)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* idle connections give their 16 KB record buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    what = "ALPN";
    if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0)
        goto fail;
    return ctx;
fail:;
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(err, errsize, "%s: %s", what, r ? r : cas == 0 ? "no certificate" : "unusable");
    SSL_CTX_free(ctx);
    return NULL;
}

/* The request's header fields, encoded three ways by nghttp2's encoder:
 * the first call on a connection adds them to the peer's table, every
 * later call names them by index (one byte each: the peer decodes and
 * copies nothing, as for h2load's requests), and a peer whose table is
 * too small for them gets literals that change no table. The fields
 * never change, so each block serves every call on every connection. */
static int header_blocks(struct h2p *e, const char *path, bool tls)
{
    const char *f[][2] = {{":method", "POST"},
                          {":scheme", tls ? "https" : "http"},
                          {":path", path},
                          {":authority", e->peer_name},
                          {"content-type", "application/grpc"},
                          {"te", "trailers"},
                          {"user-agent", "asg-monitor"}};
    enum { NF = sizeof f / sizeof f[0] };
    nghttp2_nv nv[NF];
    nghttp2_hd_deflater *d;
    for (int plain = 0; plain < 2; plain++) {
        if (nghttp2_hd_deflate_new(&d, HPACK_TABLE) != 0)
            return -1;
        for (size_t i = 0; i < NF; i++)
            nv[i] = (nghttp2_nv){(uint8_t *)f[i][0], (uint8_t *)f[i][1], strlen(f[i][0]), strlen(f[i][1]),
                                 plain ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE};
        for (int k = 0; k < (plain ? 1 : 2); k++) {
            struct block *b = &e->blocks[plain ? HD_PLAIN : k ? HD_INDEXED : HD_FIRST];
            ssize_t n = nghttp2_hd_deflate_hd(d, b->bytes, sizeof b->bytes, nv, NF);
            if (n < 0) {
                nghttp2_hd_deflate_del(d);
                return -1;
            }
            b->len = (size_t)n;
        }
        if (!plain)
            e->table_use = nghttp2_hd_deflate_get_dynamic_table_size(d);
        nghttp2_hd_deflate_del(d);
    }
    return 0;
}

struct h2p *h2p_new(const char *path, const struct rpc_tls *tls, const char *peer_name, rpc_done_fn fn,
                    char *err, size_t errsize)
{
    struct h2p *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->fn = fn;
    copy_str(e->peer_name, sizeof e->peer_name, peer_name);
    if (rpc_tls_on(tls) && !(e->ssl = tls_context(tls, err, errsize)))
        goto fail;
    if (header_blocks(e, path, rpc_tls_on(tls)) != 0) {
        snprintf(err, errsize, "path '%.60s' does not fit a header block", path);
        goto fail;
    }
    if ((e->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        snprintf(err, errsize, "epoll: %s", strerror(errno));
        goto fail;
    }
    return e;
fail:
    SSL_CTX_free(e->ssl);
    free(e);
    return NULL;
}

void h2p_free(struct h2p *e)
{
    if (!e)
        return;
    bury(e);
    close(e->epfd);
    SSL_CTX_free(e->ssl);
    free(e->timers);
    free(e);
}

/* ---- tests ---- */

struct captured {
    int status;
    uint8_t *reply;
    size_t *reply_len;
};

static void capture(void *user, grpc_status_code st, const char *details, const uint8_t *data, size_t len)
{
    (void)details;
    struct captured *k = user;
    k->status = st;
    if (st == GRPC_STATUS_OK && k->reply && len <= *k->reply_len) {
        memcpy(k->reply, data, len);
        *k->reply_len = len;
    }
}

int h2p_feed_for_test(const uint8_t *data, size_t len, size_t chunk, uint8_t *reply, size_t *reply_len,
                      uint8_t *sent, size_t *sent_len)
{
    char err[128];
    struct h2p *e = h2p_new("/asg.v1.Agent/Ping", NULL, RPC_AGENT_NAME, capture, err, sizeof err);
    if (!e)
        abort();
    struct captured k = {-1, reply, reply_len};
    struct h2p_conn *c = h2p_conn_new(e, "127.0.0.1:9");
    conn_reset_protocol(c);
    c->state = C_READY; /* no socket: what it sends waits in c->out */
    c->next_stream = 3;
    c->call = (struct call){.active = true, .stream = 1, .user = &k, .grpc_status = -1,
                            .deadline_ms = INT64_MAX};
    e->in_flight++;
    heap_push(e, c);
    if (chunk == 0)
        chunk = 1;
    if (chunk > 64 * 1024)
        chunk = 64 * 1024;
    for (size_t off = 0; off < len && c->state == C_READY; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk, carry = c->in_len;
        memcpy(e->rbuf + carry, data + off, n);
        if (carry) {
            memcpy(e->rbuf, c->in, carry);
            free(c->in);
            c->in = NULL;
            c->in_len = 0;
        }
        take_input(c, e->rbuf, carry + n);
    }
    report(e);
    if (sent) {
        struct captured k2 = {-1, NULL, NULL};
        if (c->state == C_READY && !c->call.active) { /* h2p_call, but on this socketless connection */
            c->call = (struct call){.active = true, .user = &k2, .grpc_status = -1, .deadline_ms = INT64_MAX};
            e->in_flight++;
            heap_push(e, c);
            send_request(c, (const uint8_t *)"\x08\x07", 2);
        }
        *sent_len = c->out_len < *sent_len ? c->out_len : *sent_len;
        if (*sent_len)
            memcpy(sent, c->out, *sent_len);
    }
    h2p_conn_free(c);
    h2p_free(e);
    return k.status;
}
