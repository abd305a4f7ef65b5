#define _GNU_SOURCE
#include "ec2.h"
#include "../common/util.h"
#include "sigv4.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const names[] = {"ok", "network", "throttled", "server", "not-found",
                                    "auth", "client", "malformed", "credentials", "aborted"};

const char *ec2_error_name(enum ec2_error e)
{
    return (unsigned)e < sizeof names / sizeof names[0] ? names[e] : "?";
}

int ec2_client_init(struct ec2_client *c, const char *region, const char *endpoint,
                    int timeout_ms, char *err, size_t errsize)
{
    return aws_query_client_init(c, "ec2", EC2_API_VERSION, region, endpoint, timeout_ms, err, errsize);
}

int aws_query_client_init(struct ec2_client *c, const char *service, const char *version,
                          const char *region, const char *endpoint, int timeout_ms, char *err,
                          size_t errsize)
{
    memset(c, 0, sizeof *c);
    copy_str(c->service, sizeof c->service, service);
    copy_str(c->version, sizeof c->version, version);
    copy_str(c->region, sizeof c->region, region);
    if (endpoint && *endpoint)
        copy_str(c->endpoint, sizeof c->endpoint, endpoint);
    else
        snprintf(c->endpoint, sizeof c->endpoint, "https://%s.%s.amazonaws.com", service, region);
    const char *h = strstr(c->endpoint, "://");
    if (!h || (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0)) {
        snprintf(err, errsize, "endpoint '%s' is not an http:// or https:// URL", c->endpoint);
        return -1;
    }
    h += 3;
    size_t hl = strcspn(h, "/?#");
    if (hl == 0 || hl >= sizeof c->host) {
        snprintf(err, errsize, "endpoint '%s' has no host", c->endpoint);
        return -1;
    }
    memcpy(c->host, h, hl);
    c->host[hl] = '\0';
    c->timeout_ms = timeout_ms;
    c->max_attempts = 5;
    c->backoff_base_ms = 100;
    c->backoff_cap_ms = 5000;
    c->rng = (uint64_t)now_ms() * 6364136223846793005ULL + 1442695040888963407ULL;
    return 0;
}

void ec2_client_free(struct ec2_client *c) { aws_creds_wipe(&c->creds); }

void ec2_form_add(struct ec2_form *f, const char *key, const char *value)
{
    char *k = sigv4_uri_encode(key, strlen(key), 0);
    char *v = sigv4_uri_encode(value, strlen(value), 0);
    if (!k || !v) {
        f->overflow = true;
    } else {
        int n = snprintf(f->buf + f->len, sizeof f->buf - f->len, "&%s=%s", k, v);
        if (n < 0 || (size_t)n >= sizeof f->buf - f->len)
            f->overflow = true;
        else
            f->len += (size_t)n;
    }
    free(k);
    free(v);
}

void ec2_form_addf(struct ec2_form *f, const char *key, const char *fmt, ...)
{
    char v[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof v)
        f->overflow = true;
    else
        ec2_form_add(f, key, v);
}

enum ec2_error ec2_classify(long http, const char *code)
{
    static const char *const throttled[] = {"RequestLimitExceeded", "Throttling",
        "ThrottlingException", "RequestThrottled", "EC2ThrottledException", "SlowDown", NULL};
    static const char *const server[] = {"InternalError", "InternalFailure", "ServiceUnavailable",
        "Unavailable", "InsufficientInstanceCapacity", NULL};
    static const char *const auth[] = {"AuthFailure", "UnauthorizedOperation",
        "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken", "RequestExpired",
        "IncompleteSignature", "MissingAuthenticationToken", NULL};
    if (code && *code) {
        for (int i = 0; throttled[i]; i++)
            if (strcmp(code, throttled[i]) == 0)
                return EC2_E_THROTTLED;
        for (int i = 0; server[i]; i++)
            if (strcmp(code, server[i]) == 0)
                return EC2_E_SERVER;
        for (int i = 0; auth[i]; i++)
            if (strcmp(code, auth[i]) == 0)
                return EC2_E_AUTH;
        if (strcmp(code, "InvalidInstanceID.NotFound") == 0 || strcmp(code, "TargetGroupNotFound") == 0)
            return EC2_E_NOT_FOUND;
    }
    if (http == 429 || http == 503)
        return code && *code ? EC2_E_CLIENT : EC2_E_THROTTLED;
    if (http >= 500)
        return EC2_E_SERVER;
    if (http == 401 || http == 403)
        return EC2_E_AUTH;
    return EC2_E_CLIENT;
}

