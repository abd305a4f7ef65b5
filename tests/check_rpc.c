/* The RPC layer against a real asg-agent process. */
#define _GNU_SOURCE
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "../common/pki.h"
#include "../proto/h2probe.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "asg.pb-c.h"
#include "check_suites.h"
#include "health.pb-c.h"

static pid_t agent_pid;
static char agent_addr[64];
static grpc_channel *ch;

static void start_agent(void)
{
    const char *bin = getenv("ASG_BIN");
    char path[512];
    snprintf(path, sizeof path, "%s/asg-agent", bin ? bin : "bin");
    int fds[2];
    ck_assert(pipe(fds) == 0);
    agent_pid = fork();
    ck_assert(agent_pid >= 0);
    if (agent_pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        execl(path, "asg-agent", "--listen", "127.0.0.1:0", "--id", "unit-1", "--seed", "7",
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    ck_assert_msg(fgets(agent_addr, sizeof agent_addr, f) != NULL, "agent %s printed nothing", path);
    fclose(f);
    agent_addr[strcspn(agent_addr, "\n")] = '\0';
    ck_assert_msg(strncmp(agent_addr, "127.0.0.1:", 10) == 0, "first line '%s'", agent_addr);
    grpc_init();
    ch = rpc_channel_create(agent_addr, NULL, NULL);
}

static void stop_agent(void)
{
    grpc_channel_destroy(ch);
    grpc_shutdown();
    kill(agent_pid, SIGTERM);
    int st;
    waitpid(agent_pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status %d", st);
}

static grpc_status_code call_raw(const char *method, const void *req, size_t len,
                                 uint8_t **reply, size_t *rlen, char *det)
{
    return rpc_call_sync(ch, method, req, len, 3000, reply, rlen, det, 256);
}

static grpc_status_code call_msg(const char *method, const ProtobufCMessage *m,
                                 uint8_t **reply, size_t *rlen, char *det)
{
    size_t len;
    uint8_t *buf = rpc_pack(m, &len);
    grpc_status_code st = call_raw(method, buf, len, reply, rlen, det);
    free(buf);
    return st;
}

START_TEST(test_ping)
{
    Asg__V1__PingRequest q = ASG__V1__PING_REQUEST__INIT;
    q.seq = 4242;
    uint8_t *data;
    size_t len;
    char det[256];
    for (uint64_t i = 1; i <= 3; i++) {
        ck_assert_int_eq(call_msg(M_AGENT_PING, &q.base, &data, &len, det), GRPC_STATUS_OK);
        Asg__V1__PingReply *r = asg__v1__ping_reply__unpack(NULL, len, data);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->instance_id, "unit-1");
        ck_assert(r->load >= 0 && r->load <= 1);
        ck_assert_uint_eq(r->seq, 4242);
        ck_assert_uint_eq(r->answered, i);
        asg__v1__ping_reply__free_unpacked(r, NULL);
        free(data);
    }
}
END_TEST

START_TEST(test_metrics_and_set_load)
{
    uint8_t *data;
    size_t len;
    char det[256];
    Asg__V1__SetLoadRequest s = ASG__V1__SET_LOAD_REQUEST__INIT;
    s.load = 0.77;
    ck_assert_int_eq(call_msg(M_AGENT_SET_LOAD, &s.base, &data, &len, det), GRPC_STATUS_OK);
    Asg__V1__SetLoadReply *sr = asg__v1__set_load_reply__unpack(NULL, len, data);
    ck_assert(sr && sr->pinned && sr->load > 0.769 && sr->load < 0.771);
    asg__v1__set_load_reply__free_unpacked(sr, NULL);
    free(data);
    usleep(350000); /* several walk ticks: a pinned load does not move */
    Asg__V1__MetricsRequest mq = ASG__V1__METRICS_REQUEST__INIT;
    ck_assert_int_eq(call_msg(M_AGENT_GET_METRICS, &mq.base, &data, &len, det), GRPC_STATUS_OK);
    Asg__V1__MetricsReply *m = asg__v1__metrics_reply__unpack(NULL, len, data);
    ck_assert_ptr_nonnull(m);
    ck_assert(m->load > 0.769 && m->load < 0.771);
    ck_assert(m->load_pinned);
    ck_assert(m->cpu >= 0 && m->cpu <= 1 && m->mem >= 0 && m->mem <= 1);
    ck_assert(m->uptime_ms > 0);
    ck_assert(m->sample_time_ms > 1600000000000LL);
    asg__v1__metrics_reply__free_unpacked(m, NULL);
    free(data);
    /* Release: the walk moves again. */
    s.release = true;
    ck_assert_int_eq(call_msg(M_AGENT_SET_LOAD, &s.base, &data, &len, det), GRPC_STATUS_OK);
    sr = asg__v1__set_load_reply__unpack(NULL, len, data);
    ck_assert(sr && !sr->pinned);
    asg__v1__set_load_reply__free_unpacked(sr, NULL);
    free(data);
}
END_TEST

START_TEST(test_set_load_out_of_range)
{
    uint8_t *data;
    size_t len;
    char det[256];
    double bad[] = {1.5, -0.1, 1.0 / 0.0};
    for (int i = 0; i < 3; i++) {
        Asg__V1__SetLoadRequest s = ASG__V1__SET_LOAD_REQUEST__INIT;
        s.load = bad[i];
        ck_assert_int_eq(call_msg(M_AGENT_SET_LOAD, &s.base, &data, &len, det),
                         GRPC_STATUS_INVALID_ARGUMENT);
        ck_assert_msg(strstr(det, "outside 0..1") != NULL, "%s", det);
    }
}
END_TEST

START_TEST(test_health)
{
    uint8_t *data;
    size_t len;
    char det[256];
    Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ck_assert_int_eq(call_msg(M_HEALTH_CHECK, &q.base, &data, &len, det), GRPC_STATUS_OK);
    Grpc__Health__V1__HealthCheckResponse *r =
        grpc__health__v1__health_check_response__unpack(NULL, len, data);
    ck_assert(r && r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    free(data);
    q.service = (char *)"no.such.Service";
    ck_assert_int_eq(call_msg(M_HEALTH_CHECK, &q.base, &data, &len, det), GRPC_STATUS_NOT_FOUND);
}
END_TEST

START_TEST(test_malformed_requests)
{
    /* Truncated varint, a field with a wrong wire type, a length running
     * past the end, random bytes: INVALID_ARGUMENT, and the agent lives. */
    static const uint8_t junk[][8] = {
        {0x08, 0xff}, {0x0d, 1, 2}, {0x12, 0x50, 'a'}, {0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}};
    static const size_t lens[] = {2, 3, 3, 8};
    const char *methods[] = {M_AGENT_PING, M_AGENT_SET_LOAD, M_HEALTH_CHECK, M_AGENT_GET_METRICS};
    uint8_t *data;
    size_t len;
    char det[256];
    for (int m = 0; m < 4; m++)
        for (int j = 0; j < 4; j++)
            ck_assert_msg(call_raw(methods[m], junk[j], lens[j], &data, &len, det) ==
                              GRPC_STATUS_INVALID_ARGUMENT,
                          "%s with junk %d: %s", methods[m], j, det);
    Asg__V1__PingRequest q = ASG__V1__PING_REQUEST__INIT;
    ck_assert_int_eq(call_msg(M_AGENT_PING, &q.base, &data, &len, det), GRPC_STATUS_OK);
    free(data);
}
END_TEST

START_TEST(test_unknown_method_unimplemented)
{
    uint8_t *data;
    size_t len;
    char det[256];
    int64_t t0 = now_ms();
    ck_assert_int_eq(call_raw("/asg.v1.Agent/Nope", "", 0, &data, &len, det),
                     GRPC_STATUS_UNIMPLEMENTED);
    ck_assert_msg(now_ms() - t0 < 2000, "unknown method took until the deadline");
}
END_TEST

START_TEST(test_dead_address_fails_fast)
{
    grpc_channel *dead = rpc_channel_create("127.0.0.1:1", NULL, NULL);
    uint8_t *data;
    size_t len;
    char det[256];
    Asg__V1__PingRequest q = ASG__V1__PING_REQUEST__INIT;
    size_t n;
    uint8_t *buf = rpc_pack(&q.base, &n);
    grpc_status_code st = rpc_call_sync(dead, M_AGENT_PING, buf, n, 500, &data, &len, det, sizeof det);
    ck_assert(st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_DEADLINE_EXCEEDED);
    free(buf);
    grpc_channel_destroy(dead);
}
END_TEST


/* ---- the probe engine (proto/h2probe.c) against the real agent ---- */

struct outcome {
    int n;
    grpc_status_code st;
    char details[64];
    uint8_t reply[256];
    size_t len;
};

static void note_outcome(void *user, grpc_status_code st, const char *details, const uint8_t *data, size_t len)
{
    struct outcome *o = user;
    o->n++;
    o->st = st;
    snprintf(o->details, sizeof o->details, "%s", details);
    o->len = len <= sizeof o->reply ? len : 0;
    memcpy(o->reply, data, o->len);
}

static struct h2p *engine(const char *path)
{
    char err[128];
    struct h2p *e = h2p_new(path, NULL, RPC_AGENT_NAME, note_outcome, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    return e;
}

/* One call, polled until it is reported (once). */
static struct outcome call_once(struct h2p *e, struct h2p_conn *c, uint64_t seq, int timeout_ms)
{
    Asg__V1__PingRequest q = ASG__V1__PING_REQUEST__INIT;
    q.seq = seq;
    uint8_t buf[64];
    size_t n = asg__v1__ping_request__pack(&q, buf);
    struct outcome o = {0};
    ck_assert_int_eq(h2p_call(c, buf, n, timeout_ms, &o), 0);
    ck_assert_int_eq(h2p_call(c, buf, n, timeout_ms, &o), -1); /* one at a time */
    int64_t end = now_ms() + timeout_ms + 5000;
    while (o.n == 0 && now_ms() < end)
        h2p_poll(e, 100000);
    h2p_poll(e, 0);
    ck_assert_int_eq(o.n, 1);
    return o;
}

/* A loopback listener that accepts (in the kernel's queue) and never
 * answers; its "127.0.0.1:PORT" in addr. */
static int silent_listener(int backlog, char *addr, size_t size)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, backlog) == 0);
    ck_assert(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    snprintf(addr, size, "127.0.0.1:%d", ntohs(a.sin_port));
    return l;
}

START_TEST(test_h2p_pings_the_agent)
{
    struct h2p *e = engine(M_AGENT_PING);
    struct h2p_conn *c = h2p_conn_new(e, agent_addr);
    /* many streams on one connection, each answer checked */
    for (uint64_t seq = 1; seq <= 300; seq++) {
        struct outcome o = call_once(e, c, seq, 3000);
        ck_assert_msg(o.st == GRPC_STATUS_OK, "call %llu: %d %s", (unsigned long long)seq, o.st, o.details);
        Asg__V1__PingReply *r = asg__v1__ping_reply__unpack(NULL, o.len, o.reply);
        ck_assert(r != NULL);
        ck_assert_uint_eq(r->seq, seq);
        ck_assert_str_eq(r->instance_id, "unit-1");
        asg__v1__ping_reply__free_unpacked(r, NULL);
    }
    ck_assert_uint_eq(h2p_in_flight(e), 0);
    ck_assert_ptr_null(h2p_conn_free(c));
    h2p_free(e);
}
END_TEST

START_TEST(test_h2p_failures_are_named)
{
    /* the real agent's own answer to a method it lacks (headers only) */
    struct h2p *e = engine("/asg.v1.Agent/NoSuchMethod");
    struct h2p_conn *c = h2p_conn_new(e, agent_addr);
    struct outcome o = call_once(e, c, 1, 3000);
    ck_assert_int_eq(o.st, GRPC_STATUS_UNIMPLEMENTED);
    ck_assert_ptr_null(h2p_conn_free(c));
    h2p_free(e);

    e = engine(M_AGENT_PING);
    c = h2p_conn_new(e, "127.0.0.1:1");
    o = call_once(e, c, 1, 3000);
    ck_assert_int_eq(o.st, GRPC_STATUS_UNAVAILABLE);
    ck_assert_msg(strstr(o.details, "connect") != NULL, "%s", o.details);
    h2p_conn_free(c);
    c = h2p_conn_new(e, "agent.example:80");
    o = call_once(e, c, 1, 3000);
    ck_assert_int_eq(o.st, GRPC_STATUS_UNAVAILABLE);
    ck_assert_str_eq(o.details, "address is not IP:PORT");
    h2p_conn_free(c);

    /* a peer that accepts and never answers: the deadline, on time */
    char addr[32];
    int l = silent_listener(4, addr, sizeof addr);
    c = h2p_conn_new(e, addr);
    int64_t t0 = now_ms();
    o = call_once(e, c, 1, 200);
    int64_t took = now_ms() - t0;
    ck_assert_int_eq(o.st, GRPC_STATUS_DEADLINE_EXCEEDED);
    ck_assert_msg(took >= 200 && took < 3000, "took %lld ms", (long long)took);
    /* a call in flight when its connection is freed is handed back */
    int token;
    ck_assert_int_eq(h2p_call(c, (const uint8_t *)"", 0, 5000, &token), 0);
    ck_assert_uint_eq(h2p_in_flight(e), 1);
    ck_assert_ptr_eq(h2p_conn_free(c), &token);
    ck_assert_uint_eq(h2p_in_flight(e), 0);
    close(l);
    h2p_free(e);
}
END_TEST

/* ---- the engine's reading of frames, byte by byte ---- */

struct wire {
    uint8_t b[128 * 1024];
    size_t n;
    nghttp2_hd_deflater *d;
};

static void w_frame(struct wire *w, uint8_t type, uint8_t flags, uint32_t stream, const void *p, size_t len)
{
    ck_assert(w->n + 9 + len <= sizeof w->b);
    uint8_t *f = w->b + w->n;
    f[0] = (uint8_t)(len >> 16), f[1] = (uint8_t)(len >> 8), f[2] = (uint8_t)len;
    f[3] = type, f[4] = flags;
    f[5] = (uint8_t)(stream >> 24), f[6] = (uint8_t)(stream >> 16), f[7] = (uint8_t)(stream >> 8), f[8] = (uint8_t)stream;
    if (len)
        memcpy(f + 9, p, len);
    w->n += 9 + len;
}

/* kv: name, value, ..., NULL. The block encoded by nghttp2's encoder
 * with its dynamic table, as a real server's would be. */
static size_t w_block(struct wire *w, uint8_t *out, size_t size, const char *const *kv)
{
    nghttp2_nv nv[16];
    size_t k = 0;
    for (; kv[2 * k]; k++)
        nv[k] = (nghttp2_nv){(uint8_t *)kv[2 * k], (uint8_t *)kv[2 * k + 1], strlen(kv[2 * k]),
                             strlen(kv[2 * k + 1]), NGHTTP2_NV_FLAG_NONE};
    ssize_t n = nghttp2_hd_deflate_hd(w->d, out, size, nv, k);
    ck_assert(n > 0);
    return (size_t)n;
}

static void w_headers(struct wire *w, uint32_t stream, uint8_t flags, const char *const *kv)
{
    uint8_t block[1024];
    w_frame(w, 1, flags | 0x4, stream, block, w_block(w, block, sizeof block, kv));
}

static void w_message(struct wire *w, uint32_t stream, uint8_t flags, const uint8_t *m, size_t len)
{
    uint8_t buf[8192];
    ck_assert(len + 5 <= sizeof buf);
    buf[0] = 0;
    buf[1] = (uint8_t)(len >> 24), buf[2] = (uint8_t)(len >> 16), buf[3] = (uint8_t)(len >> 8), buf[4] = (uint8_t)len;
    memcpy(buf + 5, m, len);
    w_frame(w, 0, flags, stream, buf, len + 5);
}

static const char *const OK_HEADERS[] = {":status", "200", "content-type", "application/grpc", NULL};
static const char *const OK_TRAILERS[] = {"grpc-status", "0", "grpc-message", "", NULL};
static const uint8_t MSG[] = {0x08, 0x2a, 0x12, 0x02, 'i', 'd'};

static void w_start(struct wire *w)
{
    w->n = 0;
    ck_assert(nghttp2_hd_deflate_new(&w->d, 4096) == 0);
    uint8_t settings[6] = {0, 4, 0, 0, 0xff, 0xff};
    w_frame(w, 4, 0, 0, settings, sizeof settings);
}

static void w_answer(struct wire *w, uint32_t stream)
{
    w_headers(w, stream, 0, OK_HEADERS);
    w_message(w, stream, 0, MSG, sizeof MSG);
    w_headers(w, stream, 0x1, OK_TRAILERS);
}

/* A fresh wire holding a whole answer whose DATA is data as it is (no
 * gRPC prefix added). */
static void w_answer_data(struct wire *w, const uint8_t *data, size_t len)
{
    w_start(w);
    w_headers(w, 1, 0, OK_HEADERS);
    w_frame(w, 0, 0, 1, data, len);
    w_headers(w, 1, 0x1, OK_TRAILERS);
}

/* The status the engine reads from w, fed in chunks of every size given;
 * each must read the same. The reply must be MSG when OK. */
static int w_feed(struct wire *w)
{
    nghttp2_hd_deflate_del(w->d);
    int st = -2;
    const size_t chunks[] = {1, 7, 100, sizeof w->b};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        uint8_t reply[64];
        size_t len = sizeof reply;
        int s = h2p_feed_for_test(w->b, w->n, chunks[i], reply, &len, NULL, NULL);
        ck_assert_msg(i == 0 || s == st, "chunks of %zu read %d, not %d", chunks[i], s, st);
        st = s;
        if (st == GRPC_STATUS_OK)
            ck_assert(len == sizeof MSG && memcmp(reply, MSG, len) == 0);
    }
    return st;
}

START_TEST(test_h2p_reads_answers)
{
    struct wire *w = calloc(1, sizeof *w);
    w_start(w);
    w_answer(w, 1);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_OK);

    /* what a server may add: pings, window updates, unknown frame types,
     * a late answer to a cancelled stream first (its headers still feed
     * the table), padding, and a header block split over CONTINUATION */
    w_start(w);
    uint8_t ping[8] = {1, 2, 3, 4, 5, 6, 7, 8}, inc[4] = {0, 0, 1, 0}, odd[3] = {9, 9, 9};
    w_frame(w, 6, 0, 0, ping, 8);
    w_frame(w, 8, 0, 0, inc, 4);
    w_frame(w, 0x42, 0, 0, odd, 3);
    w_headers(w, 5, 0, OK_HEADERS);
    w_message(w, 5, 0, (const uint8_t *)"zz", 2);
    uint8_t block[256];
    size_t bl = w_block(w, block, sizeof block, OK_HEADERS);
    ck_assert(bl >= 2); /* stream 5's fields, from the dynamic table */
    w_frame(w, 1, 0, 1, block, 1);
    w_frame(w, 9, 0, 1, block + 1, 0);
    w_frame(w, 9, 0x4, 1, block + 1, bl - 1);
    uint8_t padded[64] = {3, 0, 0, 0, 0, sizeof MSG};
    memcpy(padded + 6, MSG, sizeof MSG);
    w_frame(w, 0, 0x8, 1, padded, 1 + 5 + sizeof MSG + 3);
    w_headers(w, 1, 0x1, OK_TRAILERS);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_OK);

    /* the peer's own error, as a headers-only answer */
    w_start(w);
    const char *const unimpl[] = {":status", "200", "grpc-status", "12", "grpc-message", "no\nsuch", NULL};
    w_headers(w, 1, 0x1, unimpl);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNIMPLEMENTED);
    w_start(w);
    const char *const odd_status[] = {":status", "200", "grpc-status", "77", NULL};
    w_headers(w, 1, 0x1, odd_status);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNKNOWN);
    w_start(w);
    const char *const http503[] = {":status", "503", NULL};
    w_headers(w, 1, 0x1, http503);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);

    /* an answer that ends without trailers, or without grpc-status */
    w_start(w);
    w_headers(w, 1, 0, OK_HEADERS);
    w_message(w, 1, 0x1, MSG, sizeof MSG);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_INTERNAL);
    /* answers still open when the bytes run out */
    w_start(w);
    w_headers(w, 1, 0, OK_HEADERS);
    w_message(w, 1, 0, MSG, sizeof MSG);
    ck_assert_int_eq(w_feed(w), -1);
    w_start(w);
    w_answer(w, 3); /* another stream's */
    ck_assert_int_eq(w_feed(w), -1);
    free(w);
}
END_TEST

