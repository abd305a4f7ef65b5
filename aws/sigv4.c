#define _GNU_SOURCE
#include "sigv4.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- a small growable string ---- */

struct buf {
    char *s;
    size_t len, cap;
    int oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* ---- hashing ---- */

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex(md, n, out);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

/* ---- encoding ---- */

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

char *sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    char *out = malloc(3 * len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/'))
            out[o++] = (char)c;
        else
            o += (size_t)sprintf(out + o, "%%%02X", c);
    }
    out[o] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in place; returns the new length. */
static size_t uri_decode(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len && (h = hexval(s[i + 1])) >= 0 &&
            (l = hexval(s[i + 2])) >= 0) {
            s[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = '\0';
    return o;
}

/* ---- canonical URI: dot segments removed, empty segments dropped,
 * each segment decoded and encoded again ---- */

static void canonical_uri(struct buf *b, const char *path)
{
    size_t n = strlen(path);
    char *copy = malloc(n + 1);
    char **segs = malloc((n / 1 + 2) * sizeof *segs);
    if (!copy || !segs) {
        b->oom = 1;
        free(copy);
        free(segs);
        return;
    }
    memcpy(copy, path, n + 1);
    size_t nseg = 0;
    for (char *save = NULL, *seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (strcmp(seg, ".") == 0)
            continue;
        if (strcmp(seg, "..") == 0) {
            if (nseg)
                nseg--;
            continue;
        }
        segs[nseg++] = seg;
    }
    int trailing = n > 0 && path[n - 1] == '/';
    if (nseg == 0) {
        buf_str(b, "/");
    } else {
        for (size_t i = 0; i < nseg; i++) {
            size_t len = uri_decode(segs[i], strlen(segs[i]));
            char *enc = sigv4_uri_encode(segs[i], len, 0);
            buf_str(b, "/");
            if (enc)
                buf_str(b, enc);
            else
                b->oom = 1;
            free(enc);
        }
        if (trailing)
            buf_str(b, "/");
    }
    free(segs);
    free(copy);
}

/* ---- canonical query: each key and value decoded and encoded again,
 * sorted by key then value ---- */

struct pair {
    char *k, *v;
};

static int cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static void canonical_query(struct buf *b, const char *query)
{
    if (!query || !*query)
        return;
    size_t n = strlen(query), np = 0;
    struct pair *pairs = calloc(n / 2 + 2, sizeof *pairs);
    char *copy = strdup(query);
    if (!pairs || !copy) {
        b->oom = 1;
        free(pairs);
        free(copy);
        return;
    }
    for (char *save = NULL, *p = strtok_r(copy, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        char *v = eq ? eq + 1 : p + strlen(p);
        if (eq)
            *eq = '\0';
        size_t kl = uri_decode(p, strlen(p)), vl = uri_decode(v, strlen(v));
        pairs[np].k = sigv4_uri_encode(p, kl, 0);
        pairs[np].v = sigv4_uri_encode(v, vl, 0);
        if (!pairs[np].k || !pairs[np].v)
            b->oom = 1;
        np++;
    }
    if (!b->oom)
        qsort(pairs, np, sizeof *pairs, cmp_pair);
    for (size_t i = 0; i < np; i++) {
        if (!b->oom) {
            if (i)
                buf_str(b, "&");
            buf_str(b, pairs[i].k);
            buf_str(b, "=");
            buf_str(b, pairs[i].v);
        }
        free(pairs[i].k);
        free(pairs[i].v);
    }
    free(pairs);
    free(copy);
}

/* ---- canonical headers: lower-case names, trimmed values with runs of
 * spaces folded to one, repeated names joined by commas in order ---- */

struct hdr {
    char name[128];
    size_t order;
    const char *value;
};

static int cmp_hdr(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static void add_trimmed(struct buf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    int space = 0;
    struct buf t = {0};
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
            space = 1;
            continue;
        }
        if (space && t.len)
            buf_add(&t, " ", 1);
        space = 0;
        buf_add(&t, v, 1);
    }
    if (t.oom)
        b->oom = 1;
    else if (t.s)
        buf_str(b, t.s);
    free(t.s);
}

static int canonical_headers(struct buf *b, const struct sigv4_request *rq,
                             const char *token, char *signed_headers, size_t shsize)
{
    size_t n = rq->nheaders + (token ? 1 : 0);
    struct hdr *h = calloc(n ? n : 1, sizeof *h);
    if (!h)
        return -1;
    for (size_t i = 0; i < rq->nheaders; i++) {
        size_t len = strlen(rq->headers[i].name);
        if (len >= sizeof h[i].name) {
            free(h);
            return -1;
        }
        for (size_t k = 0; k <= len; k++)
            h[i].name[k] = (char)tolower((unsigned char)rq->headers[i].name[k]);
        h[i].value = rq->headers[i].value;
        h[i].order = i;
    }
    if (token) {
        strcpy(h[n - 1].name, "x-amz-security-token");
        h[n - 1].value = token;
        h[n - 1].order = n - 1;
    }
    qsort(h, n, sizeof *h, cmp_hdr);
    struct buf sh = {0};
    for (size_t i = 0; i < n; i++) {
        int same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (same) {
            buf_str(b, ",");
        } else {
            if (i)
                buf_str(b, "\n");
            buf_str(b, h[i].name);
            buf_str(b, ":");
            if (sh.len)
                buf_str(&sh, ";");
            buf_str(&sh, h[i].name);
        }
        add_trimmed(b, h[i].value);
    }
    buf_str(b, "\n");
    int rc = sh.oom || !sh.s || sh.len >= shsize ? -1 : 0;
    if (rc == 0)
        memcpy(signed_headers, sh.s, sh.len + 1);
    free(sh.s);
    free(h);
    return rc;
}

/* Task 1: the canonical request (method, path, query, headers, signed
 * headers, body hash), into c; the signed header list into out. */
static int canonical_request(struct buf *c, const struct sigv4_request *rq,
                             const struct sigv4_credentials *cr, struct sigv4_result *out)
{
    buf_str(c, rq->method);
    buf_str(c, "\n");
    canonical_uri(c, rq->path && *rq->path ? rq->path : "/");
    buf_str(c, "\n");
    canonical_query(c, rq->query);
    buf_str(c, "\n");
    if (canonical_headers(c, rq, cr->session_token, out->signed_headers,
                          sizeof out->signed_headers) != 0)
        return -1;
    buf_str(c, "\n");
    buf_str(c, out->signed_headers);
    buf_str(c, "\n");
    char body_hash[65];
    sigv4_sha256_hex(rq->body ? (const void *)rq->body : "", rq->body_len, body_hash);
    buf_str(c, body_hash);
    return c->oom ? -1 : 0;
}

/* Tasks 3 and 4: the signing key, kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" +
 * secret, date), region), service), "aws4_request"), and the signature of
 * string_to_sign, as hex. */
static int signature(const struct sigv4_credentials *cr, const struct sigv4_scope *sc, const char *date,
                     const char *string_to_sign, char hex_out[65])
{
    size_t klen = strlen(cr->secret_key) + 4;
    char *k0 = malloc(klen + 1);
    if (!k0)
        return -1;
    snprintf(k0, klen + 1, "AWS4%s", cr->secret_key);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac(k0, klen, date, k1);
    hmac(k1, 32, sc->region, k2);
    hmac(k2, 32, sc->service, k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, string_to_sign, sig);
    memset(k0, 0, klen); /* the secret does not linger in freed memory */
    free(k0);
    hex(sig, 32, hex_out);
    return 0;
}

int sigv4_sign(const struct sigv4_request *rq, const struct sigv4_credentials *cr,
               const struct sigv4_scope *sc, struct sigv4_result *out)
{
    memset(out, 0, sizeof *out);
    if (strlen(sc->amz_date) != 16)
        return -1;
    struct buf c = {0};
    if (canonical_request(&c, rq, cr, out) != 0) {
        free(c.s);
        return -1;
    }
    /* Task 2: the string to sign. */
    char date[9], scope[256], creq_hash[65];
    memcpy(date, sc->amz_date, 8);
    date[8] = '\0';
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, sc->region, sc->service);
    sigv4_sha256_hex(c.s, c.len, creq_hash);
    struct buf s = {0};
    buf_str(&s, "AWS4-HMAC-SHA256\n");
    buf_str(&s, sc->amz_date);
    buf_str(&s, "\n");
    buf_str(&s, scope);
    buf_str(&s, "\n");
    buf_str(&s, creq_hash);
    if (s.oom || signature(cr, sc, date, s.s, out->signature) != 0) {
        free(c.s);
        free(s.s);
        return -1;
    }
    snprintf(out->authorization, sizeof out->authorization,
             "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
             cr->access_key, scope, out->signed_headers, out->signature);
    out->canonical_request = c.s;
    out->string_to_sign = s.s;
    return 0;
}

void sigv4_result_free(struct sigv4_result *r)
{
    free(r->canonical_request);
    free(r->string_to_sign);
    r->canonical_request = r->string_to_sign = NULL;
}

void sigv4_amz_date(long long unix_seconds, char out[17])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
