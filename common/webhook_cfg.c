#include "webhook_cfg.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* The event kinds a webhook may ask for, by name: those of shm/table.h's
 * enum event_kind (its event_kind_name), which this base layer cannot
 * include. A kind added there is added here too: check_notify_ce fails
 * until it is. A webhook's mask has bit i for name i of this list. */
static const char *const kind_names[] = {"scale", "launch", "terminate", "health", "role", "config",
                                         "operator", "balancer", "rollout", "lifecycle", "suspend", NULL};
#define NKINDS (sizeof kind_names / sizeof kind_names[0] - 1)
_Static_assert(NKINDS <= 32, "webhook_cfg.kinds has a bit per event kind");

unsigned webhook_all_kinds(void) { return NKINDS >= 32 ? ~0u : (1u << NKINDS) - 1u; }

const char *webhook_kind_name(int i) { return i >= 0 && (size_t)i < NKINDS ? kind_names[i] : NULL; }

int webhook_kind_of(const char *name)
{
    for (size_t k = 0; k < NKINDS; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return (int)k;
    return -1;
}

/* Printable ASCII only: a URL goes into a request line, where a space or a
 * control byte would split or smuggle one (curl refuses some, not all). */
static bool url_chars_ok(const char *u)
{
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return true;
}

/* Its messages never quote the URL: its path and query often carry the
 * receiver's own secret (docs/notifications.md), and a config error goes
 * to the log, the event ring and from there to the other webhooks. */
int webhook_url_check(const char *url, char *why, size_t n)
{
    if (!url_chars_ok(url)) {
        snprintf(why, n, "the URL has a space, a control character or a non-ASCII byte (percent-encode it)");
        return -1;
    }
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        snprintf(why, n, "the URL is not an http:// or https:// URL");
        return -1;
    }
    CURLU *h = curl_url();
    char *host = NULL, *user = NULL, *pass = NULL;
    int rc = -1;
    if (!h)
        snprintf(why, n, "out of memory");
    else if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
        snprintf(why, n, "the URL is not one curl can read (http(s)://HOST[:PORT]/PATH)");
    else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !host[0])
        snprintf(why, n, "the URL names no host");
    else if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(h, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK)
        snprintf(why, n, "a URL with a user or password: a credential does not belong in the config "
                         "(notify.secret signs each delivery)");
    else
        rc = 0;
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(h);
    return rc;
}

/* events = ["launch", ...] into a mask; "all" is every kind. */
static int parse_kinds(const config_setting_t *s, unsigned *mask, char *why, size_t n,
                       const config_setting_t **at)
{
    *at = s;
    int t = config_setting_type(s);
    if ((t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) || config_setting_length(s) == 0) {
        snprintf(why, n, "notify.webhooks: events must be a non-empty list of event kinds, like [\"launch\", \"terminate\"]");
        return -1;
    }
    *mask = 0;
    for (int i = 0; i < config_setting_length(s); i++) {
        const char *v = config_setting_get_string(config_setting_get_elem(s, (unsigned)i));
        int k = v ? webhook_kind_of(v) : -1;
        if (v && strcmp(v, "all") == 0) {
            *mask |= webhook_all_kinds();
            continue;
        }
        if (k < 0) {
            char list[200] = "all";
            for (size_t j = 0; j < NKINDS; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", kind_names[j]);
            snprintf(why, n, "notify.webhooks: events: item %d is not one of: %s", i + 1, list);
            return -1;
        }
        *mask |= 1u << k;
    }
    return 0;
}

static int set_url(struct webhook_cfg *w, const char *url, int i, char *why, size_t n)
{
    char reason[200];
    if (!url) {
        snprintf(why, n, "notify.webhooks: item %d must be a URL string or a group { url = ...; events = [...]; }", i + 1);
        return -1;
    }
    if (strlen(url) >= sizeof w->url) {
        snprintf(why, n, "notify.webhooks: item %d: the URL is longer than %zu characters", i + 1, sizeof w->url - 1);
        return -1;
    }
    if (webhook_url_check(url, reason, sizeof reason) != 0) {
        snprintf(why, n, "notify.webhooks: item %d: %s", i + 1, reason);
        return -1;
    }
    copy_str(w->url, sizeof w->url, url);
    return 0;
}

/* { url = "..."; events = [...]; } */
static int parse_group(const config_setting_t *g, struct webhook_cfg *w, int i, char *why, size_t n,
                       const config_setting_t **at)
{
    w->kinds = webhook_all_kinds();
    bool have_url = false;
    for (int k = 0; k < config_setting_length(g); k++) {
        const config_setting_t *f = config_setting_get_elem(g, (unsigned)k);
        const char *name = config_setting_name(f);
        *at = f;
        if (strcmp(name, "url") == 0) {
            if (set_url(w, config_setting_get_string(f), i, why, n) != 0)
                return -1;
            have_url = true;
        } else if (strcmp(name, "events") == 0) {
            if (parse_kinds(f, &w->kinds, why, n, at) != 0)
                return -1;
        } else {
            snprintf(why, n, "notify.webhooks: item %d: unknown key '%.40s' (url, events)", i + 1, name);
            return -1;
        }
    }
    if (!have_url) {
        *at = g;
        snprintf(why, n, "notify.webhooks: item %d has no url", i + 1);
        return -1;
    }
    return 0;
}

int webhooks_parse(const config_setting_t *s, struct webhook_cfg *out, int *n, char *why, size_t whysize,
                   const config_setting_t **at)
{
    *at = s;
    *n = 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        snprintf(why, whysize, "notify.webhooks must be a list: [\"http://...\"] or ( { url = \"http://...\"; "
                               "events = [\"launch\"]; } )");
        return -1;
    }
    int len = config_setting_length(s);
    if (len > WEBHOOKS_MAX) {
        snprintf(why, whysize, "notify.webhooks has %d webhooks, at most %d", len, WEBHOOKS_MAX);
        return -1;
    }
    for (int i = 0; i < len; i++) {
        const config_setting_t *it = config_setting_get_elem(s, (unsigned)i);
        struct webhook_cfg *w = &out[i];
        memset(w, 0, sizeof *w);
        *at = it;
        int rc;
        if (config_setting_is_group(it)) {
            rc = parse_group(it, w, i, why, whysize, at);
        } else {
            w->kinds = webhook_all_kinds();
            rc = set_url(w, config_setting_get_string(it), i, why, whysize);
        }
        if (rc != 0)
            return -1;
    }
    *n = len;
    return 0;
}

uint64_t webhook_url_hash(const char *url)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h ? h : 1;
}

void webhook_target(const char *url, char *out, size_t n)
{
    CURLU *h = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
        curl_url_get(h, CURLUPART_HOST, &host, 0);
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    }
    snprintf(out, n, "%s://%.100s:%s", scheme ? scheme : "?", host ? host : "?", port ? port : "?");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
}
