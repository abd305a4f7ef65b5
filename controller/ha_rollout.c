/* A rollout across a leader failover (ha_rollout.h). */
#define _GNU_SOURCE
#include "ha_rollout.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ctlsock.h"
#include "../common/util.h"

#define COUNT_MAX 1000000            /* instances a rollout counts: far above shm.capacity's bound */
#define NUMBER_MAX 1000000000000LL   /* rollouts, and Unix milliseconds up to year 33658 */
#define WALL_MAX 1000000000000000LL

/* ---- writing ---- */

static void put_hex(struct strbuf *b, const char *name, const uint8_t *d, size_t n, bool known)
{
    sb_printf(b, ",\"%s\":\"", name);
    for (size_t i = 0; known && i < n; i++)
        sb_printf(b, "%02x", d[i]);
    sb_printf(b, "\"");
}

/* A spec's pairs, base64 (they hold NULs, and any byte a value may). */
static void put_kv(struct strbuf *b, const char *name, const char *kv, uint32_t len)
{
    if (len > SPEC_KV_MAX)
        len = 0;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        abort();
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)kv, (int)len);
    sb_printf(b, ",\"%s\":\"%s\"", name, out);
    free(out);
}

static void put_settings(struct strbuf *b, const struct rollout_settings *s)
{
    sb_printf(b, ",\"set\":{\"surge\":%d,\"surge_pct\":%u,\"unavailable\":%d,\"unavailable_pct\":%u,"
                 "\"rollback\":%u,\"canary\":%d,\"canary_weight\":%d,\"bake_ms\":%d,\"pause_at\":[",
              s->surge, s->surge_pct, s->unavailable, s->unavailable_pct, s->rollback, s->canary,
              s->canary_weight, s->bake_ms);
    for (int i = 0; i < s->npause && i < ROLLOUT_PAUSES; i++)
        sb_printf(b, "%s%d", i ? "," : "", s->pause_at[i]);
    sb_printf(b, "]}");
}

void ha_specs_encode(struct strbuf *b, const struct ha_group_specs *s)
{
    const struct rollout_state *ro = &s->ro;
    sb_printf(b, ",\"rollout\":{\"number\":%llu,\"phase\":%u,\"rolling_back\":%u",
              (unsigned long long)ro->number, ro->phase, ro->rolling_back ? 1u : 0u);
    put_hex(b, "from", s->from, SPEC_DIGEST_SIZE, s->has_from);
    put_hex(b, "to", s->to, SPEC_DIGEST_SIZE, s->has_to);
    put_settings(b, &ro->set);
    sb_printf(b, ",\"total\":%d,\"replaced\":%d,\"remaining\":%d,\"next_pause\":%d,\"canary_done\":%d,"
                 "\"started_wall_ms\":%lld,\"ended_wall_ms\":%lld,\"reason\":",
              ro->total, ro->replaced, ro->remaining, ro->next_pause, ro->canary_done,
              (long long)ro->started_wall_ms, (long long)ro->ended_wall_ms);
    char reason[sizeof ro->reason];
    copy_str(reason, sizeof reason, ro->reason);
    sb_json_str(b, reason);
    sb_printf(b, "},\"spec\":{\"pinned\":%s", s->pinned ? "true" : "false");
    put_hex(b, "cur", s->cur.digest, SPEC_DIGEST_SIZE, s->cur.known);
    put_hex(b, "prev", s->prev.digest, SPEC_DIGEST_SIZE, s->prev.known);
    put_hex(b, "rejected", s->rejected, SPEC_DIGEST_SIZE, s->has_rejected);
    put_kv(b, "prev_kv", s->prev.kv, s->prev.len);
    /* Only a pinned spec is not the config's: the new leader needs it whole. */
    put_kv(b, "cur_kv", s->cur.kv, s->pinned ? s->cur.len : 0);
    sb_printf(b, "}");
}

