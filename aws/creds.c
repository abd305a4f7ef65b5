#define _GNU_SOURCE
#include "creds.h"
#include "profile_file.h"
#include "../common/strbuf.h"
#include "../common/util.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 2000

static bool fits(const char *s, size_t size) { return s && strlen(s) < size; }

static bool ascii_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int from_env(struct aws_creds *c, char *err, size_t errsize)
{
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    bool have_ak = ak && *ak, have_sk = sk && *sk;
    if (have_ak != have_sk) {
        snprintf(err, errsize, "the environment has %s without %s", have_ak ? "AWS_ACCESS_KEY_ID" :
                 "AWS_SECRET_ACCESS_KEY", have_ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    if (!have_ak)
        return 1; /* not there: try the next source */
    if (!fits(ak, sizeof c->access_key) || !fits(sk, sizeof c->secret_key) ||
        (tok && !fits(tok, sizeof c->token))) {
        snprintf(err, errsize, "the AWS_* environment variables: a value is too long");
        return -1;
    }
    copy_str(c->access_key, sizeof c->access_key, ak);
    copy_str(c->secret_key, sizeof c->secret_key, sk);
    copy_str(c->token, sizeof c->token, tok ? tok : "");
    copy_str(c->source, sizeof c->source, "environment");
    return 0;
}

/* The shared file named by env_var, else ~/.aws/name; a leading "~/" is
 * the home directory, as botocore expands it. False when there is none. */
static bool shared_path(const char *env_var, const char *name, char *out, size_t size)
{
    const char *f = getenv(env_var), *home = getenv("HOME");
    int n;
    if (f && *f && strncmp(f, "~/", 2) != 0)
        n = snprintf(out, size, "%s", f);
    else if (home && *home)
        n = f && *f ? snprintf(out, size, "%s/%s", home, f + 2)
                    : snprintf(out, size, "%s/.aws/%s", home, name);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

/* One shared file as a source: 0, 1 (not there) or -1 (broken: err). */
static int from_file(struct aws_creds *c, enum aws_file_kind kind, char *err, size_t errsize)
{
    char path[1024];
    bool creds_file = kind == AWS_CREDENTIALS_FILE;
    if (!shared_path(creds_file ? "AWS_SHARED_CREDENTIALS_FILE" : "AWS_CONFIG_FILE",
                     creds_file ? "credentials" : "config", path, sizeof path))
        return 1;
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile)
        profile = "default";
    if (strlen(profile) > 255) {
        snprintf(err, errsize, "AWS_PROFILE is longer than 255 characters");
        return -1;
    }
    int rc = aws_profile_read(path, kind, profile, c, err, errsize);
    if (rc == 0)
        copy_str(c->source, sizeof c->source, creds_file ? "shared file" : "config file");
    return rc;
}

static int from_credentials_file(struct aws_creds *c, char *err, size_t errsize)
{
    return from_file(c, AWS_CREDENTIALS_FILE, err, errsize);
}

static int from_config_file(struct aws_creds *c, char *err, size_t errsize)
{
    return from_file(c, AWS_CONFIG_FILE, err, errsize);
}

/* ---- IMDSv2 ---- */

struct body {
    char buf[8192];
    size_t len;
    bool overflow;
};

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    struct body *b = user;
    size_t len = size * n;
    if (b->len + len >= sizeof b->buf) {
        b->overflow = true;
        return 0;
    }
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return len;
}

/* One request to the metadata service; returns the HTTP status, or -1. */
static long imds(const char *base, const char *path, const char *method, const char *token,
                 struct body *out)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    char url[1024], hdr[4200];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct curl_slist *hl = NULL;
    if (strcmp(method, "PUT") == 0)
        hl = curl_slist_append(hl, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    if (token) {
        snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", token);
        hl = curl_slist_append(hl, hdr);
    }
    memset(out, 0, sizeof *out);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)IMDS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)IMDS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* metadata is never proxied */
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc == CURLE_OK && !out->overflow)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return status;
}

int64_t aws_parse_iso8601(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return -1;
    if (*end == '.')
        while (*++end >= '0' && *end <= '9')
            ;
    if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000;
}

/* The IMDSv2 exchange, in its order: a session token (PUT), the role's
 * name, then that role's credentials as JSON; each step fails with its own
 * reason. Long because the protocol reads best as one sequence. */
