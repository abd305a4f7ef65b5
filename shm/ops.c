/* The table's operations (see ops.h): the only writers of rows and of the
 * header outside table.c's own repair. */
#include "ops.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- the row state machine ---- */

#define X (-1) /* no such edge */

/* next[state][event]. Registering again, or answering while running, keeps
 * a row running; an unhealthy row may answer again (slow, not dead) but not
 * register (it is being replaced); a terminating row only goes. A
 * lifecycle hook holds a row between two of these: a launched one,
 * registered, in launching:wait (probed, replaceable, stoppable, not
 * serving) until its hook continues it to running; a terminating one,
 * released by the balancer, in terminating:wait until its hook continues
 * it to terminating, when the provider is asked. */
static const int8_t next[ROW_STATE_COUNT][RE_COUNT] = {
    /*                LAUNCH       ADOPT        REGISTER         ANSWER           FAIL           STOP             GONE      HOLD             CONTINUE */
    [ROW_FREE]        = {ROW_PENDING, ROW_PENDING, X,               X,               X,             X,               X,        X,               X},
    [ROW_PENDING]     = {X,           X,           ROW_RUNNING,     ROW_RUNNING,     ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE, ROW_LAUNCH_WAIT, X},
    [ROW_RUNNING]     = {X,           X,           ROW_RUNNING,     ROW_RUNNING,     ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE, X,               X},
    [ROW_UNHEALTHY]   = {X,           X,           X,               ROW_RUNNING,     X,             ROW_TERMINATING, ROW_FREE, ROW_LAUNCH_WAIT, X},
    [ROW_TERMINATING] = {X,           X,           X,               X,               X,             X,               ROW_FREE, ROW_TERM_WAIT,   X},
    [ROW_LAUNCH_WAIT] = {X,           X,           ROW_LAUNCH_WAIT, ROW_LAUNCH_WAIT, ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE, ROW_LAUNCH_WAIT, ROW_RUNNING},
    [ROW_TERM_WAIT]   = {X,           X,           X,               X,               X,             X,               ROW_FREE, X,               ROW_TERMINATING},
};

static const char *const event_names[RE_COUNT] = {"launch", "adopt", "register", "answer",
                                                   "fail", "stop", "gone", "hold", "continue"};

const char *row_event_name(uint32_t ev) { return ev < RE_COUNT ? event_names[ev] : "?"; }

int row_next_state(uint32_t state, uint32_t ev)
{
    return state < ROW_STATE_COUNT && ev < RE_COUNT ? next[state][ev] : X;
}

/* The one place a row's state changes; inside the caller's write bracket.
 * An illegal edge changes nothing: it is counted and said. */
static bool step(struct table *t, struct table_row *r, uint32_t ev, const char *reason, int64_t now)
{
    /* Process-wide because it guards the process's one log. */
    static struct log_limit limit;
    int to = row_next_state(r->state, ev);
    if (to < 0) {
        atomic_fetch_add(&t->hdr->illegal_transitions, 1);
        log_limited(&limit, LOG_LVL_ERROR, "instance %.64s: no transition from %s on %s; ignored",
                    r->id, row_state_name(r->state), row_event_name(ev));
        return false;
    }
    if ((uint32_t)to != r->state || ev == RE_LAUNCH || ev == RE_ADOPT) {
        r->state_since_ms = now;
        copy_str(r->reason, sizeof r->reason, reason ? reason : "");
    }
    r->state = (uint32_t)to;
    return true;
}

/* ---- rows ---- */

static struct table_row *row_new(struct table *t, const char *id, uint32_t ev, const char *reason,
                                 uint32_t flags, const char *launch_token, uint64_t spec_gen, int64_t now)
{
    if (ev != RE_LAUNCH && ev != RE_ADOPT)
        return NULL;
    struct table_row *r = table_alloc_row(t, id); /* opens the row's bracket, state free */
    if (!r)
        return NULL;
    r->launch_ms = now;
    r->flags = flags;
    r->spec_gen = spec_gen;
    copy_str(r->launch_token, sizeof r->launch_token, launch_token ? launch_token : "");
    step(t, r, ev, reason, now);
    row_write_end(t, r);
    return r;
}

