/* From events to activities: the messages the controller and the monitor
 * note (shm/ops.c, controller/calls.c, controller/rows.c,
 * controller/evaluate.c, monitor_s/monitor.c) read back by their fixed
 * openings. An event this does not know stays an event (history's events
 * table keeps every one), so a new message never loses anything. */
#include "activity.h"

#include <string.h>

#include "../common/util.h"

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* The text after the first ": " past `from` (the reason the messages end
 * with), or "". */
static void cause_after(char *out, size_t size, const char *msg, const char *from)
{
    const char *p = from ? strstr(msg, from) : msg;
    const char *c = p ? strstr(p, ": ") : NULL;
    copy_str(out, size, c ? c + 2 : "");
}

static bool set(struct act_step *out, enum act_op op, const char *kind, const char *result)
{
    out->op = op;
    out->kind = kind;
    out->result = result;
    return op != ACT_NONE;
}

static bool from_launch(const struct table_event *ev, struct act_step *out)
{
    const char *m = ev->msg;
    if (starts(m, "launched ")) {
        cause_after(out->cause, sizeof out->cause, m, ")");
        if (!out->cause[0])
            cause_after(out->cause, sizeof out->cause, m, NULL);
        return set(out, ACT_OPEN, "launch", ACT_IN_PROGRESS);
    }
    if (starts(m, "launch ") && strstr(m, " failed: ")) {
        cause_after(out->cause, sizeof out->cause, m, " failed");
        return set(out, ACT_ONCE, "launch", ACT_FAILED);
    }
    if (starts(m, "adopted ") || starts(m, "controller: admitted ")) {
        copy_str(out->cause, sizeof out->cause, starts(m, "adopted ") ? "found running" : "registered");
        return set(out, ACT_ONCE, "adopt", ACT_SUCCESSFUL);
    }
    if (starts(m, "controller: admission ") && strstr(m, " refused: ")) {
        cause_after(out->cause, sizeof out->cause, m, " refused");
        return set(out, ACT_ONCE, "adopt", ACT_FAILED);
    }
    return false;
}

static bool from_terminate(const struct table_event *ev, struct act_step *out)
{
    const char *m = ev->msg;
    if (starts(m, "terminating ")) {
        cause_after(out->cause, sizeof out->cause, m, ")");
        return set(out, ACT_OPEN, "terminate", ACT_IN_PROGRESS);
    }
    if (starts(m, "instance ") && strstr(m, " removed from the group")) {
        cause_after(out->cause, sizeof out->cause, m, " removed from the group");
        out->else_kind = "launch";
        return set(out, ACT_CLOSE, "terminate", ACT_SUCCESSFUL);
    }
    return false;
}

/* A kind of event this build does not map (one added later: hooks,
 * suspensions, ...) is an activity of its own name, done at once. */
static bool from_other(const struct table_event *ev, struct act_step *out)
{
    const char *m = ev->msg;
    bool failed = strstr(m, "refused") || strstr(m, "failed") || strstr(m, "timed out");
    copy_str(out->cause, sizeof out->cause, ev->kind == EV_OPERATOR ? "operator" : "");
    return set(out, ACT_ONCE, event_kind_name(ev->kind), failed ? ACT_FAILED : ACT_SUCCESSFUL);
}

bool activity_of_event(const struct table_event *ev, struct act_step *out)
{
    memset(out, 0, sizeof *out);
    out->op = ACT_NONE;
    copy_str(out->instance, sizeof out->instance, ev->instance);
    switch (ev->kind) {
    case EV_LAUNCH: return from_launch(ev, out);
    case EV_TERMINATE: return from_terminate(ev, out);
    case EV_HEALTH:
        if (strstr(ev->msg, ": running") && out->instance[0])
            return set(out, ACT_CLOSE, "launch", ACT_SUCCESSFUL);
        return false;
    case EV_SCALE:
        if (!starts(ev->msg, "scale "))
            return false;
        cause_after(out->cause, sizeof out->cause, ev->msg, " -> ");
        return set(out, ACT_ONCE, "scale", ACT_SUCCESSFUL);
    case EV_ROLE:
    case EV_CONFIG:
    case EV_BALANCER: return false;
    default: return from_other(ev, out);
    }
}
