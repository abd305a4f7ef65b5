/* The monitor's probe engine: one unary gRPC method called on many peers
 * at once, each over its own HTTP/2 connection (plaintext or mutual TLS),
 * at most one call in flight per connection, each with its own deadline.
 *
 * Why not a gRPC channel per agent: gRPC 1.51 spends about 33 KB on each
 * channel's objects (client channel, subchannel, transport, two channel
 * stacks), so 10,000 agents cost the monitor a third of a gigabyte, and
 * every call allocates metadata arrays, byte buffers and a call stack. A
 * probe needs a few frames: this engine writes them itself, parses the
 * peer's frames itself, and uses nghttp2 only for what is genuinely hard
 * (HPACK: the peer's header compression with its dynamic table). A
 * connection costs a few hundred bytes and its header table; its TLS
 * buffers are given back while it is idle.
 *
 * Single-threaded, driven by h2p_poll() on one epoll descriptor. Every
 * completion is reported from h2p_poll(), never from inside h2p_call(),
 * so a callback may start the next call on the same connection or free
 * it. */
#ifndef ASG_H2PROBE_H
#define ASG_H2PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

/* A request body the engine accepts, and the longest reply it keeps: a
 * probe's reply is a few dozen bytes; a peer that sends more is wrong. */
#define H2P_REQUEST_MAX 1024
#define H2P_REPLY_MAX 4096

struct h2p;
struct h2p_conn;

/* path is the method ("/asg.v1.Agent/Ping"); with tls, every peer must
 * show a certificate signed by tls->ca naming peer_name, and is shown
 * tls->cert. fn gets every completion: st is GRPC_STATUS_OK with the
 * reply message (without its 5-byte gRPC prefix), or the peer's status,
 * or UNAVAILABLE (connection), DEADLINE_EXCEEDED, INTERNAL (a malformed
 * answer), CANCELLED (the engine or the connection freed first). details
 * is printable ASCII. NULL with a reason in err. */
struct h2p *h2p_new(const char *path, const struct rpc_tls *tls, const char *peer_name, rpc_done_fn fn,
                    char *err, size_t errsize);
/* Frees the engine; every connection must have been freed first. */
void h2p_free(struct h2p *e);

/* A connection to addr ("IP:PORT", "[IPv6]:PORT"), opened by its first
 * call. Never NULL (an address that is not numeric fails each call). */
struct h2p_conn *h2p_conn_new(struct h2p *e, const char *addr);
/* Closes and frees it. A call still in flight is never reported: its
 * user pointer is returned instead (NULL when none), for the caller. */
void *h2p_conn_free(struct h2p_conn *c);

/* Starts a call; 0, or -1 when one is already in flight on c or req is
 * longer than H2P_REQUEST_MAX (fn is then not called). */
int h2p_call(struct h2p_conn *c, const uint8_t *req, size_t len, int timeout_ms, void *user);

/* Waits at most timeout_us for the peers, then reports what completed and
 * what expired. Returns the number of calls reported. */
int h2p_poll(struct h2p *e, int64_t timeout_us);

/* Calls started and not yet reported. */
size_t h2p_in_flight(const struct h2p *e);

/* For tests and fuzzers: feeds bytes, as if read from a peer in chunks
 * of chunk bytes, to a connection that has one call in flight on stream 1
 * and no socket. Returns the status the call ended with, or -1 when it
 * is still open when the bytes run out. With sent (may be NULL), a second
 * call follows one that ended on a usable connection, and sent gets what
 * the engine would have written after the feed (its answers to the
 * peer's frames, then that call), at most *sent_len bytes. */
int h2p_feed_for_test(const uint8_t *data, size_t len, size_t chunk, uint8_t *reply, size_t *reply_len,
                      uint8_t *sent, size_t *sent_len);

#endif