struct table_row *table_row_new(struct table *t, const char *id, uint32_t ev, const char *reason,
                                uint32_t flags, const char *launch_token, int64_t now)
{
    return row_new(t, id, ev, reason, flags, launch_token, 0, now);
}

struct table_row *table_row_launch(struct table *t, const char *id, const char *reason, uint32_t flags,
                                   const char *launch_token, uint64_t spec_gen, int64_t now)
{
    return row_new(t, id, RE_LAUNCH, reason, flags, launch_token, spec_gen, now);
}

void table_instance_known(struct table *t, struct table_row *r, const char *id, int32_t pid,
                          uint64_t pid_start, const char *addr, const char *launch_token)
{
    row_write_begin(r);
    if (id && id[0] && strcmp(id, r->id) != 0)
        copy_str(r->id, sizeof r->id, id); /* row_write_end re-indexes it */
    r->pid = pid;
    r->pid_start = pid_start;
    r->flags &= ~ROW_F_UNCONFIRMED;
    if (!r->addr[0] && addr && addr[0])
        copy_str(r->addr, sizeof r->addr, addr);
    if (!r->launch_token[0] && launch_token)
        copy_str(r->launch_token, sizeof r->launch_token, launch_token);
    row_write_end(t, r);
}

/* A row whose launching hook has not passed is held by it where it would
 * otherwise run (registered, or answering): the table, not the caller,
 * has the edge. */
static uint32_t launch_event(const struct table_row *r, uint32_t ev)
{
    bool held = (r->flags & ROW_F_HOOK_LAUNCH) && (r->state == ROW_PENDING || r->state == ROW_UNHEALTHY);
    return held ? RE_HOLD : ev;
}

bool table_registered(struct table *t, struct table_row *r, const char *addr, const char *service,
                      int64_t now)
{
    uint32_t was = r->state;
    row_write_begin(r);
    bool ok = step(t, r, launch_event(r, RE_REGISTER), "registered", now);
    if (ok) {
        copy_str(r->addr, sizeof r->addr, addr);
        copy_str(r->service_addr, sizeof r->service_addr, service ? service : "");
        r->misses = 0;
        r->last_seen_ms = now; /* registering is a sign of life too */
        if (was == ROW_PENDING)
            r->running_since_ms = now;
    }
    row_write_end(t, r);
    return ok && was == ROW_PENDING;
}

/* Per second, between a counter's reading `count` at now and the one
 * before (prev at prev_ms, 0 = none); -1 without an earlier reading, or when
 * the counter went back (its source restarted). */
static double counter_rate(uint64_t prev, int64_t prev_ms, uint64_t count, int64_t now)
{
    if (prev_ms <= 0 || now <= prev_ms || count < prev)
        return -1;
    return (double)(count - prev) * 1000.0 / (double)(now - prev_ms);
}

/* The service's counter into a rate, over a second or more. Inside the
 * row's bracket. */
static void count_requests(struct table_row *r, uint64_t requests, int64_t now)
{
    if (r->svc_counted_ms && requests >= r->svc_requests && now - r->svc_counted_ms < 1000)
        return;
    double rate = counter_rate(r->svc_requests, r->svc_counted_ms, requests, now);
    if (rate >= 0) {
        r->svc_rate = rate;
        r->svc_rate_ms = now;
    }
    r->svc_requests = requests;
    r->svc_counted_ms = now;
}

