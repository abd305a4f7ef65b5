#define _GNU_SOURCE
#include "notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/secret.h"
#include "../common/strbuf.h"
#include "../common/util.h"
#include "../shm/confseg.h"
#include "../common/webhook_cfg.h"
#include "../report/cloudevent.h"

_Static_assert(WEBHOOKS_MAX == NOTIFY_HOOKS, "a counter block in the table per configured webhook");

#define TAIL_MS 100           /* how often the ring is looked at */
#define READ_BATCH 64         /* events taken from the ring at once */
#define RETRY_FIRST_MS 500    /* the first retry's delay, doubled at each failure */
#define KEY_MAX 4096

/* One webhook as the notifier runs it. */
struct hook {
    struct webhook_cfg cfg;
    struct notify_hook_state *sh;   /* its counters in the table */
    char label[180];                /* "webhook 1 (http://host:port)": never the path or query */
    struct table_event *q;          /* its queue, a ring of cap */
    uint32_t cap, head, len;
    CURL *easy;                     /* the request under way, or NULL */
    struct curl_slist *headers;
    struct strbuf body;
    uint64_t taken;                 /* the last event number offered to it (queued or passed) */
    uint32_t attempts;              /* failed tries of the event at the head */
    int64_t next_try_ms;            /* monotonic: not before */
    bool failing;                   /* its last try failed (logged once a streak) */
};

struct notifier {
    struct table *t;
    struct asg_config cfg;
    struct confseg conf;
    uint64_t cfg_gen;
    struct ce_origin origin;
    struct hook hooks[WEBHOOKS_MAX];
    int nhooks;
    CURLM *multi;
    unsigned char key[KEY_MAX];
    size_t keylen;                  /* 0: no signing */
    uint64_t cursor;                /* the last event number read */
    uint64_t rng;
    struct log_limit refusals;
};

/* ---- small helpers ---- */

static uint64_t next_random(struct notifier *n)
{
    n->rng ^= n->rng << 13; /* xorshift64: jitter needs spread, not secrecy */
    n->rng ^= n->rng >> 7;
    n->rng ^= n->rng << 17;
    return n->rng;
}

/* "webhook N (scheme://host:port)": what logs name a webhook by. */
static void hook_label(int i, const char *url, char *out, size_t n)
{
    char target[140];
    webhook_target(url, target, sizeof target);
    snprintf(out, n, "webhook %d (%s)", i + 1, target);
}

static void set_done(struct hook *h, uint64_t number)
{
    if (number > atomic_load(&h->sh->done))
        atomic_store(&h->sh->done, number);
}

/* ---- the signing key ---- */

static int load_key(struct notifier *n)
{
    explicit_bzero(n->key, sizeof n->key);
    n->keylen = 0;
    if (!n->cfg.notify_secret[0])
        return 0;
    char err[300];
    char *k = secret_read(n->cfg.notify_secret + 5, KEY_MAX, err, sizeof err);
    if (!k) {
        log_error("notify.secret: %s; not delivering unsigned", err);
        return -1;
    }
    size_t len = strlen(k);
    while (len && (k[len - 1] == '\n' || k[len - 1] == '\r'))
        len--;
    if (len == 0) {
        log_error("notify.secret: %s is empty; not delivering unsigned", n->cfg.notify_secret + 5);
        free(k);
        return -1;
    }
    memcpy(n->key, k, len);
    n->keylen = len;
    explicit_bzero(k, len);
    free(k);
    return 0;
}

/* "X-Asg-Signature: sha256=<hex of HMAC-SHA256(key, ts "." body)>". */
static void sign(const struct notifier *n, const char *ts, const struct strbuf *body, char *out, size_t size)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    struct strbuf msg = {0};
    sb_printf(&msg, "%s.", ts);
    sb_add(&msg, body->s, body->len);
    HMAC(EVP_sha256(), n->key, (int)n->keylen, (const unsigned char *)msg.s, msg.len, mac, &maclen);
    sb_free(&msg);
    int w = snprintf(out, size, "X-Asg-Signature: sha256=");
    for (unsigned i = 0; i < maclen && (size_t)w + 3 <= size; i++)
        w += snprintf(out + w, size - (size_t)w, "%02x", mac[i]);
    OPENSSL_cleanse(mac, sizeof mac);
}

/* ---- the queue ---- */

