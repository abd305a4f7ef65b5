/* The status role: HTTP on status.listen (libmicrohttpd) with the
 * dashboard (GET /), Prometheus metrics (GET /metrics) and a JSON API
 * (/api/v1/...). It maps the table read-only, so it can never lock or
 * corrupt it; operator actions go to the controller as requests
 * (common/ctlsock.c), or to an agent (SetLoad), never into the table. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <json-c/json.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/ctlsock.h"
#include "../common/pki.h"
#include "../common/strbuf.h"
#include "../common/utf8.h"
#include "../common/util.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "asg.pb-c.h"
#include "../report/render.h"
#include "lifecycle_api.h"
#include "rollout_api.h"
#include "notify_api.h"
#include "history_api.h"
#include "suspend_api.h"
#include "instance_api.h"
#include "status.h"

#define MAX_BODY 4096
#define MAX_CONNECTIONS 512
#define PER_ADDRESS_CONNECTIONS 48
#define REQUEST_DEADLINE_MS 10000
#define SESSION_S (12 * 3600)       /* a login lasts a working day */
#define LOGIN_CODES 16              /* outstanding one-time links */
#define LOGIN_CODE_LEN 32           /* hex digits: 128 random bits */
#define LOGIN_CODE_MS (15 * 60 * 1000)

extern const char dashboard_html[];

/* The connections' budget (see "connections" below). */
#define PER_SOURCE_BUDGET 48
#define MAX_SLOTS 1024
#define SOURCES 2048                /* the per-source table: twice MAX_SLOTS */

struct conn {
    bool used, cut, authed;
    int fd;
    uint32_t source;                /* its entry in conns.src (see source_index) */
    int64_t since, opened;
};

/* A source's exact key, never a hash of it alone: with buckets shared by
 * hash, a stranger picked 127/8 addresses that fell in 127.0.0.1's and
 * spent the operator's per-source budget. */
struct source {
    uint8_t key[16];                /* IPv4 v4-mapped, or an IPv6 /64 */
    bool used;
    uint16_t count;                 /* live connections from it */
};

struct conns {
    pthread_mutex_t mu;             /* also held across shutdown(): MHD reports a
                                     * connection closed before it closes the
                                     * descriptor, so a cut fd is never reused */
    struct conn slot[MAX_SLOTS];
    size_t nslots;                  /* in use: MAX_SLOTS or fewer if descriptors are short */
    size_t budget;                  /* live connections before one is cut */
    size_t live;                    /* used and not cut */
    struct source src[SOURCES];     /* open addressing, by exact key */
};

/* The HTTP threads never read cfg (the main loop replaces it on reload):
 * what they need is copied here, under mu, or fixed for the role's life. */
struct status {
    struct table t;              /* read-only mapping */
    struct confseg conf;         /* the published config, read-only; any thread */
    struct asg_config cfg;       /* main thread only */
    uint64_t cfg_gen;
    pthread_mutex_t mu;          /* tokens, codes and hosts, between reloads and requests */
    char token[256];
    bool token_set, token_broken;
    char hosts[256];             /* status.allowed_hosts, comma-joined */
    char listen_host[64];        /* fixed: status.listen needs a restart */
    _Atomic unsigned port;       /* the bound port */
    struct rpc_tls tls;          /* to reach agents as the manager does */
    struct log_limit refusals;   /* main and HTTP threads: guarded by mu */
    _Atomic uint64_t http_refused; /* this role's own count, shown with the table's */
    char api_token[PKI_API_TOKEN_LEN + 1]; /* tls.dir/api.token; "" when unreadable */
    struct {
        char code[LOGIN_CODE_LEN + 1];
        int64_t expires_ms;
    } codes[LOGIN_CODES];           /* one-time login links, under mu */
    struct conns conns;          /* the HTTP connections, under conns.mu */
};

struct body {
    char buf[MAX_BODY];
    size_t len;
    bool too_big;
};

/* ---- responses ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *ctype,
                            const char *data, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, struct strbuf *b)
{
    enum MHD_Result r = respond(c, code, "application/json", b->s ? b->s : "{}", b->s ? b->len : 2);
    sb_free(b);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct strbuf b = {0};
    sb_printf(&b, "{\"error\":");
    sb_json_str(&b, msg);
    sb_printf(&b, "}\n");
    return send_json(c, code, &b);
}

/* ---- who may act ----
 * Every request but /healthz (and /metrics while no status.token is set)
 * needs the operator's credential: the manager's own API token (tls.dir/
 * api.token, readable by its user only), status.token if configured, or
 * the session cookie a one-time login link sets. Loopback alone proves
 * nothing: every local user can connect to it. */

/* Compares digests, so neither the contents nor the length of the token
 * shows in the time taken. */
static bool same_secret(const char *a, const char *b)
{
    unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)a, strlen(a), da);
    SHA256((const unsigned char *)b, strlen(b), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

static void refuse_noted(struct status *st, unsigned code, const char *why)
{
    atomic_fetch_add(&st->http_refused, 1); /* the table is read-only here */
    pthread_mutex_lock(&st->mu);
    log_limited(&st->refusals, LOG_LVL_WARN, "http request refused (%u): %s", code, why);
    pthread_mutex_unlock(&st->mu);
}

/* host[:port] is one of ours: the listen address, localhost, a loopback
 * literal, or a name in status.allowed_hosts; with our port if it names
 * one (with need_port, it must: an Origin without a port is port 80's,
 * another server's). A page on evil.example that resolves to 127.0.0.1
 * carries Host: evil.example, and is refused here (DNS rebinding). */
static bool our_host_port(struct status *st, const char *hp, bool need_port)
{
    char host[256];
    if (!hp || !*hp || !copy_str(host, sizeof host, hp))
        return false;
    char *port = NULL;
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (!end)
            return false;
        if (end[1] == ':')
            port = end + 2;
        else if (end[1])
            return false;
        end[1] = '\0';
    } else if ((port = strchr(host, ':')) != NULL) {
        *port++ = '\0';
    }
    if (port) {
        long p;
        if (!parse_whole(port, 1, 65535, &p) || (unsigned)p != st->port)
            return false;
    } else if (need_port && st->port != 80) {
        return false;
    }
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, st->listen_host) == 0 || strncmp(host, "127.", 4) == 0) {
        struct in_addr a;
        return strncmp(host, "127.", 4) != 0 || inet_pton(AF_INET, host, &a) == 1;
    }
    pthread_mutex_lock(&st->mu);
    bool listed = false;
    size_t n = strlen(host);
    for (const char *h = st->hosts; *h && !listed; h += strcspn(h, ",") + (h[strcspn(h, ",")] ? 1 : 0))
        listed = strcspn(h, ",") == n && strncasecmp(h, host, n) == 0;
    pthread_mutex_unlock(&st->mu);
    return listed;
}

