/* The balancer follows the group (see follow.h). */
#include "follow.h"
#include "../common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_member_addr(const struct asg_config *cfg, const char *id, const char *addr,
                    const char *service_addr, char *out, size_t size)
{
    out[0] = '\0';
    if (cfg->lb_kind == LB_HAPROXY) {
        copy_str(out, size, service_addr);
    } else if (cfg->lb_kind == LB_ELBV2 && strncmp(id, "i-", 2) == 0 && addr[0]) {
        /* A target is an instance id and a port; the address is said for
         * people only. */
        size_t host = strcspn(addr, ":");
        snprintf(out, size, "%.*s:%d", (int)(host < 40 ? host : 40), addr, cfg->lb_elbv2_port);
    }
}

static void note(const struct lb_recorder *rec, const char *instance, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(const struct lb_recorder *rec, const char *instance, int level, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rec->note(rec->ctx, instance, level, msg);
}

static void plan_add(struct lb_plan *p, int action, uint32_t slot, uint64_t incarnation,
                     const char *name, const char *addr)
{
    p->tasks = array_room(p->tasks, p->n, &p->cap, sizeof *p->tasks);
    struct lb_task *k = &p->tasks[p->n++];
    memset(k, 0, sizeof *k);
    k->action = action;
    k->slot = slot;
    k->incarnation = incarnation;
    copy_str(k->name, sizeof k->name, name);
    copy_str(k->addr, sizeof k->addr, addr);
}

static const struct lb_member *find_member(const struct lb_member *m, size_t nm, const char *name)
{
    for (size_t i = 0; i < nm; i++)
        if (strcmp(m[i].name, name) == 0)
            return &m[i];
    return NULL;
}

/* Out of the balancer: drained (no new connections), then removed once
 * its connections are done or the drain timeout is over; one the
 * balancer no longer lists is out already. */
static void plan_out(const struct asg_config *cfg, const struct lb_instance *r, const struct lb_member *m,
                     const char *addr, bool drain_over, int64_t now, const struct lb_recorder *rec,
                     struct lb_plan *p)
{
    if (!m) {
        if (r->lb_state == LBS_ADDED || r->lb_state == LBS_DRAINING)
            rec->state(rec->ctx, r->slot, r->incarnation, LBS_REMOVED, now);
    } else if (r->lb_state == LBS_ADDED) {
        plan_add(p, LBA_DRAIN, r->slot, r->incarnation, r->id, addr);
    } else if (r->lb_state != LBS_DRAINING || m->sessions == 0 || drain_over ||
               now - r->lb_since_ms >= cfg->lb_drain_timeout_ms) {
        if (r->lb_state == LBS_DRAINING && m->sessions > 0)
            note(rec, r->id, LOG_LVL_WARN, "%s still has %u connection(s) after draining %lld ms: removing it",
                 r->id, m->sessions, (long long)(now - r->lb_since_ms));
        plan_add(p, LBA_REMOVE, r->slot, r->incarnation, r->id, addr);
    }
}

/* What one instance needs from the balancer. */
static void plan_row(const struct asg_config *cfg, const struct lb_instance *r, const struct lb_member *m,
                     bool drain_over, int64_t now, const struct lb_recorder *rec, struct lb_plan *p)
{
    uint32_t slot = r->slot;
    char addr[INSTANCE_ADDR_MAX];
    lb_member_addr(cfg, r->id, r->addr, r->service_addr, addr, sizeof addr);
    /* On standby (running or not): out, as a terminating one goes out;
     * back in as any running one once it leaves standby. */
    if (r->standby && (r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY)) {
        plan_out(cfg, r, m, addr, drain_over, now, rec, p);
        return;
    }
    switch (r->state) {
    case ROW_RUNNING:
        /* Added once; an operator may then take it out by hand in the
         * balancer, and that stands. Lost (a restarted balancer) or
         * drained by us while it was unhealthy: in again. */
        if (addr[0] && (!m || r->lb_state != LBS_ADDED)) {
            if (!m && r->lb_state == LBS_ADDED)
                note(rec, r->id, LOG_LVL_WARN, "balancer lost %s (restarted?): adding it again", r->id);
            plan_add(p, LBA_ADD, slot, r->incarnation, r->id, addr);
        }
        break;
    case ROW_UNHEALTHY:
        /* Failing: no new connections while it waits to be replaced. */
        if (r->lb_state == LBS_ADDED && m)
            plan_add(p, LBA_DRAIN, slot, r->incarnation, r->id, addr);
        break;
    case ROW_TERMINATING:
    case ROW_TERM_WAIT: /* out already (released by the step below); if it is back, out again */
        plan_out(cfg, r, m, addr, drain_over, now, rec, p);
        break;
    default:
        break;
    }
}

/* Members named like our instances that no row has: left by an instance
 * whose row is gone (a manager restarted on a new table). Drained first,
 * removed once idle. */
static bool has_instance(const struct lb_instance *in, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(in[i].id, name) == 0)
            return true;
    return false;
}

