/* Scheduled scaling: entries of the config (`schedule.entries`) that set
 * the group's min / max / desired from a cron-style time on, as AWS
 * scheduled actions and KEDA's cron scaler do. An entry stays in force
 * until another one fires (or a reload ends the schedule). Times are read
 * in `schedule.timezone` (the process's TZ, set by sched_use_timezone).
 *
 * The entry in force at t is the one whose last firing at or before t is
 * the latest; two that fire in the same minute: the later in the file
 * wins. A local time the clock skips (spring forward) does not fire that
 * day; one it passes twice (fall back) fires at the first and again at the
 * second, which changes nothing. */
#ifndef ASG_SCHEDULE_H
#define ASG_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../common/config.h"
#include "../common/cron.h"

/* The schedule at t (Unix seconds): the entry in force (-1: none) and
 * since when, and the next firing within a week (-1: none). */
struct sched_state {
    int active;
    int64_t since;             /* Unix seconds */
    int next;
    int64_t next_at;
};
struct sched_state sched_at(const struct asg_config *cfg, int64_t t);

/* cfg with the entry in force applied (its min / max / desired that are
 * set). */
void sched_apply(const struct asg_config *cfg, int entry, struct asg_config *out);

/* The group's bounds in force, the one place they are combined: cfg, the
 * scheduled entry in force (-1: none), and an operator's desired size
 * (status API or, with ha.etcd, the leader's record; 0: none), which
 * replaces desired until the next reload, within min..max. The
 * controller's policy and the monitor's admission both use it. */
void sched_effective(const struct asg_config *cfg, int entry, int32_t operator_desired,
                     struct asg_config *out);

/* TZ for this process: cfg->schedule_timezone, or the system's when "". */
void sched_use_timezone(const struct asg_config *cfg);

#endif
