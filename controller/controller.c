/* ControllerASG: every evaluation period it snapshots the table, asks the
 * policy for the group's size, and converges: launches, terminates,
 * replaces unhealthy instances and instances that never registered, and
 * reconciles the table with what the provider reports.
 *
 * Each evaluation has three steps. Under the table lock it decides and
 * marks rows (a launch gets its pending row before the instance exists;
 * a victim turns terminating). Without the lock it calls the provider,
 * which may take seconds (EC2). Under the lock again it records what the
 * provider answered, matching rows by slot and incarnation. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "../common/ctlsock.h"
#include "../common/strbuf.h"
#include "../common/util.h"
#include "../ha/ha.h"
#include "admit.h"
#include "lb_table.h"
#include "../policy/policy.h"
#include "../policy/schedule.h"
#include "../shm/confseg.h"
#include "../shm/ops.h"
#include "../provider/provider.h"
#include "../provider/spec.h"
#include "controller.h"

_Static_assert(TABLE_ID_MAX == PROVIDER_ID_MAX && TABLE_ADDR_MAX == PROVIDER_ADDR_MAX &&
                   sizeof(((struct table_row *)0)->launch_token) == PROVIDER_TOKEN_MAX &&
                   sizeof(((struct table_row *)0)->reason) == sizeof(((struct provider_handle *)0)->reason),
               "a row's id, address, token and reason fit a provider handle exactly");

_Static_assert(SPEC_DIGEST_SIZE == LAUNCH_SPEC_DIGEST, "the table keeps the launch spec's digest");

enum op_kind { OP_LAUNCH, OP_TERMINATE, OP_CHECK_GONE };

/* A provider call decided under the lock, made without it. */
struct op {
    enum op_kind kind;
    uint32_t slot;
    uint64_t incarnation;
    struct table_row row;          /* copy at decision time */
    int result;                    /* LAUNCH_* / 0 / gone */
    bool killed;                   /* OP_CHECK_GONE escalated */
    struct provider_instance inst; /* OP_LAUNCH */
    char err[256];
};

struct ctl {
    struct table *t;
    struct asg_config cfg;
    uint64_t cfg_gen;
    struct confseg conf;       /* the published config, read-only */
    struct provider prov;
    int launch_failures;
    bool failed_this_round;    /* one backoff step per evaluation, however many fail */
    bool replacements_paced;   /* said once per spell of waiting replacements */
    int64_t last_failure_ms;
    int64_t launch_not_before;
    int64_t last_reconcile;
    bool eval_now;
    struct op *ops;
    size_t nops, capops;
    int reqfd;                 /* operator requests (status API), or -1 */
    struct lb lb;              /* lb.kind; lb.ops NULL when none */
    struct lb_plan plan;
    bool lb_up;                /* the balancer's last listing succeeded */
    bool lb_now;               /* an instance waits for the balancer: step at once */
    int64_t last_lb, last_lb_reconcile;
    int64_t lb_wait_until;     /* stopping: when draining instances count as drained; 0 otherwise */
    struct sched_state sched;  /* the scheduled entry in force */
    int64_t sched_minute;      /* the wall minute it was worked out for */
    uint64_t sched_gen;        /* and the config generation */
    struct ha ha;              /* ha.etcd: leader election; ha.on false without it */
    enum ha_role ha_shown;     /* the role last published and logged */
    int64_t ha_led_term;       /* the last term this manager led */
    int64_t ha_shown_term;
    char ha_shown_leader[64];
    struct launch_spec spec;   /* the launch spec this controller last recorded; n 0: none yet */
    uint64_t spec_cfg_gen;     /* the config generation it was worked out from */
    struct log_limit adopt_limit; /* a listing can name more instances than the table holds */
    uint64_t facts_seen;       /* the monitor's facts decided so far (admit.h) */
};

static int kill_timeout(const struct ctl *c) { return provider_kill_timeout_ms(&c->cfg); }

void controller_handle_of_row(const struct table_row *r, struct provider_handle *h)
{
    memset(h, 0, sizeof *h);
    copy_str(h->id, sizeof h->id, r->id);
    copy_str(h->addr, sizeof h->addr, r->addr);
    copy_str(h->token, sizeof h->token, r->launch_token);
    copy_str(h->reason, sizeof h->reason, r->reason);
    h->launch_ms = r->launch_ms;
    h->pid = r->pid;
    h->pid_start = r->pid_start;
    if (r->flags & ROW_F_JOINED)
        h->flags |= PROVIDER_H_JOINED;
    if (r->state == ROW_TERMINATING)
        h->flags |= PROVIDER_H_STOPPING;
    if ((r->state == ROW_RUNNING || r->state == ROW_PENDING) && r->last_seen_ms > 0)
        h->flags |= PROVIDER_H_ANSWERING;
}

