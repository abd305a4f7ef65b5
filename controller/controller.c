/* ControllerASG, the role: opens what it works with (the published
 * config, the provider, the balancer, operators' requests, HA), then turns:
 * evaluations on schedule (evaluate.c: snapshot -> decide -> apply),
 * reconciliations with the provider on theirs (reconcile.c), the
 * balancer's steps (balancer.c), operators' requests as they come
 * (requests.c), HA turns (takeover.c); dead agents reaped at once; on a
 * drain, its instances stopped. Its state is one struct ctl (ctl.h),
 * made here and passed to every step. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/ctlsock.h"
#include "../common/util.h"
#include "../policy/policy.h"
#include "../shm/ops.h"
#include "admit.h"
#include "balancer.h"
#include "calls.h"
#include "controller.h"
#include "evaluate.h"
#include "lifecycle.h"
#include "reconcile.h"
#include "requests.h"
#include "rollout.h"
#include "rows.h"
#include "takeover.h"

/* Agents this controller started are its children: a dead one is known
 * at once, before any probe misses. */
static void reap_agents(struct ctl *c)
{
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
        if (pid < 0 || lifecycle_reaped(c, pid, status)) /* a hook's: judged at the next step */
            continue;
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "agent killed by signal %d", WTERMSIG(status));
        else
            snprintf(how, sizeof how, "agent exited with status %d", WEXITSTATUS(status));
        if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
            continue;
        int64_t now = now_ms();
        for (uint32_t i = 0; i < c->t->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->pid != pid || (r->state != ROW_PENDING && r->state != ROW_RUNNING && r->state != ROW_LAUNCH_WAIT))
                continue;
            table_note(c->t, EV_HEALTH, r->id, LOG_LVL_WARN, "instance %s (pid %d): %s; marking unhealthy",
                       r->id, (int)pid, how);
            if (r->state == ROW_PENDING)
                ctl_launch_backoff(c, now);
            table_failed(c->t, r, how, now);
            c->eval_now = true;
        }
        table_unlock(c->t);
    }
}

/* Stops every instance and waits for them, within the kill timeout. */
static void stop_all(struct ctl *c)
{
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    int64_t now = now_ms();
    lifecycle_stop_all(c); /* the drain budget is short: no hook holds an instance now */
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_PENDING || r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY ||
            r->state == ROW_LAUNCH_WAIT)
            ctl_mark_terminating(c, r, "manager stopping", now);
    }
    table_unlock(c->t);
    /* Draining gets a third of the supervisor's drain budget at most: the
     * instances must be stopped within the rest. */
    int lb_wait = c->cfg.lb_drain_timeout_ms < c->cfg.drain_timeout_ms / 3 ? c->cfg.lb_drain_timeout_ms
                                                                            : c->cfg.drain_timeout_ms / 3;
    c->lb_wait_until = now + lb_wait;
    ctl_execute(c);
    int64_t end = now + (c->lb.ops ? lb_wait : 0) + 2LL * ctl_kill_timeout(c) + 500;
    for (;;) {
        if (c->lb.ops)
            ctl_lb_step(c, false);
        reap_agents(c);
        if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
            return;
        for (uint32_t i = 0; i < c->t->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->state == ROW_TERMINATING && !(r->flags & ROW_F_LB_HOLD))
                ctl_add_op(c, OP_CHECK_GONE, r);
        }
        int left = (int)c->nops + ctl_held_for_balancer(c);
        table_unlock(c->t);
        ctl_execute(c);
        if (left == 0 || now_ms() > end)
            break;
        poll(NULL, 0, 20);
    }
}

/* The provider's interval; a standby's may be shorter (a warm table is
 * what a standby is for). */
static int reconcile_every(const struct ctl *c)
{
    return provider_reconcile_ms(&c->cfg, c->ha.on && c->ha_shown != HA_LEADER);
}

/* ---- driven by hand: the seam the Check units use ---- */

struct ctl *controller_open(struct table *t, const struct asg_config *cfg,
                            const struct provider_ops *ops, void *priv)
{
    struct ctl *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->t = t;
    c->cfg = *cfg;
    c->launch_cfg = *cfg;
    c->reqfd = -1;
    c->prov.cfg = &c->launch_cfg;
    c->prov.ops = ops;
    c->prov.priv = priv;
    c->prov.nonce = t->hdr->nonce;
    c->sched.active = c->sched.next = -1;
    c->sched_minute = -1;
    copy_str(c->prov.manager_addr, sizeof c->prov.manager_addr, "127.0.0.1:1");
    return c;
}

