/* asgctl's operator actions: a request POSTed to the status API (api.h),
 * then the controller's word on it awaited in the table's event log, as
 * asgctl rollout, lifecycle, protect, standby, desired, launch,
 * terminate, suspend and resume all do. */
#ifndef ASG_ASGCTL_ACT_H
#define ASG_ASGCTL_ACT_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../shm/table.h"

struct act {
    const char *verb;            /* the command, for "asgctl: VERB: ..." */
    const char *what;            /* the request in messages: "rollout pause", "protect web-3" */
    const char *path;            /* /api/v1/... */
    const char *body;            /* its JSON */
    /* Is event e the controller's word on this request? Its message says
     * "refused" when the controller refused it. */
    bool (*answers)(const struct table_event *e, const void *ctx);
    const void *ctx;
    int64_t wait_ms;             /* how long to wait for that word */
};

/* Sends a's request and prints the outcome: the controller's event on it,
 * or that it was accepted (without a table t to watch, or when the
 * controller has not acted within wait_ms). 0 carried out or accepted, 1
 * refused (by the manager or the controller), else api_post's exit code. */
int act_run(const struct asg_config *cfg, const struct table *t, const struct act *a);

#endif