static void add_op(struct ctl *c, enum op_kind kind, const struct table_row *r)
{
    if (c->nops == c->capops) {
        c->capops = c->capops ? c->capops * 2 : 16;
        c->ops = realloc(c->ops, c->capops * sizeof *c->ops);
        if (!c->ops)
            abort();
    }
    struct op *o = &c->ops[c->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->slot = (uint32_t)(r - c->t->rows);
    o->incarnation = r->incarnation;
    o->row = *r;
}

/* The row of an op, if it is still the same instance. */
static struct table_row *op_row(struct ctl *c, const struct op *o)
{
    return table_row_at(c->t, o->slot, o->incarnation);
}

static void row_free(struct ctl *c, struct table_row *r, const char *why)
{
    table_note(c->t, EV_TERMINATE, r->id, LOG_LVL_INFO, "instance %s removed from the group: %.100s",
               r->id, why);
    table_gone(c->t, r);
}

/* Marks a row terminating and queues the provider call; the row stays
 * until the provider says the instance is gone, so nothing is forgotten
 * while it shuts down. */
static void mark_terminating(struct ctl *c, struct table_row *r, const char *why, int64_t now)
{
    table_note(c->t, EV_TERMINATE, r->id, LOG_LVL_INFO, "terminating %s (%s): %.110s", r->id,
               row_state_name(r->state), why);
    /* In the balancer: drained and removed first (lb_step), stopped after
     * (release_holds). An unhealthy instance serves nothing worth waiting
     * for when the balancer cannot be reached: its member is removed when
     * the balancer is back (a stray). */
    bool in_lb = c->lb.ops && (r->lb_state == LBS_ADDED || r->lb_state == LBS_DRAINING);
    bool hold = in_lb && !(r->state == ROW_UNHEALTHY && !c->lb_up);
    if (!table_stopping(c->t, r, why, now + kill_timeout(c)))
        return;
    if (hold) {
        table_lb_hold(c->t, r, true);
        c->lb_now = true;
    } else {
        add_op(c, OP_TERMINATE, r);
    }
}

/* Terminating instances the balancer has let go of: the provider may stop
 * them now. Also let go: an instance drained for lb.drain_timeout_ms while
 * the balancer cannot be reached (no new connection could reach it
 * meanwhile), and every instance once a stopping manager's wait is over. */
static void release_holds(struct ctl *c, int64_t now)
{
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state != ROW_TERMINATING || !(r->flags & ROW_F_LB_HOLD))
            continue;
        bool out = !c->lb.ops || r->lb_state == LBS_NONE || r->lb_state == LBS_REMOVED;
        bool drained_blind = !c->lb_up && r->lb_state == LBS_DRAINING &&
                             now - r->lb_since_ms >= c->cfg.lb_drain_timeout_ms;
        bool wait_over = c->lb_wait_until && now >= c->lb_wait_until;
        if (!out && !drained_blind && !wait_over)
            continue;
        if (!out)
            table_note(c->t, EV_BALANCER, r->id, LOG_LVL_WARN,
                       "stopping %s without the balancer's word: %s", r->id,
                       wait_over ? "the manager is stopping" : "drained, and the balancer cannot be reached");
        table_lb_hold(c->t, r, false);
        table_stop_deadline(c->t, r, now + kill_timeout(c));
        add_op(c, OP_TERMINATE, r);
    }
}

/* Terminating instances still waiting for the balancer to let them go. */
static int held_for_balancer(const struct ctl *c)
{
    int held = 0;
    for (uint32_t i = 0; i < c->t->capacity; i++)
        held += c->t->rows[i].state == ROW_TERMINATING && (c->t->rows[i].flags & ROW_F_LB_HOLD);
    return held;
}

static void launch_backoff(struct ctl *c, int64_t now)
{
    if (c->failed_this_round)
        return;
    c->failed_this_round = true;
    c->launch_failures++;
    c->last_failure_ms = now;
    int shift = c->launch_failures > 7 ? 7 : c->launch_failures - 1;
    int delay = 500 << shift; /* 0.5 s doubling to 64 s */
    c->launch_not_before = now + delay;
    log_warn("launch failures in a row: %d; next launch in %d ms", c->launch_failures, delay);
}

/* How many unhealthy instances may be replaced now. Launches and stops
 * cost the machine work; when the manager itself is starved (a busy host,
 * a restarted monitor dialling every agent) many healthy instances look
 * unhealthy at once, and replacing them all at once starves it further: a
 * replacement storm. So at most a tenth of the group (at least one) is
 * being launched or stopped at a time; the others stay unhealthy, are
 * still probed, and rejoin as running if they answer meanwhile. */
static int replacement_budget(struct ctl *c)
{
    /* One held for the balancer costs nothing yet, and must not hold up
     * the replacement of a dead one while the balancer is away. */
    int in_flight = table_count(c->t, ROW_PENDING) + table_count(c->t, ROW_TERMINATING) -
                    held_for_balancer(c);
    int group = table_count(c->t, ROW_RUNNING) + table_count(c->t, ROW_PENDING) +
                table_count(c->t, ROW_UNHEALTHY);
    int budget = (group + 9) / 10;
    return (budget > 1 ? budget : 1) - in_flight;
}

/* Step 1, with the lock: boot timeouts, unhealthy replacements,
 * unconfirmed launches to ask about again, terminations in progress. */
static void sweep(struct ctl *c, int64_t now)
{
    char why[96];
    int budget = replacement_budget(c), waiting = 0;
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        switch (r->state) {
        case ROW_PENDING:
            if (now - r->launch_ms > c->cfg.boot_timeout_ms) {
                snprintf(why, sizeof why, "did not register within %d ms", c->cfg.boot_timeout_ms);
                mark_terminating(c, r, why, now);
                launch_backoff(c, now);
            } else if ((r->flags & ROW_F_UNCONFIRMED) && now >= c->launch_not_before) {
                add_op(c, OP_LAUNCH, r); /* same id, same token: no second instance */
            }
            break;
        case ROW_UNHEALTHY:
            if (r->flags & ROW_F_JOINED) {
                /* It joined on its own registration: it leaves the same
                 * way, taking the target down with it, so that a stranger
                 * that registers and goes silent cannot hold the group up. */
                snprintf(why, sizeof why, "adopted, unhealthy (%.40s): leaves the group", r->reason);
                mark_terminating(c, r, why, now); /* account_joined lowers the target */
                break;
            }
            if (budget <= 0) {
                waiting++;
                break;
            }
            budget--;
            snprintf(why, sizeof why, "replacing unhealthy instance (%.60s)", r->reason);
            mark_terminating(c, r, why, now);
            table_count_replaced(c->t);
            break;
        case ROW_TERMINATING:
            if (!(r->flags & ROW_F_LB_HOLD)) /* not asked to stop yet: nothing to check */
                add_op(c, OP_CHECK_GONE, r);
            break;
        default:
            break;
        }
    }
    release_holds(c, now);
    if (waiting && !c->replacements_paced)
        log_warn("replacements paced: %d unhealthy instance(s) wait their turn (a tenth of the group is "
                 "replaced at a time); they are still probed and rejoin if they answer", waiting);
    c->replacements_paced = waiting > 0;
}