size_t ha_instances_encode(struct strbuf *b, const struct ha_instance_spec *v, size_t n, size_t max)
{
    sb_printf(b, ",\"instance_specs\":{");
    size_t listed = 0;
    /* An entry at most: the id escaped (6 bytes a byte), 16 hex digits, quotes. */
    size_t entry = 6 * INSTANCE_ID_MAX + 2 * HA_PREFIX_BYTES + 8;
    for (size_t i = 0; i < n && b->len + entry + 2 < max; i++) {
        char id[INSTANCE_ID_MAX];
        copy_str(id, sizeof id, v[i].id);
        sb_printf(b, "%s", listed++ ? "," : "");
        sb_json_str(b, id);
        sb_printf(b, ":\"");
        for (int k = 0; k < HA_PREFIX_BYTES; k++)
            sb_printf(b, "%02x", v[i].prefix[k]);
        sb_printf(b, "\"");
    }
    sb_printf(b, "}");
    return listed;
}

/* ---- reading: every field checked, a bad one named ---- */

struct reader {
    const char *where;            /* "rollout", "spec", ... */
    char *err;
    size_t errsize;
};

static int bad(struct reader *r, const char *field, const char *why)
{
    snprintf(r->err, r->errsize, "the last leader's state: %s.%s %s", r->where, field, why);
    return -1;
}

static int get_int(struct reader *r, json_object *o, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
        return bad(r, name, "is missing or not a whole number");
    errno = 0;
    int64_t n = json_object_get_int64(v);
    if (errno || n < lo || n > hi) {
        char why[80];
        snprintf(why, sizeof why, "is out of range (%lld..%lld)", (long long)lo, (long long)hi);
        return bad(r, name, why);
    }
    *out = n;
    return 0;
}

static int get_i32(struct reader *r, json_object *o, const char *name, int64_t lo, int64_t hi, int32_t *out)
{
    int64_t n;
    if (get_int(r, o, name, lo, hi, &n) != 0)
        return -1;
    *out = (int32_t)n;
    return 0;
}

static const char *get_str(struct reader *r, json_object *o, const char *name, size_t max)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string)) {
        bad(r, name, "is missing or not a string");
        return NULL;
    }
    const char *s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s) || strlen(s) > max) {
        char why[80];
        snprintf(why, sizeof why, "is longer than %zu bytes, or holds a NUL", max);
        bad(r, name, why);
        return NULL;
    }
    return s;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n bytes as 2n lowercase hex digits, or "" (*known false). */