START_TEST(test_h2p_refuses_malformed_answers)
{
    struct wire *w = calloc(1, sizeof *w);
    /* the message: too long, compressed, or its length wrong */
    w_start(w);
    w_headers(w, 1, 0, OK_HEADERS);
    static uint8_t big[5000];
    w_message(w, 1, 0, big, sizeof big);
    w_headers(w, 1, 0x1, OK_TRAILERS);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_INTERNAL);
    const uint8_t comp[] = {1, 0, 0, 0, 1, 0x08}, lying[] = {0, 0, 0, 0, 9, 0x08};
    w_answer_data(w, comp, sizeof comp);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_INTERNAL);
    w_answer_data(w, lying, sizeof lying);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_INTERNAL);
    w_start(w);
    w_message(w, 1, 0, MSG, sizeof MSG); /* before any headers */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_INTERNAL);

    /* the stream reset, the connection going away before our stream */
    w_start(w);
    uint8_t code[4] = {0, 0, 0, 2}, away[8] = {0};
    w_frame(w, 3, 0, 1, code, 4);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    w_frame(w, 7, 0, 0, away, 8);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);

    /* connection errors: each closes the connection and fails the call */
    uint8_t junk[32];
    memset(junk, 0xff, sizeof junk);
    w_start(w);
    w->b[w->n++] = 0x00, w->b[w->n++] = 0x4e, w->b[w->n++] = 0x20; /* 20,000 bytes announced */
    memset(w->b + w->n, 0, 6), w->n += 6;
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    w_frame(w, 1, 0x5, 1, junk, sizeof junk); /* not HPACK */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    w_frame(w, 9, 0x4, 1, junk, 1); /* CONTINUATION out of the blue */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    uint8_t block[256];
    size_t bl = w_block(w, block, sizeof block, OK_HEADERS);
    w_frame(w, 1, 0, 1, block, bl); /* a block left open... */
    w_frame(w, 6, 0, 0, junk, 8);    /* ...interrupted */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    uint8_t badpad[4] = {9, 0, 0, 0};
    w_frame(w, 0, 0x8, 1, badpad, 4);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    w_frame(w, 4, 0, 0, junk, 5); /* SETTINGS not a multiple of 6 */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    w_frame(w, 5, 0x4, 1, junk, 8); /* PUSH_PROMISE, though push is off */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    w_start(w);
    uint8_t zero[4] = {0};
    w_frame(w, 8, 0, 0, zero, 4); /* a window update of 0 */
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    /* pings the peer never reads the answers to: bounded, then dropped */
    w_start(w);
    for (int i = 0; i < 5000; i++)
        w_frame(w, 6, 0, 0, junk, 8);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    /* a header block that goes on and on in CONTINUATION frames: one
     * 20,000-byte value, announced, then sent 1,000 bytes at a time */
    w_start(w);
    uint8_t lit[] = {0x00, 0x01, 'x', 0x7f, 0xa1, 0x9b, 0x01}; /* 127 + 19873 */
    w_frame(w, 1, 0, 1, lit, sizeof lit);
    static uint8_t kilo[1000];
    memset(kilo, 'a', sizeof kilo);
    for (int i = 0; i < 20; i++)
        w_frame(w, 9, i == 19 ? 0x4 : 0, 1, kilo, sizeof kilo);
    ck_assert_int_eq(w_feed(w), GRPC_STATUS_UNAVAILABLE);
    free(w);
}
END_TEST

