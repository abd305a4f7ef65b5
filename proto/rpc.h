/* A thin layer over the gRPC C core for unary calls, shared by every asg
 * program. Each process runs one completion queue; every event on it is a
 * struct rpc_tag whose callback handles it, so a server, outgoing calls and
 * the process's own timers share one single-threaded loop. */
#ifndef ASG_RPC_H
#define ASG_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/pki.h"

/* Largest message any asg service accepts; ours are a few hundred bytes. */
#define RPC_MAX_MESSAGE (64 * 1024)

struct rpc_tag {
    void (*done)(struct rpc_tag *self, bool ok);
};

/* First thing in main of every program that may speak TLS. OpenSSL frees
 * its global state at exit, while gRPC's worker threads may still hold
 * per-thread OpenSSL state (random generators, error queues) that only
 * that global state points to; freed in that order, a clean exit looks
 * like a leak to LeakSanitizer. The kernel frees it all at exit anyway. */
void rpc_process_init(void);

grpc_completion_queue *rpc_cq_create(void);
/* Waits at most timeout_ms for one event and runs its callback. Returns 1
 * when it ran one, 0 on timeout, -1 once the queue is shut down. */
int rpc_cq_step(grpc_completion_queue *cq, int timeout_ms);

/* ---- server ---- */

struct rpc_reply {
    grpc_status_code status;   /* GRPC_STATUS_OK by default */
    char message[160];         /* status details when not OK */
    uint8_t *data;             /* packed reply, malloc'd by the handler */
    size_t len;
};

/* Handles one request synchronously. req may be empty (len 0). peer is
 * the common name of the caller's verified certificate with mutual TLS
 * ("" for a certificate whose CN is RPC_MANAGER_NAME but whose SAN is not:
 * only the manager's certificate has both), NULL on a plaintext server. */
typedef void (*rpc_handler)(void *ctx, const uint8_t *req, size_t len, const char *peer,
                            struct rpc_reply *out);

/* Mutual TLS material, PEM text read from files. All NULL: plaintext.
 * ca alone (a client): the server is verified, no certificate is shown. */
struct rpc_tls {
    char *ca;
    char *cert;
    char *key;
};

/* Reads the three files; 0, or -1 with "path: reason" in err. */
int rpc_tls_load(struct rpc_tls *t, const char *ca, const char *cert, const char *key,
                 char *err, size_t errsize);
void rpc_tls_free(struct rpc_tls *t);
/* The manager's identity for a role, from cfg's state directory, each file
 * read as a secret (secret_read). In plaintext mode t stays empty
 * (rpc_tls_on(t) is false) and 0 is returned. */
int rpc_manager_tls(const struct asg_config *cfg, struct rpc_tls *t, char *err, size_t errsize);
static inline int rpc_tls_on(const struct rpc_tls *t) { return t && t->ca; }

/* Names the certificates carry (common/pki.h makes them). */
#define RPC_AGENT_NAME PKI_AGENT_NAME
#define RPC_MANAGER_NAME PKI_MANAGER_NAME

/* Inside a handler: the caller's IP address as text ("127.0.0.1", "::1"),
 * from the connection itself (through the server's peer map, when it
 * has one). false outside a handler. */
bool rpc_peer_host(char *out, size_t size);

/* Inside a handler: gRPC's own name for the caller's end of the
 * connection ("ipv4:127.0.0.1:5", "unix-abstract:NAME"). */
bool rpc_peer_uri(char *out, size_t size);

struct rpc_method {
    const char *name;          /* "/asg.v1.Agent/Ping" */
    rpc_handler fn;
    void *ctx;
    /* With TLS, callable by a caller that presents no certificate (its
     * peer is then ""); every other method still needs a verified one. A
     * server with such a method asks for client certificates instead of
     * requiring them. */
    bool anonymous;
};

struct rpc_server;