static int hex_text(struct reader *r, const char *name, const char *s, uint8_t *out, size_t n, bool *known)
{
    *known = s[0] != '\0';
    if (!*known)
        return 0;
    if (strlen(s) != 2 * n)
        return bad(r, name, "is not a digest in hex of the right length");
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return bad(r, name, "is not lowercase hex");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int get_hex(struct reader *r, json_object *o, const char *name, uint8_t *out, size_t n, bool *known)
{
    const char *s = get_str(r, o, name, 2 * n);
    return s ? hex_text(r, name, s, out, n, known) : -1;
}

/* kv must be "key\0value\0" pairs, keys non-empty printable ASCII. */
static bool pairs_well_formed(const char *kv, size_t len)
{
    size_t at = 0;
    while (at < len) {
        const char *k = kv + at, *kend = memchr(k, '\0', len - at);
        if (!kend || kend == k)
            return false;
        for (const char *c = k; c < kend; c++)
            if (*c <= ' ' || *c > '~')
                return false;
        const char *v = kend + 1, *vend = v < kv + len ? memchr(v, '\0', (size_t)(kv + len - v)) : NULL;
        if (!vend)
            return false;
        at = (size_t)(vend - kv) + 1;
    }
    return true;
}

/* A spec's pairs in base64 ("" for none). */
static int get_kv(struct reader *r, json_object *o, const char *name, struct ha_spec *s)
{
    const char *text = get_str(r, o, name, 4 * ((SPEC_KV_MAX + 2) / 3));
    if (!text)
        return -1;
    size_t n = strlen(text);
    s->len = 0;
    if (n == 0)
        return 0;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        abort();
    int len = n % 4 ? -1 : EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
    len -= len >= 0 && text[n - 1] == '=';
    len -= len >= 0 && n > 1 && text[n - 2] == '=';
    bool ok = len > 0 && len <= SPEC_KV_MAX && pairs_well_formed((const char *)out, (size_t)len);
    if (ok) {
        memcpy(s->kv, out, (size_t)len);
        s->len = (uint32_t)len;
    }
    free(out);
    return ok ? 0 : bad(r, name, "is not base64 of a launch spec's key and value pairs");
}

static int get_settings(struct reader *r, json_object *ro, struct rollout_settings *s)
{
    json_object *o, *pauses;
    if (!json_object_object_get_ex(ro, "set", &o) || !json_object_is_type(o, json_type_object))
        return bad(r, "set", "is missing or not an object");
    struct reader in = {"rollout.set", r->err, r->errsize};
    int64_t sp, up, rb;
    memset(s, 0, sizeof *s);
    if (get_i32(&in, o, "surge", 0, 100000, &s->surge) || get_int(&in, o, "surge_pct", 0, 1, &sp) ||
        get_i32(&in, o, "unavailable", 0, 100000, &s->unavailable) ||
        get_int(&in, o, "unavailable_pct", 0, 1, &up) || get_int(&in, o, "rollback", 0, 1, &rb) ||
        get_i32(&in, o, "canary", 0, 100000, &s->canary) ||
        get_i32(&in, o, "canary_weight", 0, 100, &s->canary_weight) ||
        get_i32(&in, o, "bake_ms", 0, 86400000, &s->bake_ms))
        return -1;
    s->surge_pct = (uint8_t)sp, s->unavailable_pct = (uint8_t)up, s->rollback = (uint8_t)rb;
    if (!json_object_object_get_ex(o, "pause_at", &pauses) || !json_object_is_type(pauses, json_type_array) ||
        json_object_array_length(pauses) > ROLLOUT_PAUSES)
        return bad(&in, "pause_at", "is missing, not an array, or longer than 4");
    s->npause = (uint8_t)json_object_array_length(pauses);
    for (size_t i = 0; i < s->npause; i++) {
        json_object *p = json_object_array_get_idx(pauses, i);
        if (!json_object_is_type(p, json_type_int))
            return bad(&in, "pause_at", "holds other than whole numbers");
        s->pause_at[i] = (int32_t)json_object_get_int(p);
    }
    /* The same rules as an operator's request: ranges, checkpoints ascending. */
    const char *why = rollout_settings_invalid(s);
    return why ? bad(&in, "*", why) : 0;
}

static int get_counts(struct reader *r, json_object *o, struct rollout_state *ro)
{
    int64_t number, phase, back, pause, canary;
    if (get_int(r, o, "number", 0, NUMBER_MAX, &number) || get_int(r, o, "phase", 0, RO_PHASE_COUNT - 1, &phase) ||
        get_int(r, o, "rolling_back", 0, 1, &back) || get_i32(r, o, "total", 0, COUNT_MAX, &ro->total) ||
        get_i32(r, o, "replaced", 0, COUNT_MAX, &ro->replaced) ||
        get_i32(r, o, "remaining", 0, COUNT_MAX, &ro->remaining) ||
        get_int(r, o, "next_pause", 0, ROLLOUT_PAUSES, &pause) || get_int(r, o, "canary_done", 0, 1, &canary) ||
        get_int(r, o, "started_wall_ms", 0, WALL_MAX, &ro->started_wall_ms) ||
        get_int(r, o, "ended_wall_ms", 0, WALL_MAX, &ro->ended_wall_ms))
        return -1;
    ro->number = (uint64_t)number;
    ro->phase = (uint32_t)phase;
    ro->rolling_back = (uint32_t)back;
    ro->next_pause = (int32_t)pause;
    ro->canary_done = (int32_t)canary;
    return 0;
}

static int get_rollout(struct reader *r, json_object *o, struct ha_group_specs *out)
{
    struct rollout_state *ro = &out->ro;
    if (get_counts(r, o, ro) != 0 || get_settings(r, o, &ro->set) != 0 ||
        get_hex(r, o, "from", out->from, SPEC_DIGEST_SIZE, &out->has_from) != 0 ||
        get_hex(r, o, "to", out->to, SPEC_DIGEST_SIZE, &out->has_to) != 0)
        return -1;
    const char *reason = get_str(r, o, "reason", sizeof ro->reason - 1);
    if (!reason)
        return -1;
    for (const char *c = reason; *c; c++)
        if ((unsigned char)*c < ' ' || *c == 0x7f)
            return bad(r, "reason", "holds a control character");
    copy_str(ro->reason, sizeof ro->reason, reason);
    if ((ro->phase == RO_RUNNING || ro->phase == RO_PAUSED) && !out->has_to)
        return bad(r, "to", "is empty for a rollout under way");
    return 0;
}

static int get_specs(struct reader *r, json_object *o, struct ha_group_specs *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, "pinned", &v) || !json_object_is_type(v, json_type_boolean))
        return bad(r, "pinned", "is missing or not true or false");
    out->pinned = json_object_get_boolean(v);
    if (get_hex(r, o, "cur", out->cur.digest, SPEC_DIGEST_SIZE, &out->cur.known) != 0 ||
        get_hex(r, o, "prev", out->prev.digest, SPEC_DIGEST_SIZE, &out->prev.known) != 0 ||
        get_hex(r, o, "rejected", out->rejected, SPEC_DIGEST_SIZE, &out->has_rejected) != 0 ||
        get_kv(r, o, "prev_kv", &out->prev) != 0 || get_kv(r, o, "cur_kv", &out->cur) != 0)
        return -1;
    if (out->pinned && (!out->cur.known || !out->has_rejected))
        return bad(r, "pinned", "is true without the spec in force and the one rolled back from");
    return 0;
}

