/* asgctl protect / standby (instance.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/strbuf.h"
#include "../common/util.h"
#include "../common/termination.h"
#include "../shm/table.h"
#include "act.h"
#include "instance.h"

/* How long asgctl waits for the controller to act (between evaluations). */
#define OUTCOME_WAIT_MS 10000

static int usage_error(const char *verb, const char *why, const char *arg)
{
    fprintf(stderr, "asgctl: %s: %s%s%s%s\n", verb, why, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    fprintf(stderr, "usage: asgctl protect ID on|off\n"
                    "       asgctl standby ID enter [--decrement]\n"
                    "       asgctl standby ID exit\n");
    return 2;
}

/* The request's body from the words after ID; 0, or 2 (said). */
static int request_body(const char *verb, int argc, char **argv, struct strbuf *b)
{
    if (strcmp(verb, "protect") == 0) {
        if (argc != 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0))
            return usage_error(verb, "give on or off", argc >= 2 ? argv[1] : NULL);
        sb_printf(b, "{\"protect\":%s}", strcmp(argv[1], "on") == 0 ? "true" : "false");
        return 0;
    }
    bool enter = argc >= 2 && strcmp(argv[1], "enter") == 0, exit_ = argc == 2 && strcmp(argv[1], "exit") == 0;
    bool decrement = enter && argc == 3 && strcmp(argv[2], "--decrement") == 0;
    if (!(exit_ || (enter && (argc == 2 || decrement))))
        return usage_error(verb, "give enter [--decrement] or exit", argc >= 2 ? argv[argc - 1] : NULL);
    sb_printf(b, "{\"action\":\"%s\",\"decrement\":%s}", enter ? "enter" : "exit", decrement ? "true" : "false");
    return 0;
}

/* The controller's word: an operator's event on instance id. */
static bool answers(const struct table_event *e, const void *id)
{
    return e->kind == EV_OPERATOR && strcmp(e->instance, id) == 0;
}

int instance_command(const struct asg_config *cfg, const char *shm, const char *verb, int argc, char **argv)
{
    if (argc < 1 || !valid_instance_id(argv[0], strlen(argv[0])) || strlen(argv[0]) >= TABLE_ID_MAX)
        return usage_error(verb, "give an instance id", argc >= 1 ? argv[0] : NULL);
    struct strbuf body = {0};
    int rc = request_body(verb, argc, argv, &body);
    if (rc) {
        sb_free(&body);
        return rc;
    }
    struct table t;
    char err[512], path[128], what[128];
    bool have = shm && table_attach(shm, true, &t, err, sizeof err) == 0;
    snprintf(path, sizeof path, "/api/v1/instances/%s/%s", argv[0], verb);
    snprintf(what, sizeof what, "%s %s", verb, argv[0]);
    struct act a = {verb, what, path, body.s, answers, argv[0], OUTCOME_WAIT_MS};
    rc = act_run(cfg, have ? &t : NULL, &a);
    sb_free(&body);
    if (have)
        table_detach(&t);
    return rc;
}

void instance_marks_print(const struct table_row *r)
{
    if (r->flags & ROW_F_PROTECTED)
        printf("  [protected]");
    if (r->flags & ROW_F_STANDBY)
        printf("  [standby%s]", r->flags & ROW_F_STANDBY_DECREMENTED ? ", decremented" : "");
}

void instance_controls_print(const struct snapshot *s)
{
    int prot = 0, standby = 0, counted = 0;
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        bool live = r->state == ROW_PENDING || r->state == ROW_RUNNING || r->state == ROW_UNHEALTHY;
        prot += live && (r->flags & ROW_F_PROTECTED);
        standby += live && (r->flags & ROW_F_STANDBY);
        counted += live && !(r->flags & ROW_F_STANDBY);
    }
    struct victim_policy term;
    char why[160];
    if (victim_policy_parse(s->cfg->termination_policy, &term, why, sizeof why) != 0)
        victim_policy_default(&term);
    printf("scale-in takes first:");
    for (uint32_t k = 0; k < term.n && k < VICTIM_RULES_MAX; k++)
        printf("%s %s", k ? "," : "", victim_rule_name(term.rule[k]));
    printf("; %d protected, %d on standby (not counted)", prot, standby);
    int target = snapshot_target(s);
    if (prot && target > 0 && counted > target)
        printf("; %d above the target: a scale-in may be held by protection", counted - target);
    printf("\n");
}