static bool our_host(struct status *st, const char *hp) { return our_host_port(st, hp, false); }

/* A session is two halves, both needed for the API: the cookie
 * "EXPIRY.MAC" (HMAC-SHA256 of the port and expiry under the API token)
 * and a key, a second HMAC of the same, that the login page puts in the
 * page's localStorage and the page sends as X-ASG-Session. Browsers send
 * a host's cookies to every port of it (SameSite compares sites, not
 * ports), so a stranger's page on another port of 127.0.0.1 gets the
 * cookie; localStorage is kept per origin, port included, so it never
 * gets the key. Nothing to store: a session outlives a restart of this
 * role, and replacing api.token ends every one. The cookie alone opens
 * only the page itself, which holds no data. */
static void cookie_name(struct status *st, char *out, size_t size)
{
    snprintf(out, size, "asg_session_%u", (unsigned)st->port);
}

static bool session_mac(struct status *st, const char *half, int64_t expiry,
                        char hex[2 * SHA256_DIGEST_LENGTH + 1])
{
    char msg[96];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int n = snprintf(msg, sizeof msg, "asg session v1 %s %u %lld", half, (unsigned)st->port,
                     (long long)expiry);
    pthread_mutex_lock(&st->mu);
    bool ok = st->api_token[0] && HMAC(EVP_sha256(), st->api_token, (int)strlen(st->api_token),
                                     (const unsigned char *)msg, (size_t)n, mac, &len) &&
              len == SHA256_DIGEST_LENGTH;
    pthread_mutex_unlock(&st->mu);
    for (unsigned i = 0; ok && i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return ok;
}

/* The cookie's value v valid; with key, the key must be its other half
 * (key NULL: the page, which the cookie alone opens). */
static bool session_valid(struct status *st, const char *v, bool page, const char *key)
{
    char *dot;
    errno = 0;
    long long expiry = v ? strtoll(v, &dot, 10) : 0;
    int64_t now = wall_ms() / 1000;
    if (!v || errno || *dot != '.' || expiry <= now || expiry > now + SESSION_S + 60)
        return false;
    char want[2 * SHA256_DIGEST_LENGTH + 1];
    if (!session_mac(st, "cookie", expiry, want) || !same_secret(dot + 1, want))
        return false;
    if (page)
        return true;
    return key && session_mac(st, "key", expiry, want) && same_secret(key, want);
}

/* The connection's bookkeeping (see "connections" below). */
static void mark_authenticated(struct status *st, struct MHD_Connection *c);

static bool has_credential(struct status *st, struct MHD_Connection *c, bool page)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    bool ok = false;
    if (auth && strncmp(auth, "Bearer ", 7) == 0) {
        pthread_mutex_lock(&st->mu);
        ok = (st->api_token[0] && same_secret(auth + 7, st->api_token)) ||
             (st->token_set && !st->token_broken && st->token[0] && same_secret(auth + 7, st->token));
        pthread_mutex_unlock(&st->mu);
    } else {
        char name[32];
        cookie_name(st, name, sizeof name);
        ok = session_valid(st, MHD_lookup_connection_value(c, MHD_COOKIE_KIND, name), page,
                           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-ASG-Session"));
    }
    if (ok)
        mark_authenticated(st, c);
    return ok;
}

/* Every request: a Host of ours; then the credential, except for
 * /healthz, the login link (it carries its own one-time code) and, while
 * no status.token is set, /metrics (a scraper on this host needs no
 * secret to read numbers). */
static unsigned may_read(struct status *st, struct MHD_Connection *c, const char *url, const char **why)
{
    if (!our_host(st, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"))) {
        *why = "Host is not this server's name (see status.allowed_hosts)";
        return 421;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/login") == 0)
        return 0;
    pthread_mutex_lock(&st->mu);
    bool open_metrics = !st->token_set;
    pthread_mutex_unlock(&st->mu);
    if (open_metrics && strcmp(url, "/metrics") == 0)
        return 0;
    if (!has_credential(st, c, strcmp(url, "/") == 0)) {
        *why = "the operator's credential is required: 'Authorization: Bearer TOKEN' "
               "(tls.dir/api.token or status.token), or a login link from 'asgctl dashboard'";
        return 401;
    }
    return 0;
}

/* Exactly application/json, with parameters at most. */
static bool json_content(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';';
}

/* Returns 0 when the action may go ahead, else the HTTP status to refuse
 * with (and why). The credential was checked by may_read. Actions must
 * come as JSON (a cross-site form post from some web page cannot) with an
 * Origin naming this server and its port (browsers always send one on
 * POST; a page of another origin, another port of 127.0.0.1 included, is
 * refused). */
static unsigned may_act(struct status *st, struct MHD_Connection *c, const char **why)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!json_content(ct)) {
        *why = "actions take a JSON body (Content-Type: application/json)";
        return 415;
    }
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin || strncmp(origin, "http://", 7) != 0 || !our_host_port(st, origin + 7, true)) {
        *why = "actions need an Origin of this server (http://HOST:PORT); cross-origin refused";
        return 403;
    }
    return 0;
}

/* ---- one-time login links ----
 * 'asgctl dashboard' (with the API token) asks for a code; the link
 * /login?code=CODE sets the session cookie once and is then spent. */

static void mint_code(struct status *st, char out[LOGIN_CODE_LEN + 1])
{
    unsigned char r[LOGIN_CODE_LEN / 2];
    out[0] = '\0';
    if (RAND_bytes(r, sizeof r) != 1)
        return;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    OPENSSL_cleanse(r, sizeof r);
    int64_t now = now_ms();
    pthread_mutex_lock(&st->mu);
    size_t slot = 0; /* a free or expired one, else the one closest to expiry */
    for (size_t i = 0; i < LOGIN_CODES; i++)
        if (st->codes[i].expires_ms < st->codes[slot].expires_ms)
            slot = i;
    copy_str(st->codes[slot].code, sizeof st->codes[slot].code, out);
    st->codes[slot].expires_ms = now + LOGIN_CODE_MS;
    pthread_mutex_unlock(&st->mu);
}

