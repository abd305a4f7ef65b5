/* asg-agent's state and request handlers (see service.c). */
#ifndef ASG_AGENT_SERVICE_H
#define ASG_AGENT_SERVICE_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stdint.h>

#include "../proto/rpc.h"
#include "walk.h"
#include "workload.h"

#define TICK_MS 100
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
/* The longest wait for admission honoured from a manager's retry_after_ms. */
#define ADMIT_WAIT_MAX_MS 2000

enum reg_state { REG_NONE, REG_IN_FLIGHT, REG_DONE, REG_WAIT };

/* --load-source proc: the machine's real cpu (deltas of /proc/stat) and
 * memory (1 - MemAvailable / MemTotal), sampled once a second. */
struct proc_sampler {
    unsigned long long total, idle;
    double cpu, mem;
    int64_t next_ms;
};

struct agent {
    char id[64];
    char address[64];       /* advertised to the manager */
    char manager[64];       /* the manager it registers with now */
    int mgr_idx;            /* which of --manager's list that is */
    struct managers *managers; /* that list, shared by a swarm's agents (agent.c) */
    char managers_news[300];   /* ha: a list a probe brought, for registration to take up */
    grpc_completion_queue *cq;
    grpc_channel *mgr;
    struct walk walk;
    bool pinned;
    bool draining;
    bool from_proc;            /* --load-source proc */
    bool from_service;         /* --load-source service */
    struct workload *svc;      /* -- COMMAND: the operator's service, or NULL */
    char service_address[64];  /* where it serves, told to the manager */
    struct proc_sampler ps;
    uint64_t answered;         /* pings answered */
    uint64_t bad_requests;     /* requests refused as malformed or out of range */
    bool quiet;                /* one of a swarm: the swarm logs summaries */
    int64_t started_ms;
    int64_t last_ping_ms;
    /* registration */
    enum reg_state reg;
    int64_t reg_next_ms;
    int backoff_ms;
    uint32_t probe_interval_ms;
    bool dereg_done;
    uint64_t reg_failures;     /* registrations failed or refused */
    bool admit_said;           /* "waiting for admission" logged since the last answer of another kind */
    struct rpc_tls tls;        /* --tls-*: all or nothing */
};

void agent_proc_sample(struct proc_sampler *ps);
/* One 100 ms tick of the load: walk, or sample /proc; a pin holds. */
void agent_load_tick(struct agent *a, int64_t now);

/* Handlers (rpc_handler): every request is checked before use. */
void agent_h_ping(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out);
void agent_h_metrics(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out);
void agent_h_set_load(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out);
void agent_h_health(void *ctx, const uint8_t *req, size_t len, const char *peer, struct rpc_reply *out);

#endif
