/* What the history makes of an event (docs/history.md, "From events to
 * activities"): pure, so that the mapping is tested on its own
 * (tests/check_history.c). An activity is what AWS calls one in a group's
 * activity history: a launch, a termination, a scaling decision, an
 * operator's request, a rollout's step; some open when one event says so
 * and close at a later one about the same instance. */
#ifndef ASG_HISTORY_ACTIVITY_H
#define ASG_HISTORY_ACTIVITY_H

#include <stdbool.h>

#include "../shm/table.h"

enum act_op {
    ACT_NONE,  /* not an activity (the event is kept all the same) */
    ACT_OPEN,  /* an activity begins, in progress until an ACT_CLOSE */
    ACT_CLOSE, /* the open activity of this kind and instance ends */
    ACT_ONCE,  /* an activity that begins and ends with this event */
};

/* The results an activity can have (the column's only values). */
#define ACT_SUCCESSFUL "successful"
#define ACT_FAILED "failed"
#define ACT_CANCELLED "cancelled"
#define ACT_IN_PROGRESS "in progress"

struct act_step {
    enum act_op op;
    const char *kind;      /* "launch", "terminate", "scale", ...: a static string */
    const char *result;    /* ACT_ONCE, ACT_CLOSE: ACT_SUCCESSFUL or ACT_FAILED */
    /* ACT_CLOSE when no activity of kind is open for the instance: the open
     * one of this kind ends instead, as ACT_FAILED (an instance removed
     * before it ever ran ends its launch); NULL: none. */
    const char *else_kind;
    char instance[TABLE_ID_MAX];
    char cause[160];       /* why, as the event says it; "" if it does not */
};

/* Fills *out for ev (whose strings are terminated: table_read_events);
 * returns false for ACT_NONE. */
bool activity_of_event(const struct table_event *ev, struct act_step *out);

#endif