static bool spend_code(struct status *st, const char *code)
{
    if (!code || strlen(code) != LOGIN_CODE_LEN)
        return false;
    int64_t now = now_ms();
    bool ok = false;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < LOGIN_CODES; i++) {
        bool match = st->codes[i].code[0] && CRYPTO_memcmp(st->codes[i].code, code, LOGIN_CODE_LEN) == 0;
        if (match) {
            ok = st->codes[i].expires_ms > now;
            memset(&st->codes[i], 0, sizeof st->codes[i]);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return ok;
}

static const char login_refused_html[] =
    "<!doctype html><meta charset=utf-8><title>asg: log in</title>"
    "<body style=\"font:15px system-ui,sans-serif;margin:40px\"><h1>asg dashboard</h1>"
    "<p>%s</p><p>For a login link, run <code>asgctl -c YOUR.cfg dashboard</code> as the "
    "manager's user (it reads the manager's API token), or use the link "
    "<code>asgd -f</code> printed at start. A link works once.</p>";

static enum MHD_Result login_page(struct MHD_Connection *c, unsigned code, const char *msg)
{
    char html[1024];
    int n = snprintf(html, sizeof html, login_refused_html, msg);
    return respond(c, code, "text/html; charset=utf-8", html, (size_t)n);
}

/* The login page: sets the cookie, puts the key where only pages of this
 * origin can read it, and goes on to the dashboard. */
static const char login_ok_html[] =
    "<!doctype html><meta charset=utf-8><title>asg: logged in</title>"
    "<script>localStorage.setItem(\"asg_session_key_%u\",\"%s\");location.replace(\"/\");</script>"
    "<p>Logged in; <a href=\"/\">the dashboard</a>.</p>";

static enum MHD_Result get_login(struct status *st, struct MHD_Connection *c)
{
    if (!spend_code(st, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "code"))) {
        refuse_noted(st, 401, "login link unknown, used or expired");
        return login_page(c, 401, "This login link is unknown, was used already, or has expired.");
    }
    int64_t expiry = wall_ms() / 1000 + SESSION_S;
    char mac[2 * SHA256_DIGEST_LENGTH + 1], key[2 * SHA256_DIGEST_LENGTH + 1], name[32], cookie[200];
    if (!session_mac(st, "cookie", expiry, mac) || !session_mac(st, "key", expiry, key))
        return login_page(c, 503, "The manager's API token cannot be read; see its log.");
    cookie_name(st, name, sizeof name);
    snprintf(cookie, sizeof cookie, "%s=%lld.%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", name,
             (long long)expiry, mac, SESSION_S);
    char *html = NULL;
    int n = asprintf(&html, login_ok_html, (unsigned)st->port, key);
    OPENSSL_cleanse(key, sizeof key);
    struct MHD_Response *r = n < 0 ? NULL : MHD_create_response_from_buffer((size_t)n, html, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(n < 0 ? NULL : html);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Set-Cookie", cookie);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    log_info("operator: logged in to the dashboard with a one-time link");
    return ret;
}

/* "http://HOST:PORT/login?code=..." for host (a Host header of ours, or
 * the listen address). */
static void login_url(struct status *st, const char *host, char *out, size_t size)
{
    char code[LOGIN_CODE_LEN + 1];
    mint_code(st, code);
    snprintf(out, size, "http://%s/login?code=%s", host, code);
    OPENSSL_cleanse(code, sizeof code);
}

static enum MHD_Result post_login(struct status *st, struct MHD_Connection *c)
{
    /* The name the client used (checked by our_host), with our port. */
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    char hp[300], url[400];
    snprintf(hp, sizeof hp, "%.*s:%u", (int)(n < 256 ? n : 256), host, (unsigned)st->port);
    login_url(st, hp, url, sizeof url);
    struct strbuf b = {0};
    sb_printf(&b, "{\"url\":");
    sb_json_str(&b, url);
    sb_printf(&b, ",\"expires_in_s\":%d,\"uses\":1}\n", LOGIN_CODE_MS / 1000);
    OPENSSL_cleanse(url, sizeof url);
    return send_json(c, 200, &b);
}

/* ---- reads ---- */

static enum MHD_Result get_group(struct status *st, struct MHD_Connection *c)
{
    struct snapshot s;
    if (snapshot_take(&st->t, &st->conf, &s) != 0)
        return send_error(c, 503, "table header unreadable (a writer died mid-write)");
    s.hdr->refused[REFUSED_HTTP] = atomic_load(&st->http_refused);
    struct strbuf b = {0};
    render_status_json(&b, &s, true);
    snapshot_free(&s);
    return send_json(c, 200, &b);
}

static enum MHD_Result get_rollout(struct status *st, struct MHD_Connection *c)
{
    struct snapshot s;
    if (snapshot_take(&st->t, &st->conf, &s) != 0)
        return send_error(c, 503, "table header unreadable (a writer died mid-write)");
    struct strbuf b = {0};
    render_rollout_json(&b, &s);
    sb_printf(&b, "\n");
    snapshot_free(&s);
    return send_json(c, 200, &b);
}

static enum MHD_Result get_notify(struct status *st, struct MHD_Connection *c)
{
    struct snapshot s;
    if (snapshot_take(&st->t, &st->conf, &s) != 0)
        return send_error(c, 503, "table header unreadable (a writer died mid-write)");
    struct strbuf b = {0};
    notify_api_json(&b, &s);
    snapshot_free(&s);
    return send_json(c, 200, &b);
}

static enum MHD_Result get_metrics(struct status *st, struct MHD_Connection *c)
{
    struct snapshot s;
    if (snapshot_take(&st->t, &st->conf, &s) != 0)
        return send_error(c, 503, "table header unreadable");
    s.hdr->refused[REFUSED_HTTP] = atomic_load(&st->http_refused);
    struct strbuf b = {0};
    render_metrics(&b, &s);
    snapshot_free(&s);
    enum MHD_Result r = respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.s, b.len);
    sb_free(&b);
    return r;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static enum MHD_Result get_events(struct status *st, struct MHD_Connection *c)
{
    uint64_t after = 0, limit = 100;
    const char *a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    const char *l = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    if ((a && !parse_u64(a, &after)) || (l && (!parse_u64(l, &limit) || limit == 0 || limit > TABLE_EVENTS)))
        return send_error(c, 400, "after must be a whole number; limit 1..%d", TABLE_EVENTS);
    struct strbuf b = {0};
    render_events_json(&b, &st->t, after, (size_t)limit);
    return send_json(c, 200, &b);
}

static struct asg_config *published_config(struct status *st);

/* The history's endpoints (status/history_api.h). */
static enum MHD_Result get_history(struct status *st, struct MHD_Connection *c, bool samples)
{
    struct asg_config *cfg = published_config(st);
    if (!cfg)
        return send_error(c, 503, "the manager's config cannot be read");
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    const char *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    struct strbuf b = {0};
    char err[400];
    unsigned code = samples ? history_api_samples(cfg, since, &b, err, sizeof err)
                            : history_api_activities(cfg, limit, since, &b, err, sizeof err);
    free(cfg);
    if (code == 200)
        return send_json(c, 200, &b);
    sb_free(&b);
    return send_error(c, code, "%s", err);
}

/* ---- actions ---- */

static json_object *parse_body(struct MHD_Connection *c, const struct body *body, enum MHD_Result *ret)
{
    if (body->too_big) {
        *ret = send_error(c, 413, "body larger than %d bytes", MAX_BODY);
        return NULL;
    }
    /* JSON is UTF-8; json-c's own check lets surrogates through. */
    size_t bad = 0;
    if (!utf8_valid(body->buf, body->len, &bad)) {
        *ret = send_error(c, 400, "the body is not valid UTF-8 (byte %zu)", bad + 1);
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, body->buf, (int)body->len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == body->len;
    json_tokener_free(tok);
    if (!o || !complete || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        *ret = send_error(c, 400, "the body must be one JSON object");
        return NULL;
    }
    return o;
}

/* The published config as of now (HTTP threads do not read st->cfg);
 * malloc'd, NULL when unreadable. */
static struct asg_config *published_config(struct status *st)
{
    struct asg_config *cfg = malloc(sizeof *cfg);
    uint64_t gen;
    if (cfg && !confseg_read(&st->conf, cfg, &gen)) {
        free(cfg);
        cfg = NULL;
    }
    return cfg;
}

/* A standby's controller acts on nothing: the request belongs with the
 * leader, which this says. */
static enum MHD_Result forward(struct status *st, struct MHD_Connection *c, const struct ctl_request *rq,
                               const char *what)
{
    struct table_hdr h;
    struct asg_config *cfg = published_config(st);
    bool ha = cfg && cfg->ha_etcd[0];
    free(cfg);
    if (table_read_hdr(&st->t, &h) && ha && h.ha_role != HA_LEADER)
        return send_error(c, 409, "this manager is a standby: ask the leader, %.60s (monitor at %.63s)",
                          h.ha_leader[0] ? h.ha_leader : "not known right now",
                          h.ha_leader_addr[0] ? h.ha_leader_addr : "?");
    if (ctlsock_send(rq) != 0)
        return send_error(c, 503, "the controller is not taking requests right now; retry");
    struct strbuf b = {0};
    sb_printf(&b, "{\"accepted\":true,\"action\":");
    sb_json_str(&b, what);
    sb_printf(&b, ",\"note\":\"carried out by the controller; see /api/v1/events\"}\n");
    return send_json(c, 202, &b);
}

/* Every field checked here (rollout_api.h), so a bad one is a 400 naming
 * it and never reaches the controller, which refuses what the rollout's
 * state does not allow (an event, as every operator request's outcome). */
static enum MHD_Result post_rollout(struct status *st, struct MHD_Connection *c, json_object *o)
{
    struct ctl_request rq;
    char why[200];
    if (rollout_api_request(o, &rq, why, sizeof why) != 0)
        return send_error(c, 400, "%s", why);
    char what[32];
    snprintf(what, sizeof what, "rollout %s", rollout_action_name(rq.value));
    return forward(st, c, &rq, what);
}

static enum MHD_Result post_desired(struct status *st, struct MHD_Connection *c, json_object *o)
{
    json_object *v;
    if (!json_object_object_get_ex(o, "desired", &v) || !json_object_is_type(v, json_type_int))
        return send_error(c, 400, "expected {\"desired\": N} with a whole number N");
    int64_t n = json_object_get_int64(v);
    struct asg_config *cfg = published_config(st);
    if (!cfg)
        return send_error(c, 503, "published config unreadable");
    int lo = cfg->min_instances, hi = cfg->max_instances;
    free(cfg);
    if (n < lo || n > hi)
        return send_error(c, 400, "desired %lld is outside min..max (%d..%d)", (long long)n, lo, hi);
    struct ctl_request rq = {CTL_REQ_MAGIC, REQ_SET_DESIRED, (int32_t)n, 0, ""};
    return forward(st, c, &rq, "set desired");
}

/* Which credential the request carried (may_read checked it): for the
 * record of who suspended what. */
static const char *credential_kind(struct status *st, struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return "dashboard";
    pthread_mutex_lock(&st->mu);
    bool api = st->api_token[0] && same_secret(auth + 7, st->api_token);
    pthread_mutex_unlock(&st->mu);
    return api ? "api-token" : "status-token";
}

/* Every field checked here (suspend_api.h); the controller records who
 * asked, as the caller named itself and the credential it showed. */
static enum MHD_Result post_suspend(struct status *st, struct MHD_Connection *c, json_object *o)
{
    char by[SUSPEND_BY_MAX], why[200];
    suspend_api_caller(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-ASG-Client"), credential_kind(st, c),
                       by, sizeof by);
    struct ctl_request rq;
    if (suspend_api_request(o, by, &rq, why, sizeof why) != 0)
        return send_error(c, 400, "%s", why);
    return forward(st, c, &rq, rq.value ? "suspend" : "resume");
}

static enum MHD_Result get_suspend(struct status *st, struct MHD_Connection *c)
{
    struct table_hdr h;
    if (!table_read_hdr(&st->t, &h))
        return send_error(c, 503, "table header unreadable (a writer died mid-write)");
    struct strbuf b = {0};
    sb_printf(&b, "{\"suspended\":");
    render_suspended_json(&b, &h);
    sb_printf(&b, "}\n");
    return send_json(c, 200, &b);
}

/* Finds a live instance in a fresh snapshot; copies it out. */
static bool find_instance(struct status *st, const char *id, struct table_row *out)
{
    struct snapshot s;
    if (snapshot_take(&st->t, &st->conf, &s) != 0)
        return false;
    bool found = false;
    for (uint32_t i = 0; i < s.nrows && !found; i++)
        if (strcmp(s.rows[i].id, id) == 0) {
            *out = s.rows[i];
            found = true;
        }
    snapshot_free(&s);
    return found;
}

static enum MHD_Result post_terminate(struct status *st, struct MHD_Connection *c, const char *id,
                                      json_object *o)
{
    struct table_row r;
    if (!find_instance(st, id, &r))
        return send_error(c, 404, "no instance %s", id);
    json_object *v;
    bool decrement = false;
    if (o && json_object_object_get_ex(o, "decrement", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            return send_error(c, 400, "decrement must be true or false");
        decrement = json_object_get_boolean(v);
    }
    struct ctl_request rq = {CTL_REQ_MAGIC, REQ_TERMINATE, decrement ? 1 : 0, 0, ""};
    copy_str(rq.id, sizeof rq.id, id);
    return forward(st, c, &rq, "terminate");
}

/* An operator's word on an instance a lifecycle hook holds; the
 * controller checks its state again (an event says what it made of it). */
static enum MHD_Result post_lifecycle(struct status *st, struct MHD_Connection *c, const char *id, json_object *o)
{
    struct ctl_request rq;
    char why[200];
    if (lifecycle_api_request(id, o, &rq, why, sizeof why) != 0)
        return send_error(c, 400, "%s", why);
    struct table_row r;
    if (!find_instance(st, id, &r))
        return send_error(c, 404, "no instance %s", id);
    if (r.state != ROW_LAUNCH_WAIT && r.state != ROW_TERM_WAIT)
        return send_error(c, 409, "instance %s is %s: no lifecycle hook holds it", id, row_state_name(r.state));
    char what[32];
    snprintf(what, sizeof what, "lifecycle %s", rq.value == 1 ? "continue" : rq.value == 2 ? "abandon" : "heartbeat");
    return forward(st, c, &rq, what);
}

/* Protection and standby (instance_api.h): the instance must exist here;
 * the controller checks its state. */
static enum MHD_Result post_instance_control(struct status *st, struct MHD_Connection *c, const char *id,
                                             const char *action, json_object *o)
{
    struct ctl_request rq;
    char what[48], why[200];
    if (instance_api_request(action, id, o, &rq, what, sizeof what, why, sizeof why) != 0)
        return send_error(c, 400, "%s", why);
    struct table_row r;
    if (!find_instance(st, id, &r))
        return send_error(c, 404, "no instance %s", id);
    return forward(st, c, &rq, what);
}

static enum MHD_Result post_load(struct status *st, struct MHD_Connection *c, const char *id, json_object *o)
{
    json_object *v;
    bool release = json_object_object_get_ex(o, "auto", &v) && json_object_get_boolean(v);
    double load = 0;
    if (!release) {
        if (!json_object_object_get_ex(o, "load", &v) ||
            !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
            return send_error(c, 400, "expected {\"load\": 0..1} or {\"auto\": true}");
        load = json_object_get_double(v);
        if (!isfinite(load) || load < 0 || load > 1)
            return send_error(c, 400, "load %g is outside 0..1", load);
    }
    struct table_row r;
    if (!find_instance(st, id, &r))
        return send_error(c, 404, "no instance %s", id);
    if (!r.addr[0])
        return send_error(c, 409, "instance %s has no address yet", id);
    grpc_channel *ch = rpc_channel_create(r.addr, &st->tls, RPC_AGENT_NAME);
    Asg__V1__SetLoadRequest q = ASG__V1__SET_LOAD_REQUEST__INIT;
    q.release = release;
    q.load = load;
    size_t len, rlen;
    uint8_t *buf = rpc_pack(&q.base, &len), *reply = NULL;
    char det[256];
    grpc_status_code rc = rpc_call_sync(ch, M_AGENT_SET_LOAD, buf, len, 2000, &reply, &rlen, det, sizeof det);
    free(buf);
    grpc_channel_destroy(ch);
    if (rc != GRPC_STATUS_OK)
        return send_error(c, 502, "agent %s at %s: status %d %s", id, r.addr, (int)rc, det);
    Asg__V1__SetLoadReply *rep = asg__v1__set_load_reply__unpack(NULL, rlen, reply);
    free(reply);
    if (!rep)
        return send_error(c, 502, "agent %s answered with a malformed reply", id);
    struct strbuf b = {0};
    sb_printf(&b, "{\"instance\":");
    sb_json_str(&b, id);
    sb_printf(&b, ",\"load\":%.4f,\"pinned\":%s}\n", rep->load, rep->pinned ? "true" : "false");
    asg__v1__set_load_reply__free_unpacked(rep, NULL);
    log_info("operator: load of %s %s", id, release ? "released" : "pinned");
    return send_json(c, 200, &b);
}

/* /api/v1/instances/ID/ACTION -> id and action; false if not that shape. */
static bool split_instance_url(const char *url, char *id, size_t idsize, const char **action)
{
    const char *p = url + strlen("/api/v1/instances/");
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= idsize)
        return false;
    memcpy(id, p, n);
    id[n] = '\0';
    *action = slash ? slash + 1 : "";
    return valid_instance_id(id, n);
}

static enum MHD_Result act(struct status *st, struct MHD_Connection *c, const char *url, const char *method,
                           const struct body *body)
{
    const char *why;
    unsigned code = may_act(st, c, &why);
    if (code) {
        refuse_noted(st, code, why);
        return send_error(c, code, "%s", why);
    }
    enum MHD_Result ret = MHD_NO;
    json_object *o = parse_body(c, body, &ret);
    if (!o)
        return ret;
    char id[TABLE_ID_MAX];
    const char *action = "";
    if (strcmp(url, "/api/v1/login") == 0 && strcmp(method, "POST") == 0)
        ret = post_login(st, c);
    else if (strcmp(url, "/api/v1/desired") == 0 && strcmp(method, "POST") == 0)
        ret = post_desired(st, c, o);
    else if (strcmp(url, "/api/v1/rollout") == 0 && strcmp(method, "POST") == 0)
        ret = post_rollout(st, c, o);
    else if (strcmp(url, "/api/v1/suspend") == 0 && strcmp(method, "POST") == 0)
        ret = post_suspend(st, c, o);
    else if (strcmp(url, "/api/v1/instances") == 0 && strcmp(method, "POST") == 0) {
        struct ctl_request rq = {CTL_REQ_MAGIC, REQ_LAUNCH_ONE, 0, 0, ""};
        ret = forward(st, c, &rq, "launch one");
    } else if (strncmp(url, "/api/v1/instances/", 18) == 0 &&
               split_instance_url(url, id, sizeof id, &action)) {
        if (strcmp(action, "terminate") == 0 && strcmp(method, "POST") == 0)
            ret = post_terminate(st, c, id, o);
        else if (strcmp(action, "load") == 0 && strcmp(method, "POST") == 0)
            ret = post_load(st, c, id, o);
        else if (strcmp(action, "lifecycle") == 0 && strcmp(method, "POST") == 0)
            ret = post_lifecycle(st, c, id, o);
        else if (instance_api_handles(action) && strcmp(method, "POST") == 0)
            ret = post_instance_control(st, c, id, action, o);
        else
            ret = send_error(c, 404, "no such action '%s' on an instance", action);
    } else
        ret = send_error(c, 404, "no such resource %s", url);
    json_object_put(o);
    return ret;
}

/* ---- dispatch ---- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct status *st = cls;
    (void)version;
    struct body *body = *con_cls;
    if (!body) {
        body = calloc(1, sizeof *body);
        if (!body)
            return MHD_NO;
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_size) {
        if (body->len + *upload_size >= MAX_BODY)
            body->too_big = true;
        else {
            memcpy(body->buf + body->len, upload, *upload_size);
            body->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const char *why;
    unsigned code = may_read(st, c, url, &why);
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (code) {
        refuse_noted(st, code, why);
        if (code == 401 && get && strcmp(url, "/") == 0)
            return login_page(c, 401, "This dashboard needs the operator's login.");
        return send_error(c, code, "%s", why);
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/login") == 0) /* not HEAD: a peek must not spend it */
        return get_login(st, c);
    if (get && strcmp(url, "/") == 0)
        return respond(c, 200, "text/html; charset=utf-8", dashboard_html, strlen(dashboard_html));
    if (get && strcmp(url, "/healthz") == 0)
        return respond(c, 200, "text/plain", "ok\n", 3);
    if (get && strcmp(url, "/metrics") == 0)
        return get_metrics(st, c);
    if (get && (strcmp(url, "/api/v1/group") == 0 || strcmp(url, "/api/v1/instances") == 0))
        return get_group(st, c);
    if (get && strcmp(url, "/api/v1/events") == 0)
        return get_events(st, c);
    if (get && strcmp(url, "/api/v1/rollout") == 0)
        return get_rollout(st, c);
    if (get && strcmp(url, "/api/v1/notify") == 0)
        return get_notify(st, c);
    if (get && (strcmp(url, "/api/v1/activities") == 0 || strcmp(url, "/api/v1/history/samples") == 0))
        return get_history(st, c, strcmp(url, "/api/v1/history/samples") == 0);
    if (get && strcmp(url, "/api/v1/suspend") == 0)
        return get_suspend(st, c);
    if (strcmp(method, "POST") == 0 && strncmp(url, "/api/v1/", 8) == 0)
        return act(st, c, url, method, body);
    if (strncmp(url, "/api/v1/", 8) == 0 || strcmp(url, "/metrics") == 0 || strcmp(url, "/") == 0 ||
        strcmp(url, "/login") == 0)
        return send_error(c, 405, "method %s not allowed on %s", method, url);
    return send_error(c, 404, "no such resource %s", url);
}

/* ---- connections: a deadline for each, a budget for strangers ----
 * MHD's timeout counts silence only: a client sending a byte every few
 * seconds would hold its connection for ever, and enough of them every
 * slot. Each connection's clock starts when it opens and again when one of
 * its requests completes; the main loop shuts down the socket of any that
 * runs past REQUEST_DEADLINE_MS, and MHD then closes it.
 *
 * MHD's own limits refuse the newest connection, so a flood of idle ones
 * (from as many 127.x.y.z sources as it likes, past a per-address limit)
 * would keep the operator out. Here a new connection is always taken; if
 * its source then holds more than PER_SOURCE_BUDGET, or all sources more
 * than the global budget, one connection that has not shown the
 * credential is shut down instead: the oldest of that source, or the
 * oldest of the source holding the most. A connection whose request
 * carried the credential is never chosen, and the operator's fresh one,
 * from a source of its own, is the last candidate. */

/* One source per IPv4 address (each of 127/8's sixteen million too: the
 * operator's 127.0.0.1 is then a source of its own, whoever floods from
 * the others) and per IPv6 /64 (what one host is usually given). */
static void source_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
    }
}

