/* ControllerASG: every evaluation period it snapshots the table, asks the
 * policy for the group's size, and converges: launches, terminates,
 * replaces unhealthy instances and instances that never registered, and
 * reconciles the table with what the provider reports. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../supervisor/roles.h"
#include "policy.h"
#include "provider.h"

#define RECONCILE_EVERY_MS 10000
#define LOCK_WAIT_MS 2000

struct ctl {
    struct table *t;
    struct asg_config cfg;
    uint64_t cfg_gen;
    struct provider prov;
    int launch_failures;
    int64_t last_failure_ms;
    int64_t launch_not_before;
    int64_t last_reconcile;
    bool eval_now;
};

static void row_free(struct ctl *c, struct table_row *r, const char *why)
{
    log_info("instance %s removed from the group: %s", r->id, why);
    row_write_begin(r);
    r->state = ROW_FREE;
    row_write_end(c->t, r);
}

/* Starts stopping an instance; the row stays until the provider says the
 * instance is gone, so nothing is forgotten while it shuts down. */
static void start_terminate(struct ctl *c, struct table_row *r, const char *why, int64_t now)
{
    log_info("terminating %s (%s, pid %d): %s", r->id, row_state_name(r->state), r->pid, why);
    row_write_begin(r);
    row_set_state(r, ROW_TERMINATING, why, now);
    r->term_deadline_ms = now + c->cfg.local_kill_timeout_ms;
    row_write_end(c->t, r);
    char err[256];
    if (c->prov.ops->terminate(&c->prov, r, false, err, sizeof err) != 0)
        log_warn("terminate %s: %s (will retry)", r->id, err);
}

static void launch_backoff(struct ctl *c, int64_t now)
{
    c->launch_failures++;
    c->last_failure_ms = now;
    int shift = c->launch_failures > 7 ? 7 : c->launch_failures - 1;
    int delay = 500 << shift; /* 0.5 s doubling to 64 s */
    c->launch_not_before = now + delay;
    log_warn("launch failures in a row: %d; next launch in %d ms", c->launch_failures, delay);
}

/* Boot timeouts, unhealthy replacements, and terminations in progress. */
static void sweep(struct ctl *c, int64_t now)
{
    struct table_hdr *h = c->t->hdr;
    char why[96];
    for (uint32_t i = 0; i < h->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        switch (r->state) {
        case ROW_PENDING:
            if (now - r->launch_ms > c->cfg.boot_timeout_ms) {
                snprintf(why, sizeof why, "did not register within %d ms", c->cfg.boot_timeout_ms);
                start_terminate(c, r, why, now);
                launch_backoff(c, now);
            }
            break;
        case ROW_UNHEALTHY:
            snprintf(why, sizeof why, "replacing unhealthy instance (%.60s)", r->reason);
            start_terminate(c, r, why, now);
            hdr_write_begin(c->t);
            h->replaced++;
            hdr_write_end(c->t);
            break;
        case ROW_TERMINATING:
            if (c->prov.ops->gone(&c->prov, r)) {
                row_free(c, r, r->reason);
            } else if (now >= r->term_deadline_ms) {
                char err[256];
                log_warn("%s did not stop within %d ms; killing it", r->id,
                         c->cfg.local_kill_timeout_ms);
                if (c->prov.ops->terminate(&c->prov, r, true, err, sizeof err) != 0)
                    log_warn("kill %s: %s", r->id, err);
                row_write_begin(r);
                r->term_deadline_ms = now + c->cfg.local_kill_timeout_ms;
                row_write_end(c->t, r);
            }
            break;
        default:
            break;
        }
    }
}

static void launch_one(struct ctl *c, const char *why, int64_t now)
{
    struct table_hdr *h = c->t->hdr;
    char id[TABLE_ID_MAX];
    hdr_write_begin(c->t);
    uint64_t n = ++h->next_instance;
    hdr_write_end(c->t);
    snprintf(id, sizeof id, "%s-%llu", c->cfg.group_name, (unsigned long long)n);
    /* The row exists before the instance does: if we die in between, the
     * reconciliation finds the instance by its id. */
    struct table_row *r = table_alloc_row(c->t, id);
    if (!r) {
        log_error("cannot launch: the shared table is full (%u rows)", h->capacity);
        launch_backoff(c, now);
        return;
    }
    r->launch_ms = now;
    row_set_state(r, ROW_PENDING, why, now);
    row_write_end(c->t, r);

    struct provider_instance pi;
    char err[256];
    if (c->prov.ops->launch(&c->prov, id, &pi, err, sizeof err) != 0) {
        log_error("launch %s failed: %s", id, err);
        row_free(c, r, "launch failed");
        launch_backoff(c, now);
        return;
    }
    row_write_begin(r);
    r->pid = pi.pid;
    r->pid_start = pi.pid_start;
    if (pi.addr[0])
        copy_str(r->addr, sizeof r->addr, pi.addr);
    row_write_end(c->t, r);
    log_info("launched %s (pid %d): %s", id, pi.pid, why);
}

