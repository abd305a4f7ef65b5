/* Endpoint URLs through libcurl's URL API (see url.h). */
#define _GNU_SOURCE
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

bool host_is_loopback(const char *host)
{
    char lit[64];
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0)
        return true;
    bool bracketed = n >= 2 && host[0] == '[' && host[n - 1] == ']';
    if (bracketed) {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof lit)
        return false;
    memcpy(lit, host, n);
    lit[n] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (!bracketed && inet_pton(AF_INET, lit, &a4) == 1) /* a dotted quad only */
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, lit, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* One part of a parsed URL into out; false when it is absent or too long. */
static bool part(CURLU *u, CURLUPart what, char *out, size_t size)
{
    char *v = NULL;
    bool ok = curl_url_get(u, what, &v, 0) == CURLUE_OK && v && copy_str(out, size, v);
    curl_free(v);
    return ok;
}

static bool has_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    bool has = curl_url_get(u, what, &v, 0) == CURLUE_OK && v;
    curl_free(v);
    return has;
}

int endpoint_url_parse(const char *url, struct endpoint_url *out, char *why, size_t n)
{
    memset(out, 0, sizeof *out);
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    char scheme[8] = "", port[8] = "", again[300];
    long p = 0;
    int rc = -1;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        snprintf(why, n, "not a URL (%s)", curl_url_strerror(uc));
    } else if (!part(u, CURLUPART_SCHEME, scheme, sizeof scheme) ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(why, n, "the scheme must be http or https");
    } else if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
               has_part(u, CURLUPART_OPTIONS)) {
        snprintf(why, n, "a user or password has no place in it");
    } else if (!part(u, CURLUPART_HOST, out->host, sizeof out->host)) {
        snprintf(why, n, "no host");
    } else if (!part(u, CURLUPART_PORT, port, sizeof port) || !parse_whole(port, 1, 65535, &p)) {
        snprintf(why, n, "the port must be given, 1..65535");
    } else if (snprintf(again, sizeof again, "%s://%s:%ld", scheme, out->host, p) >= (int)sizeof again ||
               strcmp(again, url) != 0) {
        /* A path, a query, a zone, or a host curl rewrites (0x7f.1 is
         * 127.0.0.1 to curl): the config must say plainly what is meant. */
        snprintf(why, n, "must be exactly http(s)://HOST:PORT, the host written as curl reads it "
                 "(it reads %.200s)", again);
    } else {
        out->tls = strcmp(scheme, "https") == 0;
        out->port = (int)p;
        rc = 0;
    }
    curl_url_cleanup(u);
    return rc;
}

int hook_url_check(const char *url, char *why, size_t n)
{
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(why, n, "no spaces or control characters");
            return -1;
        }
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    char scheme[8] = "", host[256] = "";
    int rc = -1;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK)
        snprintf(why, n, "not a URL (%s)", curl_url_strerror(uc));
    else if (!part(u, CURLUPART_SCHEME, scheme, sizeof scheme) ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        snprintf(why, n, "the scheme must be http or https");
    else if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD))
        snprintf(why, n, "a user or password has no place in it");
    else if (!part(u, CURLUPART_HOST, host, sizeof host) || !host[0])
        snprintf(why, n, "no host");
    else if (strcmp(scheme, "http") == 0 && !host_is_loopback(host))
        snprintf(why, n, "plain http only to this machine (127.0.0.1, [::1], localhost); use https");
    else
        rc = 0;
    curl_url_cleanup(u);
    return rc;
}