enum probe_outcome table_probe_result(struct table *t, struct table_row *r,
                                      const struct probe_sample *sample, const char *failure,
                                      uint32_t unhealthy_after, int64_t now)
{
    enum probe_outcome out = PROBE_NOTED;
    uint32_t was = r->state;
    row_write_begin(r);
    r->last_probe_ms = now;
    if (sample) {
        r->load = sample->load;
        r->cpu = sample->cpu;
        r->mem = sample->mem;
        r->has_sample = true;
        r->last_seen_ms = now;
        r->misses = 0;
        r->probes_ok++;
        row_push_sample(r, sample->load);
        if (sample->has_requests)
            count_requests(r, sample->requests, now);
        if (was != ROW_RUNNING && was != ROW_LAUNCH_WAIT &&
            step(t, r, launch_event(r, RE_ANSWER), was == ROW_PENDING ? "answered a probe" : "answers again",
                 now)) {
            if (was == ROW_PENDING)
                r->running_since_ms = now;
            out = was == ROW_PENDING ? PROBE_NOW_RUNNING : PROBE_REJOINED;
        }
    } else {
        r->misses++;
        r->probes_failed++;
        if ((was == ROW_RUNNING || was == ROW_LAUNCH_WAIT) && r->misses >= unhealthy_after) {
            char why[64];
            snprintf(why, sizeof why, "missed %u probes: %.40s", r->misses, failure ? failure : "");
            if (step(t, r, RE_FAIL, why, now))
                out = PROBE_NOW_UNHEALTHY;
        }
    }
    row_write_end(t, r);
    return out;
}

/* An event that changes nothing but the state. */
static bool event_alone(struct table *t, struct table_row *r, uint32_t ev, const char *why, int64_t now)
{
    row_write_begin(r);
    bool ok = step(t, r, ev, why, now);
    row_write_end(t, r);
    return ok;
}

bool table_failed(struct table *t, struct table_row *r, const char *why, int64_t now)
{
    return event_alone(t, r, RE_FAIL, why, now);
}

bool table_stopping(struct table *t, struct table_row *r, const char *why, int64_t deadline)
{
    row_write_begin(r);
    bool ok = step(t, r, RE_STOP, why, now_ms());
    if (ok)
        r->term_deadline_ms = deadline;
    row_write_end(t, r);
    return ok;
}

void table_stop_deadline(struct table *t, struct table_row *r, int64_t deadline)
{
    row_write_begin(r);
    r->term_deadline_ms = deadline;
    row_write_end(t, r);
}

void table_boot_clock_restart(struct table *t, struct table_row *r, int64_t now)
{
    row_write_begin(r);
    r->launch_ms = now;
    row_write_end(t, r);
}

bool table_hook_hold(struct table *t, struct table_row *r, const char *why, int64_t now)
{
    row_write_begin(r);
    bool ok = step(t, r, RE_HOLD, why, now);
    if (ok) {
        r->flags &= ~ROW_F_HOOK_TERM;
        r->term_deadline_ms = 0; /* its hook's, once it starts */
    }
    row_write_end(t, r);
    return ok;
}

void table_hook_due(struct table *t, struct table_row *r)
{
    row_write_begin(r);
    r->flags |= ROW_F_HOOK_TERM;
    row_write_end(t, r);
}

bool table_hook_continue(struct table *t, struct table_row *r, const char *why, int64_t deadline, int64_t now)
{
    uint32_t was = r->state;
    row_write_begin(r);
    bool ok = step(t, r, RE_CONTINUE, why, now);
    if (ok && was == ROW_LAUNCH_WAIT) {
        r->flags &= ~ROW_F_HOOK_LAUNCH;
        r->running_since_ms = now;
    }
    if (ok && was == ROW_TERM_WAIT)
        r->term_deadline_ms = deadline;
    row_write_end(t, r);
    return ok;
}

void table_hook_deadline(struct table *t, struct table_row *r, int64_t deadline)
{
    row_write_begin(r);
    r->term_deadline_ms = deadline;
    row_write_end(t, r);
}

bool table_gone(struct table *t, struct table_row *r)
{
    return event_alone(t, r, RE_GONE, NULL, now_ms());
}

void table_joined_counted(struct table *t, struct table_row *r, bool counted)
{
    row_write_begin(r);
    r->joined_counted = counted;
    row_write_end(t, r);
}