static void finish_transfer(struct notifier *n, struct hook *h)
{
    if (h->easy) {
        curl_multi_remove_handle(n->multi, h->easy);
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    curl_slist_free_all(h->headers);
    h->headers = NULL;
    sb_free(&h->body);
}

/* The head is settled. Once the queue is empty, so is every event offered
 * to the webhook so far (those of other kinds included). */
static void pop(struct hook *h)
{
    h->head = (h->head + 1) % h->cap;
    h->len--;
    h->attempts = 0;
    h->next_try_ms = 0;
    atomic_store(&h->sh->queued, h->len);
    if (h->len == 0)
        set_done(h, h->taken);
}

/* A full queue gives up its oldest event (the one being tried, if so:
 * the receiver is not keeping up, and newer events matter more). */
static void drop_oldest(struct notifier *n, struct hook *h)
{
    if (h->easy)
        finish_transfer(n, h);
    set_done(h, h->q[h->head].number);
    atomic_fetch_add(&h->sh->dropped, 1);
    pop(h);
}

static void enqueue(struct notifier *n, struct hook *h, const struct table_event *ev)
{
    if (h->len == h->cap)
        drop_oldest(n, h);
    h->q[(h->head + h->len) % h->cap] = *ev;
    h->len++;
    atomic_store(&h->sh->queued, h->len);
}

/* The queue at a new size, keeping its newest events. */
static int resize_queue(struct notifier *n, struct hook *h, uint32_t cap)
{
    if (h->cap == cap)
        return 0;
    while (h->len > cap)
        drop_oldest(n, h);
    struct table_event *q = calloc(cap, sizeof *q);
    if (!q)
        return -1;
    for (uint32_t i = 0; i < h->len; i++)
        q[i] = h->q[(h->head + i) % h->cap];
    free(h->q);
    h->q = q;
    h->cap = cap;
    h->head = 0;
    return 0;
}

/* ---- the configuration ---- */

/* Webhook i from its config: its counters carried on when the table's
 * are about the same URL; a URL new to this place starts at the ring's
 * end (it is not sent the past), except in a table that never had one
 * there, which gets every event still in the ring (from the first, in a
 * new table). */
static void hook_configure(struct notifier *n, int i, const struct webhook_cfg *w)
{
    struct hook *h = &n->hooks[i];
    uint64_t hash = webhook_url_hash(w->url);
    if (strcmp(h->cfg.url, w->url) != 0) {
        finish_transfer(n, h);
        h->len = h->head = 0;
        h->attempts = 0;
        h->taken = 0;
        h->failing = false;
    }
    h->cfg = *w;
    h->sh = &n->t->hdr->notify.hook[i];
    hook_label(i, w->url, h->label, sizeof h->label);
    uint64_t had = atomic_load(&h->sh->url_hash);
    if (had != hash) {
        uint64_t written = atomic_load(&n->t->log->events_written);
        uint64_t in_ring = written > TABLE_EVENTS ? written - TABLE_EVENTS : 0;
        uint64_t from = had == 0 ? in_ring : written;
        struct notify_hook_state *s = h->sh;
        atomic_store(&s->delivered, 0);
        atomic_store(&s->failed, 0);
        atomic_store(&s->refused, 0);
        atomic_store(&s->dropped, 0);
        atomic_store(&s->last_status, 0);
        atomic_store(&s->last_ok_ms, 0);
        atomic_store(&s->done, from);
        atomic_store(&s->url_hash, hash);
    }
    atomic_store(&h->sh->queued, h->len);
}

static void hook_remove(struct notifier *n, struct hook *h)
{
    finish_transfer(n, h);
    if (h->sh)
        atomic_store(&h->sh->queued, 0);
    free(h->q);
    memset(h, 0, sizeof *h);
}

static int configure(struct notifier *n)
{
    for (int i = n->cfg.nwebhooks; i < WEBHOOKS_MAX; i++)
        hook_remove(n, &n->hooks[i]);
    for (int i = 0; i < n->cfg.nwebhooks; i++) {
        hook_configure(n, i, &n->cfg.webhooks[i]);
        if (resize_queue(n, &n->hooks[i], (uint32_t)n->cfg.notify_queue) != 0) {
            log_error("notify: out of memory for %s's queue", n->hooks[i].label);
            return -1;
        }
    }
    n->nhooks = n->cfg.nwebhooks;
    atomic_store(&n->t->hdr->notify.hooks, (uint32_t)n->nhooks);
    /* The ring is read from the first event some webhook still wants. */
    uint64_t from = atomic_load(&n->t->log->events_written);
    for (int i = 0; i < n->nhooks; i++) {
        uint64_t d = atomic_load(&n->hooks[i].sh->done);
        if (d < from)
            from = d;
    }
    if (n->nhooks == 0 || from < n->cursor || n->cursor == 0)
        n->cursor = from;
    for (int i = 0; i < n->nhooks; i++) {
        log_info("notify: %s: %s events, queue %u, from event %llu", n->hooks[i].label,
                 n->hooks[i].cfg.kinds == webhook_all_kinds() ? "all" : "some",
                 n->hooks[i].cap, (unsigned long long)atomic_load(&n->hooks[i].sh->done) + 1);
    }
    return 0;
}

/* ---- reading the ring ---- */

static void offer(struct notifier *n, const struct table_event *ev)
{
    for (int i = 0; i < n->nhooks; i++) {
        struct hook *h = &n->hooks[i];
        if (ev->number <= atomic_load(&h->sh->done) || ev->number <= h->taken)
            continue; /* settled before a restart, or queued already */
        int bit = webhook_kind_of(event_kind_name(ev->kind));
        bool wanted = bit >= 0 && (h->cfg.kinds & (1u << bit));
        if (wanted)
            enqueue(n, h, ev); /* may drop the oldest: settled up to taken, not this one */
        h->taken = ev->number;
        if (!wanted && h->len == 0)
            set_done(h, ev->number);
    }
}

static void tail_ring(struct notifier *n)
{
    struct table_event batch[READ_BATCH];
    size_t got;
    while ((got = table_read_events(n->t, n->cursor, batch, READ_BATCH)) > 0) {
        for (size_t k = 0; k < got; k++) {
            if (batch[k].number > n->cursor + 1) {
                uint64_t lost = batch[k].number - n->cursor - 1;
                atomic_fetch_add(&n->t->hdr->notify.lost, lost);
                log_warn("notify: %llu event(s) before %llu were overwritten in the ring before they "
                         "could be read", (unsigned long long)lost, (unsigned long long)batch[k].number);
            }
            offer(n, &batch[k]);
            n->cursor = batch[k].number;
        }
        atomic_store(&n->t->hdr->notify.cursor, n->cursor);
        if (got < READ_BATCH)
            break;
    }
}

/* ---- delivering ---- */

static size_t discard(char *p, size_t size, size_t nmemb, void *u)
{
    (void)p;
    (void)u;
    return size * nmemb;
}

static int start_transfer(struct notifier *n, struct hook *h)
{
    cloudevent_json(&h->body, &n->origin, &h->q[h->head]);
    char ts[32], sig[128];
    snprintf(ts, sizeof ts, "%lld", (long long)(wall_ms() / 1000));
    h->headers = curl_slist_append(h->headers, "Content-Type: " CE_CONTENT_TYPE);
    h->headers = curl_slist_append(h->headers, "Expect:");
    if (n->keylen) {
        char tsh[64];
        snprintf(tsh, sizeof tsh, "X-Asg-Timestamp: %s", ts);
        sign(n, ts, &h->body, sig, sizeof sig);
        h->headers = curl_slist_append(h->headers, tsh);
        h->headers = curl_slist_append(h->headers, sig);
        explicit_bzero(sig, sizeof sig);
    }
    CURL *e = curl_easy_init();
    if (!e || !h->headers)
        return -1;
    curl_easy_setopt(e, CURLOPT_URL, h->cfg.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body.s);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)h->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "asg-notify/" ASG_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)n->cfg.notify_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)n->cfg.notify_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    if (curl_multi_add_handle(n->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -1;
    }
    h->easy = e;
    return 0;
}

