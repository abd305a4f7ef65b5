/* MonitorS's state and the handlers of the Monitor service, visible for
 * tests and fuzzers (see monitor.c). */
#ifndef ASG_MONITOR_H
#define ASG_MONITOR_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/pki.h"
#include "../proto/h2probe.h"
#include "../proto/rpc.h"
#include "../shm/confseg.h"
#include "../shm/table.h"
#include "relay.h"


/* Per table slot: the connection to its agent and the probe in flight. */
struct slot {
    struct h2p_conn *conn;
    char addr[TABLE_ADDR_MAX];
    uint64_t incarnation;     /* of the row the connection belongs to */
    bool contacted;           /* a probe on this connection has completed */
    uint64_t round;           /* the last round that probed this slot */
    uint32_t managers_gen;    /* the managers list its agent was last told (ha) */
};

/* Probes that open a new connection (TCP and HTTP/2 handshakes on both
 * sides) at once. Without a bound, a monitor starting next to 10,000
 * agents opened 10,000 connections in one round; the handshakes outlasted
 * the probe timeout, every agent counted misses, and the group would
 * have been replaced wholesale. A slot waiting for its turn is not probed
 * and so counts no miss; established slots are never held back. */
#define FIRST_CONTACTS_MAX 256

struct probe {
    struct monitor *m;
    uint32_t slot;
    uint64_t incarnation;
    uint64_t seq;
    int64_t sent_us;
    bool first;               /* counted in monitor.first_contacts */
    uint32_t managers_gen;    /* the managers list it carries, 0 = none */
};

struct monitor {
    struct table *t;
    struct log_limit refused_limit; /* refusals' log lines: a few a second */
    struct log_limit asks_limit;    /* requests to join: a few a second (anybody can ask) */
    struct asg_config cfg;
    uint64_t cfg_gen;
    struct confseg conf;      /* the published config, read-only */
    grpc_completion_queue *cq; /* the Monitor service's */
    struct h2p *probes;       /* the probe engine */
    struct slot *slots;
    /* Per slot, a probe is out: apart from struct slot so that a round's
     * scan over 10,000 mostly busy slots reads 10 KB, not a megabyte. */
    bool *in_flight;
    uint32_t nslots;
    uint32_t *fresh;          /* slots registered since the last look: probed at once */
    uint32_t nfresh;
    uint64_t seq;
    uint32_t outstanding;     /* probes of the current round */
    uint32_t first_contacts;  /* probes in flight on new connections */
    uint64_t round;           /* rounds started */
    bool deferred;            /* this round left slots for lack of a turn */
    bool round_counted;       /* round_done was called for this round */
    uint32_t scan;            /* slots before this one have had their turn this round */
    int64_t round_start;      /* us, monotonic */
    int64_t served_ms;        /* the Monitor service's queue last looked at */
    struct rpc_tls tls;       /* mutual TLS, or all NULL */
    struct pki_ca *ca;        /* EC2 bootstrap: signs joining instances, or NULL */
    char managers[256];       /* ha: every manager's address, as the controller found them, ","-joined */
    uint32_t managers_gen;    /* bumped when that list changes */
    struct relay *relay;      /* the public listener (relay.h); NULL in unit tests */
    struct rpc_poller *poller; /* gRPC's I/O, apart from the probe loop */
    char inner[108];          /* the gRPC server's Unix socket behind it */
    char tmpdir[64];          /* the private directory made for the gRPC socket */
};

/* The role's entry point (the supervisor forks it): t mapped read-write,
 * cfg the config at fork time. 0 when asked to stop, ASG_EXIT_FATAL when it
 * cannot listen. */
int monitor_main(struct table *t, const struct asg_config *cfg);

/* Register and Deregister: the request is checked (wire format, id,
 * address, version length) before the table is touched. */
void monitor_h_register(void *ctx, const uint8_t *req, size_t len, const char *peer,
                        struct rpc_reply *out);
void monitor_h_deregister(void *ctx, const uint8_t *req, size_t len, const char *peer,
                          struct rpc_reply *out);
/* Join (EC2 with tls.mode = "auto", the only call allowed without a
 * client certificate): an instance the manager launched and that has not
 * registered yet spends its one-time token for a certificate (CN = its
 * id). */
void monitor_h_join(void *ctx, const uint8_t *req, size_t len, const char *peer,
                    struct rpc_reply *out);
/* grpc.health.v1.Health/Check on the monitor's port, for a balancer or
 * grpc_health_probe in front of the managers: "" or "asg.v1.Monitor" is
 * SERVING until the manager drains, then NOT_SERVING; any other name is
 * NOT_FOUND. Like Join, callable without a client certificate. */
void monitor_h_health(void *ctx, const uint8_t *req, size_t len, const char *peer,
                      struct rpc_reply *out);

#endif
