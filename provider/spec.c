/* The launch spec (spec.h): the settings each provider's launch reads,
 * taken from the config in a fixed order, and their SHA-256. */
#include "spec.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static void add(struct launch_spec *s, const char *key, const char *value)
{
    if (s->n >= LAUNCH_SPEC_FIELDS)
        abort(); /* the lists below are fixed: a bug if seen */
    struct launch_spec_field *f = &s->field[s->n++];
    f->key = key;
    copy_str(f->value, sizeof f->value, value);
}

static void add_int(struct launch_spec *s, const char *key, int value)
{
    char v[16];
    snprintf(v, sizeof v, "%d", value);
    add(s, key, v);
}

/* What local_launch passes an agent. The service's settings count only
 * with a service: without one the agent is given none of them. */
static void local_fields(const struct asg_config *c, struct launch_spec *s)
{
    bool svc = c->local_service[0] != '\0';
    add(s, "provider.local.agent_path", c->local_agent_path);
    add(s, "provider.local.service", c->local_service);
    add(s, "provider.local.service_health", svc ? c->local_service_health : "");
    add(s, "provider.local.service_requests", svc ? c->local_service_requests : "");
    add(s, "provider.local.service_ca", svc ? c->local_service_ca : "");
}

/* What ec2_launch asks RunInstances for, and what ec2_user_data hands the
 * agent. The instance type is not sent with a launch template (the
 * template's own is used); the service's settings only with a service. */
static void ec2_fields(const struct asg_config *c, struct launch_spec *s)
{
    bool svc = c->ec2_service[0] != '\0';
    add(s, "provider.ec2.launch_template", c->ec2_launch_template);
    add(s, "provider.ec2.launch_template_version", c->ec2_launch_template_version);
    add(s, "provider.ec2.image_id", c->ec2_image_id);
    add(s, "provider.ec2.instance_type", c->ec2_launch_template[0] ? "" : c->ec2_instance_type);
    add(s, "provider.ec2.subnet_id", c->ec2_subnet_id);
    add(s, "provider.ec2.security_group_ids", c->ec2_security_group_ids);
    add(s, "provider.ec2.key_name", c->ec2_key_name);
    add(s, "provider.ec2.agent_path", c->ec2_agent_path);
    add_int(s, "provider.ec2.agent_port", c->ec2_agent_port);
    add(s, "provider.ec2.manager_address", c->ec2_manager_address);
    add(s, "provider.ec2.service", c->ec2_service);
    add(s, "provider.ec2.service_health", svc ? c->ec2_service_health : "");
    add(s, "provider.ec2.service_requests", svc ? c->ec2_service_requests : "");
    add_int(s, "lb.elbv2.port", svc && c->lb_kind == LB_ELBV2 ? c->lb_elbv2_port : 0);
}

/* What the exec provider's launch command is run with: the command line
 * itself and the manager's address it is handed ({manager}). */
static void exec_fields(const struct asg_config *c, struct launch_spec *s)
{
    add(s, "provider.exec.launch", c->exec_launch);
    add(s, "provider.exec.manager_address", c->exec_manager_address);
}

static void digest(struct launch_spec *s)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        abort();
    /* Each key and value with its terminating NUL: no two different
     * lists hash the same bytes. */
    for (size_t i = 0; i < s->n; i++) {
        EVP_DigestUpdate(ctx, s->field[i].key, strlen(s->field[i].key) + 1);
        EVP_DigestUpdate(ctx, s->field[i].value, strlen(s->field[i].value) + 1);
    }
    if (EVP_DigestFinal_ex(ctx, s->digest, &len) != 1 || len != LAUNCH_SPEC_DIGEST)
        abort();
    EVP_MD_CTX_free(ctx);
}

