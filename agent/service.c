/* The agent's service: its state, its load sources and the handlers of
 * Agent (Ping, GetMetrics, SetLoad) and grpc.health.v1.Health/Check.
 * Apart from main (agent.c) so that tests and fuzzers can call them. */
#define _GNU_SOURCE
#include "service.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "asg.pb-c.h"
#include "health.pb-c.h"

/* ---- load sources ---- */

void agent_proc_sample(struct proc_sampler *ps)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            unsigned long long total = 0, idle = v[3] + v[4]; /* idle + iowait */
            for (int i = 0; i < 8; i++)
                total += v[i];
            if (ps->total && total > ps->total) {
                double busy = 1.0 - (double)(idle - ps->idle) / (double)(total - ps->total);
                ps->cpu = busy < 0 ? 0 : busy > 1 ? 1 : busy;
            }
            ps->total = total;
            ps->idle = idle;
        }
        fclose(f);
    }
    f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[128];
        unsigned long long total = 0, avail = 0, x;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &x) == 1)
                total = x;
            else if (sscanf(line, "MemAvailable: %llu kB", &x) == 1)
                avail = x;
        }
        fclose(f);
        if (total && avail <= total)
            ps->mem = 1.0 - (double)avail / (double)total;
    }
}

static double agent_cpu(const struct agent *a)
{
    return a->from_service ? a->svc->cpu : a->from_proc ? a->ps.cpu : a->walk.x;
}

static double agent_mem(const struct agent *a)
{
    return a->from_service ? a->svc->mem : a->from_proc ? a->ps.mem : 0.2 + 0.5 * a->walk.x;
}

/* One tick: the simulated walk steps, or the real figures are sampled;
 * a pinned load stays where the operator put it. */
void agent_load_tick(struct agent *a, int64_t now)
{
    if (a->svc)
        workload_reap(a->svc);
    if (a->from_service) {
        if (now >= a->ps.next_ms) {
            workload_sample(a->svc);
            a->ps.next_ms = now + 1000;
            if (!a->pinned)
                a->walk.x = a->svc->cpu;
        }
    } else if (a->from_proc) {
        if (now >= a->ps.next_ms) {
            agent_proc_sample(&a->ps);
            a->ps.next_ms = now + 1000;
            if (!a->pinned)
                a->walk.x = a->ps.cpu;
        }
    } else if (!a->pinned) {
        walk_step(&a->walk);
    }
}

/* ---- handlers ---- */

/* Ping, GetMetrics and SetLoad answer the manager only. With mutual TLS
 * every agent holds a certificate from the same CA, and it carries
 * clientAuth (an agent calls the monitor with it), so a verified caller is
 * not enough: it must be the manager's certificate (rpc.c names a caller
 * the manager only when its SAN says so too). An agent's certificate could
 * otherwise hand its neighbours a list of managers to register with, or
 * steer their load. peer is NULL on a plaintext agent, which has no
 * identities to tell apart (config.c keeps plaintext on loopback).
 * Health/Check stays open to any verified caller: it tells only
 * SERVING or not. */
static bool manager_only(struct agent *a, const char *peer, const char *method, struct rpc_reply *out)
{
    if (!peer || strcmp(peer, RPC_MANAGER_NAME) == 0)
        return true;
    a->bad_requests++;
    rpc_reply_error(out, GRPC_STATUS_PERMISSION_DENIED, "only the manager may call %s (caller: %.60s)",
                    method, peer[0] ? peer : "a certificate that is not the manager's");
    return false;
}

/* A probe's list of managers (ha), kept ","-joined for registration to
 * take up (agent.c checks each address, and that there are at most four);
 * a list longer than any real one is dropped here. An item with commas
 * (an older manager sent the list as one string) splits there too. */
static void take_managers(struct agent *a, const Asg__V1__PingRequest *in)
{
    char list[sizeof a->managers_news] = "";
    size_t used = 0;
    for (size_t i = 0; i < in->n_managers; i++) {
        size_t len = strlen(in->managers[i]);
        if (len == 0 || used + len + 2 > sizeof list)
            return;
        if (used)
            list[used++] = ',';
        memcpy(list + used, in->managers[i], len + 1);
        used += len;
    }
    if (used)
        copy_str(a->managers_news, sizeof a->managers_news, list);
}

