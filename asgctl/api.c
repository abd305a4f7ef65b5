/* asgctl's POSTs to the status API (api.h): libcurl, as the rest of asg
 * speaks HTTP with it. The token goes in an Authorization header and is
 * wiped as soon as curl has it; the Origin is the status role's own, as
 * its CSRF check asks of every action. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/pki.h"
#include "../common/util.h"
#include "api.h"

static size_t take_reply(char *data, size_t size, size_t n, void *user)
{
    struct api_reply *r = user;
    size_t len = size * n;
    if (r->len + len >= sizeof r->buf)
        return 0; /* longer than any answer to an action: curl stops */
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    r->buf[r->len] = '\0';
    return len;
}

/* status.listen as the host:port a client should use (0.0.0.0 is every
 * address: loopback then), and its port. False when there is no fixed port. */
static bool status_address(const struct asg_config *cfg, char *out, size_t size, int *portp)
{
    char host[64];
    if (!copy_str(host, sizeof host, cfg->status_listen))
        return false;
    char *colon = strrchr(host, ':');
    long port;
    if (!colon || !parse_whole(colon + 1, 1, 65535, &port))
        return false;
    *colon = '\0';
    *portp = (int)port;
    snprintf(out, size, "%s:%ld", strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, port);
    return true;
}

/* One POST; the curl code, with r->code set when answered. */
static CURLcode perform(const char *url, const char *auth, const char *origin, const char *body,
                        struct api_reply *r)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, origin);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    /* Who asks, for the record of who suspended what (its own word: the
     * token is what the API trusts). */
    char client[64];
    snprintf(client, sizeof client, "X-ASG-Client: asgctl uid %u", (unsigned)getuid());
    hdr = curl_slist_append(hdr, client);
    CURLcode cc = CURLE_FAILED_INIT;
    if (h && hdr) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, take_reply);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return cc;
}

int api_post(const struct asg_config *cfg, const char *path, const char *body, struct api_reply *r,
             const char *who)
{
    char dir[256], token[PKI_API_TOKEN_LEN + 1], err[512], hp[96];
    int port;
    memset(r, 0, sizeof *r);
    if (!cfg->status_listen[0] || !status_address(cfg, hp, sizeof hp, &port)) {
        fprintf(stderr, "asgctl: %s: status.listen is '%s': no status API at a known port\n", who,
                cfg->status_listen);
        return 2;
    }
    /* Plain HTTP: whoever holds the port would be handed the token (the
     * manager stopped and another user bound it), as etcd's port is checked. */
    if (tcp_port_trusted(port, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: %s: the API token is not sent to %s: %s (is the manager running?)\n", who, hp,
                err);
        return 1;
    }
    pki_dir(cfg, dir, sizeof dir);
    if (pki_api_token_read(dir, token, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: %s: %s (run as the manager's user, with its -c FILE or --shm NAME)\n", who,
                err);
        return 2;
    }
    char url[160], origin[120], auth[100];
    snprintf(url, sizeof url, "http://%s%s", hp, path);
    snprintf(origin, sizeof origin, "Origin: http://%s", hp);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    OPENSSL_cleanse(token, sizeof token);
    CURLcode cc = perform(url, auth, origin, body, r);
    OPENSSL_cleanse(auth, sizeof auth);
    if (cc != CURLE_OK) {
        fprintf(stderr, "asgctl: %s: %s: %s (is the manager running?)\n", who, url, curl_easy_strerror(cc));
        return 1;
    }
    return 0;
}

void api_error_text(const struct api_reply *r, char *out, size_t size)
{
    json_object *o = json_tokener_parse(r->buf);
    json_object *v;
    if (o && json_object_object_get_ex(o, "error", &v))
        snprintf(out, size, "%s", json_object_get_string(v));
    else
        snprintf(out, size, "an answer without an error message");
    json_object_put(o);
}
