/* etcd's v3 JSON gateway (see etcd.h). */
#define _GNU_SOURCE
#include "etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/url.h"
#include "../common/util.h"

#define BODY_MAX (256 * 1024)

struct body {
    char *buf;
    size_t len;
    bool overflow;
};

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    struct body *b = user;
    size_t len = size * n;
    if (b->len + len >= BODY_MAX) {
        b->overflow = true;
        return 0;
    }
    char *grown = realloc(b->buf, b->len + len + 1);
    if (!grown)
        abort();
    b->buf = grown;
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return len;
}

int etcd_open(struct etcd *e, const char *endpoints, const char *ca, const char *cert, const char *key,
              long timeout_ms, char *err, size_t errsize)
{
    memset(e, 0, sizeof *e);
    char buf[1024];
    copy_str(buf, sizeof buf, endpoints);
    for (char *save, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        /* The form (http(s)://HOST:PORT, plaintext on loopback only) is
         * config.c's to check; here only what fits. */
        if (e->n == ETCD_MAX_ENDPOINTS) {
            snprintf(err, errsize, "more than %d etcd endpoints", ETCD_MAX_ENDPOINTS);
            return -1;
        }
        if (!copy_str(e->endpoints[e->n++], sizeof e->endpoints[0], s)) {
            snprintf(err, errsize, "etcd endpoint '%.100s' is longer than %zu characters", s,
                     sizeof e->endpoints[0] - 1);
            return -1;
        }
    }
    if (e->n == 0) {
        snprintf(err, errsize, "no etcd endpoint");
        return -1;
    }
    copy_str(e->ca, sizeof e->ca, ca ? ca : "");
    copy_str(e->cert, sizeof e->cert, cert ? cert : "");
    copy_str(e->key, sizeof e->key, key ? key : "");
    e->timeout_ms = timeout_ms;
    e->curl = curl_easy_init();
    if (!e->curl) {
        snprintf(err, errsize, "curl_easy_init failed");
        return -1;
    }
    return 0;
}

void etcd_close(struct etcd *e)
{
    if (e->curl)
        curl_easy_cleanup(e->curl);
    e->curl = NULL;
}

/* The gateway's error: {"error": "...", "code": N, "message": "..."}. */
static void gateway_error(const char *ep, long status, json_object *j, char *err, size_t errsize)
{
    json_object *m;
    const char *why = j && (json_object_object_get_ex(j, "message", &m) ||
                            json_object_object_get_ex(j, "error", &m))
                          ? json_object_get_string(m)
                          : "no error message";
    snprintf(err, errsize, "etcd %s answered HTTP %ld: %.150s", ep, status, why);
}

/* For a plaintext endpoint (loopback only, config.c sees to that): 0 when
 * its port is held by root or us, else -1 with the reason. With https,
 * etcd's certificate is the check. */
static int plain_port_trusted(const char *ep, char *why, size_t n)
{
    struct endpoint_url u;
    if (endpoint_url_parse(ep, &u, why, n) != 0)
        return -1;
    return u.tls ? 0 : tcp_port_trusted(u.port, why, n);
}

/* POSTs a JSON request to one endpoint after another until one answers;
 * *out is the parsed answer of HTTP 200. */
static int post(struct etcd *e, const char *path, json_object *req, json_object **out, char *err,
                size_t errsize)
{
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    CURL *h = e->curl;
    for (int tries = 0; tries < e->n; tries++) {
        const char *ep = e->endpoints[e->cur];
        char why[200];
        if (plain_port_trusted(ep, why, sizeof why) != 0) {
            snprintf(err, errsize, "etcd %s: %s: not trusted (whoever answers on a plaintext port "
                     "chooses the leader)", ep, why);
            e->cur = (e->cur + 1) % e->n;
            continue;
        }
        char url[256];
        snprintf(url, sizeof url, "%s%s", ep, path);
        struct body b = {0};
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (e->ca[0])
            curl_easy_setopt(h, CURLOPT_CAINFO, e->ca);
        if (e->cert[0]) {
            curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
            curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
        }
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        json_object *j = rc == CURLE_OK && !b.overflow && b.buf ? json_tokener_parse(b.buf) : NULL;
        free(b.buf);
        if (rc == CURLE_OK && status == 200 && j && json_object_is_type(j, json_type_object)) {
            *out = j;
            return 0;
        }
        if (rc != CURLE_OK)
            snprintf(err, errsize, "etcd %s: %s", ep, curl_easy_strerror(rc));
        else if (status != 200)
            gateway_error(ep, status, j, err, errsize);
        else
            snprintf(err, errsize, "etcd %s: answer to %s is not a JSON object", ep, path);
        json_object_put(j);
        /* An endpoint that answered with an error is up: the error is the
         * answer. Only an unreachable one sends us to the next. */
        if (rc == CURLE_OK)
            return -1;
        e->cur = (e->cur + 1) % e->n;
    }
    return -1;
}