static void start_due(struct notifier *n, int64_t now)
{
    for (int i = 0; i < n->nhooks; i++) {
        struct hook *h = &n->hooks[i];
        if (h->len == 0 || h->easy || now < h->next_try_ms)
            continue;
        if (start_transfer(n, h) != 0) {
            finish_transfer(n, h);
            h->next_try_ms = now + RETRY_FIRST_MS;
            log_limited(&n->refusals, LOG_LVL_ERROR, "notify: %s: cannot make a request (out of memory?)",
                        h->label);
        }
    }
}

/* The wait before try k+1 of an event: RETRY_FIRST_MS doubled at each
 * failure, capped at notify.retry_max_s; then somewhere in its upper half
 * (jitter), so that webhooks failing together do not retry together. */
static int64_t backoff_ms(struct notifier *n, uint32_t attempts)
{
    int64_t cap = (int64_t)n->cfg.notify_retry_max_s * 1000;
    int shift = attempts > 20 ? 20 : (int)attempts - 1;
    int64_t d = (int64_t)RETRY_FIRST_MS << (shift < 0 ? 0 : shift);
    if (d > cap)
        d = cap;
    return d / 2 + (int64_t)(next_random(n) % (uint64_t)(d / 2 + 1));
}

static void delivered(struct hook *h, long code)
{
    if (h->failing)
        log_info("notify: %s: delivering again (HTTP %ld)", h->label, code);
    h->failing = false;
    atomic_fetch_add(&h->sh->delivered, 1);
    atomic_store(&h->sh->last_ok_ms, wall_ms());
    set_done(h, h->q[h->head].number);
    pop(h);
}