static uint32_t key_hash(const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % SOURCES;
}

/* The entry of key, claimed if new; UINT32_MAX when the table is full. */
static uint32_t source_probe(struct status *st, const uint8_t key[16])
{
    uint32_t h = key_hash(key);
    for (uint32_t i = 0; i < SOURCES; i++) {
        struct source *e = &st->conns.src[(h + i) % SOURCES];
        if (!e->used) {
            *e = (struct source){.used = true};
            memcpy(e->key, key, 16);
            return (h + i) % SOURCES;
        }
        if (memcmp(e->key, key, 16) == 0)
            return (h + i) % SOURCES;
    }
    return UINT32_MAX;
}

/* Entries stay claimed when their count falls to 0 (removing one from an
 * open-addressed table would cut its neighbours' probe chains); when the
 * table fills, it is made again from the live connections, at most
 * MAX_SLOTS sources in SOURCES entries. With conns.mu held. */
static uint32_t source_index(struct status *st, const uint8_t key[16])
{
    uint32_t i = source_probe(st, key);
    if (i != UINT32_MAX)
        return i;
    uint8_t keys[MAX_SLOTS][16];
    for (size_t k = 0; k < st->conns.nslots; k++)
        memcpy(keys[k], st->conns.src[st->conns.slot[k].source].key, 16);
    memset(st->conns.src, 0, sizeof st->conns.src);
    for (size_t k = 0; k < st->conns.nslots; k++) {
        struct conn *c = &st->conns.slot[k];
        if (!c->used)
            continue;
        c->source = source_probe(st, keys[k]);
        if (!c->cut)
            st->conns.src[c->source].count++;
    }
    return source_probe(st, key);
}

