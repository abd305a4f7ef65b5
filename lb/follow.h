/* The balancer follows the group: one step compares the balancer's
 * members with the instances, plans what to add, drain and remove, carries
 * it out, and records the outcome (each instance's lb_state, the
 * balancer's counters and request rate). The controller runs a step every
 * lb.interval_ms, and at once when an instance starts terminating.
 *
 * Planning and recording happen under the table lock, in the controller
 * (controller/lb_table.c), which hands the step its instances and records
 * through an lb_recorder; the balancer calls in between do not hold it. A
 * task is recorded only on the instance it was planned for (same slot,
 * same incarnation). */
#ifndef ASG_LB_FOLLOW_H
#define ASG_LB_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "lb.h"

enum lb_action { LBA_ADD, LBA_DRAIN, LBA_REMOVE, LBA_WEIGHT };
#define LB_NO_ROW UINT32_MAX /* a stray member: no row of the table */

struct lb_task {
    int action;                 /* enum lb_action */
    uint32_t slot;
    uint64_t incarnation;
    char name[INSTANCE_ID_MAX];
    char addr[INSTANCE_ADDR_MAX];
    uint32_t weight, from;      /* LBA_WEIGHT: the weight to set, and the member's until then */
    int result;                 /* 0 done, -1 failed */
    char err[256];
};

struct lb_plan {
    struct lb_task *tasks;
    size_t n, cap;
};

/* An instance as the balancer step sees it (the controller copies it from
 * its row). */
struct lb_instance {
    uint32_t slot;
    uint64_t incarnation;
    uint32_t state;              /* enum row_state */
    char id[INSTANCE_ID_MAX];
    char addr[INSTANCE_ADDR_MAX];         /* where its agent serves */
    char service_addr[INSTANCE_ADDR_MAX]; /* where its service serves, "" if none */
    uint32_t lb_state;           /* enum lb_state */
    int64_t lb_since_ms;
    bool standby;                /* on standby (an operator's): out of the balancer, drained first */
};

/* What the step records, through the caller (which holds the lock and
 * knows where instances are kept). */
struct lb_recorder {
    void *ctx;
    /* A listed member's counters (requests, sessions, 5xx answers), for
     * its instance. */
    void (*counted)(void *ctx, const struct lb_instance *in, const struct lb_member *m, int64_t now);
    /* Where the instance of slot and incarnation now stands; false (and
     * nothing recorded) when that instance is gone or its slot reused. */
    bool (*state)(void *ctx, uint32_t slot, uint64_t incarnation, uint32_t lb_state, int64_t now);
    /* An event for operators: instance is an instance's or a member's name. */
    void (*note)(void *ctx, const char *instance, int level, const char *msg);
    /* An LBA_WEIGHT task done (NULL: none are planned). */
    void (*weighted)(void *ctx, const struct lb_task *k, int64_t now);
};

/* Where the balancer should send an instance's traffic ("" when nowhere:
 * no service, or not an instance the balancer can reach). */
void lb_member_addr(const struct asg_config *cfg, const char *id, const char *addr,
                    const char *service_addr, char *out, size_t size);

/* With the lock: the counters of the listed members through rec, and the
 * tasks that bring the balancer to what the instances (in, n) say.
 * strays: also drain and remove members of ours that no instance has (a
 * reconciliation). drain_over: every draining instance counts as drained
 * (the manager is stopping and its wait is over). */
void lb_plan_step(const struct asg_config *cfg, const struct lb_instance *in, size_t n,
                  const struct lb_member *m, size_t nm, bool strays, bool drain_over, int64_t now,
                  const struct lb_recorder *rec, struct lb_plan *p);

/* With the lock: a task setting the weight of slot's member (the
 * controller decides weights: controller/weights.h). */
void lb_plan_weight(struct lb_plan *p, const struct lb_instance *in, const char *addr, uint32_t from,
                    uint32_t weight);

/* Without the lock: carries out the tasks; returns how many failed, and
 * the first failure in err. */
int lb_run(struct lb *lb, struct lb_plan *p, char *err, size_t errsize);

/* With the lock: what was done, through rec; empties the plan. */
void lb_record(struct lb_plan *p, const struct lb_recorder *rec, int64_t now);

void lb_plan_free(struct lb_plan *p);

#endif