void controller_evaluate(struct ctl *c) { ctl_evaluate(c); }

void controller_reconcile(struct ctl *c) { ctl_reconcile(c); }

void controller_request(struct ctl *c, const struct ctl_request *rq) { ctl_carry_out_request(c, rq); }

void controller_use_lb(struct ctl *c, const struct lb_ops *ops, void *priv)
{
    c->lb.ops = ops;
    c->lb.cfg = &c->cfg;
    c->lb.priv = priv;
    c->lb_up = true;
}

void controller_lb_step(struct ctl *c) { ctl_lb_step(c, true); }

void controller_between_decide_and_apply(struct ctl *c, void (*fn)(void *), void *arg)
{
    c->between = fn;
    c->between_arg = arg;
}

void controller_close(struct ctl *c)
{
    lifecycle_free(c);
    lb_plan_free(&c->plan);
    free(c->ops);
    free(c->ha_gens);
    free(c->ha_flags);
    free(c);
}

/* What arrived since the last turn: the monitor's address, a reload, dead
 * agents to reap. */
static void take_news(struct ctl *c)
{
    struct table_hdr h;
    if (!c->prov.manager_addr[0] && table_read_hdr(c->t, &h) && h.monitor_addr[0])
        copy_str(c->prov.manager_addr, sizeof c->prov.manager_addr, h.monitor_addr);
    if (g_sig.hup) {
        g_sig.hup = 0;
        if (confseg_refresh(&c->conf, &c->cfg, &c->cfg_gen)) {
            sched_use_timezone(&c->cfg);
            ctl_launch_config(c);
            /* A reload: the file's desired size wins again over an
             * operator's. */
            if (table_lock(c->t, TABLE_LOCK_RECORD_MS) == 0) {
                table_operator_forget(c->t);
                table_unlock(c->t);
            }
        }
    }
    if (g_sig.chld) {
        g_sig.chld = 0;
        reap_agents(c);
    }
}

/* Evaluations on schedule (or at once after an event that calls for one),
 * reconciliations on theirs, operators' requests as they come. */
static void run(struct ctl *c, int sigfd)
{
    int64_t next_eval = now_ms();
    while (!g_sig.term) {
        take_news(c);
        /* An agent waits for its admission: decided now, not at the next evaluation. */
        if (admit_news(c->t, &c->facts_seen) && table_lock(c->t, TABLE_LOCK_WAIT_MS) == 0) {
            ctl_decide_facts(c, now_ms());
            table_unlock(c->t);
        }
        int64_t next_ha = c->ha.on ? ctl_ha_turn(c) : INT64_MAX;
        int64_t now = now_ms();
        /* A standby reconciles too: its table stays warm with the group's
         * instances, adopted from the provider, for the day it leads. */
        if (now - c->last_reconcile >= reconcile_every(c))
            ctl_reconcile(c);
        bool acting = ha_may_act(&c->ha, now);
        if (acting && (now >= next_eval || c->eval_now)) {
            c->eval_now = false;
            ctl_evaluate(c);
            next_eval = now + c->cfg.evaluation_interval_ms;
        }
        int64_t wake = next_eval > now || acting ? next_eval : now + c->cfg.evaluation_interval_ms;
        if (next_ha < wake)
            wake = next_ha;
        if (c->lb.ops && acting) {
            int64_t next_lb = ctl_next_lb_step(c);
            if (now_ms() >= next_lb || c->lb_now) {
                ctl_lb_step(c, now_ms() - c->last_lb_reconcile >= c->cfg.lb_reconcile_interval_ms);
                next_lb = ctl_next_lb_step(c);
            }
            if (next_lb < wake)
                wake = next_lb;
        }
        /* Hooks: answers read, timeouts kept, waiting ones started; the
         * loop looks again soon while any runs. */
        if (acting)
            lifecycle_step(c);
        int hook_wait = lifecycle_wait_ms(c);
        int wait = (int)(wake - now_ms());
        wait = wait > ADMIT_LOOK_MS ? ADMIT_LOOK_MS : wait;
        if (hook_wait >= 0 && wait > hook_wait)
            wait = hook_wait;
        struct pollfd p[2] = {{sigfd, POLLIN, 0}, {c->reqfd, POLLIN, 0}};
        if (poll(p, c->reqfd >= 0 ? 2 : 1, wait < 0 ? 0 : wait) > 0) {
            if (p[0].revents)
                signals_drain_pipe();
            if (c->reqfd >= 0 && p[1].revents)
                ctl_handle_requests(c);
        }
    }
}