static void cut_locked(struct status *st, struct conn *k)
{
    shutdown(k->fd, SHUT_RDWR);
    k->cut = true;
    st->conns.live--;
    st->conns.src[k->source].count--;
}

/* The connection to give up for newcomer: not authenticated, not itself;
 * from newcomer's source when same_source, else from the source holding
 * the most; the oldest there. */
static struct conn *victim(struct status *st, const struct conn *newcomer, bool same_source)
{
    struct conn *best = NULL;
    for (size_t i = 0; i < st->conns.nslots; i++) {
        struct conn *k = &st->conns.slot[i];
        if (!k->used || k->cut || k->authed || k == newcomer ||
            (same_source && k->source != newcomer->source))
            continue;
        if (!best || st->conns.src[k->source].count > st->conns.src[best->source].count ||
            (st->conns.src[k->source].count == st->conns.src[best->source].count && k->opened < best->opened))
            best = k;
    }
    return best;
}

static void connection_started(struct status *st, struct MHD_Connection *c, void **socket_context)
{
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!fi)
        return;
    unsigned cut = 0;
    pthread_mutex_lock(&st->conns.mu);
    struct conn *k = NULL;
    for (size_t i = 0; i < st->conns.nslots && !k; i++)
        if (!st->conns.slot[i].used)
            k = &st->conns.slot[i];
    if (!k) {
        shutdown(fi->connect_fd, SHUT_RDWR); /* every slot is closing: this one waits its turn */
        cut++;
    } else {
        int64_t now = now_ms();
        uint8_t key[16];
        source_key(ai ? ai->client_addr : NULL, key);
        uint32_t src = source_index(st, key); /* before k is in use: a remake skips it */
        if (src == UINT32_MAX)                /* cannot be: at most MAX_SLOTS sources */
            src = 0;
        *k = (struct conn){true, false, false, fi->connect_fd, src, now, now};
        *socket_context = k;
        st->conns.live++;
        st->conns.src[k->source].count++;
        struct conn *v;
        if (st->conns.src[k->source].count > PER_SOURCE_BUDGET && (v = victim(st, k, true)) != NULL) {
            cut_locked(st, v);
            cut++;
        }
        if (st->conns.live > st->conns.budget && (v = victim(st, k, false)) != NULL) {
            cut_locked(st, v);
            cut++;
        }
    }
    pthread_mutex_unlock(&st->conns.mu);
    for (unsigned i = 0; i < cut; i++)
        refuse_noted(st, 503, "connection budget: an unauthenticated connection dropped for a newer one");
}