int ha_specs_decode(json_object *state, struct ha_group_specs *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    json_object *ro, *spec;
    bool has_ro = json_object_object_get_ex(state, "rollout", &ro);
    bool has_spec = json_object_object_get_ex(state, "spec", &spec);
    if (!has_ro && !has_spec)
        return 0; /* a leader of before rollouts */
    struct reader r = {"rollout", err, errsize};
    if (!has_ro || !json_object_is_type(ro, json_type_object))
        return bad(&r, "*", "is missing or not an object");
    if (get_rollout(&r, ro, out) != 0)
        return -1;
    r.where = "spec";
    if (!has_spec || !json_object_is_type(spec, json_type_object))
        return bad(&r, "*", "is missing or not an object");
    if (get_specs(&r, spec, out) != 0)
        return -1;
    out->present = true;
    return 0;
}

int ha_instances_decode(json_object *state, size_t max, struct ha_instance_spec **out, size_t *n, char *err,
                        size_t errsize)
{
    *out = NULL;
    *n = 0;
    json_object *o;
    struct reader r = {"instance_specs", err, errsize};
    if (!json_object_object_get_ex(state, "instance_specs", &o))
        return 0;
    if (!json_object_is_type(o, json_type_object))
        return bad(&r, "*", "is not an object");
    size_t count = (size_t)json_object_object_length(o);
    if (count > max) {
        char why[100];
        snprintf(why, sizeof why, "lists %zu instances, more than the table's %zu rows", count, max);
        return bad(&r, "*", why);
    }
    struct ha_instance_spec *v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        abort();
    json_object_object_foreach(o, key, val)
    {
        bool known = false;
        struct ha_instance_spec *e = &v[*n];
        if (!valid_instance_id(key, strlen(key)) || !copy_str(e->id, sizeof e->id, key)) {
            free(v);
            return bad(&r, "*", "names an instance id that is not valid");
        }
        const char *hex = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";
        int rc = strlen(hex) == 2 * HA_PREFIX_BYTES ? hex_text(&r, e->id, hex, e->prefix, HA_PREFIX_BYTES, &known)
                                                   : bad(&r, e->id, "is not 16 hex digits");
        if (rc != 0 || !known) {
            free(v);
            return rc != 0 ? -1 : bad(&r, key, "is empty");
        }
        (*n)++;
    }
    *out = v;
    return 0;
}

/* ---- a new leader's view ---- */

uint64_t ha_gen_of(const uint8_t *digest, size_t n, const struct spec_saved *cur, const struct spec_saved *prev)
{
    if (n == 0 || n > SPEC_DIGEST_SIZE)
        return 0;
    if (cur->gen && memcmp(cur->digest, digest, n) == 0)
        return cur->gen;
    if (prev->gen && memcmp(prev->digest, digest, n) == 0)
        return prev->gen;
    return 0;
}

static void saved_of(const struct ha_spec *s, uint64_t gen, struct spec_saved *out)
{
    memset(out, 0, sizeof *out);
    out->gen = gen;
    memcpy(out->digest, s->digest, SPEC_DIGEST_SIZE);
    out->len = s->len <= SPEC_KV_MAX ? s->len : 0;
    memcpy(out->kv, s->kv, out->len);
}