/* Step 1, with the lock: a pending row for each launch. */
static void plan_launch(struct ctl *c, const char *why, int64_t now)
{
    char id[TABLE_ID_MAX], token[72];
    uint64_t n = table_next_instance_number(c->t);
    snprintf(id, sizeof id, "%s-%llu", c->cfg.group_name, (unsigned long long)n);
    provider_launch_token(&c->prov, id, token, sizeof token);
    /* The row exists before the instance does: if we die in between, the
     * reconciliation ties the instance to it (by id or launch token). */
    struct table_row *r = table_row_launch(c->t, id, why, ROW_F_UNCONFIRMED, token, c->t->hdr->spec.gen, now);
    if (!r) { /* converge counts free slots first; this is a bug if seen */
        log_error("cannot launch: the shared table is full (%u rows)", c->t->capacity);
        launch_backoff(c, now);
        return;
    }
    add_op(c, OP_LAUNCH, r);
}

/* Picks the newest pending-or-running instance not already chosen: it
 * has done the least work and is the last to have warmed up. */
/* Scale-in takes an unhealthy instance waiting for replacement first,
 * then the newest. */
static struct table_row *scale_in_victim(struct ctl *c)
{
    struct table_row *best = NULL;
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_UNHEALTHY)
            return r;
        if ((r->state == ROW_PENDING || r->state == ROW_RUNNING) &&
            (!best || r->launch_ms > best->launch_ms))
            best = r;
    }
    return best;
}

static void converge(struct ctl *c, const struct policy_input *in, int target,
                     const char *reason, int64_t now)
{
    int size = in->running + in->pending + in->waiting;
    char why[256];
    if (size < target) {
        /* Agents need the monitor's address; wait for it rather than
         * count a failed launch. */
        if (now < c->launch_not_before || !c->prov.manager_addr[0])
            return;
        snprintf(why, sizeof why, "group at %d, target %d%s%.150s", size, target,
                 reason[0] ? ": " : "", reason);
        /* Rows still terminating hold their slots: launch into the free
         * ones now, the rest once those are gone. Waiting is no failure. */
        int free_rows = table_count(c->t, ROW_FREE);
        int want = target - size < free_rows ? target - size : free_rows;
        if (want < target - size)
            log_debug("waiting for %d table slot(s) to free up", target - size - want);
        for (int k = 0; k < want; k++)
            plan_launch(c, why, now);
    } else if (size > target) {
        snprintf(why, sizeof why, "scale in: group at %d, target %d%s%.150s", size, target,
                 reason[0] ? ": " : "", reason);
        for (int k = target; k < size; k++) {
            struct table_row *r = scale_in_victim(c);
            if (!r)
                break;
            mark_terminating(c, r, why, now);
        }
    }
}

/* With ha.etcd, a provider call is made only while this manager leads
 * (checked against the renewal deadline at the last moment); refused
 * calls are counted nowhere, made calls in provider_calls. */
static bool may_call(struct ctl *c, struct op *o)
{
    if (!ha_may_act(&c->ha, now_ms())) {
        snprintf(o->err, sizeof o->err, "not the leader any more (ha): no provider call");
        return false;
    }
    atomic_fetch_add(&c->t->hdr->provider_calls, 1);
    return true;
}

/* Step 2, without the lock. */
static void run_ops(struct ctl *c)
{
    bool refreshed = false;
    for (size_t i = 0; i < c->nops; i++) {
        struct op *o = &c->ops[i];
        struct provider_handle h;
        controller_handle_of_row(&o->row, &h);
        switch (o->kind) {
        case OP_LAUNCH:
            o->result = !may_call(c, o) ? LAUNCH_FAILED
                        : c->prov.ops->launch(&c->prov, o->row.id, &o->inst, o->err, sizeof o->err);
            break;
        case OP_TERMINATE:
            o->result = !may_call(c, o) ? -1 : c->prov.ops->terminate(&c->prov, &h, false, o->err, sizeof o->err);
            break;
        case OP_CHECK_GONE:
            if (!refreshed && c->prov.ops->refresh) {
                c->prov.ops->refresh(&c->prov);
                refreshed = true;
            }
            o->result = c->prov.ops->gone(&c->prov, &h);
            if (!o->result && now_ms() >= o->row.term_deadline_ms && may_call(c, o)) {
                log_warn("%s did not stop within %d ms; forcing it", o->row.id, kill_timeout(c));
                if (c->prov.ops->terminate(&c->prov, &h, true, o->err, sizeof o->err) != 0)
                    log_warn("terminate %s: %s", o->row.id, o->err);
                o->killed = true;
            }
            break;
        }
    }
}

static void record_launch(struct ctl *c, struct op *o, struct table_row *r, int64_t now)
{
    if (o->result == LAUNCH_FAILED) {
        table_note(c->t, EV_LAUNCH, o->row.id, LOG_LVL_ERROR, "launch %s failed: %.120s", o->row.id, o->err);
        row_free(c, r, "launch failed");
        launch_backoff(c, now);
        return;
    }
    if (o->result == LAUNCH_UNKNOWN) {
        log_warn("launch %s: no clear answer (%s); asking again with the same token", o->row.id,
                 o->err);
        launch_backoff(c, now);
        return;
    }
    bool renamed = o->inst.id[0] && strcmp(o->inst.id, r->id) != 0;
    table_instance_known(c->t, r, o->inst.id, o->inst.pid, o->inst.pid_start, o->inst.addr, NULL);
    if (renamed)
        table_note(c->t, EV_LAUNCH, r->id, LOG_LVL_INFO, "launched %s as %s: %.90s", o->row.id,
                   r->id, r->reason);
    else if (r->pid > 0)
        table_note(c->t, EV_LAUNCH, r->id, LOG_LVL_INFO, "launched %s (pid %d): %.100s", r->id,
                   r->pid, r->reason);
    else /* no process of ours (exec): where it is, if the provider said */
        table_note(c->t, EV_LAUNCH, r->id, LOG_LVL_INFO, "launched %s at %s: %.100s", r->id,
                   r->addr[0] ? r->addr : "(address at registration)", r->reason);
}