static void connection_event(void *cls, struct MHD_Connection *c, void **socket_context,
                             enum MHD_ConnectionNotificationCode what)
{
    struct status *st = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        connection_started(st, c, socket_context);
        return;
    }
    pthread_mutex_lock(&st->conns.mu);
    struct conn *k = *socket_context;
    if (k) {
        if (!k->cut) {
            st->conns.live--;
            st->conns.src[k->source].count--;
        }
        k->used = false;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&st->conns.mu);
}

static void mark_authenticated(struct status *st, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock(&st->conns.mu);
    if (ci && ci->socket_context)
        ((struct conn *)ci->socket_context)->authed = true;
    pthread_mutex_unlock(&st->conns.mu);
}

static void cut_late_connections(struct status *st)
{
    int64_t now = now_ms();
    unsigned cut = 0;
    pthread_mutex_lock(&st->conns.mu);
    for (size_t i = 0; i < st->conns.nslots; i++) {
        struct conn *k = &st->conns.slot[i];
        if (k->used && !k->cut && now - k->since > REQUEST_DEADLINE_MS) {
            cut_locked(st, k);
            cut++;
        }
    }
    pthread_mutex_unlock(&st->conns.mu);
    for (unsigned i = 0; i < cut; i++)
        refuse_noted(st, 408, "no whole request within the deadline: connection closed");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct status *st = cls;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock(&st->conns.mu);
    if (ci && ci->socket_context)
        ((struct conn *)ci->socket_context)->since = now_ms();
    pthread_mutex_unlock(&st->conns.mu);
}