void launch_spec_of(const struct asg_config *cfg, struct launch_spec *out)
{
    memset(out, 0, sizeof *out);
    add(out, "provider.kind", provider_kind_name(cfg->provider_kind));
    /* The agent's TLS arguments (local) or its join (ec2) follow it. */
    add(out, "tls.mode", cfg->tls_mode == TLS_PLAINTEXT ? "plaintext" : "auto");
    if (cfg->provider_kind == PROVIDER_LOCAL)
        local_fields(cfg, out);
    else if (cfg->provider_kind == PROVIDER_EC2)
        ec2_fields(cfg, out);
    else if (cfg->provider_kind == PROVIDER_EXEC)
        exec_fields(cfg, out);
    digest(out);
}

const char *launch_spec_changed(const struct launch_spec *a, const struct launch_spec *b)
{
    for (size_t i = 0; i < a->n || i < b->n; i++) {
        if (i >= a->n || i >= b->n)
            return (i < a->n ? a : b)->field[i].key;
        if (strcmp(a->field[i].key, b->field[i].key) != 0 || strcmp(a->field[i].value, b->field[i].value) != 0)
            return b->field[i].key;
    }
    return NULL;
}

uint64_t launch_spec_generation(uint64_t gen, const uint8_t digest_[LAUNCH_SPEC_DIGEST],
                                const struct launch_spec *s)
{
    if (gen == 0)
        return 1;
    return memcmp(digest_, s->digest, LAUNCH_SPEC_DIGEST) == 0 ? gen : gen + 1;
}

size_t launch_spec_save(const struct launch_spec *s, char *kv, size_t size)
{
    size_t at = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = strlen(s->field[i].key) + 1, v = strlen(s->field[i].value) + 1;
        if (at + k + v > size)
            return 0;
        memcpy(kv + at, s->field[i].key, k);
        memcpy(kv + at + k, s->field[i].value, v);
        at += k + v;
    }
    return at;
}

/* Is key one of spec s's? */
static bool spec_has(const struct launch_spec *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->field[i].key, key) == 0)
            return true;
    return false;
}

/* After the pairs were set: each key one of the spec cfg now has (no
 * other setting, such as where the provider's calls go or what
 * terminates, comes from a saved spec), and that spec the one digest
 * names (nothing changed since it was saved). */
static int applied_as_saved(const char *kv, size_t len, const uint8_t digest_[LAUNCH_SPEC_DIGEST],
                            const struct asg_config *cfg, char *err, size_t errsize)
{
    struct launch_spec got;
    launch_spec_of(cfg, &got);
    for (size_t at = 0; at < len;) { /* pairs already found whole */
        const char *key = kv + at;
        at += strlen(key) + 1;
        at += strlen(kv + at) + 1;
        if (!spec_has(&got, key)) {
            snprintf(err, errsize, "saved launch spec: '%.60s' is not a launch spec setting", key);
            return -1;
        }
    }
    if (memcmp(got.digest, digest_, LAUNCH_SPEC_DIGEST) != 0) {
        snprintf(err, errsize, "saved launch spec: its settings do not make the spec its digest names");
        return -1;
    }
    return 0;
}

int launch_spec_apply(const char *kv, size_t len, const uint8_t digest_[LAUNCH_SPEC_DIGEST], struct asg_config *cfg,
                      char *err, size_t errsize)
{
    size_t at = 0;
    while (at < len) {
        const char *key = kv + at;
        const char *kend = memchr(key, '\0', len - at);
        const char *val = kend ? kend + 1 : NULL;
        const char *vend = val && val < kv + len ? memchr(val, '\0', (size_t)(kv + len - val)) : NULL;
        if (!vend) {
            snprintf(err, errsize, "saved launch spec: a pair is cut short at byte %zu", at);
            return -1;
        }
        /* Listed as 0 when the spec had no service to register: nothing to set. */
        bool unset_port = strcmp(key, "lb.elbv2.port") == 0 && strcmp(val, "0") == 0;
        if (!unset_port && config_set_text(cfg, key, val, err, errsize) != 0)
            return -1;
        at = (size_t)(vend - kv) + 1;
    }
    return applied_as_saved(kv, len, digest_, cfg, err, errsize);
}
