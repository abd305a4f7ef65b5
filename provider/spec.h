/* The launch spec: what a new instance of the group runs, as the config
 * says it (local: the agent and the operator's service with its health
 * and request settings; ec2: the template or image, type, network, key,
 * and what the user data passes to the agent). Worked out from the
 * config by pure functions, so that the controller can tell when an
 * operator's reload changed it (its generation moves on) and the Check
 * units can say so without a table. */
#ifndef ASG_SPEC_H
#define ASG_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

#define LAUNCH_SPEC_FIELDS 16
#define LAUNCH_SPEC_DIGEST 32 /* SHA-256 */

/* One setting the launch uses: the config key it comes from and its
 * value as text (numbers in decimal; a command line with its items joined
 * by CONFIG_ARGV_SEP, as the config keeps it). */
struct launch_spec_field {
    const char *key;              /* a static string: "provider.local.service" */
    char value[sizeof ((struct asg_config *)0)->local_service];
};

struct launch_spec {
    size_t n;
    struct launch_spec_field field[LAUNCH_SPEC_FIELDS];
    uint8_t digest[LAUNCH_SPEC_DIGEST]; /* of every key and value, in order */
};

/* The spec cfg launches with, and its digest. */
void launch_spec_of(const struct asg_config *cfg, struct launch_spec *out);

/* The key of the first field where a and b differ, or NULL when they are
 * the same spec. */
const char *launch_spec_changed(const struct launch_spec *a, const struct launch_spec *b);

/* The generation of spec s, given the one in force (gen, recorded with
 * digest; gen 0: none yet): gen while the digest is the same, the next
 * one when it differs, 1 for the first. */
uint64_t launch_spec_generation(uint64_t gen, const uint8_t digest[LAUNCH_SPEC_DIGEST],
                                const struct launch_spec *s);

/* Spec s as "key\0value\0" pairs in kv (size bytes); the bytes used, or
 * 0 when it does not fit. */
size_t launch_spec_save(const struct launch_spec *s, char *kv, size_t size);
/* Sets cfg's launch settings to those of a saved spec (len bytes of kv,
 * read from the table: checked pair by pair), so that a launch made with
 * cfg is one of that spec: every key must be one of the spec's, and the
 * spec cfg then has must be the one digest names. 0, or -1 with why (cfg
 * then unspecified). */
int launch_spec_apply(const char *kv, size_t len, const uint8_t digest[LAUNCH_SPEC_DIGEST], struct asg_config *cfg,
                      char *err, size_t errsize);

#endif
