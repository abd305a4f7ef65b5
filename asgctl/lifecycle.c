/* asgctl lifecycle (lifecycle.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/strbuf.h"
#include "../common/util.h"
#include "act.h"
#include "lifecycle.h"

#define LC_OUTCOME_WAIT_MS 5000

static int usage(void)
{
    fprintf(stderr, "asgctl: usage: lifecycle complete ID continue|abandon\n"
                    "       asgctl lifecycle heartbeat ID\n");
    return 2;
}

/* The controller's word on a request about instance id: an operator's
 * event about it. */
static bool answers(const struct table_event *e, const void *id)
{
    return (e->kind == EV_OPERATOR || e->kind == EV_LIFECYCLE) && strcmp(e->instance, id) == 0 &&
           strstr(e->msg, "operator") != NULL;
}

int lifecycle_command(const struct asg_config *cfg, const struct table *t, int argc, char **argv)
{
    const char *action;
    if (argc == 3 && strcmp(argv[0], "complete") == 0 &&
        (strcmp(argv[2], "continue") == 0 || strcmp(argv[2], "abandon") == 0))
        action = argv[2];
    else if (argc == 2 && strcmp(argv[0], "heartbeat") == 0)
        action = "heartbeat";
    else
        return usage();
    const char *id = argv[1];
    if (!valid_instance_id(id, strlen(id)) || strlen(id) >= 64) {
        fprintf(stderr, "asgctl: lifecycle: '%s' is not an instance id\n", id);
        return 2;
    }
    char path[128];
    snprintf(path, sizeof path, "/api/v1/instances/%s/lifecycle", id);
    struct strbuf body = {0};
    sb_printf(&body, "{\"action\":\"%s\"}", action);
    char what[128];
    snprintf(what, sizeof what, "lifecycle %s %s", action, id);
    struct act a = {"lifecycle", what, path, body.s, answers, id, LC_OUTCOME_WAIT_MS};
    int rc = act_run(cfg, t, &a);
    sb_free(&body);
    return rc;
}