static bool retryable(enum ec2_error e)
{
    return e == EC2_E_NETWORK || e == EC2_E_THROTTLED || e == EC2_E_SERVER;
}

struct reply {
    char *buf;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    struct reply *r = user;
    size_t len = size * n;
    if (r->len + len > 16u * 1024 * 1024)
        return 0; /* far beyond any EC2 answer: refuse */
    char *grown = realloc(r->buf, r->len + len + 1);
    if (!grown)
        return 0;
    r->buf = grown;
    memcpy(r->buf + r->len, p, len);
    r->len += len;
    r->buf[r->len] = '\0';
    return len;
}

static int ensure_creds(struct ec2_client *c, char *err, size_t errsize)
{
    if (c->have_creds && !aws_creds_stale(&c->creds, wall_ms()))
        return 0;
    struct aws_creds fresh;
    if (aws_creds_load(&fresh, err, errsize) != 0) {
        aws_creds_wipe(&fresh);
        return -1;
    }
    if (!c->have_creds || strcmp(fresh.source, c->creds.source) != 0 || fresh.expires_ms)
        log_info("AWS credentials from the %s%s", fresh.source,
                 fresh.expires_ms ? " (temporary, refreshed before they expire)" : "");
    aws_creds_wipe(&c->creds);
    c->creds = fresh;
    aws_creds_wipe(&fresh);
    c->have_creds = true;
    return 0;
}

/* The request's headers, its SigV4 signature among them; NULL if it
 * cannot be signed. *token_header is the session token's line (wiped and
 * freed by the caller), or NULL. */
static struct curl_slist *signed_headers(struct ec2_client *c, const char *body, char **token_header)
{
    char date[17];
    sigv4_amz_date(wall_ms() / 1000, date);
    const char *ctype = "application/x-www-form-urlencoded; charset=utf-8";
    struct sigv4_header hs[3] = {{"Content-Type", ctype}, {"Host", c->host}, {"X-Amz-Date", date}};
    struct sigv4_request rq = {"POST", "/", NULL, hs, 3, (const uint8_t *)body, strlen(body)};
    struct sigv4_credentials cr = {c->creds.access_key, c->creds.secret_key,
                                   c->creds.token[0] ? c->creds.token : NULL};
    struct sigv4_scope sc = {c->region, c->service, date};
    struct sigv4_result sig;
    *token_header = NULL;
    if (sigv4_sign(&rq, &cr, &sc, &sig) != 0)
        return NULL;
    char h_auth[1100], h_date[64], h_host[300], h_ct[100];
    snprintf(h_auth, sizeof h_auth, "Authorization: %s", sig.authorization);
    snprintf(h_date, sizeof h_date, "X-Amz-Date: %s", date);
    snprintf(h_host, sizeof h_host, "Host: %s", c->host);
    snprintf(h_ct, sizeof h_ct, "Content-Type: %s", ctype);
    sigv4_result_free(&sig);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, h_auth);
    hl = curl_slist_append(hl, h_date);
    hl = curl_slist_append(hl, h_host);
    hl = curl_slist_append(hl, h_ct);
    hl = curl_slist_append(hl, "Expect:");
    if (c->creds.token[0] && asprintf(token_header, "X-Amz-Security-Token: %s", c->creds.token) > 0)
        hl = curl_slist_append(hl, *token_header);
    return hl;
}

/* The POST itself, over libcurl; fills status and the reply's body. */
static enum ec2_error post(struct ec2_client *c, const char *body, struct curl_slist *hl, long *status,
                           struct reply *rep, char *err, size_t errsize)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errsize, "curl_easy_init failed");
        return EC2_E_NETWORK;
    }
    enum ec2_error e = EC2_OK;
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, c->endpoint);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rep);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(err, errsize, "%s: %s", c->endpoint, cerr[0] ? cerr : curl_easy_strerror(rc));
        e = EC2_E_NETWORK;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(h);
    return e;
}

