#include "rpc.h"
#include "../common/util.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <openssl/crypto.h>
#include <grpc/support/time.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Requests kept armed per method on each server: a few, so that a burst
 * waits in gRPC's queue less; a swarm of thousands of servers in one
 * process sets it to 1 (rpc_set_armed_per_method). Process-wide because
 * it is how this process uses gRPC (itself process-wide), set once at
 * start. */
static int armed_per_method = 4;

void rpc_set_armed_per_method(int n) { armed_per_method = n < 1 ? 1 : n > 64 ? 64 : n; }

/* Debian builds Abseil without NDEBUG, so every absl::Mutex that gRPC
 * takes also updates a global lock-order graph for deadlock detection.
 * Measured (make bench, perf): about 9% of the monitor's CPU at 1,000
 * agents and growing with the number of channels, since the graph holds
 * every mutex ever locked. Release builds of gRPC run without it. The
 * switch is a C++ function, found by its name in Debian's Abseil; where
 * it is missing nothing changes. */
static void no_lock_graph(void)
{
    /* Process-wide because the switch is: Abseil's, set once. */
    static bool done;
    if (done || getenv("ASG_ABSL_DEADLOCK_DETECTION"))
        return;
    done = true;
    void (*set_mode)(int) = (void (*)(int))dlsym(
        RTLD_DEFAULT, "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE");
    if (set_mode)
        set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
}

/* gRPC's own messages (a failed handshake from every stranger that
 * connects) go through our log, rate-limited: a flood must not fill the
 * disk. */
static void grpc_log_limited(gpr_log_func_args *a)
{
    /* Process-wide because gRPC's log hook is. */
    static struct log_limit limit;
    enum log_level lvl = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_LVL_WARN : LOG_LVL_DEBUG;
    log_limited(&limit, lvl, "grpc: %s", a->message ? a->message : "");
}

void rpc_process_init(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

grpc_completion_queue *rpc_cq_create(void)
{
    no_lock_graph();
    gpr_set_log_function(grpc_log_limited);
    return grpc_completion_queue_create_for_next(NULL);
}

static gpr_timespec deadline_in(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(ms, GPR_TIMESPAN));
}