static int from_imds(struct aws_creds *c, char *err, size_t errsize)
{
    const char *off = getenv("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0) {
        snprintf(err, errsize, "instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
        return 1;
    }
    const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!base || !*base)
        base = IMDS_DEFAULT;
    char tbase[512];
    snprintf(tbase, sizeof tbase, "%.*s", (int)strcspn(base, "\n"), base);
    size_t bl = strlen(tbase);
    if (bl && tbase[bl - 1] == '/')
        tbase[bl - 1] = '\0';
    struct body b;
    long st = imds(tbase, "/latest/api/token", "PUT", NULL, &b);
    if (st != 200 || b.len == 0) {
        snprintf(err, errsize, "instance metadata at %s: no session token (HTTP %ld)", tbase, st);
        return 1;
    }
    char token[1024];
    snprintf(token, sizeof token, "%.*s", (int)strcspn(b.buf, "\r\n"), b.buf);
    st = imds(tbase, "/latest/meta-data/iam/security-credentials/", "GET", token, &b);
    if (st != 200 || b.len == 0) {
        snprintf(err, errsize, "instance metadata: no IAM role attached (HTTP %ld)", st);
        return 1;
    }
    char role[256], path[400];
    snprintf(role, sizeof role, "%.*s", (int)strcspn(b.buf, "\r\n"), b.buf);
    /* IAM role names: letters, digits and +=,.@_- ; anything else is not
     * put into a URL. */
    bool ok_name = role[0] != '\0';
    for (const char *p = role; *p; p++)
        ok_name = ok_name && (ascii_alnum(*p) || strchr("+=,.@_-", *p));
    if (!ok_name) {
        snprintf(err, errsize, "instance metadata: role name is not valid");
        return -1;
    }
    snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s", role);
    st = imds(tbase, path, "GET", token, &b);
    memset(token, 0, sizeof token);
    if (st != 200) {
        snprintf(err, errsize, "instance metadata: credentials of role %.64s: HTTP %ld", role, st);
        return -1;
    }
    json_object *doc = json_tokener_parse(b.buf);
    memset(b.buf, 0, sizeof b.buf);
    json_object *v;
    const char *ak = NULL, *sk = NULL, *tok = NULL, *exp = NULL, *code = NULL;
    if (doc) {
        if (json_object_object_get_ex(doc, "Code", &v)) code = json_object_get_string(v);
        if (json_object_object_get_ex(doc, "AccessKeyId", &v)) ak = json_object_get_string(v);
        if (json_object_object_get_ex(doc, "SecretAccessKey", &v)) sk = json_object_get_string(v);
        if (json_object_object_get_ex(doc, "Token", &v)) tok = json_object_get_string(v);
        if (json_object_object_get_ex(doc, "Expiration", &v)) exp = json_object_get_string(v);
    }
    int rc = -1;
    int64_t expires = exp ? aws_parse_iso8601(exp) : -1;
    if (!doc || (code && strcmp(code, "Success") != 0)) {
        snprintf(err, errsize, "instance metadata: credentials of role %.64s: %s", role,
                 doc ? "Code is not Success" : "not JSON");
    } else if (!fits(ak, sizeof c->access_key) || !fits(sk, sizeof c->secret_key) ||
               !fits(tok, sizeof c->token) || expires < 0) {
        snprintf(err, errsize, "instance metadata: credentials of role %.64s: missing or bad fields", role);
    } else {
        copy_str(c->access_key, sizeof c->access_key, ak);
        copy_str(c->secret_key, sizeof c->secret_key, sk);
        copy_str(c->token, sizeof c->token, tok);
        c->expires_ms = expires;
        copy_str(c->source, sizeof c->source, "instance metadata");
        rc = 0;
    }
    json_object_put(doc);
    return rc;
}

/* The chain, in botocore's order. A source that is broken (an unparsable
 * file, a half-written profile) is passed over like an absent one: one bad
 * file must not keep the instance role, or the next file, from working.
 * What was wrong is logged when a later source succeeds, and returned in
 * err when none does. */
int aws_creds_load(struct aws_creds *c, char *err, size_t errsize)
{
    static const struct {
        const char *name;
        int (*load)(struct aws_creds *, char *, size_t);
    } chain[] = {
        {"the environment", from_env},
        {"the shared credentials file", from_credentials_file},
        {"the config file", from_config_file},
        {"instance metadata", from_imds},
    };
    struct strbuf tried = {0};
    memset(c, 0, sizeof *c);
    err[0] = '\0';
    int rc = 1;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0] && rc != 0; i++) {
        char why[600] = "";
        aws_creds_wipe(c);
        rc = chain[i].load(c, why, sizeof why);
        if (rc == 0)
            break;
        if (why[0])
            sb_printf(&tried, "; %s%s", why, rc < 0 ? " (skipped)" : "");
        else
            sb_printf(&tried, "; none in %s", chain[i].name);
    }
    if (rc == 0 && tried.s && strstr(tried.s, "(skipped)"))
        log_warn("AWS credentials: passed over a broken source (%s); using the %s", tried.s + 2,
                 c->source);
    else if (rc != 0)
        snprintf(err, errsize, "no AWS credentials%s%s", tried.s ? ":" : "", tried.s ? tried.s + 1 : "");
    sb_free(&tried);
    if (rc != 0)
        aws_creds_wipe(c);
    return rc == 0 ? 0 : -1;
}

bool aws_creds_stale(const struct aws_creds *c, int64_t now_wall)
{
    return c->expires_ms != 0 && now_wall > c->expires_ms - 5 * 60 * 1000;
}

void aws_creds_wipe(struct aws_creds *c)
{
    volatile char *p = (volatile char *)c;
    for (size_t i = 0; i < sizeof *c; i++)
        p[i] = 0;
}