/* Step 3, with the lock again. */
static void record_ops(struct ctl *c, int64_t now)
{
    for (size_t i = 0; i < c->nops; i++) {
        struct op *o = &c->ops[i];
        struct table_row *r = op_row(c, o);
        if (!r)
            continue; /* the row moved on meanwhile */
        /* Whatever state the row reached meanwhile (an agent may register
         * before its launch is recorded), its pid is recorded: without it
         * the controller could neither reap nor stop it. */
        if (o->kind == OP_LAUNCH && (r->state == ROW_PENDING || o->result == LAUNCH_OK)) {
            record_launch(c, o, r, now);
        } else if (o->kind == OP_LAUNCH) {
            /* It registered before the answer came: it runs, but what the
             * provider said is still the operator's to see. */
            log_warn("launch %s: %s (it registered meanwhile)", r->id, o->err);
        } else if (o->kind == OP_TERMINATE && o->result != 0) {
            log_warn("terminate %s: %s (will retry)", r->id, o->err);
        } else if (o->kind == OP_CHECK_GONE && r->state == ROW_TERMINATING) {
            if (o->result) {
                row_free(c, r, r->reason);
            } else if (o->killed) {
                table_stop_deadline(c->t, r, now + kill_timeout(c));
            }
        }
    }
    c->nops = 0;
}

/* The group's state as a new leader would need it, written to etcd by the
 * transaction that guards each batch of provider calls: the sizes, the
 * next instance number, and every launch not yet answered (the batch's
 * and those still unconfirmed), by id, so the new leader asks again with
 * the same token. */
static void ha_state(const struct ctl *c, char *out, size_t size)
{
    const struct table_hdr *h = c->t->hdr;
    struct strbuf b = {0};
    int launches = 0, terminations = 0;
    sb_printf(&b, "{\"leader\":");
    sb_json_str(&b, c->ha.id);
    sb_printf(&b, ",\"term\":%lld,\"target\":%d,\"operator_desired\":%d,\"next_instance\":%llu,"
                  "\"at_ms\":%lld,\"pending\":[",
              (long long)c->ha.term, h->ctl.target, h->operator_desired,
              (unsigned long long)h->next_instance, (long long)wall_ms());
    for (size_t i = 0; i < c->nops; i++)
        c->ops[i].kind == OP_LAUNCH ? launches++ : terminations++;
    int listed = 0;
    for (uint32_t i = 0; i < c->t->capacity && b.len + 2 * TABLE_ID_MAX < size - 64; i++) {
        const struct table_row *r = &c->t->rows[i];
        if (r->state != ROW_PENDING || !(r->flags & ROW_F_UNCONFIRMED))
            continue;
        sb_printf(&b, "%s", listed++ ? "," : "");
        sb_json_str(&b, r->id);
    }
    sb_printf(&b, "],\"launches\":%d,\"terminations\":%d}", launches, terminations);
    copy_str(out, size, b.s);
    sb_free(&b);
}

static bool guard_batch(struct ctl *c)
{
    char state[ETCD_VALUE_MAX];
    ha_state(c, state, sizeof state);
    return ha_guard(&c->ha, state, now_ms());
}

/* A batch the guard refused: launches are dropped (their rows freed, no
 * instance exists), terminations wait for whoever leads. */
static void fence_batch(struct ctl *c)
{
    log_warn("ha: %zu provider call(s) not made: this manager does not lead (%s)", c->nops,
             c->ha.err[0] ? c->ha.err : "the leader key is not ours");
    if (table_lock(c->t, TABLE_LOCK_RECORD_MS) == 0) {
        for (size_t i = 0; i < c->nops; i++) {
            struct table_row *r = op_row(c, &c->ops[i]);
            if (c->ops[i].kind == OP_LAUNCH && r && r->state == ROW_PENDING)
                row_free(c, r, "not launched: this manager does not lead");
        }
        table_unlock(c->t);
    }
    c->nops = 0;
}

/* Carries out the ops queued under the lock: provider calls without it,
 * then the results with it. */
static void execute(struct ctl *c)
{
    if (c->nops == 0)
        return;
    fault_stop_point("controller", "stop-before-calls");
    if (c->ha.on && !guard_batch(c)) {
        fence_batch(c);
        return;
    }
    run_ops(c);
    /* What the provider did must be recorded: giving up here would leave a
     * launched instance without its pid, so this wait is the longer one. */
    if (table_lock(c->t, TABLE_LOCK_RECORD_MS) != 0) {
        log_error("cannot record provider results: table lock unavailable");
        c->nops = 0;
        return;
    }
    record_ops(c, now_ms());
    table_unlock(c->t);
}

/* The config as the policy sees it (sched_effective): the scheduled
 * entry's bounds and the operator's desired size applied. */
static struct asg_config effective_config(const struct ctl *c)
{
    struct asg_config eff;
    sched_effective(&c->cfg, c->sched.active, c->t->hdr->operator_desired, &eff);
    return eff;
}

/* A target raised to hold instances the group did not launch: like an
 * operator's choice, it starts a cooldown and forgets the low-load
 * periods counted so far, so the newcomers are not scaled straight back in
 * on the next evaluation; the policy lowers the size in its own time. */
static void hold_target(struct ctl *c, int target)
{
    table_operator_target(c->t, target, 0, now_ms());
}

/* Instances that joined on their own registration (the monitor flags
 * them) are the group's: the target rises to hold each, within max, once;
 * and falls again when it leaves (deregistered, or gone silent), never
 * below min. Run after the sweep and before the policy, so that neither a
 * newcomer is scaled in nor a leaver replaced. */
static void account_joined(struct ctl *c)
{
    struct asg_config eff = effective_config(c);
    int target = c->t->hdr->ctl.target ? c->t->hdr->ctl.target : eff.desired_instances, was = target;
    int before = target;
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (!(r->flags & ROW_F_JOINED) || r->state == ROW_FREE)
            continue;
        bool in = r->state != ROW_TERMINATING;
        if (in == r->joined_counted)
            continue;
        if (in && target < eff.max_instances)
            target++;
        else if (!in && target > eff.min_instances)
            target--;
        table_joined_counted(c->t, r, in);
        log_info("instance %s %s on its own: target %d -> %d", r->id,
                 in ? "joined the group" : "left the group", was, target);
        was = target;
    }
    if (target > before)
        hold_target(c, target);
    else if (target < before)
        table_set_target(c->t, target);
}

/* The instance has somewhere the balancer could send traffic. */
static bool balancer_takes(const struct ctl *c, const struct table_row *r)
{
    char member[TABLE_ADDR_MAX];
    lb_member_addr(&c->cfg, r->id, r->addr, r->service_addr, member, sizeof member);
    return member[0] != '\0';
}