int rpc_cq_step(grpc_completion_queue *cq, int timeout_ms)
{
    /* gRPC rounds a deadline of "now" up to a whole millisecond of
     * epoll_wait: measured in the monitor's loop (perf trace), each such
     * look at the queue slept 1.08 ms. A deadline already past polls once
     * without waiting. */
    gpr_timespec deadline = timeout_ms <= 0 ? gpr_inf_past(GPR_CLOCK_MONOTONIC) : deadline_in(timeout_ms);
    grpc_event ev = grpc_completion_queue_next(cq, deadline, NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
        return -1;
    if (ev.type == GRPC_QUEUE_TIMEOUT)
        return 0;
    struct rpc_tag *tag = ev.tag;
    tag->done(tag, ev.success != 0);
    return 1;
}

/* Copies a received buffer into malloc'd bytes (NULL, 0 for none). */
static uint8_t *buffer_bytes(grpc_byte_buffer *bb, size_t *len)
{
    *len = 0;
    if (!bb)
        return NULL;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    size_t n = GRPC_SLICE_LENGTH(s);
    uint8_t *out = malloc(n ? n : 1);
    if (out) {
        memcpy(out, GRPC_SLICE_START_PTR(s), n);
        *len = n;
    }
    grpc_slice_unref(s);
    return out;
}

static grpc_byte_buffer *bytes_buffer(const uint8_t *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

uint8_t *rpc_pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    *len = protobuf_c_message_pack(m, buf);
    return buf;
}

void rpc_reply_msg(struct rpc_reply *out, const ProtobufCMessage *m)
{
    out->data = rpc_pack(m, &out->len);
    out->status = GRPC_STATUS_OK;
}

void rpc_reply_error(struct rpc_reply *out, grpc_status_code st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    out->status = st;
}

/* ---- server ---- */

struct rpc_server;

/* One armed request for a registered method (or the generic fallback when
 * method is NULL). */
struct srv_req {
    struct rpc_tag tag;
    struct rpc_server *srv;
    const struct rpc_method *method;
    void *handle;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details;
};

/* An answered call, alive until its send batch completes. */
struct srv_call {
    struct rpc_tag tag;
    struct rpc_server *srv;
    grpc_call *call;
    grpc_byte_buffer *reply;
    grpc_slice status_details;
    int cancelled;
};

struct rpc_server {
    grpc_server *server;
    bool tls;
    grpc_completion_queue *cq;
    struct rpc_method *methods;
    void **handles;
    size_t nmethods;
    bool stopping;
    size_t live;           /* armed requests and answered calls */
    struct rpc_tag shutdown_tag;
    bool shutdown_done;
    rpc_peer_map_fn peer_map;  /* behind a relay: its peers' real addresses */
    void *peer_map_ctx;
};

void rpc_server_set_peer_map(struct rpc_server *s, rpc_peer_map_fn fn, void *ctx)
{
    s->peer_map = fn;
    s->peer_map_ctx = ctx;
}

static void arm(struct rpc_server *s, const struct rpc_method *m, void *handle);

static void srv_call_done(struct rpc_tag *tag, bool ok)
{
    (void)ok;
    struct srv_call *c = (struct srv_call *)tag;
    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    grpc_slice_unref(c->status_details);
    grpc_call_unref(c->call);
    c->srv->live--;
    free(c);
}

/* Sends the reply (or the error status) and closes the call. */
static void answer(struct rpc_server *s, grpc_call *call, struct rpc_reply *r)
{
    struct srv_call *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->tag.done = srv_call_done;
    c->srv = s;
    c->call = call;
    c->status_details = grpc_slice_from_copied_string(r->status == GRPC_STATUS_OK ? "" : r->message);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (r->status == GRPC_STATUS_OK) {
        c->reply = bytes_buffer(r->data ? r->data : (const uint8_t *)"", r->len);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->reply;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = r->status;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    s->live++;
    if (grpc_call_start_batch(call, ops, n, &c->tag, NULL) != GRPC_CALL_OK)
        srv_call_done(&c->tag, false);
}

/* Whether the verified certificate carries name among its SAN entries. */
static bool has_san(grpc_auth_context *ctx, const char *name)
{
    size_t n = strlen(name);
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_SAN_PROPERTY_NAME);
    for (const grpc_auth_property *p; (p = grpc_auth_property_iterator_next(&it)) != NULL;)
        if (p->value_length == n && memcmp(p->value, name, n) == 0)
            return true;
    return false;
}

/* The common name of the peer's verified certificate. The CN of an
 * agent's certificate is its instance id, and an id may be any name: the
 * manager's name counts only on a certificate that also carries it as its
 * SAN, which the CA puts on the manager's certificate alone. A certificate
 * that claims the name without it is given no name (""). */
static bool peer_name(grpc_call *call, char *out, size_t size)
{
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx)
        return false;
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    bool ok = p && p->value_length > 0 && p->value_length < size;
    if (ok) {
        memcpy(out, p->value, p->value_length);
        out[p->value_length] = '\0';
        ok = strlen(out) == p->value_length;
    }
    if (ok && strcmp(out, RPC_MANAGER_NAME) == 0 && !has_san(ctx, RPC_MANAGER_NAME))
        out[0] = '\0';
    grpc_auth_context_release(ctx);
    return ok;
}

/* The call whose handler runs now, and its server. Process-wide because
 * handlers run one at a time in a process (one thread steps the
 * completion queues) and rpc_peer_uri/rpc_peer_host are asked from
 * inside one, with no server at hand. */
static grpc_call *current_call;
static struct rpc_server *current_server;

bool rpc_peer_uri(char *out, size_t size)
{
    out[0] = '\0';
    char *p = current_call ? grpc_call_get_peer(current_call) : NULL;
    if (!p)
        return false;
    bool ok = copy_str(out, size, p);
    gpr_free(p);
    return ok;
}

