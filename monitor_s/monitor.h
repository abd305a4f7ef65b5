/* MonitorS's state and the handlers of the Monitor service, visible for
 * tests and fuzzers (see monitor.c). */
#ifndef ASG_MONITOR_H
#define ASG_MONITOR_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../proto/rpc.h"
#include "../shm/table.h"

#define LOCK_WAIT_MS 1000

/* Per table slot: the channel to its agent and the probe in flight. */
struct slot {
    grpc_channel *ch;
    char addr[TABLE_ADDR_MAX];
    uint64_t incarnation;     /* of the row the channel belongs to */
    bool in_flight;
};

struct probe {
    struct monitor *m;
    uint32_t slot;
    uint64_t incarnation;
    uint64_t seq;
    int64_t sent_us;
};

struct monitor {
    struct table *t;
    struct asg_config cfg;
    uint64_t cfg_gen;
    grpc_completion_queue *cq;
    struct slot *slots;
    uint32_t nslots;
    uint64_t seq;
    uint32_t outstanding;     /* probes of the current round */
    struct rpc_tls tls;       /* mutual TLS, or all NULL */
};

/* Register and Deregister: the request is checked (wire format, id,
 * address, version length) before the table is touched. */
void monitor_h_register(void *ctx, const uint8_t *req, size_t len, const char *peer,
                        struct rpc_reply *out);
void monitor_h_deregister(void *ctx, const uint8_t *req, size_t len, const char *peer,
                          struct rpc_reply *out);

#endif