/* MHD's own complaints ("Server reached connection limit", a failed
 * accept, ...) can be provoked by any stranger: through the one limiter. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct status *st = cls;
    char msg[300];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    pthread_mutex_lock(&st->mu);
    log_limited(&st->refusals, LOG_LVL_WARN, "http server: %s", msg);
    pthread_mutex_unlock(&st->mu);
}

/* Descriptors for MAX_SLOTS connections and the rest of the process;
 * fewer slots (and a smaller budget) when the hard limit is lower. */
static void size_connections(struct status *st)
{
    struct rlimit rl;
    rlim_t want = MAX_SLOTS + 384; /* MHD may hold 128 past our slots */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t have = rl.rlim_cur;
    st->conns.nslots = have >= want ? MAX_SLOTS : have > 384 + 64 ? (size_t)(have - 384) : 64;
    st->conns.budget = st->conns.nslots / 2; /* the other half: cut connections MHD has not closed yet */
    if (st->conns.nslots < MAX_SLOTS)
        log_warn("descriptor limit %llu: %zu connection slots, not %d",
                 (unsigned long long)have, st->conns.nslots, MAX_SLOTS);
}

/* ---- the token, from the environment or a file, never the config ---- */

static void load_token(struct status *st)
{
    char tok[256] = "", why[400];
    bool set = st->cfg.status_token[0] != '\0', broken = false;
    /* A file of another user, or a link, is refused: whoever can write
     * the token decides who may act. */
    if (set && secret_read_token(st->cfg.status_token, tok, sizeof tok, why, sizeof why) != 0) {
        broken = true;
        log_error("status.token %s: %s; operator actions are refused", st->cfg.status_token, why);
    }
    pthread_mutex_lock(&st->mu);
    copy_str(st->hosts, sizeof st->hosts, st->cfg.status_allowed_hosts);
    copy_str(st->token, sizeof st->token, tok);
    st->token_set = set;
    st->token_broken = broken;
    pthread_mutex_unlock(&st->mu);
    memset(tok, 0, sizeof tok);
}