/* The last leader's previous spec kept as ours (a rollback launches it),
 * when it is neither our spec in force nor, whole, our previous one. */
static void keep_previous(const struct ha_group_specs *lead, uint64_t gen_last, struct ha_takeover *t)
{
    const struct ha_spec *p = &lead->prev;
    if (!p->known || memcmp(p->digest, t->cur.digest, SPEC_DIGEST_SIZE) == 0)
        return;
    bool ours = t->prev.gen && memcmp(p->digest, t->prev.digest, SPEC_DIGEST_SIZE) == 0;
    if (ours && (t->prev.len || !p->len))
        return;
    saved_of(p, ours ? t->prev.gen : gen_last + 1, &t->prev);
    t->set_spec = true;
}

/* The last leader had rolled back and pinned its previous spec against a
 * config that says ours: we pin it too (it must have come whole). */
static void keep_pin(const struct ha_group_specs *lead, uint64_t gen_last, struct ha_takeover *t)
{
    if (!lead->pinned || memcmp(lead->cur.digest, t->cur.digest, SPEC_DIGEST_SIZE) == 0)
        return; /* our config already says the spec it pinned */
    if (memcmp(lead->rejected, t->cur.digest, SPEC_DIGEST_SIZE) != 0) {
        snprintf(t->why, sizeof t->why, "it pinned a rolled back spec against another config than ours");
        return;
    }
    if (!lead->cur.len) {
        snprintf(t->why, sizeof t->why, "it pinned a rolled back spec it did not send whole");
        return;
    }
    struct spec_saved ours = t->cur;
    bool was_prev = t->prev.gen && memcmp(t->prev.digest, lead->cur.digest, SPEC_DIGEST_SIZE) == 0;
    saved_of(&lead->cur, was_prev ? t->prev.gen : gen_last + 1, &t->cur);
    t->prev = ours;
    t->pinned = true;
    memcpy(t->rejected, ours.digest, SPEC_DIGEST_SIZE);
    t->set_spec = true;
}

/* The rollout with its generations ours; one under way only if it rolls
 * out our spec in force (else it would replace our launches forever). */
static void take_rollout(const struct ha_group_specs *lead, int64_t now, struct ha_takeover *t)
{
    struct rollout_state ro = lead->ro;
    ro.from_gen = lead->has_from ? ha_gen_of(lead->from, SPEC_DIGEST_SIZE, &t->cur, &t->prev) : 0;
    ro.to_gen = lead->has_to ? ha_gen_of(lead->to, SPEC_DIGEST_SIZE, &t->cur, &t->prev) : 0;
    ro.started_ms = now; /* our clock: what we launch from now on is its own */
    ro.window_ms = 0;    /* the bake window's marks were the last leader's */
    bool ongoing = ro.phase == RO_RUNNING || ro.phase == RO_PAUSED;
    if (ongoing && (ro.to_gen == 0 || ro.to_gen != t->cur.gen)) {
        snprintf(t->why, sizeof t->why, "its rollout %llu rolls out a launch spec that is not ours in force: "
                 "not resumed", (unsigned long long)ro.number);
        return;
    }
    t->ro = ro;
    t->set_ro = true;
}

void ha_takeover_plan(const struct ha_group_specs *lead, const struct spec_saved *cur,
                      const struct spec_saved *prev, bool pinned, const uint8_t rejected[SPEC_DIGEST_SIZE],
                      uint64_t gen_last, int64_t now, struct ha_takeover *out)
{
    memset(out, 0, sizeof *out);
    out->cur = *cur;
    out->prev = *prev;
    /* Our own pin (from a rollback when we led) stands: our config is still the one refused. */
    out->pinned = pinned;
    memcpy(out->rejected, rejected, SPEC_DIGEST_SIZE);
    if (!lead->present || !cur->gen)
        return;
    if (gen_last < cur->gen)
        gen_last = cur->gen;
    if (gen_last < prev->gen)
        gen_last = prev->gen;
    if (!out->pinned)
        keep_pin(lead, gen_last, out);
    if (out->pinned && out->cur.gen > gen_last)
        gen_last = out->cur.gen;
    if (!out->pinned)
        keep_previous(lead, gen_last, out);
    if (lead->ro.phase != RO_NONE)
        take_rollout(lead, now, out);
}