static void refused(struct notifier *n, struct hook *h, long code)
{
    atomic_fetch_add(&h->sh->failed, 1);
    atomic_fetch_add(&h->sh->refused, 1);
    log_limited(&n->refusals, LOG_LVL_WARN, "notify: %s refused event %llu with HTTP %ld: not retried",
                h->label, (unsigned long long)h->q[h->head].number, code);
    set_done(h, h->q[h->head].number);
    pop(h);
}

static void failed(struct notifier *n, struct hook *h, const char *why, int64_t now)
{
    atomic_fetch_add(&h->sh->failed, 1);
    h->attempts++;
    int64_t wait = backoff_ms(n, h->attempts);
    h->next_try_ms = now + wait;
    if (!h->failing)
        log_warn("notify: %s: %s; retrying event %llu with backoff (now %lld ms)", h->label, why,
                 (unsigned long long)h->q[h->head].number, (long long)wait);
    h->failing = true;
}

static void collect(struct notifier *n, int64_t now)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(n->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct hook *h = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&h);
        if (!h || h->easy != m->easy_handle)
            continue;
        CURLcode rc = m->data.result;
        long code = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
        finish_transfer(n, h);
        atomic_store(&h->sh->last_status, (uint32_t)(rc == CURLE_OK ? code : 0));
        char why[120];
        if (rc != CURLE_OK) {
            snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
            failed(n, h, why, now);
        } else if (code >= 200 && code < 300) {
            delivered(h, code);
        } else if (code >= 500 || code == 429 || code == 408) {
            snprintf(why, sizeof why, "HTTP %ld", code);
            failed(n, h, why, now);
        } else {
            refused(n, h, code);
        }
    }
}

/* How long the loop may sleep: until the next look at the ring, or the
 * next retry, whichever is sooner. */
static int wait_ms(const struct notifier *n, int64_t now)
{
    int64_t w = TAIL_MS;
    for (int i = 0; i < n->nhooks; i++) {
        const struct hook *h = &n->hooks[i];
        if (h->len && !h->easy && h->next_try_ms - now < w)
            w = h->next_try_ms - now;
    }
    return w < 0 ? 0 : (int)w;
}

/* ---- the role ---- */

static int notifier_init(struct notifier *n, struct table *t, const struct asg_config *cfg)
{
    n->t = t;
    n->cfg = *cfg;
    if (confseg_open_role(t, &n->conf, &n->cfg, &n->cfg_gen) != 0)
        return 1;
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    struct table_hdr *h = t->hdr;
    char nonce[sizeof h->group_nonce];
    copy_str(nonce, sizeof nonce, h->group_nonce);
    cloudevent_origin(&n->origin, host, n->cfg.group_name, nonce, h->nonce);
    n->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    n->cursor = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(n->multi = curl_multi_init())) {
        log_error("notify: cannot start libcurl");
        return 1;
    }
    if (load_key(n) != 0)
        return ASG_EXIT_FATAL;
    return configure(n) == 0 ? 0 : 1;
}

static void notifier_free(struct notifier *n)
{
    for (int i = 0; i < WEBHOOKS_MAX; i++)
        hook_remove(n, &n->hooks[i]);
    if (n->multi)
        curl_multi_cleanup(n->multi);
    curl_global_cleanup();
    confseg_detach(&n->conf);
    explicit_bzero(n->key, sizeof n->key);
}

static int reload(struct notifier *n)
{
    if (!confseg_refresh(&n->conf, &n->cfg, &n->cfg_gen))
        return 0;
    if (load_key(n) != 0)
        return ASG_EXIT_FATAL;
    return configure(n) == 0 ? 0 : 1;
}

static int run(struct notifier *n)
{
    int rc = 0;
    while (!g_sig.term && rc == 0) {
        if (g_sig.hup) {
            g_sig.hup = 0;
            rc = reload(n);
            if (rc != 0)
                break;
        }
        tail_ring(n);
        int64_t now = now_ms();
        start_due(n, now);
        int running = 0;
        curl_multi_perform(n->multi, &running);
        collect(n, now_ms());
        curl_multi_poll(n->multi, NULL, 0, wait_ms(n, now_ms()), NULL);
        curl_multi_perform(n->multi, &running);
        collect(n, now_ms());
    }
    return rc;
}

int notify_role_main(struct table *t, const struct asg_config *cfg)
{
    struct notifier *n = calloc(1, sizeof *n);
    if (!n) {
        log_error("notify: out of memory");
        return 1;
    }
    signals_install(false);
    int rc = notifier_init(n, t, cfg);
    if (rc == 0) {
        log_info("notify: delivering events to %d webhook(s) from event %llu", n->nhooks,
                 (unsigned long long)n->cursor + 1);
        rc = run(n);
    }
    notifier_free(n);
    explicit_bzero(n, sizeof *n);
    free(n);
    return rc;
}
