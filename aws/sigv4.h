/* AWS Signature Version 4 (HMAC-SHA256), as every AWS API and the official
 * test suite define it: canonical request, string to sign, signing key,
 * Authorization header. Pure: the time is an input. */
#ifndef ASG_SIGV4_H
#define ASG_SIGV4_H

#include <stddef.h>
#include <stdint.h>

struct sigv4_header {
    const char *name;
    const char *value;   /* as sent; folded lines already joined by spaces */
};

struct sigv4_request {
    const char *method;
    const char *path;    /* raw, may hold percent escapes; "" means "/" */
    const char *query;   /* raw, after '?'; NULL or "" for none */
    const struct sigv4_header *headers; /* every header to sign (host too) */
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
};

struct sigv4_credentials {
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL: none; else signed as x-amz-security-token */
};

struct sigv4_scope {
    const char *region;
    const char *service;
    const char *amz_date; /* YYYYMMDDTHHMMSSZ */
};

struct sigv4_result {
    char *canonical_request;   /* malloc'd */
    char *string_to_sign;      /* malloc'd */
    char signed_headers[512];
    char signature[65];
    char authorization[1024];
};

/* Returns 0, or -1 when the request cannot be signed (a header name too
 * long, out of memory). Free with sigv4_result_free. */
int sigv4_sign(const struct sigv4_request *rq, const struct sigv4_credentials *cr,
               const struct sigv4_scope *sc, struct sigv4_result *out);
void sigv4_result_free(struct sigv4_result *r);

/* Helpers shared with the EC2 client. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
/* Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (RFC 3986), as AWS
 * requires; returns a malloc'd string. */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);
/* YYYYMMDDTHHMMSSZ for a Unix time. */
void sigv4_amz_date(long long unix_seconds, char out[17]);

#endif