static bool in_group(uint32_t state)
{
    return state == ROW_PENDING || state == ROW_RUNNING || state == ROW_UNHEALTHY || state == ROW_LAUNCH_WAIT;
}

int table_joined_uncounted(const struct table *t)
{
    int n = 0;
    for (uint32_t i = 0; i < t->capacity; i++) {
        const struct table_row *r = &t->rows[i];
        n += (r->flags & ROW_F_JOINED) && in_group(r->state) && !r->joined_counted;
    }
    return n;
}

void table_lb_state(struct table *t, struct table_row *r, uint32_t lb_state, int64_t now)
{
    if (lb_state >= LBS_COUNT || lb_state == r->lb_state)
        return;
    row_write_begin(r);
    r->lb_state = lb_state;
    r->lb_since_ms = now;
    row_write_end(t, r);
}

void table_lb_hold(struct table *t, struct table_row *r, bool hold)
{
    row_write_begin(r);
    r->flags = hold ? r->flags | ROW_F_LB_HOLD : r->flags & ~ROW_F_LB_HOLD;
    row_write_end(t, r);
}

void table_row_flags(struct table *t, struct table_row *r, uint32_t mask, bool on)
{
    row_write_begin(r);
    r->flags = on ? r->flags | mask : r->flags & ~mask;
    row_write_end(t, r);
}

void table_lb_counted(struct table *t, struct table_row *r, uint64_t requests, uint32_t sessions,
                      int64_t now)
{
    double rate = counter_rate(r->lb_requests, r->lb_counted_ms, requests, now);
    row_write_begin(r);
    r->lb_requests = requests;
    r->lb_sessions = sessions;
    r->lb_counted_ms = now;
    if (rate >= 0) {
        r->req_rate = rate;
        r->req_rate_ms = now;
    }
    row_write_end(t, r);
}

void table_join_spent(struct table *t, struct table_row *r, int64_t now)
{
    row_write_begin(r);
    r->cert_issued_ms = now;
    row_write_end(t, r);
}

/* ---- facts the monitor records, decisions the controller records ---- */

bool table_deregistered(struct table *t, struct table_row *r)
{
    if (r->flags & ROW_F_DEREGISTERED)
        return false;
    row_write_begin(r);
    r->flags |= ROW_F_DEREGISTERED;
    row_write_end(t, r);
    atomic_fetch_add(&t->hdr->facts, 1);
    table_note(t, EV_HEALTH, r->id, LOG_LVL_INFO, "instance %s deregistered (was %s)", r->id,
               row_state_name(r->state));
    return true;
}

struct inbox_entry *table_inbox_find(struct table *t, const char *id)
{
    for (int i = 0; i < TABLE_INBOX; i++) {
        struct inbox_entry *e = &t->hdr->inbox[i];
        if (e->state != INBOX_FREE && strncmp(e->id, id, sizeof e->id) == 0)
            return e;
    }
    return NULL;
}

/* A free entry; else the oldest refusal not told yet (its agent, if it
 * comes back, asks again and is decided again: a refusal costs the
 * controller nothing to repeat, while an agent gone for good must not
 * hold its entry forever); never a request still waiting. */
static struct inbox_entry *inbox_free_entry(struct table *t)
{
    struct inbox_entry *oldest = NULL;
    for (int i = 0; i < TABLE_INBOX; i++) {
        struct inbox_entry *e = &t->hdr->inbox[i];
        if (e->state == INBOX_FREE)
            return e;
        if (e->state == INBOX_REFUSED && (!oldest || e->seq < oldest->seq))
            oldest = e;
    }
    return oldest;
}