/* Picks the newest pending-or-running instance: it has done the least
 * work and is the last to have warmed up. */
static struct table_row *newest(struct ctl *c)
{
    struct table_row *best = NULL;
    for (uint32_t i = 0; i < c->t->hdr->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if ((r->state == ROW_PENDING || r->state == ROW_RUNNING) &&
            (!best || r->launch_ms > best->launch_ms))
            best = r;
    }
    return best;
}

static void converge(struct ctl *c, const struct policy_input *in, int target,
                     const char *reason, int64_t now)
{
    int size = in->running + in->pending;
    char why[256];
    if (size < target) {
        /* Agents need the monitor's address; wait for it rather than
         * count a failed launch. */
        if (now < c->launch_not_before || !c->prov.manager_addr[0])
            return;
        snprintf(why, sizeof why, "group at %d, target %d%s%.150s", size, target,
                 reason[0] ? ": " : "", reason);
        for (int k = size; k < target && now >= c->launch_not_before; k++)
            launch_one(c, why, now);
    } else if (size > target) {
        snprintf(why, sizeof why, "scale in: group at %d, target %d%s%.150s", size, target,
                 reason[0] ? ": " : "", reason);
        for (int k = target; k < size; k++) {
            struct table_row *r = newest(c);
            if (!r)
                break;
            start_terminate(c, r, why, now);
        }
    }
}

static void evaluate(struct ctl *c)
{
    if (table_lock(c->t, LOCK_WAIT_MS) != 0)
        return;
    fault_point_locked("controller", c->t);
    struct table_hdr *h = c->t->hdr;
    int64_t now = now_ms();
    sweep(c, now);
    struct policy_input in;
    memset(&in, 0, sizeof in);
    for (uint32_t i = 0; i < h->capacity; i++) {
        const struct table_row *r = &c->t->rows[i];
        policy_input_add(&in, r, &c->cfg, now);
        /* An instance that came up since the last failure: launches work. */
        if (c->launch_failures && r->state == ROW_RUNNING && r->running_since_ms > c->last_failure_ms)
            c->launch_failures = 0;
    }
    struct ctl_state st = h->ctl;
    struct decision d = policy_decide(&c->cfg, &in, &st, now);
    if (d.change > 0)
        log_info("scale out: target %d -> %d: %s", d.target - d.change, d.target, d.reason);
    else if (d.change < 0)
        log_info("scale in: target %d -> %d: %s", d.target - d.change, d.target, d.reason);
    if (!h->draining)
        converge(c, &in, d.target, d.reason, now);
    hdr_write_begin(c->t);
    h->ctl = st;
    if (d.change > 0)
        h->scale_out++;
    else if (d.change < 0)
        h->scale_in++;
    h->last_eval_ms = now;
    h->evaluations++;
    hdr_write_end(c->t);
    table_unlock(c->t);
}

static uint64_t id_number(const char *group, const char *id)
{
    size_t g = strlen(group);
    if (strncmp(id, group, g) != 0 || id[g] != '-')
        return 0;
    return strtoull(id + g + 1, NULL, 10);
}

/* Makes the table and the provider agree: rows whose instance is gone are
 * dropped (the policy launches replacements), instances the table lacks
 * are adopted. Nothing is orphaned, nothing forgotten. */
static void reconcile(struct ctl *c)
{
    struct provider_instance *list = NULL;
    size_t n = 0;
    char err[256];
    if (c->prov.ops->list(&c->prov, &list, &n, err, sizeof err) != 0) {
        log_warn("reconcile: %s", err);
        return;
    }
    if (table_lock(c->t, LOCK_WAIT_MS) != 0) {
        free(list);
        return;
    }
    int64_t now = now_ms();
    struct table_hdr *h = c->t->hdr;
    bool *seen = calloc(n ? n : 1, sizeof *seen);
    if (!seen)
        abort();
    for (uint32_t i = 0; i < h->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_FREE || r->state == ROW_TERMINATING)
            continue;
        size_t k = 0;
        while (k < n && strcmp(list[k].id, r->id) != 0)
            k++;
        if (k == n) {
            if (c->prov.ops->gone(&c->prov, r))
                row_free(c, r, "the provider no longer has it");
            continue;
        }
        seen[k] = true;
        if (r->pid != list[k].pid) {
            row_write_begin(r);
            r->pid = list[k].pid;
            r->pid_start = list[k].pid_start;
            row_write_end(c->t, r);
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (seen[k] || table_find(c->t, list[k].id))
            continue;
        struct table_row *r = table_alloc_row(c->t, list[k].id);
        if (!r) {
            log_error("reconcile: table full, cannot adopt %s", list[k].id);
            continue;
        }
        r->pid = list[k].pid;
        r->pid_start = list[k].pid_start;
        r->launch_ms = now;
        copy_str(r->addr, sizeof r->addr, list[k].addr);
        row_set_state(r, ROW_PENDING, "adopted from the provider", now);
        row_write_end(c->t, r);
        log_info("adopted %s (pid %d) found running without a row", list[k].id, list[k].pid);
        uint64_t num = id_number(c->cfg.group_name, list[k].id);
        if (num >= h->next_instance) {
            hdr_write_begin(c->t);
            h->next_instance = num;
            hdr_write_end(c->t);
        }
    }
    table_unlock(c->t);
    free(seen);
    free(list);
    c->last_reconcile = now;
}

