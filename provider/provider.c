/* The provider registry: every provider.kind this build can run, and the
 * calls that go through it. Adding a provider is a file of its own in
 * provider/, its line below and its keys in common/config.c. */
#include "provider.h"
#include "../common/pki.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct provider_def *const registry[] = {
    &provider_local,
    &provider_ec2,
    &provider_exec,
};

#define REGISTRY_LEN (sizeof registry / sizeof registry[0])

const struct provider_def *provider_def_at(size_t i)
{
    return i < REGISTRY_LEN ? registry[i] : NULL;
}

const struct provider_def *provider_def_of(int kind)
{
    for (size_t i = 0; i < REGISTRY_LEN; i++)
        if (registry[i]->kind == kind)
            return registry[i];
    return NULL;
}

bool provider_has(const struct asg_config *cfg, unsigned caps)
{
    const struct provider_def *d = provider_def_of(cfg->provider_kind);
    return d && (d->caps & caps) == caps;
}

static const struct provider_def *def_or_local(const struct asg_config *cfg)
{
    const struct provider_def *d = provider_def_of(cfg->provider_kind);
    return d ? d : &provider_local;
}

int provider_kill_timeout_ms(const struct asg_config *cfg)
{
    return def_or_local(cfg)->kill_timeout_ms(cfg);
}

int provider_reconcile_ms(const struct asg_config *cfg, bool standby)
{
    return def_or_local(cfg)->reconcile_ms(cfg, standby);
}

/* "local, ec2": the kinds this build has, for an error message. */
static void known_kinds(char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < REGISTRY_LEN && n < size; i++) {
        int w = snprintf(out + n, size - n, "%s%s", i ? ", " : "", registry[i]->ops->name);
        n += w > 0 ? (size_t)w : 0;
    }
}

int provider_init(struct provider *p, const struct asg_config *cfg, char *err, size_t errsize)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    const struct provider_def *d = provider_def_of(cfg->provider_kind);
    if (!d) {
        char known[128];
        known_kinds(known, sizeof known);
        snprintf(err, errsize, "provider.kind %d: no such provider in this build (it has: %s)",
                 cfg->provider_kind, known);
        return -1;
    }
    p->ops = d->ops;
    p->abort_flag = &g_sig.term;
    p->seed = (uint64_t)getpid() * 2654435761u ^ (uint64_t)now_ms();
    return d->init(p, err, errsize);
}

void provider_free(struct provider *p)
{
    const struct provider_def *d = p->cfg ? provider_def_of(p->cfg->provider_kind) : NULL;
    if (d && d->free)
        d->free(p);
    pki_ca_close(p->ca);
    p->ca = NULL;
}
