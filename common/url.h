/* Endpoint URLs (ha.etcd) read with libcurl's own URL parser, so that what
 * the config check decides about a URL is about the host curl will
 * connect to, and "is it loopback" is asked of an address, not of a
 * string's prefix. */
#ifndef ASG_URL_H
#define ASG_URL_H

#include <stdbool.h>
#include <stddef.h>

struct endpoint_url {
    bool tls;          /* https */
    char host[256];    /* as curl reads it; an IPv6 literal in brackets */
    int port;
};

/* "http(s)://HOST:PORT" with an optional "/", nothing else: no user or
 * password, path, query or fragment, the port given, and the host written
 * as curl reads it (no 0x7f.1 that curl would turn into 127.0.0.1). 0, or
 * -1 with the reason in why. */
int endpoint_url_parse(const char *url, struct endpoint_url *out, char *why, size_t n);

/* An address that cannot leave this machine: an IPv4 literal in 127/8,
 * the IPv6 literal ::1 (brackets or not), or "localhost". A name that
 * merely starts with "127." (127.0.0.1.nip.io) is not one. */
bool host_is_loopback(const char *host);

/* A lifecycle hook's URL (lifecycle.*.http): http(s)://HOST[:PORT][/PATH]
 * as curl reads it, no user or password, no spaces or control characters;
 * plain http only to a loopback host (whoever answers decides whether an
 * instance lives). 0, or -1 with the reason in why. */
int hook_url_check(const char *url, char *why, size_t n);

#endif
