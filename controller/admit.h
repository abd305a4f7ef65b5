/* Admission: the controller alone decides on the facts the monitor records
 * (shm/ops.h): an unknown agent's registration waiting in the inbox
 * (monitor.adopt_unknown) is admitted as a joined row or refused with a
 * reason; a row whose agent deregistered is stopped.
 *
 * The decision is a pure function (admit_decide) of the requests and the
 * room the group has: the bounds in force, worked out in one place
 * (sched_effective: config, schedule, operator), the same the policy
 * uses. admit_facts applies it to the table. */
#ifndef ASG_ADMIT_H
#define ASG_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../shm/table.h"

/* A request as the decision sees it. */
struct admit_ask {
    const char *id;
    bool known;                  /* the table has a row for id already */
};

/* What the group has room for. */
struct admit_room {
    bool adopt_unknown;          /* monitor.adopt_unknown as now in force */
    int max;                     /* the maximum in force (sched_effective) */
    int target;                  /* the target, joined instances not yet counted in it included */
    int free_rows;               /* rows the table has free */
    uint32_t capacity;           /* rows in all */
};

enum admit_verdict {
    ADMIT_YES,                   /* a joined row for it */
    ADMIT_KNOWN,                 /* it has a row already: nothing to make, the entry is done */
    ADMIT_NO,                    /* refused: why in the answer */
    ADMIT_NO_FULL                /* refused: the table has no free row */
};

struct admit_answer {
    enum admit_verdict verdict;
    char reason[120];
};

/* Decides the requests in order (oldest first): each admitted one takes a
 * row and a place below the maximum from those after it. Pure: no table,
 * no clock. */
void admit_decide(const struct admit_ask *asks, size_t n, const struct admit_room *room,
                  struct admit_answer *out);

/* With the lock held: stops the rows whose agents deregistered (stop
 * deadline: when to ask harder), then decides and applies the waiting
 * requests against eff (the config with the bounds in force applied);
 * refusals logged within limit. */
void admit_facts(struct table *t, const struct asg_config *eff, struct log_limit *limit, int64_t stop_deadline,
                 int64_t now);

/* How often the controller looks for new facts between its evaluations:
 * an agent waiting for admission is answered at its next try after. */
#define ADMIT_LOOK_MS 50
/* Lock-free: the monitor recorded facts since *seen (updated). */
bool admit_news(const struct table *t, uint64_t *seen);

#endif
