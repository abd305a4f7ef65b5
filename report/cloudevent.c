#include "cloudevent.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"

/* What an event's id says of the group's nonce: a digest of it, 32 hex
 * digits. The nonce itself marks the group's agents (common/identity.h)
 * and is kept from other users; a webhook's receiver, anywhere, learns
 * nothing it could put in an agent's environment (as ha.c publishes it
 * in etcd). */
static void nonce_digest(const char *group_nonce, char out[33])
{
    static const char label[] = "asg cloudevents id v1\n";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, label, sizeof label - 1) &&
              EVP_DigestUpdate(ctx, group_nonce, strlen(group_nonce)) && EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    out[0] = '\0';
    for (unsigned i = 0; ok && i < 16 && i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void cloudevent_origin(struct ce_origin *o, const char *host, const char *group, const char *group_nonce,
                       uint64_t table_nonce)
{
    memset(o, 0, sizeof *o);
    snprintf(o->source, sizeof o->source, "asg://%.120s/%.47s", host && host[0] ? host : "localhost", group);
    char digest[33];
    nonce_digest(group_nonce ? group_nonce : "", digest);
    snprintf(o->id_prefix, sizeof o->id_prefix, "%s-%016llx", digest, (unsigned long long)table_nonce);
    copy_str(o->group, sizeof o->group, group);
}

void cloudevent_type(uint32_t kind, char *out, size_t n)
{
    snprintf(out, n, "io.asg.%s", event_kind_name(kind));
}

void cloudevent_time(int64_t wall_ms, char *out, size_t n)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (wall_ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, n, "1970-01-01T00:00:00.000Z");
        return;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", day, (int)(wall_ms % 1000));
}

/* A fixed-size field of the event as a C string: a copy from the ring is
 * whole, but a field is never trusted to end. */
static void field_str(char *out, size_t n, const char *field, size_t size)
{
    size_t len = strnlen(field, size);
    if (len >= n)
        len = n - 1;
    memcpy(out, field, len);
    out[len] = '\0';
}

void cloudevent_json(struct strbuf *b, const struct ce_origin *o, const struct table_event *ev)
{
    char type[48], when[40], id[96], inst[sizeof ev->instance + 1], msg[sizeof ev->msg + 1];
    cloudevent_type(ev->kind, type, sizeof type);
    cloudevent_time(ev->wall_ms, when, sizeof when);
    snprintf(id, sizeof id, "%s-%llu", o->id_prefix, (unsigned long long)ev->number);
    field_str(inst, sizeof inst, ev->instance, sizeof ev->instance);
    field_str(msg, sizeof msg, ev->msg, sizeof ev->msg);
    sb_printf(b, "{\"specversion\":\"1.0\",\"id\":");
    sb_json_str(b, id);
    sb_printf(b, ",\"source\":");
    sb_json_str(b, o->source);
    sb_printf(b, ",\"type\":");
    sb_json_str(b, type);
    sb_printf(b, ",\"time\":\"%s\",\"datacontenttype\":\"application/json\"", when);
    if (inst[0]) {
        sb_printf(b, ",\"subject\":");
        sb_json_str(b, inst);
    }
    sb_printf(b, ",\"data\":{\"message\":");
    sb_json_str(b, msg);
    sb_printf(b, ",\"kind\":");
    sb_json_str(b, event_kind_name(ev->kind));
    sb_printf(b, ",\"group\":");
    sb_json_str(b, o->group);
    sb_printf(b, ",\"instance\":");
    if (inst[0])
        sb_json_str(b, inst);
    else
        sb_printf(b, "null");
    sb_printf(b, ",\"number\":%llu}}", (unsigned long long)ev->number);
}