int table_inbox_ask(struct table *t, const char *id, const char *addr, const char *service, int64_t now)
{
    struct inbox_entry *e = table_inbox_find(t, id);
    bool fresh = e == NULL;
    if (fresh && !(e = inbox_free_entry(t)))
        return INBOX_ASK_FULL;
    hdr_write_begin(t);
    if (fresh) {
        memset(e, 0, sizeof *e);
        e->seq = ++t->hdr->inbox_next;
        e->state = INBOX_WAITING;
        copy_str(e->id, sizeof e->id, id);
    }
    copy_str(e->addr, sizeof e->addr, addr);
    copy_str(e->service_addr, sizeof e->service_addr, service ? service : "");
    e->asked_ms = now;
    hdr_write_end(t);
    atomic_fetch_add(&t->hdr->facts, 1);
    return fresh ? INBOX_ASK_NEW : INBOX_ASK_AGAIN;
}

static void inbox_clear(struct table *t, struct inbox_entry *e)
{
    hdr_write_begin(t);
    memset(e, 0, sizeof *e);
    hdr_write_end(t);
}

void table_inbox_told(struct table *t, struct inbox_entry *e) { inbox_clear(t, e); }

void table_inbox_drop(struct table *t, struct inbox_entry *e) { inbox_clear(t, e); }

void table_inbox_refuse(struct table *t, struct inbox_entry *e, const char *why, bool table_full)
{
    hdr_write_begin(t);
    e->state = INBOX_REFUSED;
    e->table_full = table_full;
    copy_str(e->reason, sizeof e->reason, why);
    hdr_write_end(t);
}

struct table_row *table_inbox_admit(struct table *t, struct inbox_entry *e, int64_t now)
{
    struct table_row *r = row_new(t, e->id, RE_ADOPT, "admitted on registration", ROW_F_JOINED, NULL, 0, now);
    if (!r)
        return NULL;
    table_registered(t, r, e->addr, e->service_addr, now);
    table_note(t, EV_LAUNCH, r->id, LOG_LVL_INFO,
               "controller: admitted unknown instance %s at %s: it joins the group, running", r->id, r->addr);
    inbox_clear(t, e);
    return r;
}

/* ---- the header ---- */

void table_supervisor_started(struct table *t, const char *group_name, const char *nonce,
                              const char *config_path, const char *config_name)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    h->pid_supervisor = getpid();
    h->supervisor_start = pid_start_time(getpid());
    copy_str(h->group_nonce, sizeof h->group_nonce, nonce ? nonce : "");
    copy_str(h->config_path, sizeof h->config_path, config_path ? config_path : "");
    copy_str(h->group_name, sizeof h->group_name, group_name);
    copy_str(h->config_name, sizeof h->config_name, config_name ? config_name : "");
    h->pid_monitor = h->pid_controller = h->pid_status = h->pid_history = 0;
    h->draining = DRAIN_NONE;
    h->sched_active = h->sched_next = -1; /* the controller works it out */
    hdr_write_end(t);
}

/* The supervisor's facts: each an atomic of its own, written without the
 * lock (the supervisor takes the lock only to recover it). */
void table_set_role_pid(struct table *t, int role, pid_t pid)
{
    struct table_hdr *h = t->hdr;
    if (role == 0)
        atomic_store(&h->pid_monitor, pid);
    else if (role == 1)
        atomic_store(&h->pid_controller, pid);
    else if (role == TABLE_ROLE_NOTIFY)
        atomic_store(&h->notify.pid, pid);
    else if (role == 2)
        atomic_store(&h->pid_status, pid);
    else if (role == TABLE_ROLE_HISTORY)
        atomic_store(&h->pid_history, pid);
}

void table_role_restarted(struct table *t, int role)
{
    if (role >= 0 && role < 3)
        atomic_fetch_add(&t->hdr->role_restarts[role], 1);
    else if (role == TABLE_ROLE_NOTIFY)
        atomic_fetch_add(&t->hdr->notify.restarts, 1);
}

void table_set_draining(struct table *t, uint32_t kind) { atomic_store(&t->hdr->draining, kind); }

void table_config_reloaded(struct table *t) { atomic_fetch_add(&t->hdr->reloads_ok, 1); }

void table_operator_forget(struct table *t)
{
    if (t->hdr->operator_desired == 0)
        return;
    hdr_write_begin(t);
    t->hdr->operator_desired = 0;
    hdr_write_end(t);
}

