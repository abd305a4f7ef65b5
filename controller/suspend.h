/* Suspended processes (common/suspend.h): the operator's REQ_SUSPEND
 * recorded, and the gates the plan and the controller's steps consult.
 *
 * The plan's gates are pure (plan.c asks suspend_holds of the view's
 * plan_group.suspended): launch holds every launch (scale-out,
 * replacements, a rollout's surge, asking again about an unanswered one);
 * terminate holds every stop the group decides (scale-in, replacing an
 * unhealthy or a boot-timed-out instance), not an operator's own
 * terminate; replace leaves unhealthy instances unhealthy (probed, and
 * back when they answer); scale keeps the policy's target, held within
 * the bounds in force (the config's, a schedule entry's and the
 * operator's desired size still apply); rollout (and launch or terminate,
 * without which it cannot replace) holds a running rollout as if paused,
 * and no rollout starts. reconcile and balancer skip the controller's
 * steps of those names (reconcile.c, balancer.c). */
#ifndef ASG_CTL_SUSPEND_H
#define ASG_CTL_SUSPEND_H

#include <json-c/json.h>
#include <stdbool.h>

#include "../common/ctlsock.h"
#include "../common/strbuf.h"
#include "../shm/table.h"
#include "../common/suspend.h"
#include "plan.h"

struct ctl;

/* REQ_SUSPEND, lock held: records what changed and says so in an event
 * naming who asked. */
void ctl_suspend_request(struct ctl *c, const struct ctl_request *rq);

/* With ha.etcd the suspension follows the leader: the leader writes it
 * with the group's state (controller/calls.c), and a new leader takes the
 * last leader's over its own (controller/takeover.c). */
struct suspend_state {
    bool present;                /* the state had it (a leader of before: not) */
    uint32_t mask;
    struct suspend_mark mark[SUSP_COUNT];
};
/* Appends ,"suspended":[{"process":..,"by":..,"since_ms":..},...] to b. */
void suspend_state_encode(struct strbuf *b, const struct table_hdr *h);
/* The suspension in a state another manager wrote: 0 (out->present false
 * when it has none), or -1 naming the field that is wrong and why. */
int suspend_state_decode(json_object *state, struct suspend_state *out, char *err, size_t errsize);
/* A new leader, lock held: the last leader's suspension (state) becomes
 * this table's, said in an event when it changes anything. */
void ctl_suspend_take_over(struct ctl *c, json_object *state);

/* Is process p suspended in this controller's table? (It alone writes
 * the mask: its own read needs no lock.) */
bool ctl_suspended(const struct ctl *c, enum suspend_process p);

/* The scale process suspended: the target stays where it is, within the
 * bounds in force (eff), and the policy's state is left as it was. */
void suspend_hold_decision(const struct asg_config *eff, struct ctl_state *st, struct decision *d);

/* rollout_judge and rollout_step (rollout_plan.h) as a held rollout sees
 * them: a running one as if paused (nothing launched or stopped for it,
 * its surge kept, no failure judged), its phase in the table unchanged;
 * instances past their lifetime not replaced. */
void suspend_rollout_judge(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                           const struct plan_group *g, struct plan *p);
void suspend_rollout_step(struct plan_row *rows, size_t n, const struct asg_config *cfg,
                          const struct plan_group *g, int target, struct plan *p);

#endif