/* Works out the scheduled entry in force once a minute (and after a
 * reload); a change is logged and published. Lock held. */
static void follow_schedule(struct ctl *c)
{
    int64_t wall = wall_ms() / 1000, minute = wall / 60;
    if (minute == c->sched_minute && c->sched_gen == c->cfg_gen)
        return;
    c->sched_minute = minute;
    c->sched_gen = c->cfg_gen;
    struct sched_state s = c->cfg.nschedule ? sched_at(&c->cfg, wall) : (struct sched_state){-1, 0, -1, 0};
    bool changed = s.active != c->sched.active || s.since != c->sched.since;
    if (changed && s.active >= 0) {
        const struct schedule_entry *e = &c->cfg.schedule[s.active];
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO,
                   "schedule: entry %d (%.40s) in force: min %d, max %d, desired %d", s.active + 1, e->at,
                   e->min, e->max, e->desired);
    } else if (changed && c->sched.active >= 0) {
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO, "schedule: no entry in force: the config's bounds");
    }
    if (changed || s.next != c->sched.next || s.next_at != c->sched.next_at)
        table_schedule(c->t, s.active, s.since, s.next, s.next_at);
    c->sched = s;
}

/* The launch spec in force, worked out at each evaluation (before any
 * launch): when the config's differs from the one the table records (a
 * reload changed it, or this controller restarted on another config), its
 * generation moves on, logged with the first key that changed. Lock held. */
static void follow_launch_spec(struct ctl *c)
{
    if (c->spec.n && c->spec_cfg_gen == c->cfg_gen)
        return; /* only a new config can change it */
    struct launch_spec cur;
    launch_spec_of(&c->cfg, &cur);
    const struct spec_state *in = &c->t->hdr->spec;
    uint64_t gen = launch_spec_generation(in->gen, in->digest, &cur);
    if (gen != in->gen) {
        const char *key = c->spec.n ? launch_spec_changed(&c->spec, &cur) : NULL;
        if (gen == 1)
            table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO, "launch spec generation 1");
        else if (key)
            table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO, "launch spec generation %llu: %.60s changed",
                       (unsigned long long)gen, key);
        else
            table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO,
                       "launch spec generation %llu: the config's spec differs from generation %llu's",
                       (unsigned long long)gen, (unsigned long long)in->gen);
        table_launch_spec(c->t, gen, cur.digest);
    }
    c->spec = cur;
    c->spec_cfg_gen = c->cfg_gen;
}

/* The monitor's facts (registrations waiting, deregistrations), decided
 * here alone (admit.c) within the bounds in force. Lock held. */
static void decide_facts(struct ctl *c, int64_t now)
{
    follow_schedule(c);
    struct asg_config eff = effective_config(c);
    admit_facts(c->t, &eff, now + kill_timeout(c), now);
}

/* A row as the policy sees it. */
static struct policy_instance policy_view(const struct table_row *r)
{
    return (struct policy_instance){r->state, r->misses, r->has_sample, r->load, r->last_seen_ms,
                                    r->running_since_ms, r->req_rate, r->req_rate_ms, r->svc_rate,
                                    r->svc_rate_ms};
}

static void evaluate(struct ctl *c)
{
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    table_fault_point("controller", c->t);
    struct table_hdr *h = c->t->hdr;
    int64_t now = now_ms();
    c->failed_this_round = false;
    follow_schedule(c);
    follow_launch_spec(c);
    decide_facts(c, now);
    sweep(c, now);
    account_joined(c);
    struct policy_input in;
    memset(&in, 0, sizeof in);
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        const struct table_row *r = &c->t->rows[i];
        struct policy_instance pi = policy_view(r);
        policy_input_add(&in, &pi, &c->cfg, now);
        /* A new instance with a service: into the balancer now, not at
         * its next step. */
        if (c->lb.ops && r->state == ROW_RUNNING && r->lb_state == LBS_NONE && balancer_takes(c, r))
            c->lb_now = true;
        /* An instance that came up since the last failure: launches work. */
        if (c->launch_failures && r->state == ROW_RUNNING && r->running_since_ms > c->last_failure_ms)
            c->launch_failures = 0;
    }
    struct ctl_state st = h->ctl;
    struct asg_config eff = effective_config(c);
    table_bounds(c->t, &(struct group_bounds){eff.min_instances, eff.max_instances, eff.desired_instances, 0});
    struct decision d = policy_decide(&eff, &in, &st, now);
    if (d.change && d.cause == CAUSE_BOUNDS && c->sched.active >= 0)
        snprintf(d.reason, sizeof d.reason, "schedule entry %d: bounds %d..%d", c->sched.active + 1,
                 eff.desired_instances, eff.max_instances);
    if (d.change)
        table_note(c->t, EV_SCALE, NULL, LOG_LVL_INFO, "scale %s: target %d -> %d: %.100s",
                   d.change > 0 ? "out" : "in", d.target - d.change, d.target, d.reason);
    if (d.change)
        atomic_fetch_add(&h->actions[d.change > 0 ? 0 : 1][d.cause], 1);
    if (!h->draining)
        converge(c, &in, d.target, d.reason, now);
    table_evaluated(c->t, &st, d.change, now);
    table_unlock(c->t);
    execute(c);
}

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
    struct asg_config eff = effective_config(c);
    int size = table_count(c->t, ROW_PENDING) + table_count(c->t, ROW_RUNNING);
    int target = h->ctl.target ? h->ctl.target : eff.desired_instances;
    int keep = size > eff.max_instances ? eff.max_instances : size;
    if (keep > target) {
        hold_target(c, keep);
        log_info("reconcile: target %d -> %d to keep the adopted instances", target, keep);
    }
}

/* Makes the table and the provider agree: rows whose instance is gone are
 * dropped (the policy launches replacements), instances the table lacks
 * are adopted. Nothing is orphaned, nothing forgotten. */
