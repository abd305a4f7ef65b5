/* A client of etcd's v3 API through its JSON gateway (/v3/...), over
 * libcurl and json-c, the two libraries the manager already links: the
 * calls leader election needs are five unary requests, and the gateway
 * spares compiling etcd's protos and their gogoproto imports into the
 * build. Keys and values are base64 on the wire, 64-bit integers JSON
 * strings; both are handled here and nowhere else.
 *
 * Every call tries the endpoints in turn, starting with the one that
 * answered last, and fails with a reason naming the endpoint and what it
 * said. Nothing here keeps state between calls but the connection. */
#ifndef ASG_ETCD_H
#define ASG_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_MAX_ENDPOINTS 8
#define ETCD_VALUE_MAX 4096

struct etcd {
    void *curl;                              /* CURL *, reused: one connection kept */
    char endpoints[ETCD_MAX_ENDPOINTS][128];
    int n, cur;
    char ca[200], cert[200], key[200];
    long timeout_ms;
};

struct etcd_kv {
    bool found;
    char value[ETCD_VALUE_MAX];
    int64_t create_rev, lease;
};

/* endpoints: "http://127.0.0.1:2379,https://..." (the config's ha.etcd). */
int etcd_open(struct etcd *e, const char *endpoints, const char *ca, const char *cert, const char *key,
              long timeout_ms, char *err, size_t errsize);
void etcd_close(struct etcd *e);

int etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *id, int *ttl_granted, char *err, size_t errsize);
/* *ttl_left 0: the lease has expired (or never was). */
int etcd_lease_keepalive(struct etcd *e, int64_t id, int *ttl_left, char *err, size_t errsize);
int etcd_lease_revoke(struct etcd *e, int64_t id, char *err, size_t errsize);

/* Creates key = value under lease if the key does not exist; otherwise
 * reads who holds it. *created says which; *rev is the revision of the
 * answer (the key's create revision when created). */
int etcd_create_or_get(struct etcd *e, const char *key, const char *value, int64_t lease, bool *created,
                       struct etcd_kv *holder, int64_t *rev, char *err, size_t errsize);
/* Puts key = value only while guard_key still has create revision
 * guard_rev (it was not deleted or re-created since): *ok false if not. */
int etcd_guarded_put(struct etcd *e, const char *guard_key, int64_t guard_rev, const char *key,
                     const char *value, bool *ok, char *err, size_t errsize);
int etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease, char *err, size_t errsize);
int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, char *err, size_t errsize);
/* key's value as text into out (size bytes, for values larger than
 * ETCD_VALUE_MAX); *found false when there is no such key. */
int etcd_get_text(struct etcd *e, const char *key, char *out, size_t size, bool *found, char *err,
                  size_t errsize);
/* The values of every key under prefix, joined by ',' into out, in key
 * order, at most max of them. */
int etcd_values_under(struct etcd *e, const char *prefix, char *out, size_t outsize, int max, char *err,
                      size_t errsize);

#endif
