/* The monitor's probe engine (proto/h2probe.c) alone, as a load generator
 * beside h2load: N connections, one Ping in flight on each, each asked
 * again the moment it answers, for a number of seconds. No table, no
 * pacing, no Monitor service: what is left of the monitor's cost is the
 * engine's.
 *
 * usage: probe_load N PER_PROCESS BASE_PORT one|all SECONDS
 *   all: connection i goes to the agent at 127.0.0.1:BASE_PORT+i, as the
 *        monitor's do;
 *   one: every connection of a swarm process goes to its first agent
 *        (BASE_PORT + k*PER_PROCESS), as h2load's do (it dials one port).
 * Prints JSON: answers a second, failures, CPU seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/util.h"
#include "../proto/h2probe.h"

static const uint8_t ping_seq7[] = {0x08, 0x07}; /* PingRequest{seq: 7} */
static struct h2p_conn **conns;
static long answered, failed;

static void on_answer(void *user, grpc_status_code st, const char *details, const uint8_t *data, size_t len)
{
    (void)details, (void)data, (void)len;
    if (st == GRPC_STATUS_OK)
        answered++;
    else
        failed++;
    size_t i = (size_t)user;
    if (h2p_call(conns[i], ping_seq7, sizeof ping_seq7, 5000, user) != 0)
        failed++;
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static void run_for(struct h2p *e, int64_t us)
{
    int64_t end = now_us() + us;
    while (now_us() < end)
        h2p_poll(e, 10000);
}

int main(int argc, char **argv)
{
    long n = argc == 6 ? atol(argv[1]) : 0, per = argc == 6 ? atol(argv[2]) : 0;
    long base = argc == 6 ? atol(argv[3]) : 0;
    double secs = argc == 6 ? atof(argv[5]) : 0;
    bool one = argc == 6 && strcmp(argv[4], "one") == 0;
    if (n < 1 || n > 100000 || per < 1 || base < 1 || base + n > 65535 || secs <= 0 ||
        (!one && strcmp(argv[4], "all") != 0)) {
        fprintf(stderr, "usage: probe_load N PER_PROCESS BASE_PORT one|all SECONDS\n");
        return 2;
    }
    char err[256];
    struct h2p *e = h2p_new("/asg.v1.Agent/Ping", NULL, "asg-agent", on_answer, err, sizeof err);
    if (!e) {
        fprintf(stderr, "probe_load: %s\n", err);
        return 1;
    }
    conns = calloc((size_t)n, sizeof *conns);
    if (!conns)
        abort();
    for (long i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%ld", base + (one ? i / per * per : i));
        conns[i] = h2p_conn_new(e, addr);
        h2p_call(conns[i], ping_seq7, sizeof ping_seq7, 5000, (void *)(size_t)i);
    }
    run_for(e, 1000000); /* every handshake done before counting */
    long a0 = answered, f0 = failed;
    double c0 = cpu_seconds();
    int64_t t0 = now_us();
    run_for(e, (int64_t)(secs * 1e6));
    double dt = (double)(now_us() - t0) / 1e6;
    printf("{\"answers_per_s\": %.0f, \"failed\": %ld, \"cpu_pct\": %.0f, \"seconds\": %.2f}\n",
           (double)(answered - a0) / dt, failed - f0, 100 * (cpu_seconds() - c0) / dt, dt);
    for (long i = 0; i < n; i++)
        h2p_conn_free(conns[i]);
    free(conns);
    h2p_free(e);
    return 0;
}