/* Decodes the header block of the HEADERS frame in f (no CONTINUATION:
 * ours fit one frame) with inflater d; the value of name, or "". */
static void block_fields(nghttp2_hd_inflater *d, const uint8_t *f, size_t flen, char *out, size_t size)
{
    ck_assert(flen >= 9 && f[3] == 1 && (f[4] & 0x4));
    size_t n = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
    ck_assert(9 + n <= flen);
    const uint8_t *p = f + 9;
    out[0] = '\0';
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(d, &nv, &flags, p, n, 1);
        ck_assert_msg(r >= 0, "block does not decode: %s", nghttp2_strerror((int)r));
        p += r, n -= (size_t)r;
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
            size_t k = strlen(out);
            snprintf(out + k, size - k, "%.*s=%.*s;", (int)nv.namelen, nv.name, (int)nv.valuelen, nv.value);
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(d);
            break;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
            break;
    }
}

/* The next frame of type t in sent[*off..len): its offset, or -1. */
static long next_frame(const uint8_t *sent, size_t len, size_t *off, uint8_t t)
{
    while (*off + 9 <= len) {
        size_t at = *off, n = (size_t)sent[at] << 16 | (size_t)sent[at + 1] << 8 | sent[at + 2];
        *off += 9 + n;
        if (sent[at + 3] == t)
            return (long)at;
    }
    return -1;
}