static void reconcile(struct ctl *c)
{
    struct provider_instance *list = NULL;
    size_t n = 0;
    char err[512];
    c->last_reconcile = now_ms();
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
            if (r->state != ROW_TERMINATING)
                update_from_provider(c, r, pi);
        } else if (r->state != ROW_TERMINATING && !(r->flags & ROW_F_UNCONFIRMED) && row_gone(c, r)) {
            row_free(c, r, "the provider no longer has it");
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

/* The balancer follows the table: list its members (without the lock),
 * plan (with it), act (without), record and release the instances it has
 * let go of (with it), then stop those. */
static void lb_step(struct ctl *c, bool reconcile_now)
{
    struct lb_member *m = NULL;
    size_t n = 0;
    char err[256] = "";
    int64_t started = now_ms();
    c->last_lb = started;
    c->lb_now = false;
    if (reconcile_now)
        c->last_lb_reconcile = started;
    int rc = c->lb.ops->list(&c->lb, &m, &n, err, sizeof err);
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0) {
        free(m);
        return;
    }
    int64_t now = now_ms();
    bool drain_over = c->lb_wait_until && now >= c->lb_wait_until;
    if (rc == 0)
        lb_table_plan(c->t, &c->cfg, m, n, reconcile_now, drain_over, now, &c->plan);
    if (rc != 0 && (c->lb_up || c->t->hdr->lb_checked_ms == 0))
        table_note(c->t, EV_BALANCER, NULL, LOG_LVL_WARN,
                   "balancer %s unreachable: %.150s; instances stay until it can drain them",
                   c->lb.ops->name, err);
    else if (rc == 0 && !c->lb_up && c->t->hdr->lb_checked_ms != 0)
        table_note(c->t, EV_BALANCER, NULL, LOG_LVL_INFO, "balancer %s answers again (%zu members)",
                   c->lb.ops->name, n);
    c->lb_up = rc == 0;
    table_lb_health(c->t, c->lb_up, rc == 0 ? NULL : err, rc == 0 ? (int)n : -1, now);
    table_unlock(c->t);
    free(m);
    /* A refused task (an instance the balancer will not take yet) is said
     * and counted; the balancer is still up. */
    bool task_failed = c->plan.n && lb_run(&c->lb, &c->plan, err, sizeof err) > 0;
    if (table_lock(c->t, TABLE_LOCK_RECORD_MS) != 0)
        return;
    now = now_ms();
    if (task_failed)
        table_lb_health(c->t, c->lb_up, err, -1, now);
    lb_table_record(c->t, &c->plan, now);
    release_holds(c, now);
    table_unlock(c->t);
    execute(c);
}

/* When the next balancer step is due: soon while instances wait for it to
 * let them go. */
static int64_t next_lb_step(const struct ctl *c)
{
    int every = c->cfg.lb_interval_ms;
    if (every > 200 && held_for_balancer(c))
        every = 200;
    return c->last_lb + every;
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
        if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
            continue;
        int64_t now = now_ms();
        for (uint32_t i = 0; i < c->t->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->pid != pid || (r->state != ROW_PENDING && r->state != ROW_RUNNING))
                continue;
            table_note(c->t, EV_HEALTH, r->id, LOG_LVL_WARN, "instance %s (pid %d): %s; marking unhealthy",
                       r->id, (int)pid, how);
            if (r->state == ROW_PENDING)
                launch_backoff(c, now);
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
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_PENDING || r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY)
            mark_terminating(c, r, "manager stopping", now);
    }
    table_unlock(c->t);
    /* Draining gets a third of the supervisor's drain budget at most: the
     * instances must be stopped within the rest. */
    int lb_wait = c->cfg.lb_drain_timeout_ms < c->cfg.drain_timeout_ms / 3 ? c->cfg.lb_drain_timeout_ms
                                                                            : c->cfg.drain_timeout_ms / 3;
    c->lb_wait_until = now + lb_wait;
    execute(c);
    int64_t end = now + (c->lb.ops ? lb_wait : 0) + 2LL * kill_timeout(c) + 500;
    for (;;) {
        if (c->lb.ops)
            lb_step(c, false);
        reap_agents(c);
        if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
            return;
        for (uint32_t i = 0; i < c->t->capacity; i++) {
            struct table_row *r = &c->t->rows[i];
            if (r->state == ROW_TERMINATING && !(r->flags & ROW_F_LB_HOLD))
                add_op(c, OP_CHECK_GONE, r);
        }
        int left = (int)c->nops + held_for_balancer(c);
        table_unlock(c->t);
        execute(c);
        if (left == 0 || now_ms() > end)
            break;
        poll(NULL, 0, 20);
    }
}

/* Sets the live target for an operator's request (lock held); desired > 0
 * also records the operator's desired size. */
static void operator_target(struct ctl *c, int from, int to, int desired, int64_t now)
{
    table_operator_target(c->t, to, desired, now);
    if (to != from)
        atomic_fetch_add(&c->t->hdr->actions[to > from ? 0 : 1][CAUSE_OPERATOR], 1);
}

/* Terminate with decrement, as AWS's ShouldDecrementDesiredCapacity: the
 * group shrinks with the instance instead of replacing it. The target goes
 * down by one, and the operator's desired size with it whenever desired
 * would otherwise hold the target up (the policy never goes below desired,
 * so lowering the target alone would launch a replacement). Never below
 * min: there the request is refused and nothing changes, rather than the
 * instance being silently replaced. Lock held. */
static void terminate_decrement(struct ctl *c, struct table_row *r, const struct asg_config *eff,
                                int target, int64_t now)
{
    int to = target - 1;
    if (to < eff->min_instances) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN,
                   "operator: terminate %s with decrement refused: the group's target %d is at its "
                   "minimum %d; terminate without decrement to replace it", r->id, target, eff->min_instances);
        return;
    }
    int desired = eff->desired_instances;
    int new_desired = desired > to ? to : 0; /* 0: desired stays as it is */
    table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
               "operator: terminate %s and decrement: target %d -> %d, desired %d -> %d", r->id, target, to,
               desired, new_desired ? new_desired : desired);
    mark_terminating(c, r, "operator request (decrement)", now);
    operator_target(c, target, to, new_desired, now);
}