/* Agents this controller started are its children: a dead one is known
 * at once, before any probe misses. */
static void reap_agents(struct ctl *c)
{
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
        if (pid < 0)
            continue;
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "agent killed by signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof how, "agent exited with status %d", WEXITSTATUS(status));
        if (table_lock(c->t, LOCK_WAIT_MS) != 0)
            continue;
        int64_t now = now_ms();
        for (uint32_t i = 0; i < c->t->hdr->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->pid != pid || (r->state != ROW_PENDING && r->state != ROW_RUNNING))
                continue;
            log_warn("instance %s (pid %d): %s; marking unhealthy", r->id, (int)pid, how);
            if (r->state == ROW_PENDING)
                launch_backoff(c, now);
            row_write_begin(r);
            row_set_state(r, ROW_UNHEALTHY, how, now);
            row_write_end(c->t, r);
            c->eval_now = true;
        }
        table_unlock(c->t);
    }
}

/* Stops every instance and waits for them, within the kill timeout. */
static void stop_all(struct ctl *c)
{
    if (table_lock(c->t, LOCK_WAIT_MS) != 0)
        return;
    int64_t now = now_ms();
    for (uint32_t i = 0; i < c->t->hdr->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_PENDING || r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY)
            start_terminate(c, r, "manager stopping", now);
    }
    table_unlock(c->t);
    int64_t end = now + 2LL * c->cfg.local_kill_timeout_ms + 500;
    for (;;) {
        reap_agents(c);
        if (table_lock(c->t, LOCK_WAIT_MS) != 0)
            return;
        sweep(c, now_ms());
        int left = table_count(c->t, ROW_TERMINATING);
        table_unlock(c->t);
        if (left == 0 || now_ms() > end)
            break;
        poll(NULL, 0, 20);
    }
}

int controller_main(struct table *t, const struct asg_config *cfg0)
{
    struct ctl c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.cfg = *cfg0;
    role_config_refresh(t, &c.cfg, &c.cfg_gen);
    char err[256];
    if (provider_init(&c.prov, &c.cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return ASG_EXIT_FATAL;
    }
    int sigfd = signals_install(true);
    log_info("controller up: policy %s, provider %s, group %s %d..%d (desired %d)",
             policy_kind_name(c.cfg.policy_kind), c.prov.ops->name, c.cfg.group_name,
             c.cfg.min_instances, c.cfg.max_instances, c.cfg.desired_instances);
    reconcile(&c);
    int64_t next_eval = now_ms();
    while (!g_sig.term) {
        struct table_hdr h;
        if (!c.prov.manager_addr[0] && table_read_hdr(t, &h) && h.monitor_addr[0])
            copy_str(c.prov.manager_addr, sizeof c.prov.manager_addr, h.monitor_addr);
        if (g_sig.hup) {
            g_sig.hup = 0;
            if (role_config_refresh(t, &c.cfg, &c.cfg_gen))
                log_info("config generation %llu applied: group %d..%d, desired %d",
                         (unsigned long long)c.cfg_gen, c.cfg.min_instances,
                         c.cfg.max_instances, c.cfg.desired_instances);
        }
        if (g_sig.chld) {
            g_sig.chld = 0;
            reap_agents(&c);
        }
        int64_t now = now_ms();
        if (now - c.last_reconcile >= RECONCILE_EVERY_MS)
            reconcile(&c);
        if (now >= next_eval || c.eval_now) {
            c.eval_now = false;
            evaluate(&c);
            next_eval = now + c.cfg.evaluation_interval_ms;
        }
        int wait = (int)(next_eval - now_ms());
        struct pollfd p = {sigfd, POLLIN, 0};
        if (poll(&p, 1, wait < 0 ? 0 : wait) > 0)
            signals_drain_pipe();
    }
    struct table_hdr h;
    bool draining = table_read_hdr(t, &h) && h.draining;
    if (draining && c.cfg.provider_kind == PROVIDER_LOCAL && c.cfg.local_stop_on_exit) {
        log_info("draining: stopping the local agents");
        stop_all(&c);
    } else {
        log_info("stopping; instances are left running");
    }
    return 0;
}