static json_object *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        abort();
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    json_object *j = json_object_new_string(out);
    free(out);
    return j;
}

/* Decodes a base64 value into out (NUL-terminated); -1 if it is not
 * base64 or does not fit. */
static int unb64(const char *s, char *out, size_t size)
{
    size_t n = strlen(s);
    if (n % 4 || n / 4 * 3 >= size)
        return -1;
    int len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    if (n && s[n - 1] == '=')
        len--;
    if (n > 1 && s[n - 2] == '=')
        len--;
    out[len] = '\0';
    return (int)strlen(out) == len ? 0 : -1; /* no NUL inside */
}

static json_object *i64(int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)v);
    return json_object_new_string(s);
}

/* A 64-bit integer the gateway sent as a string (or omitted: 0). */
static int64_t get_i64(json_object *o, const char *name)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, name, &v))
        return 0;
    return (int64_t)strtoll(json_object_get_string(v), NULL, 10);
}

static json_object *field(json_object *o, const char *name)
{
    json_object *v;
    return o && json_object_object_get_ex(o, name, &v) ? v : NULL;
}

static json_object *obj(void) { return json_object_new_object(); }

static void add(json_object *o, const char *k, json_object *v) { json_object_object_add(o, k, v); }

/* The lease calls: one integer in, {name: v}. */
static int post_int(struct etcd *e, const char *path, const char *name, int64_t v, json_object **out,
                    char *err, size_t errsize)
{
    json_object *q = obj();
    add(q, name, i64(v));
    int rc = post(e, path, q, out, err, errsize);
    json_object_put(q);
    return rc;
}

int etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *id, int *ttl_granted, char *err, size_t errsize)
{
    json_object *a = NULL;
    if (post_int(e, "/v3/lease/grant", "TTL", ttl_s, &a, err, errsize) != 0)
        return -1;
    *id = get_i64(a, "ID");
    *ttl_granted = (int)get_i64(a, "TTL");
    json_object_put(a);
    if (*id == 0 || *ttl_granted <= 0) {
        snprintf(err, errsize, "etcd granted no lease (ID %lld, TTL %d)", (long long)*id, *ttl_granted);
        return -1;
    }
    return 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int *ttl_left, char *err, size_t errsize)
{
    json_object *a = NULL;
    if (post_int(e, "/v3/lease/keepalive", "ID", id, &a, err, errsize) != 0)
        return -1;
    json_object *res = field(a, "result");
    if (!res) {
        gateway_error(e->endpoints[e->cur], 200, field(a, "error"), err, errsize);
        json_object_put(a);
        return -1;
    }
    *ttl_left = (int)get_i64(res, "TTL");
    json_object_put(a);
    return 0;
}

int etcd_lease_revoke(struct etcd *e, int64_t id, char *err, size_t errsize)
{
    json_object *a = NULL;
    int rc = post_int(e, "/v3/lease/revoke", "ID", id, &a, err, errsize);
    json_object_put(a);
    return rc;
}

static int read_kv(json_object *kv, struct etcd_kv *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    json_object *v = field(kv, "value");
    if (v && unb64(json_object_get_string(v), out->value, sizeof out->value) != 0) {
        snprintf(err, errsize, "etcd: a value is not base64 text of at most %d bytes", ETCD_VALUE_MAX - 1);
        return -1;
    }
    out->found = true;
    out->create_rev = get_i64(kv, "create_revision");
    out->lease = get_i64(kv, "lease");
    return 0;
}

/* The first key of a range answer, as found = false when there is none. */
static int first_kv(json_object *range, struct etcd_kv *out, char *err, size_t errsize)
{
    json_object *kvs = field(range, "kvs");
    memset(out, 0, sizeof *out);
    if (!kvs || !json_object_is_type(kvs, json_type_array) || json_object_array_length(kvs) == 0)
        return 0;
    return read_kv(json_object_array_get_idx(kvs, 0), out, err, errsize);
}

static json_object *put_req(const char *key, const char *value, int64_t lease)
{
    json_object *p = obj();
    add(p, "key", b64(key));
    add(p, "value", b64(value));
    if (lease)
        add(p, "lease", i64(lease));
    return p;
}

static json_object *put_op(const char *key, const char *value, int64_t lease)
{
    json_object *op = obj();
    add(op, "requestPut", put_req(key, value, lease));
    return op;
}

static json_object *one(json_object *item)
{
    json_object *a = json_object_new_array();
    json_object_array_add(a, item);
    return a;
}

/* A transaction's compare: key's create revision is rev (0: no such key). */
static json_object *create_rev_is(const char *key, int64_t rev)
{
    json_object *cmp = obj();
    add(cmp, "target", json_object_new_string("CREATE"));
    add(cmp, "key", b64(key));
    add(cmp, "createRevision", i64(rev));
    return cmp;
}