/* Binds addr ("127.0.0.1:0" picks a port) and starts serving methods on
 * cq. Returns NULL with a reason in err. *port gets the bound port. */
struct rpc_server *rpc_server_start(const char *addr, const struct rpc_method *methods,
                                    size_t nmethods, grpc_completion_queue *cq,
                                    const struct rpc_tls *tls, int *port,
                                    char *err, size_t errsize);

/* A server that clients reach through a relay (the monitor's): gRPC's
 * peer is the relay's end of a Unix socket, and fn turns that name into
 * the client's IP address as text (false: not one it knows). */
typedef bool (*rpc_peer_map_fn)(void *ctx, const char *grpc_peer, char *host, size_t size);
void rpc_server_set_peer_map(struct rpc_server *s, rpc_peer_map_fn fn, void *ctx);

/* A thread that keeps gRPC's I/O going (accepts, handshakes, reads)
 * whatever the owner's loop is doing: gRPC 1.51 does its I/O only inside
 * calls to grpc_completion_queue_next, one descriptor event per call when
 * no completion is ready, so a loop that looks at its queue every few
 * milliseconds served a few hundred events a second and a flood of
 * handshakes queued for seconds. Completions still arrive on the owner's
 * queue, and handlers run on the owner's thread. */
struct rpc_poller;
struct rpc_poller *rpc_poller_start(void);
/* Stops and frees it (NULL is fine). */
void rpc_poller_stop(struct rpc_poller *p);

/* Stops the server, cancels every call still in flight (client calls
 * included), shuts the queue down and drains it, then frees everything.
 * server may be NULL for a process that only makes calls. */
void rpc_shutdown(struct rpc_server *s, grpc_completion_queue *cq);

/* The same for several servers sharing cq (a swarm of agents). */
void rpc_shutdown_servers(struct rpc_server *const *s, size_t n, grpc_completion_queue *cq);
/* Requests each server keeps armed per method (default 4). */
void rpc_set_armed_per_method(int n);

/* Packs a message into a malloc'd buffer for rpc_reply or a call. */
uint8_t *rpc_pack(const ProtobufCMessage *m, size_t *len);
/* Sets out to a packed reply message. */
void rpc_reply_msg(struct rpc_reply *out, const ProtobufCMessage *m);
void rpc_reply_error(struct rpc_reply *out, grpc_status_code st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- client ---- */

/* The least time a connection attempt (TCP, TLS and HTTP/2 handshakes)
 * gets before it is given up. */
#define RPC_CONNECT_MS 1000

/* A channel with short reconnect backoff (a restarted peer is found again
 * within about a second). With tls, it presents tls->cert and requires the
 * peer's certificate to be signed by tls->ca and to name peer_name. */
grpc_channel *rpc_channel_create(const char *addr, const struct rpc_tls *tls, const char *peer_name);

/* The same, giving each connection attempt (TCP, TLS and HTTP/2
 * handshakes) connect_ms to finish instead of one second. */
grpc_channel *rpc_channel_create_ex(const char *addr, const struct rpc_tls *tls, const char *peer_name,
                                    int connect_ms);

/* Called once per call. data/len hold the reply when st is OK. */
typedef void (*rpc_done_fn)(void *user, grpc_status_code st, const char *details,
                            const uint8_t *data, size_t len);

/* Starts a unary call on cq. Returns 0, or -1 if it could not start (fn is
 * then not called). */
int rpc_call_start(grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                   const uint8_t *req, size_t len, int timeout_ms,
                   rpc_done_fn fn, void *user);

/* A blocking call on its own queue, for command-line tools. *reply is
 * malloc'd (free it) when the status is OK. */
grpc_status_code rpc_call_sync(grpc_channel *ch, const char *method,
                               const uint8_t *req, size_t len, int timeout_ms,
                               uint8_t **reply, size_t *reply_len,
                               char *details, size_t detsize);

/* Number of client calls in flight in this process. */
size_t rpc_calls_in_flight(void);

#endif