void agent_h_ping(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out)
{
    struct agent *a = ctx;
    if (!manager_only(a, peer, "Ping", out))
        return;
    Asg__V1__PingRequest *in = asg__v1__ping_request__unpack(NULL, len, req);
    if (!in) {
        a->bad_requests++;
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed PingRequest");
        return;
    }
    a->last_ping_ms = now_ms();
    take_managers(a, in);
    char why[128];
    if (a->svc && !workload_ok(a->svc, why, sizeof why)) {
        /* The instance is its service: a probe fails while the service
         * does, and enough failed probes have it replaced. */
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "%s", why);
        asg__v1__ping_request__free_unpacked(in, NULL);
        return;
    }
    Asg__V1__PingReply r = ASG__V1__PING_REPLY__INIT;
    r.instance_id = a->id;
    r.load = a->walk.x;
    r.seq = in->seq;
    r.cpu = agent_cpu(a);
    r.mem = agent_mem(a);
    r.answered = ++a->answered;
    if (a->svc && atomic_load(&a->svc->requests_known)) {
        r.requests_known = true;
        r.requests_total = atomic_load(&a->svc->requests);
    }
    rpc_reply_msg(out, &r.base);
    asg__v1__ping_request__free_unpacked(in, NULL);
}

void agent_h_metrics(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out)
{
    struct agent *a = ctx;
    if (!manager_only(a, peer, "GetMetrics", out))
        return;
    Asg__V1__MetricsRequest *in = asg__v1__metrics_request__unpack(NULL, len, req);
    if (!in) {
        a->bad_requests++;
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed MetricsRequest");
        return;
    }
    asg__v1__metrics_request__free_unpacked(in, NULL);
    Asg__V1__MetricsReply r = ASG__V1__METRICS_REPLY__INIT;
    r.instance_id = a->id;
    r.load = a->walk.x;
    r.cpu = agent_cpu(a);
    r.mem = agent_mem(a);
    r.uptime_ms = (uint64_t)(now_ms() - a->started_ms);
    r.sample_time_ms = wall_ms();
    r.load_pinned = a->pinned;
    rpc_reply_msg(out, &r.base);
}

void agent_h_set_load(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out)
{
    struct agent *a = ctx;
    if (!manager_only(a, peer, "SetLoad", out))
        return;
    Asg__V1__SetLoadRequest *in = asg__v1__set_load_request__unpack(NULL, len, req);
    if (!in) {
        a->bad_requests++;
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed SetLoadRequest");
        return;
    }
    if (!in->release && (!isfinite(in->load) || in->load < 0.0 || in->load > 1.0)) {
        a->bad_requests++;
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT,
                        "load %g is outside 0..1", in->load);
        asg__v1__set_load_request__free_unpacked(in, NULL);
        return;
    }
    if (in->release) {
        a->pinned = false;
        log_info("load released to the random walk at %.3f", a->walk.x);
    } else {
        a->pinned = true;
        a->walk.x = in->load;
        log_info("load pinned to %.3f", in->load);
    }
    asg__v1__set_load_request__free_unpacked(in, NULL);
    Asg__V1__SetLoadReply r = ASG__V1__SET_LOAD_REPLY__INIT;
    r.load = a->walk.x;
    r.pinned = a->pinned;
    rpc_reply_msg(out, &r.base);
}

void agent_h_health(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out)
{
    struct agent *a = ctx;
    (void)peer;
    Grpc__Health__V1__HealthCheckRequest *in =
        grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!in) {
        a->bad_requests++;
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        return;
    }
    bool known = in->service[0] == '\0' || strcmp(in->service, "asg.v1.Agent") == 0;
    if (!known) {
        rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "unknown service '%.64s'", in->service);
    } else {
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        char why[128];
        bool down = a->draining || (a->svc && !workload_ok(a->svc, why, sizeof why));
        r.status = down ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        rpc_reply_msg(out, &r.base);
    }
    grpc__health__v1__health_check_request__free_unpacked(in, NULL);
}