bool rpc_peer_host(char *out, size_t size)
{
    out[0] = '\0';
    if (!current_call)
        return false;
    char *p = grpc_call_get_peer(current_call); /* "ipv4:1.2.3.4:5", "ipv6:[::1]:5" */
    if (!p)
        return false;
    if (strncmp(p, "ipv4:", 5) != 0 && strncmp(p, "ipv6:", 5) != 0) {
        /* not an IP connection: a relayed one, or none we can name */
        bool ok = current_server && current_server->peer_map &&
                  current_server->peer_map(current_server->peer_map_ctx, p, out, size);
        gpr_free(p);
        return ok;
    }
    const char *h = p;
    if (strncmp(h, "ipv4:", 5) == 0 || strncmp(h, "ipv6:", 5) == 0)
        h += 5;
    size_t n = strlen(h);
    const char *colon = strrchr(h, ':');
    if (colon)
        n = (size_t)(colon - h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n > 7 && strncasecmp(h, "::ffff:", 7) == 0 && memchr(h + 7, '.', n - 7)) {
        h += 7; /* an IPv4 client of a dual-stack listener */
        n -= 7;
    }
    bool ok = n > 0 && n < size;
    if (ok) {
        memcpy(out, h, n);
        out[n] = '\0';
    }
    gpr_free(p);
    return ok;
}

static void srv_req_done(struct rpc_tag *tag, bool ok)
{
    struct srv_req *q = (struct srv_req *)tag;
    struct rpc_server *s = q->srv;
    s->live--;
    if (ok && !s->stopping)
        arm(s, q->method, q->handle); /* keep one armed before handling */
    if (ok) {
        struct rpc_reply r;
        memset(&r, 0, sizeof r);
        if (!q->method) {
            rpc_reply_error(&r, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
        } else if (!q->payload) {
            rpc_reply_error(&r, GRPC_STATUS_INVALID_ARGUMENT, "request has no message");
        } else {
            size_t len;
            char peer[128];
            uint8_t *req = buffer_bytes(q->payload, &len);
            bool known = s->tls && peer_name(q->call, peer, sizeof peer);
            if (s->tls && !known)
                peer[0] = '\0';
            if (!req) {
                rpc_reply_error(&r, GRPC_STATUS_INTERNAL, "cannot read request");
            } else if (s->tls && !known && !q->method->anonymous) {
                rpc_reply_error(&r, GRPC_STATUS_UNAUTHENTICATED, "no verified client certificate");
            } else {
                current_call = q->call;
                current_server = s;
                q->method->fn(q->method->ctx, req, len, s->tls ? peer : NULL, &r);
                current_call = NULL;
                current_server = NULL;
            }
            free(req);
        }
        answer(s, q->call, &r);
        free(r.data);
    }
    if (q->payload)
        grpc_byte_buffer_destroy(q->payload);
    grpc_metadata_array_destroy(&q->md);
    if (!q->method)
        grpc_call_details_destroy(&q->details);
    free(q);
}

static void arm(struct rpc_server *s, const struct rpc_method *m, void *handle)
{
    struct srv_req *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    q->tag.done = srv_req_done;
    q->srv = s;
    q->method = m;
    q->handle = handle;
    grpc_metadata_array_init(&q->md);
    grpc_call_error e;
    if (m) {
        e = grpc_server_request_registered_call(s->server, handle, &q->call, &q->deadline,
                                                &q->md, &q->payload, s->cq, s->cq, &q->tag);
    } else {
        grpc_call_details_init(&q->details);
        e = grpc_server_request_call(s->server, &q->call, &q->details, &q->md,
                                     s->cq, s->cq, &q->tag);
    }
    if (e != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&q->md);
        if (!m)
            grpc_call_details_destroy(&q->details);
        free(q);
        return;
    }
    s->live++;
}