static void plan_strays(const struct asg_config *cfg, const struct lb_instance *in, size_t n,
                        const struct lb_member *m, size_t nm, const struct lb_recorder *rec,
                        struct lb_plan *p)
{
    for (size_t i = 0; i < nm; i++) {
        if (!lb_name_is_ours(cfg->group_name, m[i].name) || has_instance(in, n, m[i].name))
            continue;
        if (m[i].admin == LBM_READY) {
            note(rec, m[i].name, LOG_LVL_INFO,
                 "balancer has %s, an instance of this group the table does not: draining it", m[i].name);
            plan_add(p, LBA_DRAIN, LB_NO_ROW, 0, m[i].name, m[i].addr);
        } else if (m[i].sessions == 0) {
            plan_add(p, LBA_REMOVE, LB_NO_ROW, 0, m[i].name, m[i].addr);
        }
    }
}

void lb_plan_step(const struct asg_config *cfg, const struct lb_instance *in, size_t n,
                  const struct lb_member *m, size_t nm, bool strays, bool drain_over, int64_t now,
                  const struct lb_recorder *rec, struct lb_plan *p)
{
    p->n = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lb_instance *r = &in[i];
        if (r->state == ROW_FREE)
            continue;
        const struct lb_member *mm = find_member(m, nm, r->id);
        if (mm)
            rec->counted(rec->ctx, r, mm, now);
        plan_row(cfg, r, mm, drain_over, now, rec, p);
    }
    if (strays)
        plan_strays(cfg, in, n, m, nm, rec, p);
}

void lb_plan_weight(struct lb_plan *p, const struct lb_instance *in, const char *addr, uint32_t from,
                    uint32_t weight)
{
    plan_add(p, LBA_WEIGHT, in->slot, in->incarnation, in->id, addr);
    p->tasks[p->n - 1].from = from;
    p->tasks[p->n - 1].weight = weight;
}

static int run_task(struct lb *lb, struct lb_task *k)
{
    switch (k->action) {
    case LBA_ADD:
        return lb->ops->add(lb, k->name, k->addr, k->err, sizeof k->err);
    case LBA_DRAIN:
        return lb->ops->drain(lb, k->name, k->addr, k->err, sizeof k->err);
    case LBA_REMOVE:
        return lb->ops->remove(lb, k->name, k->addr, k->err, sizeof k->err);
    default:
        if (!lb->ops->set_weight) {
            snprintf(k->err, sizeof k->err, "balancer %s has no weights", lb->ops->name);
            return -1;
        }
        return lb->ops->set_weight(lb, k->name, k->addr, k->weight, k->err, sizeof k->err);
    }
}

int lb_run(struct lb *lb, struct lb_plan *p, char *err, size_t errsize)
{
    int failed = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct lb_task *k = &p->tasks[i];
        if (lb->abort_flag && *lb->abort_flag && (k->action == LBA_ADD || k->action == LBA_WEIGHT)) {
            k->result = -1; /* stopping: nothing new goes in */
            snprintf(k->err, sizeof k->err, "the manager is stopping");
            continue;
        }
        k->result = run_task(lb, k);
        if (k->result != 0 && failed++ == 0)
            copy_str(err, errsize, k->err);
    }
    return failed;
}

static const char *const verbs[] = {"add", "drain", "remove", "set the weight of"};
static const uint32_t outcome[] = {LBS_ADDED, LBS_DRAINING, LBS_REMOVED};

void lb_record(struct lb_plan *p, const struct lb_recorder *rec, int64_t now)
{
    /* Process-wide because it guards the process's one log (a balancer
     * failing every step must not fill the disk). */
    static struct log_limit limit;
    for (size_t i = 0; i < p->n; i++) {
        struct lb_task *k = &p->tasks[i];
        if (k->result != 0) {
            log_limited(&limit, LOG_LVL_WARN, "balancer: cannot %s %s: %s (will retry)",
                        verbs[k->action], k->name, k->err);
            continue;
        }
        if (k->action == LBA_WEIGHT) {
            if (rec->weighted)
                rec->weighted(rec->ctx, k, now);
            continue;
        }
        if (k->slot == LB_NO_ROW) {
            note(rec, k->name, LOG_LVL_INFO, "balancer: %s %s (no instance of ours)",
                 k->action == LBA_DRAIN ? "drained" : "removed", k->name);
            continue;
        }
        /* Recorded whatever the instance did meanwhile (if it is still
         * the one planned for): it is what the balancer now has, and the
         * next step acts on it. */
        if (!rec->state(rec->ctx, k->slot, k->incarnation, outcome[k->action], now))
            continue;
        note(rec, k->name, LOG_LVL_INFO, "balancer: %s %s%s%s",
             k->action == LBA_ADD ? "added" : k->action == LBA_DRAIN ? "draining" : "removed", k->name,
             k->action == LBA_ADD ? " at " : "", k->action == LBA_ADD ? k->addr : "");
    }
    p->n = 0;
}

void lb_plan_free(struct lb_plan *p)
{
    free(p->tasks);
    memset(p, 0, sizeof *p);
}
