/* asg-agent (MonitorC): runs on every instance. Serves the Agent service
 * (Ping, GetMetrics, SetLoad) and grpc.health.v1.Health/Check, simulates a
 * gradual load, and registers with the manager's monitor. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "asg.pb-c.h"
#include "health.pb-c.h"
#include "service.h"
#include "walk.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: asg-agent --listen HOST:PORT [--id ID] [--manager HOST:PORT]\n"
            "                 [--advertise HOST:PORT] [--seed N] [--start-load F]\n"
            "  --listen     where to serve (port 0 picks a free one; the bound\n"
            "               address is printed on the first line of output)\n"
            "  --id         instance id (default: agent-PORT)\n"
            "  --manager    the manager's monitor address; register there\n"
            "  --advertise  address to register with (default: the bound one)\n"
            "  --seed       seed of the simulated load (default: from time and pid)\n"
            "  --start-load initial simulated load, 0..1 (default 0.3)\n"
            "  --load-source sim|proc  simulated random walk (default), or this\n"
            "               machine's real cpu and memory from /proc\n"
            "  --tls-ca FILE --tls-cert FILE --tls-key FILE  mutual TLS: serve and\n"
            "               call the manager with this certificate (all three, or none)\n");
}

/* ---- registration with the manager ---- */

static void schedule_retry(struct agent *a)
{
    /* Exponential backoff with jitter: wait between half and all of it,
     * so a fleet restarted together does not register in lockstep. */
    int wait = a->backoff_ms / 2 + (int)(walk_uniform(&a->walk) * a->backoff_ms / 2);
    a->reg = REG_WAIT;
    a->reg_next_ms = now_ms() + wait;
    a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
}

static void on_registered(void *user, grpc_status_code st, const char *details,
                          const uint8_t *data, size_t len)
{
    struct agent *a = user;
    if (st != GRPC_STATUS_OK) {
        log_warn("register with %s failed: status %d %s", a->manager, (int)st, details);
        schedule_retry(a);
        return;
    }
    Asg__V1__RegisterReply *r = asg__v1__register_reply__unpack(NULL, len, data);
    if (!r) {
        log_warn("register with %s: malformed reply", a->manager);
        schedule_retry(a);
        return;
    }
    if (r->accepted) {
        uint32_t pi = r->probe_interval_ms;
        a->probe_interval_ms = pi >= 10 && pi <= 3600000 ? pi : 1000;
        a->reg = REG_DONE;
        a->backoff_ms = BACKOFF_MIN_MS;
        a->last_ping_ms = now_ms();
        log_info("registered with %s as %s (%s)", a->manager, a->id, a->address);
    } else {
        log_warn("registration refused by %s: %.200s", a->manager, r->reason);
        schedule_retry(a);
    }
    asg__v1__register_reply__free_unpacked(r, NULL);
}

static void start_register(struct agent *a)
{
    Asg__V1__RegisterRequest q = ASG__V1__REGISTER_REQUEST__INIT;
    q.instance_id = a->id;
    q.address = a->address;
    q.agent_version = (char *)ASG_VERSION;
    size_t len;
    uint8_t *buf = rpc_pack(&q.base, &len);
    if (rpc_call_start(a->mgr, a->cq, M_MONITOR_REGISTER, buf, len, 2000, on_registered, a) == 0)
        a->reg = REG_IN_FLIGHT;
    else
        schedule_retry(a);
    free(buf);
}

/* Registers when due, and again when the manager has stopped probing us:
 * a restarted manager may have lost us, and registering is how it learns. */
static void registration_tick(struct agent *a, int64_t now)
{
    if (!a->mgr || a->draining)
        return;
    if (a->reg == REG_NONE || (a->reg == REG_WAIT && now >= a->reg_next_ms)) {
        start_register(a);
    } else if (a->reg == REG_DONE) {
        int64_t quiet = 3 * (int64_t)a->probe_interval_ms;
        if (quiet < 2000)
            quiet = 2000;
        if (now - a->last_ping_ms > quiet) {
            log_warn("no probe from the manager for %lld ms; registering again",
                     (long long)(now - a->last_ping_ms));
            start_register(a);
        }
    }
}

static void on_deregistered(void *user, grpc_status_code st, const char *details,
                            const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct agent *a = user;
    a->dereg_done = true;
    if (st != GRPC_STATUS_OK)
        log_warn("deregister failed: status %d %s", (int)st, details);
    else
        log_info("deregistered from %s", a->manager);
}

static void deregister(struct agent *a)
{
    if (!a->mgr)
        return;
    Asg__V1__DeregisterRequest q = ASG__V1__DEREGISTER_REQUEST__INIT;
    q.instance_id = a->id;
    size_t len;
    uint8_t *buf = rpc_pack(&q.base, &len);
    a->dereg_done = rpc_call_start(a->mgr, a->cq, M_MONITOR_DEREGISTER, buf, len, 500,
                                   on_deregistered, a) != 0;
    free(buf);
    while (!a->dereg_done)
        if (rpc_cq_step(a->cq, 100) < 0)
            break;
}

/* ---- main ---- */