static void shutdown_notified(struct rpc_tag *tag, bool ok)
{
    (void)ok;
    struct rpc_server *s = (struct rpc_server *)((char *)tag - offsetof(struct rpc_server, shutdown_tag));
    s->shutdown_done = true;
}

/* Bandwidth-delay probing sizes flow-control windows for bulk streams by
 * pinging the peer as data arrives; our messages are a few bytes, and the
 * pings cost both sides syscalls and wake-ups: without them the saturated
 * probe rate at 1,000 agents went from 22,500/s to 31,600/s (make bench). */
static grpc_arg no_bdp_probe(void)
{
    grpc_arg a;
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)GRPC_ARG_HTTP2_BDP_PROBE;
    a.value.integer = 0;
    return a;
}

/* What a probe's call does not need: channelz's per-call counters and the
 * retry machinery (a probe is never retried: the next round asks again).
 * Without them the saturated probe rate at 1,000 agents went from 36,800
 * and 37,100 to 42,300 and 41,000 probes/s, and the monitor's RSS there
 * from 72 to 66 MB (two runs each, same machine). */
static void lean_calls(grpc_arg *args, size_t *n)
{
    args[*n].type = GRPC_ARG_INTEGER;
    args[*n].key = (char *)GRPC_ARG_ENABLE_CHANNELZ;
    args[*n].value.integer = 0;
    (*n)++;
    args[*n].type = GRPC_ARG_INTEGER;
    args[*n].key = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[*n].value.integer = 0;
    (*n)++;
}

/* The server's channel arguments (five). */
static void server_args(grpc_arg args[5])
{
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[0].value.integer = 0; /* a second server must fail, not share */
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[1].value.integer = RPC_MAX_MESSAGE;
    args[2] = no_bdp_probe();
    /* A connection that has not finished its TLS and HTTP/2 handshakes in
     * 5 s is dropped (gRPC's default is 120 s): idle strangers cannot hold
     * descriptors for long. */
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = (char *)GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS;
    args[3].value.integer = 5000;
    args[4].type = GRPC_ARG_INTEGER;
    args[4].key = (char *)GRPC_ARG_ENABLE_CHANNELZ;
    args[4].value.integer = 0;
}

/* Mutual TLS with tls, or plaintext without it. A server with an
 * anonymous method (the monitor's Join and Health) asks for a client
 * certificate without requiring one; the method then checks what it got. */
