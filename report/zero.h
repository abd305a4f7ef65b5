/* Scale to zero as people and programs see it (policy/zero.h): whether the
 * group is at zero and since when, how long it has been idle, and the
 * balancer's count of the backend it decides on. */
#ifndef ASG_REPORT_ZERO_H
#define ASG_REPORT_ZERO_H

#include "../common/strbuf.h"
#include "../shm/snapshot.h"

/* "scale_to_zero":{...}, (with the comma) for the group's JSON. */
void render_zero_json(struct strbuf *b, const struct snapshot *s);
/* The metric families asg_lb_backend_*, asg_lb_queue and asg_scale_to_zero_*. */
void render_zero_metrics(struct strbuf *b, const struct snapshot *s);
/* One line for asgctl status ("" when there is nothing to say). */
void render_zero_text(struct strbuf *b, const struct snapshot *s);

#endif
