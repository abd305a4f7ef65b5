/* The monitor's public listener: a relay in front of its gRPC server.
 *
 * gRPC 1.51 gives no hook at accept: every stranger's connection holds a
 * handshake slot and a descriptor in gRPC until its handshake times out,
 * and after EMFILE its listener never accepts again. So the monitor owns
 * the TCP listener itself (this relay, one thread of its own) and passes
 * bytes on to its gRPC server, which listens with the same credentials on
 * a Unix socket inside the manager's private 0700 directory, out of
 * strangers' reach. Connections not yet authenticated (no call of theirs
 * has reached a handler as a known identity) have a budget per source
 * address and one in all; over either, the oldest of them is dropped
 * first, and each has a deadline. gRPC is given a connection only once its
 * client has spoken, and only when its first byte can begin a TLS
 * handshake (or, in plaintext, the HTTP/2 preface): idle and junk
 * connections never reach it. Each relayed connection binds its Unix end
 * to an abstract name of its own, which gRPC reports as the call's peer
 * and relay_peer_host maps back to the TCP source. */
#ifndef ASG_RELAY_H
#define ASG_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the relay publishes its progress (the table header's fields that
 * only the monitor writes), so that the supervisor can tell a listener
 * that is dead from one that is busy. */
struct relay_counters {
    _Atomic uint64_t *accepted;     /* TCP connections taken from the listener */
    _Atomic uint64_t *grpc_took;    /* relayed connections whose first bytes gRPC read */
    _Atomic uint32_t *grpc_waiting; /* relayed connections whose bytes gRPC has not read yet */
    _Atomic uint64_t *dropped;      /* connections the relay closed unauthenticated */
};

struct relay_limits {
    uint32_t total;      /* relayed connections at once, authenticated or not */
    uint32_t unauth;     /* not yet authenticated, all addresses together */
    uint32_t per_host;   /* not yet authenticated, from one source address */
    int handshake_ms;    /* how long a connection may stay unauthenticated */
    bool tls;            /* first byte: a TLS record; else the HTTP/2 preface */
};

struct relay;

/* Binds addr ("host:port", port 0 picks one) for the relay, nonblocking.
 * Returns the socket, with the bound address (same host, actual port) in
 * bound; or -1 with the reason in err. */
int relay_listen(const char *addr, char *bound, size_t bsize, char *err, size_t errsize);

/* Starts relaying the connections of listen_fd (taken over) to the Unix
 * socket at inner_path. NULL with the reason in err. */
struct relay *relay_start(int listen_fd, const char *inner_path, const struct relay_limits *lim,
                          const struct relay_counters *cnt, char *err, size_t errsize);

/* Closes the listener and every relayed connection. r may be NULL. */
void relay_stop(struct relay *r);

/* The TCP source address (text) of the relayed connection gRPC names
 * grpc_peer; false when grpc_peer is none of ours (or already gone). */
bool relay_peer_host(struct relay *r, const char *grpc_peer, char *host, size_t size);

/* The connection gRPC names grpc_peer has authenticated: it leaves the
 * budgets and deadline of unauthenticated ones. */
void relay_vouch(struct relay *r, const char *grpc_peer);

/* The Unix socket path for the gRPC server of process pid inside dir;
 * false when it would not fit a socket address. */
bool relay_inner_path(const char *dir, int pid, char *out, size_t size);

/* Removes the inner sockets left in dir by monitors that died (no
 * process has their pid any more). */
void relay_clean_dir(const char *dir);

#endif
