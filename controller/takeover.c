/* High availability (ha.etcd): this manager's role published and logged
 * as it changes, and a new leader's takeover of the group. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "ha_rollout.h"
#include "instance_ops.h"
#include "rollout.h"
#include "rollout_plan.h"
#include "rows.h"
#include "suspend.h"
#include "takeover.h"

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct ctl_ha_gen *)a)->id, ((const struct ctl_ha_gen *)b)->id);
}

void ctl_ha_spec_of_adopted(struct ctl *c, struct table_row *r)
{
    if (r->spec_gen || !c->ha_ngens)
        return; /* ours: we launched it, or learnt it already */
    struct ctl_ha_gen key;
    copy_str(key.id, sizeof key.id, r->id);
    const struct ctl_ha_gen *g = bsearch(&key, c->ha_gens, c->ha_ngens, sizeof key, by_id);
    if (g)
        table_row_spec_gen(c->t, r, g->gen);
}

/* The last leader's instances, each with our generation of its spec:
 * kept for those adopted later, and given to the rows we hold now. */
static void learn_instances(struct ctl *c, json_object *o)
{
    struct ha_instance_spec *v = NULL;
    size_t n = 0, known = 0;
    char err[200];
    if (ha_instances_decode(o, c->t->capacity, &v, &n, err, sizeof err) != 0) {
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_ERROR, "ha: %.150s: the instances' launch specs ignored", err);
        return;
    }
    free(c->ha_gens);
    c->ha_gens = calloc(n ? n : 1, sizeof *c->ha_gens);
    if (!c->ha_gens)
        abort();
    const struct table_hdr *h = c->t->hdr;
    for (size_t k = 0; k < n; k++) {
        uint64_t gen = ha_gen_of(v[k].prefix, HA_PREFIX_BYTES, &h->spec_cur, &h->spec_prev);
        if (!gen)
            continue; /* a spec we do not know: unknown, as an adopted row already is */
        copy_str(c->ha_gens[known].id, sizeof c->ha_gens[known].id, v[k].id);
        c->ha_gens[known++].gen = gen;
    }
    c->ha_ngens = known;
    /* Looked up by id for every row, at once and at each adoption: sorted. */
    qsort(c->ha_gens, known, sizeof *c->ha_gens, by_id);
    free(v);
    for (uint32_t i = 0; i < c->t->capacity; i++)
        if (c->t->rows[i].state != ROW_FREE)
            ctl_ha_spec_of_adopted(c, &c->t->rows[i]);
    if (n)
        log_info("ha: the last leader's %zu instance(s): %zu of a launch spec we know", n, known);
}

static void note_taken(struct ctl *c, const struct rollout_state *ro)
{
    table_note(c->t, EV_ROLLOUT, NULL, LOG_LVL_INFO,
               "ha: rollout %llu taken over from the last leader, %s: generation %llu to %llu, %d replaced, "
               "%d remaining%s", (unsigned long long)ro->number, rollout_phase_name(ro->phase),
               (unsigned long long)ro->from_gen, (unsigned long long)ro->to_gen, ro->replaced, ro->remaining,
               ro->rolling_back ? " (rolling back)" : "");
}

/* The last leader's rollout and launch specs (ha_rollout.h), with our
 * generations: the rollout goes on here where it was. Our own spec in
 * force is worked out first, from our config. */
static void take_rollout(struct ctl *c, json_object *o, int64_t now)
{
    ctl_follow_spec(c, now);
    struct ha_group_specs *lead = malloc(sizeof *lead);
    struct ha_takeover *t = malloc(sizeof *t);
    if (!lead || !t)
        abort();
    char err[200];
    const struct table_hdr *h = c->t->hdr;
    if (ha_specs_decode(o, lead, err, sizeof err) != 0) {
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_ERROR, "ha: %.150s: its rollout and specs ignored", err);
        goto out;
    }
    ha_takeover_plan(lead, &h->spec_cur, &h->spec_prev, h->spec_pinned, h->spec_rejected, h->spec_gen_last,
                     now, t);
    if (t->set_spec) {
        table_spec_in_force(c->t, &t->cur, &t->prev, t->pinned, t->pinned ? t->rejected : NULL);
        ctl_launch_config(c);
        table_note(c->t, EV_CONFIG, NULL, LOG_LVL_INFO,
                   "ha: launch spec generation %llu in force%s; the last leader's previous spec is generation %llu",
                   (unsigned long long)t->cur.gen, t->pinned ? " (pinned: the last leader rolled back)" : "",
                   (unsigned long long)t->prev.gen);
    }
    if (t->why[0])
        table_note(c->t, EV_ROLLOUT, NULL, LOG_LVL_WARN, "ha: the last leader's state: %.150s", t->why);
    if (t->set_ro) {
        table_rollout(c->t, &t->ro);
        note_taken(c, &t->ro);
    }
    learn_instances(c, o);
    ctl_instance_flags_learn(c, o);
out:
    free(lead);
    free(t);
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
    char *state = malloc(HA_STATE_MAX);
    if (!state)
        abort();
    ha_read_state(&c->ha, state, HA_STATE_MAX);
    json_object *o = state[0] ? json_tokener_parse(state) : NULL, *v;
    int target = 0, desired = 0;
    if (o && json_object_object_get_ex(o, "target", &v))
        target = json_object_get_int(v);
    if (o && json_object_object_get_ex(o, "operator_desired", &v))
        desired = json_object_get_int(v);
    if (o && json_object_object_get_ex(o, "next_instance", &v) && json_object_get_int64(v) > 0 &&
        json_object_get_int64(v) < 1000000000000LL)
        table_instance_number_seen(c->t, (uint64_t)json_object_get_int64(v));
    struct asg_config eff = ctl_effective_config(c);
    if (target >= 1 && target >= eff.min_instances && target <= eff.max_instances && target != c->t->hdr->ctl.target) {
        log_info("ha: the last leader's target was %d", target);
        table_operator_target(c->t, target, desired > 0 && desired <= eff.max_instances ? desired : 0, now);
    }
    if (o && json_object_object_get_ex(o, "pending", &v) && json_object_is_type(v, json_type_array))
        resume_launches(c, v, now);
    if (o && json_object_is_type(o, json_type_object))
        take_rollout(c, o, now);
    if (o)
        ctl_suspend_take_over(c, o);
    json_object_put(o);
    free(state);
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
int64_t ctl_ha_turn(struct ctl *c)
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