START_TEST(test_h2p_answers_the_peers_frames)
{
    struct wire *w = calloc(1, sizeof *w);
    static uint8_t sent[8192];
    const char *const want = ":method=POST;:scheme=http;:path=/asg.v1.Agent/Ping;:authority=asg-agent;"
                             "content-type=application/grpc;te=trailers;user-agent=asg-monitor;";
    char fields[512];
    /* a ping is echoed, settings acknowledged, and the next call's block
     * adds its fields to the peer's table */
    w_start(w);
    uint8_t ping[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    w_frame(w, 6, 0, 0, ping, 8);
    w_answer(w, 1);
    nghttp2_hd_deflate_del(w->d);
    size_t len = sizeof sent, rl = 64, off = 0;
    uint8_t reply[64];
    ck_assert_int_eq(h2p_feed_for_test(w->b, w->n, 5, reply, &rl, sent, &len), GRPC_STATUS_OK);
    long at = next_frame(sent, len, &off, 4);
    ck_assert_msg(at >= 0 && sent[at + 4] == 0x1 && sent[at + 2] == 0, "no SETTINGS ack");
    off = 0;
    at = next_frame(sent, len, &off, 6);
    ck_assert_msg(at >= 0 && sent[at + 4] == 0x1 && memcmp(sent + at + 9, ping, 8) == 0, "ping not echoed");
    off = 0;
    at = next_frame(sent, len, &off, 1);
    ck_assert(at >= 0 && sent[at + 8] == 3); /* stream 3 */
    nghttp2_hd_inflater *d;
    ck_assert(nghttp2_hd_inflate_new(&d) == 0);
    block_fields(d, sent + at, len - (size_t)at, fields, sizeof fields);
    ck_assert_str_eq(fields, want);
    ck_assert_uint_gt(nghttp2_hd_inflate_get_dynamic_table_size(d), 0);
    nghttp2_hd_inflate_del(d);

    /* a peer whose table is too small for them: told the new size first,
     * then sent literals that change no table */
    w_start(w);
    uint8_t table0[6] = {0, 1, 0, 0, 0, 0};
    w_frame(w, 4, 0, 0, table0, 6);
    w_answer(w, 1);
    nghttp2_hd_deflate_del(w->d);
    len = sizeof sent, rl = 64, off = 0;
    ck_assert_int_eq(h2p_feed_for_test(w->b, w->n, 64, reply, &rl, sent, &len), GRPC_STATUS_OK);
    at = next_frame(sent, len, &off, 1);
    ck_assert(at >= 0);
    ck_assert_int_eq(sent[at + 9], 0x20); /* a table size update to 0 */
    ck_assert(nghttp2_hd_inflate_new(&d) == 0);
    ck_assert(nghttp2_hd_inflate_change_table_size(d, 0) == 0);
    block_fields(d, sent + at, len - (size_t)at, fields, sizeof fields);
    ck_assert_str_eq(fields, want);
    ck_assert_uint_eq(nghttp2_hd_inflate_get_dynamic_table_size(d), 0);
    nghttp2_hd_inflate_del(d);
    free(w);
}
END_TEST

static double cpu_ms(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
}

/* The engine busy-polls only while answers keep coming: with a hundred
 * calls out to a peer that never answers, waiting costs no CPU (a spin on
 * the number of calls out alone would burn the whole wait). */
START_TEST(test_h2p_sleeps_when_nothing_comes)
{
    enum { CALLS = 100 };
    struct h2p *e = engine(M_AGENT_PING);
    char addr[32];
    int l = silent_listener(CALLS, addr, sizeof addr);
    struct h2p_conn *c[CALLS];
    int token;
    for (int i = 0; i < CALLS; i++) {
        c[i] = h2p_conn_new(e, addr);
        ck_assert_int_eq(h2p_call(c[i], (const uint8_t *)"", 0, 60000, &token), 0);
    }
    int64_t settle = now_ms() + 200; /* the connects complete: events, then silence */
    while (now_ms() < settle)
        h2p_poll(e, 10000);
    double cpu0 = cpu_ms();
    int64_t t0 = now_ms();
    while (now_ms() - t0 < 500)
        h2p_poll(e, 50000);
    double used = cpu_ms() - cpu0;
    ck_assert_uint_eq(h2p_in_flight(e), CALLS);
    ck_assert_msg(used < 100, "%.0f ms of CPU in 500 ms of waiting on silent peers", used);
    for (int i = 0; i < CALLS; i++)
        ck_assert_ptr_eq(h2p_conn_free(c[i]), &token);
    close(l);
    h2p_free(e);
}
END_TEST

/* A TLS handshake that outlasts a probe goes on for the next one instead
 * of starting again (on a busy machine each new one would outlast its
 * probe too): a peer that accepts and stays silent sees one connection
 * for several probes, and the failures say where they stopped. */
START_TEST(test_h2p_handshake_outlives_a_probe)
{
    char dir[] = "/tmp/asg-h2p-XXXXXX", err[256], ca[512], cert[512], key[512];
    ck_assert(mkdtemp(dir) != NULL);
    ck_assert_msg(pki_prepare(dir, err, sizeof err) == 0, "%s", err);
    snprintf(ca, sizeof ca, "%s/%s", dir, PKI_CA_CERT);
    snprintf(cert, sizeof cert, "%s/%s", dir, PKI_MGR_CERT);
    snprintf(key, sizeof key, "%s/%s", dir, PKI_MGR_KEY);
    struct rpc_tls tls;
    ck_assert_msg(rpc_tls_load(&tls, ca, cert, key, err, sizeof err) == 0, "%s", err);
    struct h2p *e = h2p_new(M_AGENT_PING, &tls, RPC_AGENT_NAME, note_outcome, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    char addr[32];
    int l = silent_listener(4, addr, sizeof addr);
    struct h2p_conn *c = h2p_conn_new(e, addr);
    for (int k = 0; k < 3; k++) {
        struct outcome o = call_once(e, c, (uint64_t)k + 1, 100);
        ck_assert_int_eq(o.st, GRPC_STATUS_DEADLINE_EXCEEDED);
        ck_assert_msg(strstr(o.details, "TLS handshake") != NULL, "%s", o.details);
    }
    /* one connection came, and no other waits behind it */
    int s1 = accept(l, NULL, NULL);
    ck_assert(s1 >= 0);
    struct timeval tv = {0, 1000};
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(l, &fds);
    ck_assert_int_eq(select(l + 1, &fds, NULL, NULL, &tv), 0);
    close(s1);
    close(l);
    h2p_conn_free(c);
    h2p_free(e);
    rpc_tls_free(&tls);
    snprintf(err, sizeof err, "rm -rf '%s'", dir);
    ck_assert(system(err) == 0);
}
END_TEST

/* The status API's token: made once (a second prepare keeps it), 64 hex
 * digits, 0600; read back only from a 0700 directory of ours, as a
 * regular file of ours with no wider mode, never through a link. */
START_TEST(test_api_token_is_private)
{
    char dir[] = "/tmp/asg-tok-XXXXXX", err[512], tok[PKI_API_TOKEN_LEN + 1], again[PKI_API_TOKEN_LEN + 1];
    char path[300], other[300];
    ck_assert(mkdtemp(dir) != NULL);
    ck_assert_msg(pki_api_token_prepare(dir, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pki_api_token_read(dir, tok, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(strlen(tok), PKI_API_TOKEN_LEN);
    ck_assert_uint_eq(strspn(tok, "0123456789abcdef"), PKI_API_TOKEN_LEN);
    ck_assert_msg(pki_api_token_prepare(dir, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), 0);
    ck_assert_str_eq(tok, again);
    snprintf(path, sizeof path, "%s/%s", dir, PKI_API_TOKEN);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "0600") != NULL, "%s", err);
    ck_assert_str_eq(again, "");
    /* a link to a file of the right shape is still refused */
    snprintf(other, sizeof other, "%s/elsewhere", dir);
    ck_assert_int_eq(rename(path, other), 0);
    ck_assert_int_eq(chmod(other, 0600), 0);
    ck_assert_int_eq(symlink(other, path), 0);
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "link") != NULL, "%s", err);
    unlink(path);
    ck_assert_int_eq(rename(other, path), 0);
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), 0);
    ck_assert_int_eq(chmod(dir, 0755), 0); /* others may enter: refused */
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), -1);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs("short\n", f);
    fclose(f);
    ck_assert_int_eq(pki_api_token_read(dir, again, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "hex digits") != NULL, "%s", err);
    snprintf(err, sizeof err, "rm -rf '%s'", dir);
    ck_assert(system(err) == 0);
}
END_TEST

Suite *rpc_suite(void)
{
    const TTest *tests[] = {
        test_ping,
        test_metrics_and_set_load,
        test_set_load_out_of_range,
        test_health,
        test_malformed_requests,
        test_unknown_method_unimplemented,
        test_dead_address_fails_fast,
        test_h2p_pings_the_agent,
        test_h2p_failures_are_named,
        test_h2p_reads_answers,
        test_h2p_refuses_malformed_answers,
        test_h2p_answers_the_peers_frames,
        test_h2p_handshake_outlives_a_probe,
        test_h2p_sleeps_when_nothing_comes,
        test_api_token_is_private,
        NULL};
    return suite_of("rpc", "agent", start_agent, stop_agent, 30, tests, NULL);
}