void table_set_monitor_addr(struct table *t, const char *addr)
{
    hdr_write_begin(t);
    copy_str(t->hdr->monitor_addr, sizeof t->hdr->monitor_addr, addr);
    hdr_write_end(t);
}

void table_probe_round_done(struct table *t, int64_t now)
{
    hdr_write_begin(t);
    t->hdr->probe_rounds++;
    t->hdr->last_probe_round_ms = now;
    hdr_write_end(t);
}

uint64_t table_next_instance_number(struct table *t)
{
    hdr_write_begin(t);
    uint64_t n = ++t->hdr->next_instance;
    hdr_write_end(t);
    return n;
}

void table_instance_number_seen(struct table *t, uint64_t n)
{
    if (n < t->hdr->next_instance)
        return;
    hdr_write_begin(t);
    t->hdr->next_instance = n;
    hdr_write_end(t);
}

void table_set_target(struct table *t, int32_t target)
{
    hdr_write_begin(t);
    t->hdr->ctl.target = target;
    if (target > 0)
        t->hdr->ctl.at_zero = 0; /* instances kept: no longer at zero */
    hdr_write_end(t);
}

void table_evaluated(struct table *t, const struct ctl_state *st, int change, int64_t now)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    h->ctl = *st;
    if (change > 0)
        h->scale_out++;
    else if (change < 0)
        h->scale_in++;
    h->last_eval_ms = now;
    h->evaluations++;
    hdr_write_end(t);
}

void table_launch_spec(struct table *t, uint64_t gen, const uint8_t digest[SPEC_DIGEST_SIZE])
{
    hdr_write_begin(t);
    t->hdr->spec.gen = gen;
    memcpy(t->hdr->spec.digest, digest, SPEC_DIGEST_SIZE);
    hdr_write_end(t);
}

void table_rollout(struct table *t, const struct rollout_state *ro)
{
    if (memcmp(&t->hdr->rollout, ro, sizeof *ro) == 0)
        return;
    hdr_write_begin(t);
    t->hdr->rollout = *ro;
    hdr_write_end(t);
}

void table_suspended(struct table *t, uint32_t mask, bool suspend, const char *by, int64_t wall)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    for (uint32_t p = 0; p < SUSP_COUNT; p++) {
        if (!(mask & SUSP_BIT(p)))
            continue;
        struct suspend_mark *m = &h->suspend[p];
        memset(m, 0, sizeof *m);
        if (suspend) {
            m->since_wall_ms = wall;
            copy_str(m->by, sizeof m->by, by);
        }
    }
    h->suspended = suspend ? (h->suspended | mask) & SUSP_ALL : h->suspended & ~mask;
    hdr_write_end(t);
}

void table_spec_in_force(struct table *t, const struct spec_saved *cur, const struct spec_saved *prev,
                         bool pinned, const uint8_t rejected[SPEC_DIGEST_SIZE])
{
    hdr_write_begin(t);
    struct table_hdr *h = t->hdr;
    h->spec.gen = cur->gen;
    memcpy(h->spec.digest, cur->digest, SPEC_DIGEST_SIZE);
    h->spec_cur = *cur;
    if (prev)
        h->spec_prev = *prev;
    if (cur->gen > h->spec_gen_last)
        h->spec_gen_last = cur->gen;
    if (prev && prev->gen > h->spec_gen_last) /* a new leader's number for the last leader's previous spec */
        h->spec_gen_last = prev->gen;
    h->spec_pinned = pinned;
    bool seen = false;
    for (int i = 0; i < SPEC_SEEN; i++)
        seen |= h->spec_seen[i].gen == cur->gen;
    if (!seen && cur->gen) {
        h->spec_seen[h->spec_seen_next % SPEC_SEEN] = (struct spec_state){.gen = cur->gen};
        memcpy(h->spec_seen[h->spec_seen_next % SPEC_SEEN].digest, cur->digest, SPEC_DIGEST_SIZE);
        h->spec_seen_next = (h->spec_seen_next + 1) % SPEC_SEEN;
    }
    if (rejected)
        memcpy(h->spec_rejected, rejected, SPEC_DIGEST_SIZE);
    else
        memset(h->spec_rejected, 0, SPEC_DIGEST_SIZE);
    hdr_write_end(t);
}

