/* Lifecycle hooks, the rows' side (lifecycle.h): which hook a row gets and
 * its wait for the terminating one. Apart from the runner (lifecycle.c),
 * which stops rows through rows.c, so that rows.c can ask these without
 * the two calling each other. */
#define _GNU_SOURCE
#include "../common/util.h"
#include "../shm/ops.h"
#include "ctl.h"
#include "lifecycle.h"

const struct lifecycle_hook_config *lifecycle_hook_cfg(const struct ctl *c, int kind)
{
    return kind == HOOK_LAUNCHING ? &c->cfg.hook_launching : &c->cfg.hook_terminating;
}

bool lifecycle_hook_set(const struct ctl *c, int kind)
{
    const struct lifecycle_hook_config *h = lifecycle_hook_cfg(c, kind);
    return h->command[0] || h->http[0];
}

uint32_t lifecycle_launch_flags(const struct ctl *c)
{
    return lifecycle_hook_set(c, HOOK_LAUNCHING) ? ROW_F_HOOK_LAUNCH : 0;
}

bool lifecycle_on_stop(const struct ctl *c, const struct table_row *r)
{
    bool ran = (r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY) && r->running_since_ms > 0 &&
               !(r->flags & ROW_F_HOOK_LAUNCH);
    return ran && !c->hooks.off && lifecycle_hook_set(c, HOOK_TERMINATING);
}

void lifecycle_hold(struct ctl *c, struct table_row *r, int64_t now)
{
    /* The reason stays why it is stopped: what its hook is told. */
    char why[sizeof r->reason];
    copy_str(why, sizeof why, r->reason);
    if (table_hook_hold(c->t, r, why, now))
        table_note(c->t, EV_LIFECYCLE, r->id, LOG_LVL_INFO,
                   "lifecycle: %s is out of the balancer and waits for its terminating hook (terminating:wait)",
                   r->id);
}

