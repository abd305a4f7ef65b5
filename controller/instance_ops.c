/* Protection and standby requests (instance_ops.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/ctlsock.h"
#include "../common/util.h"
#include "../shm/ops.h"
#include "instance_ops.h"
#include "rows.h"

static bool live(const struct table_row *r)
{
    return r->state == ROW_PENDING || r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY;
}

/* Protection on or off. A dead or silent instance is still replaced:
 * protection keeps a working instance from the group's own choices, it
 * does not keep a broken one. */
static void protect(struct ctl *c, struct table_row *r, bool on)
{
    if (!live(r)) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN, "operator: protect %s %s refused: it is %s", r->id,
                   on ? "on" : "off", row_state_name(r->state));
        return;
    }
    if (((r->flags & ROW_F_PROTECTED) != 0) == on) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO, "operator: protect %s %s: it already was", r->id,
                   on ? "on" : "off");
        return;
    }
    table_row_flags(c->t, r, ROW_F_PROTECTED, on);
    if (on)
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
                   "operator: %s protected from scale-in: no scale-in or rollout stops it; still replaced "
                   "if it dies or stops answering", r->id);
    else
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
                   "operator: %s no longer protected: a scale-in or a rollout may stop it", r->id);
}

/* Into standby: only a running instance (one booting or failing has no
 * service to take out of use). With decrement the target goes down with
 * it, as a terminate with decrement does, never below min; without, the
 * group launches one in its place (AWS's behaviour). */
static void standby_enter(struct ctl *c, struct table_row *r, bool decrement, const struct asg_config *eff,
                          int target, int64_t now)
{
    if (r->flags & ROW_F_STANDBY) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO, "operator: standby %s enter: it already is", r->id);
        return;
    }
    if (r->state != ROW_RUNNING) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN, "operator: standby %s enter refused: it is %s, not "
                   "running", r->id, row_state_name(r->state));
        return;
    }
    if (decrement && target - 1 < eff->min_instances) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN,
                   "operator: standby %s with decrement refused: the target %d is at its minimum %d; enter "
                   "without decrement to have it replaced", r->id, target, eff->min_instances);
        return;
    }
    table_row_flags(c->t, r, ROW_F_STANDBY | (decrement ? ROW_F_STANDBY_DECREMENTED : 0), true);
    c->lb_now = true; /* out of the balancer at its next step, not at its next interval */
    if (!decrement) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
                   "operator: %s on standby: leaves the balancer, is not replaced on missed probes and "
                   "counts as neither load nor capacity; one is launched in its place", r->id);
        return;
    }
    int desired = eff->desired_instances, to = target - 1;
    int new_desired = desired > to ? to : 0; /* as terminate with decrement: desired must not hold it up */
    ctl_operator_target(c, target, to, new_desired, now);
    table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
               "operator: %s on standby with decrement: target %d -> %d, desired %d -> %d; leaves the "
               "balancer, is not replaced on missed probes and counts as neither load nor capacity", r->id,
               target, to, desired, new_desired ? new_desired : desired);
}

/* Out of standby: counted again and back in the balancer once running.
 * One that entered with decrement takes its place in the target again
 * (within max); one that did not leaves the group one above its target,
 * which the termination policy then scales in. */
static void standby_exit(struct ctl *c, struct table_row *r, const struct asg_config *eff, int target,
                         int64_t now)
{
    if (!(r->flags & ROW_F_STANDBY)) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_WARN, "operator: standby %s exit refused: it is not on "
                   "standby", r->id);
        return;
    }
    bool decremented = r->flags & ROW_F_STANDBY_DECREMENTED;
    table_row_flags(c->t, r, ROW_F_STANDBY | ROW_F_STANDBY_DECREMENTED, false);
    c->lb_now = true;
    const char *health = r->state == ROW_UNHEALTHY ? "; unhealthy, so it is replaced now" : "";
    if (!decremented || target >= eff->max_instances) {
        table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
                   "operator: %s back from standby: counted again%s%s", r->id,
                   decremented ? " (the target stays at max)" : " (the group may now be above its target)",
                   health);
        return;
    }
    int desired = eff->desired_instances, to = target + 1;
    int new_desired = desired >= target ? to : 0;
    ctl_operator_target(c, target, to, new_desired, now);
    table_note(c->t, EV_OPERATOR, r->id, LOG_LVL_INFO,
               "operator: %s back from standby: counted again, target %d -> %d, desired %d -> %d%s", r->id,
               target, to, desired, new_desired ? new_desired : desired, health);
}

void ctl_instance_request(struct ctl *c, const struct ctl_request *rq, const struct asg_config *eff, int target,
                          int64_t now)
{
    const char *verb = rq->kind == REQ_PROTECT ? "protect" : "standby";
    struct table_row *r = table_find(c->t, rq->id);
    if (!r) {
        table_note(c->t, EV_OPERATOR, rq->id, LOG_LVL_WARN, "operator: %s %s refused: no such instance", verb,
                   rq->id);
        return;
    }
    if (rq->kind == REQ_PROTECT)
        protect(c, r, rq->value == 1);
    else if (rq->value == SB_EXIT)
        standby_exit(c, r, eff, target, now);
    else
        standby_enter(c, r, rq->value == SB_ENTER_DECREMENT, eff, target, now);
}

