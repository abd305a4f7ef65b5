/* Leader election and fencing on etcd (see ha.h). */
#define _GNU_SOURCE
#include "ha.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/util.h"

#define RETRY_MS 250

/* The call timeout: a fifth of the TTL, so a slow etcd cannot hold the
 * controller past its renewal deadline on one call. */
static long call_timeout(const struct asg_config *cfg)
{
    long t = cfg->ha_lease_ttl_ms / 5;
    return t < 200 ? 200 : t;
}

/* What the group publishes of its nonce: a digest (etcd's readers learn
 * nothing they could put in an agent's environment), 32 hex digits. */
static void identity_of(const char *group_nonce, char out[GROUP_NONCE_HEX + 1])
{
    static const char label[] = "asg group identity v1\n";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, label, sizeof label - 1) &&
              EVP_DigestUpdate(ctx, group_nonce, strlen(group_nonce)) && EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    out[0] = '\0';
    for (unsigned i = 0; ok && i < GROUP_NONCE_HEX / 2 && i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int ha_open(struct ha *h, const struct asg_config *cfg, int64_t saved_lease, uint64_t table_nonce,
            const char *group_nonce, char *err, size_t errsize)
{
    memset(h, 0, sizeof *h);
    if (!cfg->ha_etcd[0])
        return 0;
    if (etcd_open(&h->etcd, cfg->ha_etcd, cfg->ha_tls_ca, cfg->ha_tls_cert, cfg->ha_tls_key,
                  call_timeout(cfg), err, errsize) != 0)
        return -1;
    h->on = true;
    if (cfg->ha_id[0]) {
        copy_str(h->id, sizeof h->id, cfg->ha_id);
    } else {
        char host[48] = "";
        gethostname(host, sizeof host - 1);
        size_t n = strlen(cfg->monitor_listen);
        /* Port 0 is any port: the pid tells managers of one host apart. */
        if (n > 2 && strcmp(cfg->monitor_listen + n - 2, ":0") == 0)
            snprintf(h->id, sizeof h->id, "%.47s/pid%d", host, (int)getppid());
        else
            snprintf(h->id, sizeof h->id, "%.47s/%.15s", host, cfg->monitor_listen);
    }
    const char *p = cfg->ha_prefix, *g = cfg->group_name;
    snprintf(h->key_leader, sizeof h->key_leader, "%.63s/%.63s/leader", p, g);
    snprintf(h->key_state, sizeof h->key_state, "%.63s/%.63s/state", p, g);
    snprintf(h->members_prefix, sizeof h->members_prefix, "%.63s/%.63s/members/", p, g);
    snprintf(h->key_member, sizeof h->key_member, "%.140s%.50s", h->members_prefix, h->id);
    snprintf(h->key_nonce, sizeof h->key_nonce, "%.63s/%.63s/nonce", p, g);
    snprintf(h->key_identity, sizeof h->key_identity, "%.63s/%.63s/identity", p, g);
    if (group_nonce && group_nonce[0])
        identity_of(group_nonce, h->identity);
    h->identity_ok = !h->identity[0];
    h->table_nonce = table_nonce;
    h->lease = saved_lease;
    h->ttl_ms = cfg->ha_lease_ttl_ms;
    h->role = HA_STANDBY;
    h->standby_every_ms = cfg->evaluation_interval_ms < h->ttl_ms / 3 ? cfg->evaluation_interval_ms : h->ttl_ms / 3;
    if (h->standby_every_ms < 100)
        h->standby_every_ms = 100;
    return 0;
}

static void failed(struct ha *h, const char *what, const char *why, int64_t now)
{
    if (h->etcd_up || !h->err[0])
        log_warn("ha: %s: %s", what, why);
    h->etcd_up = false;
    snprintf(h->err, sizeof h->err, "%s: %.150s", what, why);
    h->next_step_ms = now + RETRY_MS;
}

/* Renews the lease we hold, or gets a new one. */
static int hold_lease(struct ha *h, char *err, size_t errsize)
{
    int64_t sent = now_ms();
    if (h->lease) {
        int left = 0;
        if (etcd_lease_keepalive(&h->etcd, h->lease, &left, err, errsize) != 0)
            return -1;
        if (left > 0) {
            h->renewed_ms = sent;
            return 0;
        }
        log_warn("ha: lease %llx has expired", (unsigned long long)h->lease);
        h->lease = 0;
        h->role = HA_STANDBY;
    }
    int ttl_s = (h->ttl_ms + 999) / 1000, granted = 0;
    sent = now_ms();
    if (etcd_lease_grant(&h->etcd, ttl_s, &h->lease, &granted, err, errsize) != 0)
        return -1;
    h->ttl_ms = granted * 1000;
    h->renewed_ms = sent;
    h->member_put = false;
    return 0;
}

/* "ID ADDR", the leader key's value. */
static void read_holder(struct ha *h, const struct etcd_kv *kv)
{
    char id[64] = "", addr[64] = "";
    if (sscanf(kv->value, "%63s %63s", id, addr) < 1)
        copy_str(id, sizeof id, "?");
    copy_str(h->leader, sizeof h->leader, id);
    copy_str(h->leader_addr, sizeof h->leader_addr, addr);
}

static int campaign(struct ha *h, char *err, size_t errsize)
{
    char value[140];
    snprintf(value, sizeof value, "%s %s", h->id, h->self_addr);
    bool created = false;
    struct etcd_kv holder;
    int64_t rev = 0;
    if (etcd_create_or_get(&h->etcd, h->key_leader, value, h->lease, &created, &holder, &rev, err, errsize) != 0)
        return -1;
    if (created) {
        h->role = HA_LEADER;
        h->term = rev;
        copy_str(h->leader, sizeof h->leader, h->id);
        copy_str(h->leader_addr, sizeof h->leader_addr, h->self_addr);
        return 0;
    }
    if (!holder.found) { /* it went between the compare and the read: next time */
        h->role = HA_STANDBY;
        return 0;
    }
    read_holder(h, &holder);
    h->term = holder.create_rev;
    h->role = holder.lease == h->lease ? HA_LEADER : HA_STANDBY;
    return 0;
}

/* The group's nonce: ours if we are the first, else the first's. */
static int group_nonce(struct ha *h, char *err, size_t errsize)
{
    char mine[24];
    snprintf(mine, sizeof mine, "%016llx", (unsigned long long)h->table_nonce);
    bool created = false;
    struct etcd_kv held;
    int64_t rev;
    if (etcd_create_or_get(&h->etcd, h->key_nonce, mine, 0, &created, &held, &rev, err, errsize) != 0)
        return -1;
    const char *v = created ? mine : held.value;
    char *end;
    unsigned long long n = strtoull(v, &end, 16);
    if (strlen(v) != 16 || *end || n == 0) {
        snprintf(err, errsize, "%s holds '%.40s', not a nonce of 16 hex digits", h->key_nonce, v);
        return -1;
    }
    h->nonce = n;
    return 0;
}

/* Ours must be the group's (the first manager's): else we could neither
 * adopt nor stop the agents we would lead, and must not campaign. */
static int group_identity(struct ha *h, char *err, size_t errsize)
{
    bool created = false;
    struct etcd_kv held;
    int64_t rev;
    if (etcd_create_or_get(&h->etcd, h->key_identity, h->identity, 0, &created, &held, &rev, err,
                           errsize) != 0)
        return -1;
    if (!created && strcmp(held.value, h->identity) != 0) {
        snprintf(err, errsize, "our tls.dir/%s is not the group's (%.100s says another): copy tls.dir "
                 "from the first manager; not campaigning", GROUP_NONCE_FILE, h->key_identity);
        return -1;
    }
    h->identity_ok = true;
    return 0;
}

/* Every manager's monitor address, ours first: what agents are told. */
static int read_members(struct ha *h, char *err, size_t errsize)
{
    char all[256];
    if (etcd_values_under(&h->etcd, h->members_prefix, all, sizeof all, 8, err, errsize) != 0)
        return -1;
    copy_str(h->managers, sizeof h->managers, h->self_addr);
    char *save;
    char why[128];
    /* A member's value goes to agents' command lines and EC2 user data:
     * only a HOST:PORT is taken. */
    for (char *s = strtok_r(all, ",", &save); s; s = strtok_r(NULL, ",", &save))
        if (strcmp(s, h->self_addr) != 0 && valid_address(s, strlen(s), false, why, sizeof why) &&
            strlen(h->managers) + strlen(s) + 2 < sizeof h->managers)
            snprintf(h->managers + strlen(h->managers), sizeof h->managers - strlen(h->managers), ",%s", s);
    return 0;
}

/* One pass with etcd, in its order: the lease, the group's nonce, our
 * member key, the leader key, the members. NULL when all went through,
 * else what failed (err says why). */
static const char *talk_to_etcd(struct ha *h, char *err, size_t errsize)
{
    if (hold_lease(h, err, errsize) != 0)
        return "keeping the lease";
    if (!h->nonce && group_nonce(h, err, errsize) != 0)
        return "reading the group's nonce";
    if (!h->identity_ok && group_identity(h, err, errsize) != 0)
        return "checking the group's identity";
    if (!h->member_put && h->self_addr[0]) {
        if (etcd_put(&h->etcd, h->key_member, h->self_addr, h->lease, err, errsize) != 0)
            return "writing our member key";
        h->member_put = true;
    }
    if (campaign(h, err, errsize) != 0)
        return "campaigning for the leader key";
    if (read_members(h, err, errsize) != 0)
        return "reading the members";
    return NULL;
}

void ha_step(struct ha *h, const char *self_addr, int64_t now)
{
    char err[256];
    if (!h->on)
        return;
    if (strcmp(h->self_addr, self_addr) != 0) {
        copy_str(h->self_addr, sizeof h->self_addr, self_addr);
        h->member_put = false;
    }
    const char *what = talk_to_etcd(h, err, sizeof err);
    if (what) {
        failed(h, what, err, now);
        return;
    }
    if (!h->etcd_up && h->err[0])
        log_info("ha: etcd answers again");
    h->etcd_up = true;
    h->err[0] = '\0';
    h->next_step_ms = now_ms() + (h->role == HA_LEADER ? h->ttl_ms / 3 : h->standby_every_ms);
}

bool ha_may_act(const struct ha *h, int64_t now)
{
    if (!h->on)
        return true;
    return h->role == HA_LEADER && h->lease && now < h->renewed_ms + h->ttl_ms - h->ttl_ms / 5;
}

enum ha_role ha_role_now(const struct ha *h, int64_t now)
{
    if (!h->on)
        return HA_OFF;
    return ha_may_act(h, now) ? HA_LEADER : HA_STANDBY;
}

bool ha_guard(struct ha *h, const char *state, int64_t now)
{
    if (!h->on)
        return true;
    if (!ha_may_act(h, now))
        return false;
    char err[256];
    bool ok = false;
    if (etcd_guarded_put(&h->etcd, h->key_leader, h->term, h->key_state, state, &ok, err, sizeof err) != 0) {
        failed(h, "writing the group's state", err, now);
        return false;
    }
    if (!ok) {
        log_warn("ha: the leader key is no longer ours (term %lld): making no provider call",
                 (long long)h->term);
        h->role = HA_STANDBY;
        h->next_step_ms = now;
    }
    return ok;
}

void ha_read_state(struct ha *h, char *out, size_t size)
{
    char err[256];
    bool found = false;
    out[0] = '\0';
    if (h->on && etcd_get_text(&h->etcd, h->key_state, out, size, &found, err, sizeof err) != 0) {
        log_warn("ha: reading the last leader's state: %s: taken as none", err);
        out[0] = '\0';
    }
}

void ha_close(struct ha *h)
{
    if (!h->on)
        return;
    char err[256];
    if (h->lease && h->role == HA_LEADER && etcd_lease_revoke(&h->etcd, h->lease, err, sizeof err) == 0)
        log_info("ha: lease revoked: a standby leads at once");
    etcd_close(&h->etcd);
    h->on = false;
}
