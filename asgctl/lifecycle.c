/* asgctl lifecycle (lifecycle.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/strbuf.h"
#include "../common/util.h"
#include "api.h"
#include "lifecycle.h"

#define LC_OUTCOME_WAIT_MS 5000

static int usage(void)
{
    fprintf(stderr, "asgctl: usage: lifecycle complete ID continue|abandon\n"
                    "       asgctl lifecycle heartbeat ID\n");
    return 2;
}

/* The controller's word on the request for id: the first event of an
 * operator's about id after mark. 0 carried out, 1 refused, -1 none yet. */
static int outcome(const struct table *t, uint64_t mark, const char *id)
{
    struct table_event ev[32];
    size_t n = table_read_events(t, mark, ev, sizeof ev / sizeof *ev);
    for (size_t i = 0; i < n; i++) {
        if ((ev[i].kind != EV_OPERATOR && ev[i].kind != EV_LIFECYCLE) || strcmp(ev[i].instance, id) != 0 ||
            !strstr(ev[i].msg, "operator"))
            continue;
        bool refused = strstr(ev[i].msg, "refused") != NULL;
        fprintf(refused ? stderr : stdout, "%s%s\n", refused ? "asgctl: lifecycle: " : "", ev[i].msg);
        return refused ? 1 : 0;
    }
    return -1;
}

static int await(const struct table *t, uint64_t mark, const char *id)
{
    int64_t deadline = now_ms() + LC_OUTCOME_WAIT_MS;
    while (now_ms() < deadline) {
        int rc = outcome(t, mark, id);
        if (rc >= 0)
            return rc;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("lifecycle request for %s accepted; the controller has not acted on it yet (asgctl events)\n", id);
    return 0;
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
    uint64_t mark = t ? atomic_load(&t->log->events_written) : 0;
    struct api_reply r;
    int rc = api_post(cfg, path, body.s, &r, "lifecycle");
    sb_free(&body);
    if (rc)
        return rc;
    if (r.code != 202) {
        char why[300];
        api_error_text(&r, why, sizeof why);
        fprintf(stderr, "asgctl: lifecycle %s %s: the manager answered %ld: %s\n", argv[0], id, r.code, why);
        return 1;
    }
    if (!t) {
        printf("lifecycle %s %s accepted (asgctl events says what the controller made of it)\n", action, id);
        return 0;
    }
    return await(t, mark, id);
}