/* The manager's API token, read at start and on every reload (replacing
 * the file and reloading ends every session and login link). */
static void load_api_token(struct status *st)
{
    char dir[256], tok[PKI_API_TOKEN_LEN + 1], err[512];
    pki_dir(&st->cfg, dir, sizeof dir);
    if (pki_api_token_read(dir, tok, err, sizeof err) != 0)
        log_error("status API token: %s; only status.token is accepted", err);
    pthread_mutex_lock(&st->mu);
    bool changed = strcmp(tok, st->api_token) != 0;
    copy_str(st->api_token, sizeof st->api_token, tok);
    if (changed)
        memset(st->codes, 0, sizeof st->codes);
    pthread_mutex_unlock(&st->mu);
    OPENSSL_cleanse(tok, sizeof tok);
}

/* At start, a login link for whoever started the manager on a terminal
 * (make run): printed there, never logged (the log may be read by more
 * people than the terminal). */
static void offer_login(struct status *st)
{
    char host[64], hp[96], url[400];
    copy_str(host, sizeof host, strcmp(st->listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : st->listen_host);
    snprintf(hp, sizeof hp, "%s:%u", host, (unsigned)st->port);
    if (!isatty(STDOUT_FILENO)) {
        log_info("dashboard: 'asgctl dashboard' (as uid %u) prints a one-time login link for http://%s/",
                 (unsigned)geteuid(), hp);
        return;
    }
    login_url(st, hp, url, sizeof url);
    printf("\n  asg dashboard: open %s\n  (works once, for %d minutes; later: asgctl dashboard)\n\n", url,
           LOGIN_CODE_MS / 60000);
    fflush(stdout);
    OPENSSL_cleanse(url, sizeof url);
}

static struct MHD_Daemon *start_http(struct status *st)
{
    char host[64];
    copy_str(host, sizeof host, st->cfg.status_listen);
    char *colon = strrchr(host, ':');
    if (!colon)
        return NULL;
    *colon = '\0';
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        log_error("status.listen: '%s' is not an IPv4 address", host);
        return NULL;
    }
    copy_str(st->listen_host, sizeof st->listen_host, host);
    /* Four threads, so that a request waiting on an agent does not hold up
     * the others; epoll, for descriptors past 1024; the connection budget
     * above instead of MHD's limits (which refuse the newest, the
     * operator's too); 5 s of silence closes one, and so does a request not
     * done within REQUEST_DEADLINE_MS. MHD's own log goes through ours. */
    size_connections(st);
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
                            NULL, NULL, handle, st, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, st,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, st,
                            MHD_OPTION_NOTIFY_CONNECTION, connection_event, st,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(st->conns.nslots + 128),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
}

static int serve(struct status *st, struct table *rw, const struct asg_config *cfg)
{
    /* Trade the inherited writable mapping for a read-only one: a bug
     * here faults instead of scribbling on the table. */
    char err[512];
    if (table_attach(rw->name, true, &st->t, err, sizeof err) != 0) { /* shm.name + its suffix */
        log_error("%s", err);
        return ASG_EXIT_FATAL;
    }
    table_detach(rw);
    st->cfg = *cfg;
    if (confseg_open_role(&st->t, &st->conf, &st->cfg, &st->cfg_gen) != 0)
        return 1; /* restarted: the supervisor publishes it before any role starts */
    /* The configured port until the bound one is known (port 0). */
    const char *colon = strrchr(cfg->status_listen, ':');
    long port = 0;
    if (colon)
        parse_whole(colon + 1, 0, 65535, &port);
    st->port = (unsigned)port;
    pthread_mutex_init(&st->mu, NULL);
    int sigfd = signals_install(false);
    load_token(st);
    load_api_token(st);
    if (rpc_manager_tls(&st->cfg, &st->tls, err, sizeof err) != 0)
        log_error("tls: %s; setting agents' load will fail", err);
    grpc_init();
    struct MHD_Daemon *d = start_http(st);
    if (!d) {
        log_error("status.listen %s: cannot serve HTTP (address in use?)", st->cfg.status_listen);
        grpc_shutdown();
        return ASG_EXIT_FATAL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (di)
        st->port = di->port;
    log_info("status up on http://%.*s:%u/ (dashboard, /metrics, /api/v1)%s",
             (int)strcspn(st->cfg.status_listen, ":"), st->cfg.status_listen,
             di ? (unsigned)di->port : 0, "; all but /healthz and /metrics need the operator's credential");
    offer_login(st);
    while (!g_sig.term) {
        struct pollfd p = {sigfd, POLLIN, 0};
        if (poll(&p, 1, 1000) > 0)
            signals_drain_pipe();
        cut_late_connections(st);
        if (g_sig.hup) {
            g_sig.hup = 0;
            if (confseg_refresh(&st->conf, &st->cfg, &st->cfg_gen))
                load_token(st);
            load_api_token(st);
        }
    }
    MHD_stop_daemon(d);
    grpc_shutdown();
    rpc_tls_free(&st->tls);
    confseg_detach(&st->conf);
    table_detach(&st->t);
    return 0;
}

int status_main(struct table *rw, const struct asg_config *cfg)
{
    /* The role's whole state, on the heap (the connection table is large)
     * and handed to every libmicrohttpd callback as its closure. */
    struct status *st = calloc(1, sizeof *st);
    if (!st) {
        log_error("status: out of memory");
        return 1;
    }
    pthread_mutex_init(&st->conns.mu, NULL);
    int rc = serve(st, rw, cfg);
    pthread_mutex_destroy(&st->conns.mu);
    OPENSSL_cleanse(st, sizeof *st); /* tokens and login codes */
    free(st);
    return rc;
}