void table_row_spec_gen(struct table *t, struct table_row *r, uint64_t gen)
{
    if (r->spec_gen == gen)
        return;
    row_write_begin(r);
    r->spec_gen = gen;
    row_write_end(t, r);
}

void table_lb_5xx(struct table *t, struct table_row *r, uint64_t errors)
{
    if (r->lb_5xx == errors)
        return;
    row_write_begin(r);
    r->lb_5xx = errors;
    row_write_end(t, r);
}

void table_lb_mark(struct table *t, struct table_row *r)
{
    row_write_begin(r);
    r->lb_req_mark = r->lb_requests;
    r->lb_5xx_mark = r->lb_5xx;
    row_write_end(t, r);
}

void table_lb_weight(struct table *t, struct table_row *r, uint32_t weight)
{
    row_write_begin(r);
    r->lb_weight = weight;
    row_write_end(t, r);
}

void table_bounds(struct table *t, const struct group_bounds *b)
{
    if (memcmp(&t->hdr->bounds, b, sizeof *b) == 0)
        return;
    hdr_write_begin(t);
    t->hdr->bounds = *b;
    hdr_write_end(t);
}

void table_count_replaced(struct table *t)
{
    hdr_write_begin(t);
    t->hdr->replaced++;
    hdr_write_end(t);
}

void table_lb_health(struct table *t, bool up, const char *error, int members, int64_t now)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    h->lb_up = up;
    h->lb_checked_ms = now;
    if (members >= 0)
        h->lb_members = members;
    copy_str(h->lb_error, sizeof h->lb_error, error ? error : "");
    hdr_write_end(t);
    if (error)
        atomic_fetch_add(&h->lb_errors, 1);
}

void table_lb_demand(struct table *t, const struct lb_demand *d)
{
    hdr_write_begin(t);
    t->hdr->lb_demand = *d;
    hdr_write_end(t);
}

void table_zero(struct table *t, const struct zero_state *z)
{
    hdr_write_begin(t);
    t->hdr->zero = *z;
    hdr_write_end(t);
}

void table_ha(struct table *t, int role, int64_t term, int64_t lease, const char *leader,
              const char *leader_addr, const char *managers, const char *error, bool became_leader)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    h->ha_role = (uint32_t)role;
    h->ha_term = term;
    h->ha_lease = lease;
    copy_str(h->ha_leader, sizeof h->ha_leader, leader);
    copy_str(h->ha_leader_addr, sizeof h->ha_leader_addr, leader_addr);
    copy_str(h->ha_error, sizeof h->ha_error, error);
    copy_str(h->ha_managers, sizeof h->ha_managers, managers);
    hdr_write_end(t);
    if (became_leader)
        atomic_fetch_add(&h->ha_failovers, 1);
}

void table_schedule(struct table *t, int active, int64_t since, int next, int64_t next_at)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    h->sched_active = active;
    h->sched_since = since;
    h->sched_next = next;
    h->sched_next_at = next_at;
    hdr_write_end(t);
}

void table_operator_target(struct table *t, int32_t target, int32_t desired, int64_t now)
{
    struct table_hdr *h = t->hdr;
    hdr_write_begin(t);
    if (desired > 0)
        h->operator_desired = desired;
    h->ctl.target = target;
    /* The operator's size wakes a group at zero; a size of 0 (allowed
     * only with min_instances 0: the controller checks) takes it there. */
    h->ctl.at_zero = target == 0;
    h->ctl.last_action_ms = now; /* the cooldown protects the operator's choice */
    h->ctl.breach_out = h->ctl.breach_in = 0;
    h->ctl.in_since_ms = 0;
    hdr_write_end(t);
}