static int parse_args(int argc, char **argv, struct agent *a, char *listen,
                      uint64_t *seed, double *start)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"id", required_argument, NULL, 'i'},
        {"manager", required_argument, NULL, 'm'}, {"advertise", required_argument, NULL, 'a'},
        {"seed", required_argument, NULL, 's'}, {"start-load", required_argument, NULL, 'L'},
        {"load-source", required_argument, NULL, 'S'},
        {"tls-ca", required_argument, NULL, 'A'}, {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    char why[128];
    int c;
    const char *tls[3] = {NULL, NULL, NULL};
    while ((c = getopt_long(argc, argv, "l:i:m:a:s:L:S:A:C:K:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (!valid_address(optarg, strlen(optarg), true, why, sizeof why)) {
                fprintf(stderr, "asg-agent: --listen: %s\n", why);
                return -1;
            }
            copy_str(listen, 64, optarg);
            break;
        case 'i':
            if (!valid_instance_id(optarg, strlen(optarg))) {
                fprintf(stderr, "asg-agent: --id '%s': use 1..63 of A-Z a-z 0-9 . _ -\n", optarg);
                return -1;
            }
            copy_str(a->id, sizeof a->id, optarg);
            break;
        case 'm':
        case 'a':
            if (!valid_address(optarg, strlen(optarg), false, why, sizeof why)) {
                fprintf(stderr, "asg-agent: --%s: %s\n", c == 'm' ? "manager" : "advertise", why);
                return -1;
            }
            copy_str(c == 'm' ? a->manager : a->address, 64, optarg);
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end || optarg[0] == '-' || !optarg[0]) {
                fprintf(stderr, "asg-agent: --seed '%s' is not a whole number\n", optarg);
                return -1;
            }
            *seed = v;
            break;
        }
        case 'L': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !optarg[0] || !isfinite(v) || v < 0 || v > 1) {
                fprintf(stderr, "asg-agent: --start-load '%s' is not a number in 0..1\n", optarg);
                return -1;
            }
            *start = v;
            break;
        }
        case 'S':
            if (strcmp(optarg, "sim") != 0 && strcmp(optarg, "proc") != 0) {
                fprintf(stderr, "asg-agent: --load-source '%s': use sim or proc\n", optarg);
                return -1;
            }
            a->from_proc = strcmp(optarg, "proc") == 0;
            break;
        case 'A': tls[0] = optarg; break;
        case 'C': tls[1] = optarg; break;
        case 'K': tls[2] = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("asg-agent %s\n", ASG_VERSION); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asg-agent: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if ((tls[0] || tls[1] || tls[2]) && !(tls[0] && tls[1] && tls[2])) {
        fprintf(stderr, "asg-agent: --tls-ca, --tls-cert and --tls-key go together\n");
        return -1;
    }
    char err[256];
    if (tls[0] && rpc_tls_load(&a->tls, tls[0], tls[1], tls[2], err, sizeof err) != 0) {
        fprintf(stderr, "asg-agent: %s\n", err);
        return -1;
    }
    if (!listen[0]) {
        fprintf(stderr, "asg-agent: --listen HOST:PORT is required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct agent a;
    char listen[64] = "";
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    double start = 0.3;
    if (parse_args(argc, argv, &a, listen, &seed, &start) != 0)
        return ASG_EXIT_FATAL;
    log_set_role("agent");
    int sigfd = signals_install(false);
    walk_init(&a.walk, seed, start);
    a.started_ms = now_ms();
    a.backoff_ms = BACKOFF_MIN_MS;
    a.probe_interval_ms = 1000;

    grpc_init();
    a.cq = rpc_cq_create();
    struct rpc_method methods[] = {
        {M_AGENT_PING, agent_h_ping, &a}, {M_AGENT_GET_METRICS, agent_h_metrics, &a},
        {M_AGENT_SET_LOAD, agent_h_set_load, &a}, {M_HEALTH_CHECK, agent_h_health, &a}};
    char err[256];
    int port = 0;
    struct rpc_server *srv = rpc_server_start(listen, methods, 4, a.cq, &a.tls, &port, err, sizeof err);
    if (!srv) {
        log_error("%s", err);
        grpc_completion_queue_destroy(a.cq);
        grpc_shutdown();
        return ASG_EXIT_FATAL;
    }
    char bound[64];
    snprintf(bound, sizeof bound, "%.*s:%d", (int)(strrchr(listen, ':') - listen), listen, port);
    if (!a.address[0])
        copy_str(a.address, sizeof a.address, bound);
    if (!a.id[0])
        snprintf(a.id, sizeof a.id, "agent-%d", port);
    printf("%s\n", bound);
    fflush(stdout);
    log_info("serving as %s on %s%s%s", a.id, bound, a.manager[0] ? ", manager " : "", a.manager);
    if (a.manager[0])
        a.mgr = rpc_channel_create(a.manager, &a.tls, RPC_MANAGER_NAME);

    int64_t next_tick = now_ms() + TICK_MS;
    while (!g_sig.term) {
        int64_t now = now_ms();
        if (now >= next_tick) {
            agent_load_tick(&a, now);
            next_tick += TICK_MS;
            if (next_tick < now)
                next_tick = now + TICK_MS;
        }
        registration_tick(&a, now);
        /* Short waits so that SIGTERM (a flag) is seen promptly. */
        int wait = (int)(next_tick - now_ms());
        rpc_cq_step(a.cq, wait < 0 ? 0 : wait > 50 ? 50 : wait);
    }
    (void)sigfd;
    a.draining = true;
    log_info("SIGTERM: deregistering and stopping");
    deregister(&a);
    if (a.mgr)
        grpc_channel_destroy(a.mgr);
    rpc_shutdown(srv, a.cq);
    grpc_shutdown();
    rpc_tls_free(&a.tls);
    return 0;
}
