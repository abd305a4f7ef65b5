/* asgctl dashboard. The API token (tls.dir/api.token) is the manager
 * user's; whoever can read it asks the status role for a login code
 * (POST /api/v1/login) and gets a link that sets a session cookie once.
 * libcurl, as the rest of asg speaks HTTP with it. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/pki.h"
#include "../common/util.h"
#include "login.h"

#define REPLY_MAX 4096

struct reply {
    char buf[REPLY_MAX];
    size_t len;
};

static size_t take_reply(char *data, size_t size, size_t n, void *user)
{
    struct reply *r = user;
    size_t len = size * n;
    if (r->len + len >= sizeof r->buf)
        return 0; /* too long for a login reply: curl stops */
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    r->buf[r->len] = '\0';
    return len;
}

/* status.listen as the host:port a client should use (0.0.0.0 is every
 * address: loopback then). False when there is no fixed port. */
static bool status_address(const struct asg_config *cfg, char *out, size_t size)
{
    char host[64];
    if (!copy_str(host, sizeof host, cfg->status_listen))
        return false;
    char *colon = strrchr(host, ':');
    long port;
    if (!colon || !parse_whole(colon + 1, 1, 65535, &port))
        return false;
    *colon = '\0';
    snprintf(out, size, "%s:%ld", strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, port);
    return true;
}

/* The status role's answer: its "url", or its "error". */
static int print_answer(long code, const struct reply *r, const char *where)
{
    json_object *o = json_tokener_parse(r->buf);
    json_object *v;
    int rc = 1;
    if (code == 200 && o && json_object_object_get_ex(o, "url", &v) && json_object_is_type(v, json_type_string)) {
        printf("open this link in your browser (it works once, for 15 minutes):\n%s\n", json_object_get_string(v));
        rc = 0;
    } else if (o && json_object_object_get_ex(o, "error", &v)) {
        fprintf(stderr, "asgctl: dashboard: %s answered %ld: %s\n", where, code, json_object_get_string(v));
    } else {
        fprintf(stderr, "asgctl: dashboard: %s answered %ld without a link\n", where, code);
    }
    json_object_put(o);
    return rc;
}

int asgctl_dashboard(const struct asg_config *cfg)
{
    char dir[256], token[PKI_API_TOKEN_LEN + 1], err[512], hp[96];
    if (!cfg->status_listen[0] || !status_address(cfg, hp, sizeof hp)) {
        fprintf(stderr, "asgctl: dashboard: status.listen is '%s': no dashboard at a known port\n",
                cfg->status_listen);
        return 2;
    }
    pki_dir(cfg, dir, sizeof dir);
    if (pki_api_token_read(dir, token, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: dashboard: %s (run as the manager's user, with its -c FILE or --shm NAME)\n",
                err);
        return 2;
    }
    char url[160], origin[120], auth[100];
    snprintf(url, sizeof url, "http://%s/api/v1/login", hp);
    snprintf(origin, sizeof origin, "Origin: http://%s", hp);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    OPENSSL_cleanse(token, sizeof token);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, origin);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    struct reply r = {.len = 0};
    r.buf[0] = '\0';
    CURLcode cc = CURLE_FAILED_INIT;
    long code = 0;
    if (h && hdr) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, take_reply);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    OPENSSL_cleanse(auth, sizeof auth);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    if (cc != CURLE_OK) {
        fprintf(stderr, "asgctl: dashboard: %s: %s (is the manager running?)\n", url, curl_easy_strerror(cc));
        return 1;
    }
    return print_answer(code, &r, url);
}
