/* The provider calls the controller decided, made without the table's
 * lock, and their outcomes recorded with it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/strbuf.h"
#include "../common/util.h"
#include "../shm/ops.h"
#include "calls.h"
#include "controller.h"
#include "ha_rollout.h"
#include "instance_ops.h"
#include "rows.h"
#include "suspend.h"

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
                log_warn("%s did not stop within %d ms; forcing it", o->row.id, ctl_kill_timeout(c));
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
        ctl_row_free(c, r, "launch failed");
        ctl_launch_backoff(c, now);
        return;
    }
    if (o->result == LAUNCH_UNKNOWN) {
        log_warn("launch %s: no clear answer (%s); asking again with the same token", o->row.id,
                 o->err);
        ctl_launch_backoff(c, now);
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
        struct table_row *r = ctl_op_row(c, o);
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
                ctl_row_free(c, r, r->reason);
            } else if (o->killed) {
                table_stop_deadline(c->t, r, now + ctl_kill_timeout(c));
            }
        }
    }
    c->nops = 0;
}

/* A generation of our table as the group's state names it: the digest of
 * the spec in force or of the one before it (the only ones kept); false
 * for any other (unknown to a new leader: replaced in a rollout). */
static bool digest_of_gen(const struct table_hdr *h, uint64_t gen, uint8_t out[SPEC_DIGEST_SIZE])
{
    const uint8_t *d = gen && gen == h->spec.gen ? h->spec.digest
                       : gen && gen == h->spec_prev.gen ? h->spec_prev.digest : NULL;
    if (d)
        memcpy(out, d, SPEC_DIGEST_SIZE);
    return d != NULL;
}

/* The rollout, the specs in force and before, and each instance's spec
 * (ha_rollout.h), appended to the state in b. */
static void ha_state_rollout(struct ctl *c, struct strbuf *b)
{
    const struct table_hdr *h = c->t->hdr;
    struct ha_group_specs *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->ro = h->rollout;
    s->has_from = digest_of_gen(h, h->rollout.from_gen, s->from);
    s->has_to = digest_of_gen(h, h->rollout.to_gen, s->to);
    s->cur.known = digest_of_gen(h, h->spec.gen, s->cur.digest);
    if (h->spec_cur.gen == h->spec.gen && h->spec_cur.len <= SPEC_KV_MAX)
        memcpy(s->cur.kv, h->spec_cur.kv, s->cur.len = h->spec_cur.len);
    s->prev.known = digest_of_gen(h, h->spec_prev.gen, s->prev.digest);
    if (s->prev.known && h->spec_prev.len <= SPEC_KV_MAX)
        memcpy(s->prev.kv, h->spec_prev.kv, s->prev.len = h->spec_prev.len);
    s->pinned = h->spec_pinned != 0;
    s->has_rejected = s->pinned;
    memcpy(s->rejected, h->spec_rejected, SPEC_DIGEST_SIZE);
    ha_specs_encode(b, s);
    free(s);
    struct ha_instance_spec *v = calloc(c->t->capacity ? c->t->capacity : 1, sizeof *v);
    if (!v)
        abort();
    size_t n = 0;
    uint8_t d[SPEC_DIGEST_SIZE];
    for (uint32_t i = 0; i < c->t->capacity; i++) {
        const struct table_row *r = &c->t->rows[i];
        if (r->state == ROW_FREE || !digest_of_gen(h, r->spec_gen, d) || !copy_str(v[n].id, sizeof v[n].id, r->id))
            continue;
        memcpy(v[n++].prefix, d, HA_PREFIX_BYTES);
    }
    size_t listed = ha_instances_encode(b, v, n, HA_STATE_MAX - 128);
    if (listed < n)
        log_limited(&c->ha_state_limit, LOG_LVL_WARN,
                    "ha: the group's state would pass %d bytes: %zu of %zu instances' launch specs left out "
                    "(a new leader takes them for unknown and replaces them in a rollout)",
                    HA_STATE_MAX, n - listed, n);
    free(v);
}

/* The group's state as a new leader would need it, written to etcd by the
 * transaction that guards each batch of provider calls: the sizes, the
 * next instance number, every launch not yet answered (the batch's and
 * those still unconfirmed), by id, so the new leader asks again with the
 * same token; and the rollout with the launch specs (ha_rollout.h). */
static void ha_state(struct ctl *c, struct strbuf *b)
{
    const struct table_hdr *h = c->t->hdr;
    int launches = 0, terminations = 0;
    sb_printf(b, "{\"leader\":");
    sb_json_str(b, c->ha.id);
    sb_printf(b, ",\"term\":%lld,\"target\":%d,\"operator_desired\":%d,\"next_instance\":%llu,"
                 "\"at_ms\":%lld,\"pending\":[",
              (long long)c->ha.term, h->ctl.target, h->operator_desired,
              (unsigned long long)h->next_instance, (long long)wall_ms());
    for (size_t i = 0; i < c->nops; i++)
        c->ops[i].kind == OP_LAUNCH ? launches++ : terminations++;
    int listed = 0;
    /* Bounded like before: the rollout's part comes after, then the instances. */
    for (uint32_t i = 0; i < c->t->capacity && b->len + 2 * TABLE_ID_MAX < ETCD_VALUE_MAX - 64; i++) {
        const struct table_row *r = &c->t->rows[i];
        if (r->state != ROW_PENDING || !(r->flags & ROW_F_UNCONFIRMED))
            continue;
        sb_printf(b, "%s", listed++ ? "," : "");
        sb_json_str(b, r->id);
    }
    sb_printf(b, "],\"launches\":%d,\"terminations\":%d", launches, terminations);
    suspend_state_encode(b, h);
    ctl_instance_flags_state(c, b, b->len + HA_STATE_MAX / 5);
    ha_state_rollout(c, b);
    sb_printf(b, "}");
}

bool ctl_guard_batch(struct ctl *c)
{
    struct strbuf b = {0};
    ha_state(c, &b);
    bool ok = ha_guard(&c->ha, b.s, now_ms());
    sb_free(&b);
    return ok;
}

/* A batch the guard refused: launches are dropped (their rows freed, no
 * instance exists), terminations wait for whoever leads. */
static void fence_batch(struct ctl *c)
{
    log_warn("ha: %zu provider call(s) not made: this manager does not lead (%s)", c->nops,
             c->ha.err[0] ? c->ha.err : "the leader key is not ours");
    if (table_lock(c->t, TABLE_LOCK_RECORD_MS) == 0) {
        for (size_t i = 0; i < c->nops; i++) {
            struct table_row *r = ctl_op_row(c, &c->ops[i]);
            if (c->ops[i].kind == OP_LAUNCH && r && r->state == ROW_PENDING)
                ctl_row_free(c, r, "not launched: this manager does not lead");
        }
        table_unlock(c->t);
    }
    c->nops = 0;
}

/* Carries out the ops queued under the lock: provider calls without it,
 * then the results with it. */
void ctl_execute(struct ctl *c)
{
    if (c->nops == 0)
        return;
    fault_stop_point("controller", "stop-before-calls");
    if (c->ha.on && !ctl_guard_batch(c)) {
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