static void apply_request(struct ctl *c, const struct ctl_request *rq, int64_t now)
{
    struct table_hdr *h = c->t->hdr;
    struct asg_config eff = effective_config(c);
    int target = h->ctl.target ? h->ctl.target : eff.desired_instances;
    if (rq->kind == REQ_SET_DESIRED) {
        if (rq->value < eff.min_instances || rq->value > eff.max_instances) {
            table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN, "operator: desired %d refused: outside %d..%d",
                       rq->value, eff.min_instances, eff.max_instances);
            return;
        }
        operator_target(c, target, rq->value, rq->value, now);
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_INFO, "operator: desired %d (target %d -> %d)",
                   rq->value, target, rq->value);
    } else if (rq->kind == REQ_LAUNCH_ONE) {
        if (target >= eff.max_instances) {
            table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN, "operator: launch refused: group at max %d",
                       eff.max_instances);
            return;
        }
        operator_target(c, target, target + 1, 0, now);
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_INFO, "operator: launch one (target %d -> %d)",
                   target, target + 1);
    } else if (rq->kind == REQ_TERMINATE) {
        struct table_row *r = table_find(c->t, rq->id);
        if (!r || r->state == ROW_TERMINATING) {
            table_note(c->t, EV_OPERATOR, rq->id, LOG_LVL_WARN, "operator: terminate %s refused: %s",
                       rq->id, r ? "already terminating" : "no such instance");
            return;
        }
        if (rq->value == 1) {
            terminate_decrement(c, r, &eff, target, now);
            return;
        }
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO, "operator: terminate %s (it will be replaced)",
                   r->id);
        mark_terminating(c, r, "operator request", now);
    }
}

/* One well-formed operator request: -1 when the table's lock could not be
 * had (the request is dropped, as a busy table's would be). */
static int carry_out_request(struct ctl *c, const struct ctl_request *rq)
{
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return -1;
    if (!ha_may_act(&c->ha, now_ms())) {
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_WARN,
                   "operator: request refused: this manager is a standby; the leader is %.60s",
                   c->ha.leader[0] ? c->ha.leader : "not known");
        table_unlock(c->t);
        return 0;
    }
    apply_request(c, rq, now_ms());
    table_unlock(c->t);
    /* The operator's choice outlives this manager: into etcd now, not only
     * with the next provider calls. */
    if (c->ha.on && c->nops == 0)
        guard_batch(c);
    execute(c);
    c->eval_now = true;
    return 0;
}

/* Operator requests from the status API: applied under the lock, then
 * carried out like any decision. A standby refuses them: the leader's
 * status API is the one to ask. */
static void handle_requests(struct ctl *c)
{
    struct ctl_request rq;
    char why[160];
    int rc;
    while (c->reqfd >= 0 && (rc = ctlsock_recv(c->reqfd, &rq, why, sizeof why)) != 0) {
        if (rc < 0) {
            log_warn("operator request ignored: %s", why);
            continue;
        }
        if (carry_out_request(c, &rq) != 0)
            return;
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
    c->reqfd = -1;
    c->prov.cfg = &c->cfg;
    c->prov.ops = ops;
    c->prov.priv = priv;
    c->prov.nonce = t->hdr->nonce;
    c->sched.active = c->sched.next = -1;
    c->sched_minute = -1;
    copy_str(c->prov.manager_addr, sizeof c->prov.manager_addr, "127.0.0.1:1");
    return c;
}

void controller_evaluate(struct ctl *c) { evaluate(c); }

void controller_reconcile(struct ctl *c) { reconcile(c); }

void controller_request(struct ctl *c, const struct ctl_request *rq) { carry_out_request(c, rq); }

void controller_use_lb(struct ctl *c, const struct lb_ops *ops, void *priv)
{
    c->lb.ops = ops;
    c->lb.cfg = &c->cfg;
    c->lb.priv = priv;
    c->lb_up = true;
}

void controller_lb_step(struct ctl *c) { lb_step(c, true); }

void controller_close(struct ctl *c)
{
    lb_plan_free(&c->plan);
    free(c->ops);
    free(c);
}

/* The last leader's launches that had no answer (a provider with launch
 * tokens only: a local instance is found by its process at once): each
 * becomes a pending, unconfirmed row again, with the same id and so the
 * same token, unless a row already holds that token (adopted meanwhile);
 * the sweep asks again, and EC2 answers with the instance made the first
 * time. */
static void resume_launches(struct ctl *c, json_object *pending, int64_t now)
{
    if (!provider_has(&c->cfg, PROVIDER_CAP_LAUNCH_TOKENS))
        return;
    size_t n = json_object_array_length(pending);
    for (size_t k = 0; k < n; k++) {
        const char *id = json_object_get_string(json_object_array_get_idx(pending, k));
        char token[72];
        if (!id || !valid_instance_id(id, strlen(id)) || table_find(c->t, id))
            continue;
        provider_launch_token(&c->prov, id, token, sizeof token);
        bool held = false;
        for (uint32_t i = 0; i < c->t->capacity && !held; i++)
            held = c->t->rows[i].state != ROW_FREE && strcmp(c->t->rows[i].launch_token, token) == 0;
        if (held)
            continue;
        if (table_row_new(c->t, id, RE_LAUNCH, "launch taken over from the last leader", ROW_F_UNCONFIRMED,
                          token, now))
            log_info("ha: the last leader's launch of %s had no answer: asking again with its token", id);
    }
}

/* A new leader takes the group over: the state the last leader wrote
 * (target, the operator's desired size), the provider's instances at once
 * (adopted by tag or process, none launched twice), and a whole boot
 * timeout for the adopted instances to register with us. Lock held. */
static void take_over(struct ctl *c, int64_t now)
{
    char state[ETCD_VALUE_MAX];
    ha_read_state(&c->ha, state, sizeof state);
    json_object *o = state[0] ? json_tokener_parse(state) : NULL, *v;
    int target = 0, desired = 0;
    if (o && json_object_object_get_ex(o, "target", &v))
        target = json_object_get_int(v);
    if (o && json_object_object_get_ex(o, "operator_desired", &v))
        desired = json_object_get_int(v);
    if (o && json_object_object_get_ex(o, "next_instance", &v) && json_object_get_int64(v) > 0 &&
        json_object_get_int64(v) < 1000000000000LL)
        table_instance_number_seen(c->t, (uint64_t)json_object_get_int64(v));
    struct asg_config eff = effective_config(c);
    if (target >= eff.min_instances && target <= eff.max_instances && target != c->t->hdr->ctl.target) {
        log_info("ha: the last leader's target was %d", target);
        table_operator_target(c->t, target, desired > 0 && desired <= eff.max_instances ? desired : 0, now);
    }
    if (o && json_object_object_get_ex(o, "pending", &v) && json_object_is_type(v, json_type_array))
        resume_launches(c, v, now);
    json_object_put(o);
    for (uint32_t i = 0; i < c->t->capacity; i++)
        if (c->t->rows[i].state == ROW_PENDING && !(c->t->rows[i].flags & ROW_F_UNCONFIRMED))
            table_boot_clock_restart(c->t, &c->t->rows[i], now);
    c->last_reconcile = 0;
    c->eval_now = true;
}

/* The role as operators see it, published and logged when it changes. */
static void ha_publish(struct ctl *c, int64_t now)
{
    enum ha_role role = ha_role_now(&c->ha, now);
    if (role == c->ha_shown && c->ha.term == c->ha_shown_term && strcmp(c->ha.leader, c->ha_shown_leader) == 0 &&
        strcmp(c->ha.err, c->t->hdr->ha_error) == 0 && strcmp(c->ha.managers, c->t->hdr->ha_managers) == 0)
        return;
    if (table_lock(c->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    bool leads = role == HA_LEADER && c->ha_shown != HA_LEADER;
    /* Acting again in the same term (etcd answered again before the lease
     * lapsed): nobody else led meanwhile, the table is ours as it was. */
    bool became = leads && c->ha.term != c->ha_led_term;
    if (became)
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_INFO, "ha: became leader, term %lld, lease 0x%llx",
                   (long long)c->ha.term, (unsigned long long)c->ha.lease);
    else if (leads)
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_INFO, "ha: leading again, term %lld (the lease held)",
                   (long long)c->ha.term);
    if (leads)
        c->ha_led_term = c->ha.term;
    else if (role != HA_LEADER && c->ha_shown == HA_LEADER)
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_WARN, "ha: stopped leading (term %lld): %.120s",
                   (long long)c->ha_shown_term,
                   c->ha.err[0] ? c->ha.err : "the lease could not be renewed in time or the key is not ours");
    else if (role == HA_STANDBY && (strcmp(c->ha.leader, c->ha_shown_leader) != 0 || c->ha_shown != HA_STANDBY))
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_INFO, "ha: standby; the leader is %.60s (term %lld)",
                   c->ha.leader[0] ? c->ha.leader : "not known", (long long)c->ha.term);
    table_ha(c->t, role, c->ha.term, c->ha.lease, c->ha.leader, role == HA_LEADER ? "" : c->ha.leader_addr,
             c->ha.managers, c->ha.err, became);
    if (became)
        take_over(c, now);
    else if (leads)
        c->eval_now = true;
    table_unlock(c->t);
    c->ha_shown = role;
    c->ha_shown_term = c->ha.term;
    copy_str(c->ha_shown_leader, sizeof c->ha_shown_leader, c->ha.leader);
}

