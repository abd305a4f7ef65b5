/* The table and the provider made to agree, every
 * provider.*.reconcile_interval_ms (and at start, and when a new leader
 * takes over): rows whose instance is gone are dropped (the policy launches
 * replacements), instances the table lacks are adopted. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "controller.h"
#include "reconcile.h"
#include "instance_ops.h"
#include "rows.h"
#include "suspend.h"
#include "takeover.h"

static uint64_t id_number(const char *group, const char *id)
{
    size_t g = strlen(group);
    if (strncmp(id, group, g) != 0 || id[g] != '-')
        return 0;
    return strtoull(id + g + 1, NULL, 10);
}

/* Asks the provider whether row r's instance is gone. */
static bool row_gone(struct ctl *c, const struct table_row *r)
{
    struct provider_handle h;
    controller_handle_of_row(r, &h);
    return c->prov.ops->gone(&c->prov, &h);
}

static const struct provider_instance *match(const struct ctl *c, const struct table_row *r,
                                             const struct provider_instance *list, size_t n)
{
    char tok[72];
    provider_launch_token(&c->prov, r->id, tok, sizeof tok);
    for (size_t k = 0; k < n; k++)
        if (strcmp(list[k].id, r->id) == 0 || (list[k].token[0] && strcmp(list[k].token, tok) == 0))
            return &list[k];
    return NULL;
}

/* A row the provider knows better: the pid (local), or the instance id and
 * address of a launch whose answer was lost (ec2). */
static void update_from_provider(struct ctl *c, struct table_row *r, const struct provider_instance *pi)
{
    bool rename = strcmp(r->id, pi->id) != 0;
    if (!rename && r->pid == pi->pid && !(r->flags & ROW_F_UNCONFIRMED) && (r->addr[0] || !pi->addr[0]))
        return;
    if (rename)
        log_info("reconcile: %s is instance %s", r->id, pi->id);
    table_instance_known(c->t, r, pi->id, pi->pid, pi->pid_start, pi->addr, pi->token);
}

static void adopt(struct ctl *c, const struct provider_instance *pi, int64_t now)
{
    struct table_row *r = table_row_new(c->t, pi->id, RE_ADOPT, "adopted from the provider", 0,
                                        pi->token, now);
    if (!r) {
        log_limited(&c->adopt_limit, LOG_LVL_ERROR, "reconcile: table full, cannot adopt %s", pi->id);
        return;
    }
    table_instance_known(c->t, r, pi->id, pi->pid, pi->pid_start, pi->addr, NULL);
    ctl_ha_spec_of_adopted(c, r);
    ctl_instance_flags_of_adopted(c, r);
    if (pi->pid > 0)
        table_note(c->t, EV_LAUNCH, pi->id, LOG_LVL_INFO, "adopted %s (pid %d) found running without a row",
                   pi->id, pi->pid);
    else
        table_note(c->t, EV_LAUNCH, pi->id, LOG_LVL_INFO, "adopted %s found running without a row", pi->id);
    table_instance_number_seen(c->t, id_number(c->cfg.group_name, pi->id));
}

/* Instances found running are the group's own: the target rises to hold
 * them (within max) rather than scaling them straight back in; the policy
 * brings the size down on low load in its own time. */
static void keep_adopted(struct ctl *c)
{
    struct table_hdr *h = c->t->hdr;
    /* Under a rollout (taken over from the last leader) they are its
     * surge, or old ones it replaces: the target stays, or the new leader
     * would surge again on top of them. */
    if (c->ha.on && ha_may_act(&c->ha, now_ms()) && (h->rollout.phase == RO_RUNNING || h->rollout.phase == RO_PAUSED)) {
        log_info("reconcile: target %d kept under rollout %llu: the adopted instances count as its surge",
                 h->ctl.target, (unsigned long long)h->rollout.number);
        return;
    }
    struct asg_config eff = ctl_effective_config(c);
    int size = table_count(c->t, ROW_PENDING) + table_count(c->t, ROW_RUNNING) + table_count(c->t, ROW_LAUNCH_WAIT);
    int target = h->ctl.target || h->ctl.at_zero ? h->ctl.target : eff.desired_instances;
    int keep = size > eff.max_instances ? eff.max_instances : size;
    if (keep > target) {
        ctl_hold_target(c, keep);
        log_info("reconcile: target %d -> %d to keep the adopted instances", target, keep);
    }
}

/* Makes the table and the provider agree: rows whose instance is gone are
 * dropped (the policy launches replacements), instances the table lacks
 * are adopted. Nothing is orphaned, nothing forgotten. */
void ctl_reconcile(struct ctl *c)
{
    struct provider_instance *list = NULL;
    size_t n = 0;
    char err[512];
    c->last_reconcile = now_ms();
    if (ctl_suspended(c, SUSP_RECONCILE)) {
        log_debug("reconcile: suspended by an operator (asgctl resume reconcile)");
        return;
    }
    if (c->prov.ops->list(&c->prov, &list, &n, err, sizeof err) != 0) {
        log_warn("reconcile: cannot list the provider's instances: %s", err);
        return;
    }
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0) {
        free(list);
        return;
    }
    int64_t now = now_ms();
    bool *seen = calloc(n ? n : 1, sizeof *seen);
    if (!seen)
        abort();
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_FREE)
            continue;
        const struct provider_instance *pi = match(c, r, list, n);
        if (pi) {
            seen[pi - list] = true;
            if (r->state != ROW_TERMINATING && r->state != ROW_TERM_WAIT)
                update_from_provider(c, r, pi);
        } else if (r->state != ROW_TERMINATING && !(r->flags & ROW_F_UNCONFIRMED) && row_gone(c, r)) {
            ctl_row_free(c, r, "the provider no longer has it");
        }
    }
    int adopted = 0;
    for (size_t k = 0; k < n; k++)
        if (!seen[k] && list[k].alive && !table_find(c->t, list[k].id)) {
            adopt(c, &list[k], now);
            adopted++;
        }
    if (adopted)
        keep_adopted(c);
    table_unlock(c->t);
    free(seen);
    free(list);
}