/* ---- ha.etcd: the flags in the group's state ---- */

#define CONTROL_FLAGS (ROW_F_PROTECTED | ROW_F_STANDBY | ROW_F_STANDBY_DECREMENTED)

void ctl_instance_flags_state(const struct ctl *c, struct strbuf *b, size_t max)
{
    sb_printf(b, ",\"instance_flags\":{");
    size_t n = 0;
    for (uint32_t i = 0; i < c->t->capacity && b->len + TABLE_ID_MAX + 16 < max; i++) {
        const struct table_row *r = &c->t->rows[i];
        if (!live(r) || !(r->flags & CONTROL_FLAGS))
            continue;
        sb_printf(b, "%s", n++ ? "," : "");
        sb_json_str(b, r->id);
        sb_printf(b, ":%u", (unsigned)(r->flags & CONTROL_FLAGS));
    }
    sb_printf(b, "}");
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct ctl_ha_flag *)a)->id, ((const struct ctl_ha_flag *)b)->id);
}

/* The state's "instance_flags", checked entry by entry (another process's
 * message): 0 with the entries in *out (malloc'd, sorted by id), 1 when
 * the state has none (a leader of before them), -1 with why. */
static int flags_decode(const struct ctl *c, json_object *state, struct ctl_ha_flag **out, size_t *n, char *why,
                        size_t whysize)
{
    json_object *o;
    *out = NULL;
    *n = 0;
    if (!json_object_object_get_ex(state, "instance_flags", &o))
        return 1;
    if (!json_object_is_type(o, json_type_object) || (size_t)json_object_object_length(o) > c->t->capacity) {
        snprintf(why, whysize, "instance_flags: not an object of at most %u entries", c->t->capacity);
        return -1;
    }
    struct ctl_ha_flag *v = calloc((size_t)json_object_object_length(o) + 1, sizeof *v);
    if (!v)
        abort();
    json_object_object_foreach(o, id, val) {
        int64_t f = json_object_is_type(val, json_type_int) ? json_object_get_int64(val) : -1;
        if (!valid_instance_id(id, strlen(id)) || strlen(id) >= TABLE_ID_MAX || f <= 0 || (f & ~(int64_t)CONTROL_FLAGS)) {
            snprintf(why, whysize, "instance_flags: entry '%.40s': not an instance id with flags within %u", id,
                     CONTROL_FLAGS);
            free(v);
            return -1;
        }
        copy_str(v[*n].id, sizeof v[*n].id, id);
        v[(*n)++].flags = (uint32_t)f;
    }
    qsort(v, *n, sizeof *v, by_id);
    *out = v;
    return 0;
}

/* Row r takes exactly the flags the last leader had for it (none if it
 * had none). */
static void take_flags(struct ctl *c, struct table_row *r)
{
    struct ctl_ha_flag key;
    copy_str(key.id, sizeof key.id, r->id);
    const struct ctl_ha_flag *f = c->ha_nflags ? bsearch(&key, c->ha_flags, c->ha_nflags, sizeof key, by_id) : NULL;
    uint32_t want = f ? f->flags : 0;
    if ((r->flags & CONTROL_FLAGS) == want)
        return;
    table_row_flags(c->t, r, CONTROL_FLAGS, false);
    if (want)
        table_row_flags(c->t, r, want, true);
    log_info("ha: %s takes the last leader's controls:%s%s", r->id, want & ROW_F_PROTECTED ? " protected" : "",
             want & ROW_F_STANDBY ? " standby" : want ? "" : " none");
}

void ctl_instance_flags_learn(struct ctl *c, json_object *state)
{
    struct ctl_ha_flag *v;
    size_t n;
    char why[160];
    int rc = flags_decode(c, state, &v, &n, why, sizeof why);
    if (rc < 0)
        table_note(c->t, EV_ROLE, NULL, LOG_LVL_ERROR, "ha: %.140s: the instances' controls ignored", why);
    if (rc != 0)
        return;
    free(c->ha_flags);
    c->ha_flags = v;
    c->ha_nflags = n;
    for (uint32_t i = 0; i < c->t->capacity; i++)
        if (live(&c->t->rows[i]))
            take_flags(c, &c->t->rows[i]);
    if (n)
        table_note(c->t, EV_OPERATOR, NULL, LOG_LVL_INFO,
                   "ha: the last leader's controls taken over: %zu instance(s) protected or on standby", n);
}

void ctl_instance_flags_of_adopted(struct ctl *c, struct table_row *r)
{
    if (c->ha_nflags)
        take_flags(c, r);
}
