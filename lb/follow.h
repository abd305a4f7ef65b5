/* The balancer follows the table: one step compares the balancer's members
 * with the rows, plans what to add, drain and remove, carries it out, and
 * records the outcome in the rows (their lb_state, the balancer's counters
 * and request rate). The controller runs a step every lb.interval_ms, and
 * at once when an instance starts terminating.
 *
 * Planning and recording happen under the table lock; the balancer calls
 * in between do not. A task is recorded only on the row it was planned for
 * (same slot, same incarnation). */
#ifndef ASG_LB_FOLLOW_H
#define ASG_LB_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "lb.h"

enum lb_action { LBA_ADD, LBA_DRAIN, LBA_REMOVE };
#define LB_NO_ROW UINT32_MAX /* a stray member: no row of the table */

struct lb_task {
    int action;                 /* enum lb_action */
    uint32_t slot;
    uint64_t incarnation;
    char name[TABLE_ID_MAX];
    char addr[TABLE_ADDR_MAX];
    int result;                 /* 0 done, -1 failed */
    char err[256];
};

struct lb_plan {
    struct lb_task *tasks;
    size_t n, cap;
};

/* Where the balancer should send an instance's traffic ("" when nowhere:
 * no service, or not an instance the balancer can reach). */
void lb_member_addr(const struct asg_config *cfg, const struct table_row *r, char *out, size_t size);

/* With the lock: the counters of the listed members into their rows, and
 * the tasks that bring the balancer to what the table says. strays: also
 * drain and remove members of ours that no row has (a reconciliation).
 * drain_over: every draining instance counts as drained (the manager is
 * stopping and its wait is over). */
void lb_plan_step(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                  bool strays, bool drain_over, int64_t now, struct lb_plan *p);

/* Without the lock: carries out the tasks; returns how many failed, and
 * the first failure in err. */
int lb_run(struct lb *lb, struct lb_plan *p, char *err, size_t errsize);

/* With the lock: what was done, into the rows; empties the plan. */
void lb_record(struct table *t, struct lb_plan *p, int64_t now);

void lb_plan_free(struct lb_plan *p);

#endif