/* What the controller works with: the published config, the provider,
 * the balancer, operators' requests and HA. 0, or the role's exit code. */
static int open_role(struct ctl *c, struct table *t, const struct asg_config *cfg0)
{
    c->t = t;
    c->cfg = *cfg0;
    if (confseg_open_role(t, &c->conf, &c->cfg, &c->cfg_gen) != 0)
        return 1; /* restarted: the supervisor publishes it before any role starts */
    char err[256];
    ctl_launch_config(c);
    if (provider_init(&c->prov, &c->launch_cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return ASG_EXIT_FATAL;
    }
    c->prov.nonce = t->hdr->nonce;
    c->sched.active = c->sched.next = -1;
    c->sched_minute = -1;
    sched_use_timezone(&c->cfg);
    if (lb_init(&c->lb, &c->cfg, err, sizeof err) != 0) {
        log_error("lb: %s", err);
        provider_free(&c->prov);
        return ASG_EXIT_FATAL;
    }
    c->lb.abort_flag = &g_sig.term;
    c->lb_up = true; /* until it says otherwise: no hold is skipped on a guess */
    c->reqfd = ctlsock_receiver();
    /* A process provider's agents carry the group nonce: a leader must hold the group's. */
    const char *group_nonce = provider_has(&c->cfg, PROVIDER_CAP_PROCESSES) ? t->hdr->group_nonce : NULL;
    if (ha_open(&c->ha, &c->cfg, t->hdr->ha_lease, t->hdr->nonce, group_nonce, err, sizeof err) != 0) {
        log_error("ha: %s", err);
        provider_free(&c->prov);
        lb_free(&c->lb);
        return ASG_EXIT_FATAL;
    }
    if (c->ha.on)
        log_info("ha: on etcd %s as %s (lease TTL %d ms, keys under %s/%s)", c->cfg.ha_etcd, c->ha.id,
                 c->cfg.ha_lease_ttl_ms, c->cfg.ha_prefix, c->cfg.group_name);
    log_info("controller up: policy %s, provider %s, group %s %d..%d (desired %d)",
             policy_kind_name(c->cfg.policy_kind), c->prov.ops->name, c->cfg.group_name,
             c->cfg.min_instances, c->cfg.max_instances, c->cfg.desired_instances);
    return 0;
}

/* The way out. An operator's stop ends a process provider's agents
 * (provider.local.stop_on_exit); with ha.etcd the group outlives this
 * manager: another one takes it over, so its instances stay, and the
 * lease goes at once. */
static void controller_finish(struct ctl *c)
{
    struct table_hdr h;
    bool draining = table_read_hdr(c->t, &h) && h.draining == DRAIN_STOP;
    if (draining && provider_has(&c->cfg, PROVIDER_CAP_PROCESSES) && c->cfg.local_stop_on_exit && !c->ha.on) {
        log_info("draining: stopping the local agents");
        stop_all(c);
    } else {
        log_info("stopping; instances are left running%s", c->ha.on ? " for the next leader" : "");
    }
    ha_close(&c->ha);
    provider_free(&c->prov);
    lb_free(&c->lb);
}

int controller_main(struct table *t, const struct asg_config *cfg0)
{
    struct ctl *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    int sigfd = signals_install(true);
    int rc = open_role(c, t, cfg0);
    if (rc == 0) {
        ctl_reconcile(c);
        if (c->lb.ops && ha_may_act(&c->ha, now_ms())) {
            log_info("balancer %s: following the group (lb.interval_ms %d, drain up to %d ms)",
                     c->lb.ops->name, c->cfg.lb_interval_ms, c->cfg.lb_drain_timeout_ms);
            ctl_lb_step(c, true);
        }
        run(c, sigfd);
        controller_finish(c);
    }
    controller_close(c);
    return rc;
}
