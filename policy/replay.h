/* Policy replay: the controller's own policy_decide, run in simulated time
 * over a demand trace (requests per minute, one integer a line). Used by
 * `asgctl replay` and `make bench`. */
#ifndef ASG_REPLAY_H
#define ASG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

#define REPLAY_MAX_MINUTES 10000000u   /* about 19 years of minutes */
#define REPLAY_MAX_RPM 1000000000u

#include <stdio.h>

struct replay_opts {
    uint32_t capacity_rpm;      /* what one ready instance serves a minute at load 1.0 */
    int64_t boot_delay_ms;      /* from launch to serving */
    FILE *timeline;             /* NULL, or one CSV row a minute (replay_timeline_header) */
    float *ready, *booting;     /* NULL, or one value a minute: the minute's means */
};

#define REPLAY_TIMELINE_HEADER "minute,demand,ready,booting,target,overloaded\n"

/* Every total follows from the minutes: instance-minutes is the sum of
 * ready + booting (the mean instances serving and booting that minute);
 * an overloaded minute has demand > 0 and no ready instance, or demand
 * above 0.9 x ready x capacity. */
struct replay_result {
    double instance_minutes;    /* cost: launched instances, booting or ready */
    uint64_t overload_minutes;
    double unserved_requests;   /* demand above the ready capacity */
    uint64_t scaling_actions;   /* evaluations that changed the target */
    uint64_t minutes;
    int peak_instances;
};

/* Reads a trace; on error returns -1 with "FILE:LINE: why" in err. */
int replay_load_trace(const char *path, uint32_t **demand, size_t *n, char *err, size_t errsize);

/* Runs cfg's policy over the trace. The group starts at its floor
 * (desired within min..max), every instance ready. Returns -1 with why in
 * err when the options cannot be simulated. */
int replay_run(const struct asg_config *cfg, const uint32_t *demand, size_t n,
               const struct replay_opts *o, struct replay_result *out, char *err, size_t errsize);

#endif