static grpc_server_credentials *server_credentials(const struct rpc_tls *tls,
                                                   const struct rpc_method *methods, size_t nmethods)
{
    grpc_server_credentials *creds;
    if (rpc_tls_on(tls)) {
        grpc_ssl_pem_key_cert_pair pair = {tls->key, tls->cert};
        bool anonymous = false;
        for (size_t i = 0; i < nmethods; i++)
            anonymous |= methods[i].anonymous;
        creds = grpc_ssl_server_credentials_create_ex(
            tls->ca, &pair, 1,
            anonymous ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                      : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    return creds;
}

struct rpc_server *rpc_server_start(const char *addr, const struct rpc_method *methods,
                                    size_t nmethods, grpc_completion_queue *cq,
                                    const struct rpc_tls *tls, int *port,
                                    char *err, size_t errsize)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    grpc_arg args[5];
    server_args(args);
    grpc_channel_args ca = {5, args};
    s->server = grpc_server_create(&ca, NULL);
    s->cq = cq;
    s->nmethods = nmethods;
    s->methods = calloc(nmethods ? nmethods : 1, sizeof *s->methods);
    s->handles = calloc(nmethods ? nmethods : 1, sizeof *s->handles);
    if (!s->methods || !s->handles)
        abort();
    for (size_t i = 0; i < nmethods; i++) {
        s->methods[i] = methods[i];
        s->handles[i] = grpc_server_register_method(s->server, methods[i].name, NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    grpc_server_register_completion_queue(s->server, cq, NULL);
    grpc_server_credentials *creds = server_credentials(tls, methods, nmethods);
    s->tls = rpc_tls_on(tls);
    int bound = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (bound <= 0) {
        snprintf(err, errsize, "cannot listen on %s (address in use or not local?)", addr);
        grpc_server_destroy(s->server);
        free(s->methods);
        free(s->handles);
        free(s);
        return NULL;
    }
    grpc_server_start(s->server);
    for (size_t i = 0; i < nmethods; i++)
        for (int k = 0; k < armed_per_method; k++)
            arm(s, &s->methods[i], s->handles[i]);
    for (int k = 0; k < armed_per_method; k++)
        arm(s, NULL, NULL); /* unknown methods get UNIMPLEMENTED, not a hang */
    if (port)
        *port = bound;
    return s;
}

/* ---- a thread for gRPC's I/O ---- */

struct rpc_poller {
    grpc_completion_queue *cq; /* never given work: waiting on it polls */
    pthread_t thread;
};

static void *poller_main(void *arg)
{
    struct rpc_poller *p = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the owner's */
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(p->cq, deadline_in(1000), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
    }
}

struct rpc_poller *rpc_poller_start(void)
{
    struct rpc_poller *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->cq = grpc_completion_queue_create_for_next(NULL);
    if (pthread_create(&p->thread, NULL, poller_main, p) != 0) {
        grpc_completion_queue_shutdown(p->cq);
        grpc_completion_queue_destroy(p->cq);
        free(p);
        return NULL;
    }
    return p;
}

void rpc_poller_stop(struct rpc_poller *p)
{
    if (!p)
        return;
    grpc_completion_queue_shutdown(p->cq); /* wakes its thread with GRPC_QUEUE_SHUTDOWN */
    pthread_join(p->thread, NULL);
    grpc_completion_queue_destroy(p->cq);
    free(p);
}

/* ---- client ---- */

struct cli_call {
    struct rpc_tag tag;
    struct cli_call *prev, *next;
    grpc_call *call;
    grpc_byte_buffer *send;
    grpc_byte_buffer *recv;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    rpc_done_fn fn;
    void *user;
};

/* Every client call in flight, whatever its channel: counted, and
 * cancelled at shutdown. Process-wide because gRPC's calls are, and the
 * shutdown that cancels them (rpc_shutdown_servers) is the process's. */
static struct cli_call *live_calls;
static size_t live_count;

size_t rpc_calls_in_flight(void) { return live_count; }

grpc_channel *rpc_channel_create(const char *addr, const struct rpc_tls *tls, const char *peer_name)
{
    return rpc_channel_create_ex(addr, tls, peer_name, RPC_CONNECT_MS);
}

grpc_channel *rpc_channel_create_ex(const char *addr, const struct rpc_tls *tls, const char *peer_name,
                                    int connect_ms)
{
    grpc_arg args[8];
    const char *keys[] = {GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                          GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH};
    /* Retry a refused connection after 100 ms, at most a second apart, but
     * give each attempt connect_ms to complete its handshake (gRPC takes
     * the minimum backoff as the connect timeout): a busy peer is slow, not
     * gone, and a channel that gave up fails every call at once until its
     * next attempt. */
    int vals[] = {100, connect_ms > RPC_CONNECT_MS ? connect_ms : RPC_CONNECT_MS, 1000, RPC_MAX_MESSAGE};
    for (int i = 0; i < 4; i++) {
        args[i].type = GRPC_ARG_INTEGER;
        args[i].key = (char *)keys[i];
        args[i].value.integer = vals[i];
    }
    args[4] = no_bdp_probe();
    grpc_channel_args ca = {5, args};
    lean_calls(args, &ca.num_args);
    grpc_channel_credentials *creds;
    if (rpc_tls_on(tls)) {
        grpc_ssl_pem_key_cert_pair pair = {tls->key, tls->cert};
        creds = grpc_ssl_credentials_create(tls->ca, tls->cert ? &pair : NULL, NULL, NULL);
        /* Check the peer's certificate against its role name, whatever
         * address was dialled (instances come and go by IP). */
        args[ca.num_args].type = GRPC_ARG_STRING;
        args[ca.num_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[ca.num_args].value.string = (char *)peer_name;
        ca.num_args++;
    } else {
        creds = grpc_insecure_credentials_create();
    }
    /* "ipv4:" skips the DNS resolver for numeric addresses. */
    char target[96];
    unsigned a, b, c, d, p;
    char tail;
    if (sscanf(addr, "%u.%u.%u.%u:%u%c", &a, &b, &c, &d, &p, &tail) == 5)
        snprintf(target, sizeof target, "ipv4:%s", addr);
    else
        snprintf(target, sizeof target, "%s", addr);
    grpc_channel *ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    return ch;
}

static void cli_call_done(struct rpc_tag *tag, bool ok)
{
    struct cli_call *c = (struct cli_call *)tag;
    if (c->prev)
        c->prev->next = c->next;
    else
        live_calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    live_count--;

    size_t len = 0;
    uint8_t *data = NULL;
    grpc_status_code st = ok ? c->status : GRPC_STATUS_UNAVAILABLE;
    char details[256];
    size_t dn = GRPC_SLICE_LENGTH(c->details);
    if (dn >= sizeof details)
        dn = sizeof details - 1;
    memcpy(details, GRPC_SLICE_START_PTR(c->details), dn);
    details[dn] = '\0';
    if (st == GRPC_STATUS_OK) {
        data = buffer_bytes(c->recv, &len);
        if (!c->recv) {
            st = GRPC_STATUS_INTERNAL;
            snprintf(details, sizeof details, "reply carried no message");
        }
    }
    c->fn(c->user, st, details, data ? data : (const uint8_t *)"", len);
    free(data);
    if (c->send)
        grpc_byte_buffer_destroy(c->send);
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->details);
    if (c->error_string)
        gpr_free((void *)c->error_string);
    grpc_call_unref(c->call);
    free(c);
}

int rpc_call_start(grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                   const uint8_t *req, size_t len, int timeout_ms,
                   rpc_done_fn fn, void *user)
{
    struct cli_call *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->tag.done = cli_call_done;
    c->fn = fn;
    c->user = user;
    grpc_slice m = grpc_slice_from_copied_string(method);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                       deadline_in(timeout_ms), NULL);
    grpc_slice_unref(m);
    c->send = bytes_buffer(req, len);
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    c->details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->md_trailing;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    ops[5].data.recv_status_on_client.error_string = &c->error_string;
    if (grpc_call_start_batch(c->call, ops, 6, &c->tag, NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(c->send);
        grpc_metadata_array_destroy(&c->md_initial);
        grpc_metadata_array_destroy(&c->md_trailing);
        grpc_call_unref(c->call);
        free(c);
        return -1;
    }
    c->next = live_calls;
    if (live_calls)
        live_calls->prev = c;
    live_calls = c;
    live_count++;
    return 0;
}

struct sync_result {
    bool done;
    grpc_status_code st;
    uint8_t *data;
    size_t len;
    char *details;
    size_t detsize;
};

static void sync_done(void *user, grpc_status_code st, const char *details,
                      const uint8_t *data, size_t len)
{
    struct sync_result *r = user;
    r->done = true;
    r->st = st;
    snprintf(r->details, r->detsize, "%s", details);
    if (st == GRPC_STATUS_OK) {
        r->data = malloc(len ? len : 1);
        if (!r->data)
            abort();
        memcpy(r->data, data, len);
        r->len = len;
    }
}

grpc_status_code rpc_call_sync(grpc_channel *ch, const char *method,
                               const uint8_t *req, size_t len, int timeout_ms,
                               uint8_t **reply, size_t *reply_len,
                               char *details, size_t detsize)
{
    grpc_completion_queue *cq = rpc_cq_create();
    struct sync_result r = {false, GRPC_STATUS_UNKNOWN, NULL, 0, details, detsize};
    details[0] = '\0';
    if (rpc_call_start(ch, cq, method, req, len, timeout_ms, sync_done, &r) != 0) {
        r.done = true;
        r.st = GRPC_STATUS_INTERNAL;
        snprintf(details, detsize, "could not start the call");
    }
    while (!r.done)
        rpc_cq_step(cq, 1000);
    grpc_completion_queue_shutdown(cq);
    while (rpc_cq_step(cq, 1000) >= 0)
        ;
    grpc_completion_queue_destroy(cq);
    *reply = r.data;
    *reply_len = r.len;
    return r.st;
}

/* ---- TLS material ---- */

static char *read_pem(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n >= 65535 || !strstr(buf, "-----BEGIN ")) {
        snprintf(err, errsize, "%s: not a PEM file", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int rpc_tls_load(struct rpc_tls *t, const char *ca, const char *cert, const char *key,
                 char *err, size_t errsize)
{
    memset(t, 0, sizeof *t);
    if (!(t->ca = read_pem(ca, err, errsize)) || !(t->cert = read_pem(cert, err, errsize)) ||
        !(t->key = read_pem(key, err, errsize))) {
        rpc_tls_free(t);
        return -1;
    }
    return 0;
}

int rpc_manager_tls(const struct asg_config *cfg, struct rpc_tls *t, char *err, size_t errsize)
{
    memset(t, 0, sizeof *t);
    if (cfg->tls_mode == TLS_PLAINTEXT)
        return 0;
    char dir[256], ca[300], cert[300], key[300];
    pki_dir(cfg, dir, sizeof dir);
    snprintf(ca, sizeof ca, "%s/%s", dir, PKI_CA_CERT);
    snprintf(cert, sizeof cert, "%s/%s", dir, PKI_MGR_CERT);
    snprintf(key, sizeof key, "%s/%s", dir, PKI_MGR_KEY);
    if (!(t->ca = secret_read(ca, PKI_PEM_MAX, err, errsize)) ||
        !(t->cert = secret_read(cert, PKI_PEM_MAX, err, errsize)) ||
        !(t->key = secret_read(key, PKI_PEM_MAX, err, errsize))) {
        rpc_tls_free(t);
        return -1;
    }
    return 0;
}

void rpc_tls_free(struct rpc_tls *t)
{
    if (t->key)
        memset(t->key, 0, strlen(t->key)); /* the private key does not linger */
    free(t->ca);
    free(t->cert);
    free(t->key);
    memset(t, 0, sizeof *t);
}

/* ---- shutdown ---- */

void rpc_shutdown_servers(struct rpc_server *const *s, size_t n, grpc_completion_queue *cq)
{
    for (struct cli_call *c = live_calls; c; c = c->next)
        grpc_call_cancel(c->call, NULL);
    for (size_t i = 0; i < n; i++) {
        if (!s[i])
            continue;
        s[i]->stopping = true;
        s[i]->shutdown_tag.done = shutdown_notified;
        grpc_server_shutdown_and_notify(s[i]->server, cq, &s[i]->shutdown_tag);
        grpc_server_cancel_all_calls(s[i]->server);
    }
    /* Waits for each notification in turn: one pass over the servers,
     * however many events each step delivers. */
    for (size_t i = 0; i < n; i++)
        while (s[i] && !s[i]->shutdown_done)
            if (rpc_cq_step(cq, 1000) < 0)
                goto notified;
notified:
    grpc_completion_queue_shutdown(cq);
    while (rpc_cq_step(cq, 1000) >= 0)
        ;
    for (size_t i = 0; i < n; i++) {
        if (!s[i])
            continue;
        grpc_server_destroy(s[i]->server);
        free(s[i]->methods);
        free(s[i]->handles);
        free(s[i]);
    }
    grpc_completion_queue_destroy(cq);
}

void rpc_shutdown(struct rpc_server *s, grpc_completion_queue *cq)
{
    rpc_shutdown_servers(&s, 1, cq);
}