/* One signed POST; fills status and body, or returns a network error. */
static enum ec2_error attempt(struct ec2_client *c, const char *body, long *status,
                              struct reply *rep, char *err, size_t errsize)
{
    char *h_tok;
    struct curl_slist *hl = signed_headers(c, body, &h_tok);
    if (!hl) {
        snprintf(err, errsize, "cannot sign the request");
        return EC2_E_CLIENT;
    }
    enum ec2_error e = post(c, body, hl, status, rep, err, errsize);
    curl_slist_free_all(hl);
    if (h_tok) {
        memset(h_tok, 0, strlen(h_tok));
        free(h_tok);
    }
    return e;
}

/* Sleeps up to ms, waking early when the manager is told to stop. */
static bool backoff_sleep(struct ec2_client *c, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (c->abort_flag && *c->abort_flag)
            return false;
        int left = (int)(end - now_ms());
        poll(NULL, 0, left > 50 ? 50 : left);
    }
    return true;
}

/* What an answer says: EC2_OK with out filled, or why not in err. An
 * expired session token is retried once, with credentials loaded again. */
static enum ec2_error read_reply(struct ec2_client *c, const char *action, long status,
                                 const struct reply *rep, struct ec2_response *out, bool *refreshed,
                                 char *err, size_t errsize)
{
    char perr[256];
    if (ec2_parse(rep->buf ? rep->buf : "", rep->len, out, perr, sizeof perr) != 0) {
        snprintf(err, errsize, "%s: HTTP %ld, %s", action, status, perr);
        return status >= 500 ? EC2_E_SERVER : EC2_E_MALFORMED;
    }
    if (out->kind != EC2_RESP_ERROR && status < 300)
        return EC2_OK;
    enum ec2_error e = ec2_classify(status, out->error_code);
    snprintf(err, errsize, "%s: HTTP %ld %s: %.150s (request %s)", action, status,
             out->error_code[0] ? out->error_code : "(no code)", out->error_message,
             out->request_id[0] ? out->request_id : "-");
    ec2_response_free(out);
    if (!strcmp(out->error_code, "ExpiredToken") && !*refreshed) {
        c->have_creds = false; /* load fresh ones and try again */
        *refreshed = true;
        e = EC2_E_SERVER;
    }
    return e;
}

/* The wait before attempt n + 1: capped exponential backoff, "full
 * jitter" in its upper half. */
static int backoff_ms(struct ec2_client *c, int n)
{
    int cap = c->backoff_base_ms << (n - 1);
    if (cap > c->backoff_cap_ms)
        cap = c->backoff_cap_ms;
    c->rng = c->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return cap / 2 + (int)((c->rng >> 33) % (uint64_t)(cap / 2 + 1));
}

enum ec2_error ec2_call(struct ec2_client *c, const char *action, const struct ec2_form *params,
                        struct ec2_response *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    if (params && params->overflow) {
        snprintf(err, errsize, "%s: request parameters too long", action);
        return EC2_E_CLIENT;
    }
    size_t blen = strlen(action) + (params ? params->len : 0) + 64;
    char *body = malloc(blen);
    if (!body)
        abort();
    snprintf(body, blen, "Action=%s&Version=%s%s", action, c->version, params ? params->buf : "");
    c->calls++;
    enum ec2_error e = EC2_E_NETWORK;
    bool refreshed = false;
    for (int n = 1; n <= c->max_attempts; n++) {
        if (ensure_creds(c, err, errsize) != 0) {
            e = EC2_E_CREDENTIALS;
            break;
        }
        long status = 0;
        struct reply rep = {NULL, 0};
        c->attempts++;
        e = attempt(c, body, &status, &rep, err, errsize);
        if (e == EC2_OK)
            e = read_reply(c, action, status, &rep, out, &refreshed, err, errsize);
        free(rep.buf);
        if (e == EC2_OK || !retryable(e) || n == c->max_attempts)
            break;
        int wait = backoff_ms(c, n);
        log_warn("%s failed (%s: %s); retry %d of %d in %d ms", action, ec2_error_name(e), err,
                 n, c->max_attempts - 1, wait);
        c->retries++;
        if (!backoff_sleep(c, wait)) {
            e = EC2_E_ABORTED;
            break;
        }
    }
    free(body);
    return e;
}
