/* asgctl desired, launch, terminate, suspend, resume (ops.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/strbuf.h"
#include "../common/suspend.h"
#include "../common/util.h"
#include "act.h"
#include "ops.h"

/* How long asgctl waits for the controller to act on a request (it takes
 * them as they come, between its other steps). */
#define OUTCOME_WAIT_MS 10000

static const char *const verbs[] = {"desired", "launch", "terminate", "suspend", "resume"};

bool ops_verb(const char *verb)
{
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (strcmp(verb, verbs[i]) == 0)
            return true;
    return false;
}

static int usage_error(const char *verb, const char *why)
{
    fprintf(stderr, "asgctl: %s: %s\nusage: asgctl desired N\n       asgctl launch\n"
                    "       asgctl terminate ID [--decrement]\n"
                    "       asgctl suspend launch|terminate|replace|scale|reconcile|balancer|rollout|all ...\n"
                    "       asgctl resume [launch|terminate|replace|scale|reconcile|balancer|rollout|all ...]\n",
            verb, why);
    return 2;
}

/* The processes named, as a JSON list into b; 0, or 2 (said). */
static int processes_body(const char *verb, int argc, char **argv, struct strbuf *b)
{
    sb_printf(b, "{\"action\":\"%s\",\"processes\":[", verb);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "all") != 0 && !suspend_bit_of(argv[i])) {
            char why[160];
            snprintf(why, sizeof why, "no process '%.60s'", argv[i]);
            return usage_error(verb, why);
        }
        sb_printf(b, "%s", i ? "," : "");
        sb_json_str(b, argv[i]);
    }
    sb_printf(b, "]}");
    return 0;
}

/* The request's path and body from the command line; 0, or 2 (said). */
static int request_of(const struct asg_config *cfg, const char *verb, int argc, char **argv, char *path,
                      size_t psize, struct strbuf *b)
{
    if (strcmp(verb, "desired") == 0) {
        long n;
        if (argc != 1 || !parse_whole(argv[0], 0, 100000, &n))
            return usage_error(verb, "give the size, a whole number");
        if (n < cfg->min_instances || n > cfg->max_instances) {
            char why[120];
            snprintf(why, sizeof why, "%ld is outside min..max (%d..%d)", n, cfg->min_instances, cfg->max_instances);
            return usage_error(verb, why);
        }
        snprintf(path, psize, "/api/v1/desired");
        sb_printf(b, "{\"desired\":%ld}", n);
    } else if (strcmp(verb, "launch") == 0) {
        if (argc != 0)
            return usage_error(verb, "takes no arguments");
        snprintf(path, psize, "/api/v1/instances");
        sb_printf(b, "{}");
    } else if (strcmp(verb, "terminate") == 0) {
        bool dec = argc == 2 && strcmp(argv[1], "--decrement") == 0;
        if ((argc != 1 && !dec) || !valid_instance_id(argv[0], strlen(argv[0])))
            return usage_error(verb, argc ? "give one valid instance id, and --decrement or nothing"
                                          : "give the instance's id");
        snprintf(path, psize, "/api/v1/instances/%s/terminate", argv[0]);
        sb_printf(b, "{\"decrement\":%s}", dec ? "true" : "false");
    } else {
        if (strcmp(verb, "suspend") == 0 && argc == 0)
            return usage_error(verb, "name the processes to suspend (or all)");
        snprintf(path, psize, "/api/v1/suspend");
        return processes_body(verb, argc, argv, b);
    }
    return 0;
}

/* What the controller's word answers: the verb and, for terminate, the
 * instance. */
struct ops_request {
    const char *verb;
    const char *id;
};

/* Is event e the controller's word on this request? */
static bool answers(const struct table_event *e, const void *ctx)
{
    const struct ops_request *q = ctx;
    if (strncmp(e->msg, "operator", 8) != 0)
        return false;
    if (strcmp(q->verb, "suspend") == 0 || strcmp(q->verb, "resume") == 0)
        return e->kind == EV_SUSPEND;
    if (e->kind != EV_OPERATOR)
        return false;
    if (strcmp(q->verb, "desired") == 0)
        return strstr(e->msg, "desired") && !strstr(e->msg, "terminate");
    if (strcmp(q->verb, "launch") == 0)
        return strstr(e->msg, "launch") != NULL;
    return q->id && strstr(e->msg, "terminate") && strcmp(e->instance, q->id) == 0;
}

int ops_command(const struct asg_config *cfg, const struct table *t, const char *verb, int argc, char **argv)
{
    char path[160];
    struct strbuf body = {0};
    int rc = request_of(cfg, verb, argc, argv, path, sizeof path, &body);
    if (rc == 0) {
        struct ops_request q = {verb, argc >= 1 ? argv[0] : NULL};
        struct act a = {verb, verb, path, body.s, answers, &q, OUTCOME_WAIT_MS};
        rc = act_run(cfg, t, &a);
    }
    sb_free(&body);
    return rc;
}

void suspend_status_print(const struct table_hdr *h)
{
    if (!(h->suspended & SUSP_ALL))
        return;
    printf("suspended:");
    bool first = true;
    for (uint32_t p = 0; p < SUSP_COUNT; p++) {
        if (!suspend_holds(h->suspended, p))
            continue;
        char by[SUSPEND_BY_MAX], when[32] = "?";
        copy_str(by, sizeof by, h->suspend[p].by);
        time_t sec = (time_t)(h->suspend[p].since_wall_ms / 1000);
        struct tm tm;
        if (sec > 0 && gmtime_r(&sec, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s %s (by %s at %s)", first ? "" : ",", suspend_process_name(p), by[0] ? by : "?", when);
        first = false;
    }
    printf("; asgctl resume to let them run\n");
}
