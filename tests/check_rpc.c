/* The RPC layer against a real asg-agent process. */
#define _GNU_SOURCE
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
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
        NULL};
    return suite_of("rpc", "agent", start_agent, stop_agent, 30, tests, NULL);
}