/* One HA turn: etcd when due, the role published, the agents told every
 * manager's address. Returns when the next turn is due. */
static int64_t ha_turn(struct ctl *c)
{
    int64_t now = now_ms();
    if (now >= c->ha.next_step_ms) {
        struct table_hdr h;
        if (table_read_hdr(c->t, &h))
            ha_step(&c->ha, h.monitor_addr, now);
        if (c->ha.managers[0])
            copy_str(c->prov.manager_addr, sizeof c->prov.manager_addr, c->ha.managers);
        if (c->ha.nonce)
            c->prov.nonce = c->ha.nonce;
    }
    ha_publish(c, now_ms());
    int64_t next = c->ha.next_step_ms;
    int64_t deadline = c->ha.renewed_ms + c->ha.ttl_ms - c->ha.ttl_ms / 5;
    if (c->ha_shown == HA_LEADER && deadline < next)
        next = deadline; /* stop acting on time, even if a step is late */
    return next;
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
            decide_facts(c, now_ms());
            table_unlock(c->t);
        }
        int64_t next_ha = c->ha.on ? ha_turn(c) : INT64_MAX;
        int64_t now = now_ms();
        /* A standby reconciles too: its table stays warm with the group's
         * instances, adopted from the provider, for the day it leads. */
        if (now - c->last_reconcile >= reconcile_every(c))
            reconcile(c);
        bool acting = ha_may_act(&c->ha, now);
        if (acting && (now >= next_eval || c->eval_now)) {
            c->eval_now = false;
            evaluate(c);
            next_eval = now + c->cfg.evaluation_interval_ms;
        }
        int64_t wake = next_eval > now || acting ? next_eval : now + c->cfg.evaluation_interval_ms;
        if (next_ha < wake)
            wake = next_ha;
        if (c->lb.ops && acting) {
            int64_t next_lb = next_lb_step(c);
            if (now_ms() >= next_lb || c->lb_now) {
                lb_step(c, now_ms() - c->last_lb_reconcile >= c->cfg.lb_reconcile_interval_ms);
                next_lb = next_lb_step(c);
            }
            if (next_lb < wake)
                wake = next_lb;
        }
        int wait = (int)(wake - now_ms());
        wait = wait > ADMIT_LOOK_MS ? ADMIT_LOOK_MS : wait;
        struct pollfd p[2] = {{sigfd, POLLIN, 0}, {c->reqfd, POLLIN, 0}};
        if (poll(p, c->reqfd >= 0 ? 2 : 1, wait < 0 ? 0 : wait) > 0) {
            if (p[0].revents)
                signals_drain_pipe();
            if (c->reqfd >= 0 && p[1].revents)
                handle_requests(c);
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
    if (provider_init(&c->prov, &c->cfg, err, sizeof err) != 0) {
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
        reconcile(c);
        if (c->lb.ops && ha_may_act(&c->ha, now_ms())) {
            log_info("balancer %s: following the group (lb.interval_ms %d, drain up to %d ms)",
                     c->lb.ops->name, c->cfg.lb_interval_ms, c->cfg.lb_drain_timeout_ms);
            lb_step(c, true);
        }
        run(c, sigfd);
        controller_finish(c);
    }
    controller_close(c);
    return rc;
}
