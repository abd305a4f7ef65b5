/* ControllerASG, a role process the supervisor forks: keeps the group
 * between its bounds and sized to its load through a provider, replaces
 * unhealthy instances, carries out operators' requests. */
#ifndef ASG_CONTROLLER_H
#define ASG_CONTROLLER_H

#include "../common/config.h"
#include "../shm/table.h"

/* t is mapped read-write, cfg is the config at fork time. Returns 0 when
 * asked to stop, ASG_EXIT_FATAL when it cannot run with this config. */
int controller_main(struct table *t, const struct asg_config *cfg);

/* For the Check units (tests/check_controller.c): a controller on table t
 * that a test drives one step at a time, with a provider of its own (ops,
 * and priv for the provider's state). No signals, no socket, no reaping. */
struct ctl;
struct provider_ops;
struct ctl *controller_open(struct table *t, const struct asg_config *cfg,
                            const struct provider_ops *ops, void *priv);
/* One evaluation: sweep, policy, converge, the provider's calls, and what
 * they answered recorded. */
void controller_evaluate(struct ctl *c);
/* Table and provider made to agree (adoptions, gone instances). */
void controller_reconcile(struct ctl *c);
/* One operator request, as if it had come from the status API's socket. */
struct ctl_request;
void controller_request(struct ctl *c, const struct ctl_request *rq);
/* A load balancer of the test's own (ops, priv), and one balancer step:
 * list, plan, act, record, release what it let go of. */
struct lb_ops;
void controller_use_lb(struct ctl *c, const struct lb_ops *ops, void *priv);
void controller_lb_step(struct ctl *c);
/* fn(arg) is called in each evaluation after the plan is decided from the
 * view and before it is applied: where a test changes the table as the
 * monitor would meanwhile. */
void controller_between_decide_and_apply(struct ctl *c, void (*fn)(void *), void *arg);
void controller_close(struct ctl *c);

/* What a provider is told of row r's instance (provider/provider.h): the
 * controller's calls and the supervisor's last sweep fill it alike. */
struct provider_handle;
void controller_handle_of_row(const struct table_row *r, struct provider_handle *h);

#endif