int etcd_create_or_get(struct etcd *e, const char *key, const char *value, int64_t lease, bool *created,
                       struct etcd_kv *holder, int64_t *rev, char *err, size_t errsize)
{
    json_object *q = obj(), *rng = obj(), *get = obj(), *a = NULL;
    add(rng, "key", b64(key));
    add(get, "requestRange", rng);
    add(q, "compare", one(create_rev_is(key, 0)));
    add(q, "success", one(put_op(key, value, lease)));
    add(q, "failure", one(get));
    int rc = post(e, "/v3/kv/txn", q, &a, err, errsize);
    json_object_put(q);
    if (rc != 0)
        return -1;
    json_object *ok = field(a, "succeeded");
    *created = ok && json_object_get_boolean(ok);
    *rev = get_i64(field(a, "header"), "revision");
    memset(holder, 0, sizeof *holder);
    if (!*created) {
        json_object *resp = field(a, "responses");
        json_object *first = resp && json_object_is_type(resp, json_type_array) && json_object_array_length(resp)
                                 ? json_object_array_get_idx(resp, 0)
                                 : NULL;
        rc = first_kv(field(first, "response_range"), holder, err, errsize);
    }
    json_object_put(a);
    return rc;
}

int etcd_guarded_put(struct etcd *e, const char *guard_key, int64_t guard_rev, const char *key,
                     const char *value, bool *ok, char *err, size_t errsize)
{
    json_object *q = obj(), *a = NULL;
    add(q, "compare", one(create_rev_is(guard_key, guard_rev)));
    add(q, "success", one(put_op(key, value, 0)));
    int rc = post(e, "/v3/kv/txn", q, &a, err, errsize);
    json_object_put(q);
    if (rc != 0)
        return -1;
    json_object *s = field(a, "succeeded");
    *ok = s && json_object_get_boolean(s);
    json_object_put(a);
    return 0;
}

int etcd_put(struct etcd *e, const char *key, const char *value, int64_t lease, char *err, size_t errsize)
{
    json_object *q = put_req(key, value, lease), *a = NULL;
    int rc = post(e, "/v3/kv/put", q, &a, err, errsize);
    json_object_put(q);
    json_object_put(a);
    return rc;
}

int etcd_get(struct etcd *e, const char *key, struct etcd_kv *kv, char *err, size_t errsize)
{
    json_object *q = obj(), *a = NULL;
    add(q, "key", b64(key));
    int rc = post(e, "/v3/kv/range", q, &a, err, errsize);
    json_object_put(q);
    if (rc == 0)
        rc = first_kv(a, kv, err, errsize);
    json_object_put(a);
    return rc;
}

int etcd_get_text(struct etcd *e, const char *key, char *out, size_t size, bool *found, char *err, size_t errsize)
{
    json_object *q = obj(), *a = NULL;
    add(q, "key", b64(key));
    int rc = post(e, "/v3/kv/range", q, &a, err, errsize);
    json_object_put(q);
    out[0] = '\0';
    *found = false;
    json_object *kvs = rc == 0 ? field(a, "kvs") : NULL;
    if (kvs && json_object_is_type(kvs, json_type_array) && json_object_array_length(kvs) > 0) {
        json_object *v = field(json_object_array_get_idx(kvs, 0), "value");
        *found = true;
        if (v && unb64(json_object_get_string(v), out, size) != 0) {
            snprintf(err, errsize, "etcd: %.100s is not base64 text of at most %zu bytes", key, size - 1);
            rc = -1;
        }
    }
    json_object_put(a);
    return rc;
}

/* The end of the range of keys starting with prefix: the prefix with its
 * last byte incremented (etcd's own convention). */
static void prefix_end(const char *prefix, char *out, size_t size)
{
    copy_str(out, size, prefix);
    size_t n = strlen(out);
    while (n > 0 && (unsigned char)out[n - 1] == 0xff)
        out[--n] = '\0';
    if (n > 0)
        out[n - 1]++;
}

int etcd_values_under(struct etcd *e, const char *prefix, char *out, size_t outsize, int max, char *err,
                      size_t errsize)
{
    char end[256];
    prefix_end(prefix, end, sizeof end);
    json_object *q = obj(), *a = NULL;
    add(q, "key", b64(prefix));
    add(q, "range_end", b64(end));
    add(q, "limit", i64(max));
    int rc = post(e, "/v3/kv/range", q, &a, err, errsize);
    json_object_put(q);
    if (rc != 0)
        return -1;
    out[0] = '\0';
    json_object *kvs = field(a, "kvs");
    size_t n = kvs && json_object_is_type(kvs, json_type_array) ? json_object_array_length(kvs) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct etcd_kv kv;
        rc = read_kv(json_object_array_get_idx(kvs, i), &kv, err, errsize);
        if (rc == 0 && strlen(out) + strlen(kv.value) + 2 < outsize)
            snprintf(out + strlen(out), outsize - strlen(out), "%s%s", out[0] ? "," : "", kv.value);
    }
    json_object_put(a);
    return rc;
}
