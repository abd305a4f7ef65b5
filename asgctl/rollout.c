/* asgctl rollout (rollout.h). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/ctlsock.h"
#include "../common/strbuf.h"
#include "../common/util.h"
#include "../report/render.h"
#include "act.h"
#include "rollout.h"

/* How long asgctl waits for the controller to act on a request (it
 * takes them between evaluations). */
#define OUTCOME_WAIT_MS 10000

static void settings_text(const struct rollout_settings *s)
{
    printf("settings: max surge %d%s, max unavailable %d%s, canary %d, canary weight %d%%, bake %d s, "
           "pause at ", s->surge, s->surge_pct ? "%" : "", s->unavailable, s->unavailable_pct ? "%" : "",
           s->canary, s->canary_weight, s->bake_ms / 1000);
    for (int i = 0; i < s->npause && i < ROLLOUT_PAUSES; i++)
        printf("%s%d%%", i ? "," : "", s->pause_at[i]);
    printf("%s\n", s->npause ? "" : "-");
}

void rollout_status_print(const struct snapshot *s, bool json)
{
    struct strbuf b = {0};
    if (json) {
        render_rollout_json(&b, s);
        printf("%s\n", b.s);
        sb_free(&b);
        return;
    }
    const struct table_hdr *h = s->hdr;
    const struct rollout_state *ro = &h->rollout;
    int old, new_;
    rollout_instance_counts(s, &old, &new_);
    if (ro->phase == RO_NONE)
        printf("rollout: none yet\n");
    else
        printf("rollout %llu: %s%s%s%s%s\n", (unsigned long long)ro->number, rollout_phase_name(ro->phase),
               ro->rolling_back ? " (rolling back)" : "",
               ro->phase == RO_RUNNING && suspend_holds_rollout(h->suspended) ? " (held: processes suspended)" : "",
               ro->reason[0] ? ": " : "", ro->reason);
    if (ro->phase != RO_NONE)
        printf("progress: replaced %d of %d, remaining %d (generation %llu -> %llu)\n", ro->replaced, ro->total,
               ro->remaining, (unsigned long long)ro->from_gen, (unsigned long long)ro->to_gen);
    printf("generations: %d old, %d new; generation %llu in force%s\n", old, new_,
           (unsigned long long)h->spec.gen, h->spec_pinned ? " (pinned by a rollback until the config changes)"
                                                           : "");
    if (ro->phase != RO_NONE)
        settings_text(&ro->set);
}

/* ---- commands ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "asgctl: rollout: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: asgctl rollout start [--max-surge N|P%%] [--max-unavailable N|P%%] [--canary N]\n"
                    "              [--canary-weight P%%] [--bake-s S] [--pause-at P%%[,P%%...]]\n"
                    "       asgctl rollout pause|resume|rollback|cancel\n"
                    "       asgctl rollout status [--json]\n");
    return 2;
}

/* One of start's options with its value, checked as the API will, and
 * added to the body b; 0, or 2 (said). */
static int start_option(struct strbuf *b, const char *opt, const char *v)
{
    int n;
    bool pct;
    long w;
    struct rollout_settings set = {0};
    char why[160];
    if (strcmp(opt, "--max-surge") == 0 || strcmp(opt, "--max-unavailable") == 0) {
        if (rollout_amount_parse(v, &n, &pct) != 0)
            return usage_error("%s '%s': give N (0..100000) or P%% (0..100)", opt, v);
        sb_printf(b, ",\"%s\":", strcmp(opt, "--max-surge") == 0 ? "max_surge" : "max_unavailable");
        sb_json_str(b, v);
    } else if (strcmp(opt, "--canary") == 0) {
        if (!parse_whole(v, 0, 100000, &w))
            return usage_error("%s '%s': give a number of instances, 0..100000", opt, v);
        sb_printf(b, ",\"canary\":%ld", w);
    } else if (strcmp(opt, "--canary-weight") == 0) {
        if (rollout_percent_parse(v, &n) != 0)
            return usage_error("%s '%s': give P%% (0..100)", opt, v);
        sb_printf(b, ",\"canary_weight\":%d", n);
    } else if (strcmp(opt, "--bake-s") == 0) {
        if (!parse_whole(v, 0, 86400, &w))
            return usage_error("%s '%s': give whole seconds, 0..86400", opt, v);
        sb_printf(b, ",\"bake_s\":%ld", w);
    } else if (strcmp(opt, "--pause-at") == 0) {
        if (rollout_pauses_parse(v, &set, why, sizeof why) != 0)
            return usage_error("--pause-at: %s", why);
        sb_printf(b, ",\"pause_at\":[");
        for (int i = 0; i < set.npause; i++)
            sb_printf(b, "%s%d", i ? "," : "", set.pause_at[i]);
        sb_printf(b, "]");
    } else {
        return usage_error("unknown option '%s'", opt);
    }
    return 0;
}

/* The request's body from the command line; 0, or 2 (said). */
static int request_body(int argc, char **argv, struct strbuf *b)
{
    static const char *const actions[] = {"start", "pause", "resume", "rollback", "cancel"};
    bool known = false;
    for (size_t k = 0; k < sizeof actions / sizeof *actions; k++)
        known |= strcmp(argv[0], actions[k]) == 0;
    if (!known)
        return usage_error("no action '%s'", argv[0]);
    sb_printf(b, "{\"action\":");
    sb_json_str(b, argv[0]);
    if (strcmp(argv[0], "start") != 0 && argc > 1)
        return usage_error("%s takes no options ('%s')", argv[0], argv[1]);
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage_error("%s needs a value", argv[i]);
        int rc = start_option(b, argv[i], argv[i + 1]);
        if (rc)
            return rc;
    }
    sb_printf(b, "}");
    return 0;
}

/* The controller's word on a rollout request: an operator's rollout
 * event. */
static bool answers(const struct table_event *e, const void *ctx)
{
    (void)ctx;
    return (e->kind == EV_OPERATOR || e->kind == EV_ROLLOUT) && strstr(e->msg, "rollout") &&
           strstr(e->msg, "operator");
}

int rollout_command(const struct asg_config *cfg, const struct table *t, int argc, char **argv)
{
    struct strbuf body = {0};
    int rc = request_body(argc, argv, &body);
    if (rc) {
        sb_free(&body);
        return rc;
    }
    char what[64];
    snprintf(what, sizeof what, "rollout %s", argv[0]);
    struct act a = {"rollout", what, "/api/v1/rollout", body.s, answers, NULL, OUTCOME_WAIT_MS};
    rc = act_run(cfg, t, &a);
    sb_free(&body);
    return rc;
}
