/* A rollout across a leader failover (ha.etcd): what the guard's state in
 * etcd says of it, and what a new leader makes of that. Pure functions
 * (no table, clock or etcd): tests/check_ha_rollout.c drives them.
 *
 * Generation numbers are each manager's own (its table's), so the state
 * names launch specs by digest: the spec in force and the one before it
 * (whole, as "key\0value\0" pairs in base64, so that a new leader can
 * launch it in a rollback; the one in force too when a rollback pinned
 * it), whether it is pinned and the digest it was rolled back from, the
 * rollout (phase, number, settings, counts, reason; its from and to
 * generations as digests), and each instance's spec by the first
 * HA_PREFIX_BYTES of its digest. A new leader maps each digest to a
 * generation of its own table (its spec in force, or the previous one,
 * which it keeps whole), and anything else to 0, unknown (due in any
 * rollout: replaced, never left behind).
 *
 * Everything read back is another process's message: each field is
 * checked for type, length and range, and a bad one is an error naming
 * it; the caller then ignores the rollout part of the state. */
#ifndef ASG_HA_ROLLOUT_H
#define ASG_HA_ROLLOUT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/group.h"
#include "../common/strbuf.h"
#include "../shm/table.h"

#define HA_PREFIX_BYTES 8     /* of an instance's spec digest: 16 hex digits */
/* The state's text at most (etcd's values go base64 on the wire: about
 * 214 KB, under the client's 256 KiB answer limit and far under etcd's
 * 1.5 MiB request limit). Past it, instances are left out of the list
 * (logged): a new leader takes them for unknown, so a rollout replaces
 * them once more, and none is left behind. */
#define HA_STATE_MAX (160 * 1024)

/* A launch spec as the state names it: its digest, and its pairs when sent. */
struct ha_spec {
    bool known;
    uint8_t digest[SPEC_DIGEST_SIZE];
    uint32_t len;                 /* bytes of kv; 0 = not sent whole */
    char kv[SPEC_KV_MAX];
};

/* The rollout part of the state. */
struct ha_group_specs {
    bool present;                 /* the state had it (a leader of before rollouts: not) */
    struct ha_spec cur, prev;     /* in force (kv only when pinned), and the one before */
    bool pinned;
    bool has_rejected;
    uint8_t rejected[SPEC_DIGEST_SIZE];
    struct rollout_state ro;      /* from_gen, to_gen, started_ms and window_ms are not sent */
    bool has_from, has_to;
    uint8_t from[SPEC_DIGEST_SIZE], to[SPEC_DIGEST_SIZE];
};

struct ha_instance_spec {
    char id[INSTANCE_ID_MAX];
    uint8_t prefix[HA_PREFIX_BYTES];
};

/* Appends ,"rollout":{...},"spec":{...} to b. */
void ha_specs_encode(struct strbuf *b, const struct ha_group_specs *s);
/* Appends ,"instance_specs":{"ID":"PREFIX",...} with as many of v as keep
 * b under max bytes (room for the state's end left); returns how many. */
size_t ha_instances_encode(struct strbuf *b, const struct ha_instance_spec *v, size_t n, size_t max);

/* The rollout part of a state: 0 (out->present false when there is none),
 * or -1 with the field that is wrong and why. */
int ha_specs_decode(json_object *state, struct ha_group_specs *out, char *err, size_t errsize);
/* The instances' specs, at most max of them (*out: malloc'd, the caller's
 * to free; NULL when none): 0, or -1 with the field and why. */
int ha_instances_decode(json_object *state, size_t max, struct ha_instance_spec **out, size_t *n, char *err,
                        size_t errsize);

/* What a new leader makes of the last leader's specs and rollout, given
 * its own table's spec in force (cur), the one before it (prev, gen 0:
 * none), its own pin (pinned, rejected) and the highest generation it
 * ever gave. */
struct ha_takeover {
    bool set_spec;                /* cur, prev, pinned and rejected are to be put in force */
    struct spec_saved cur, prev;
    bool pinned;
    uint8_t rejected[SPEC_DIGEST_SIZE];
    bool set_ro;                  /* ro is to be the table's rollout */
    struct rollout_state ro;
    char why[200];                /* why the rollout or the pin was not taken over; "" */
};
void ha_takeover_plan(const struct ha_group_specs *lead, const struct spec_saved *cur,
                      const struct spec_saved *prev, bool pinned, const uint8_t rejected[SPEC_DIGEST_SIZE],
                      uint64_t gen_last, int64_t now, struct ha_takeover *out);

/* The generation of this manager's cur or prev whose digest begins with
 * the n bytes of digest; 0 for any other. */
uint64_t ha_gen_of(const uint8_t *digest, size_t n, const struct spec_saved *cur, const struct spec_saved *prev);

#endif
