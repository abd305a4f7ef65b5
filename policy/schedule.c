/* Scheduled scaling (see schedule.h). */
#define _GNU_SOURCE
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOK_MINUTES (8 * 1440) /* a weekly entry has fired within the last 8 days */

/* Entries fire at whole minutes of local time; t is Unix seconds. */
static int firing_at(const struct cron *crons, int n, int64_t minute_start)
{
    time_t tt = (time_t)minute_start;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return -1;
    int found = -1;
    for (int i = 0; i < n; i++)
        if (cron_matches(&crons[i], &tm))
            found = i; /* the later in the file wins */
    return found;
}

static int parse_all(const struct asg_config *cfg, struct cron *crons)
{
    char err[160];
    int n = 0;
    for (int i = 0; i < cfg->nschedule; i++, n++)
        if (cron_parse(cfg->schedule[i].at, &crons[i], err, sizeof err) != 0)
            memset(&crons[i], 0, sizeof crons[i]); /* checked at load: cannot happen */
    return n;
}

struct sched_state sched_at(const struct asg_config *cfg, int64_t t)
{
    struct sched_state s = {-1, 0, -1, 0};
    struct cron crons[SCHEDULE_MAX];
    int n = parse_all(cfg, crons);
    if (n == 0)
        return s;
    int64_t now_min = t - (t % 60 + 60) % 60;
    /* A repeated local minute (fall back) fires again an hour later in
     * Unix time: stepping Unix minutes sees both, in order. */
    for (int64_t m = now_min; m > now_min - LOOK_MINUTES * 60LL; m -= 60) {
        int e = firing_at(crons, n, m);
        if (e >= 0) {
            s.active = e;
            s.since = m;
            break;
        }
    }
    for (int64_t m = now_min + 60; m <= now_min + LOOK_MINUTES * 60LL; m += 60) {
        int e = firing_at(crons, n, m);
        if (e >= 0) {
            s.next = e;
            s.next_at = m;
            break;
        }
    }
    return s;
}

void sched_effective(const struct asg_config *cfg, int entry, int32_t operator_desired,
                     struct asg_config *out)
{
    sched_apply(cfg, entry, out);
    if (operator_desired > 0)
        out->desired_instances = operator_desired < out->min_instances ? out->min_instances
                                 : operator_desired > out->max_instances ? out->max_instances
                                 : operator_desired;
}

void sched_apply(const struct asg_config *cfg, int entry, struct asg_config *out)
{
    *out = *cfg;
    if (entry < 0 || entry >= cfg->nschedule)
        return;
    const struct schedule_entry *e = &cfg->schedule[entry];
    if (e->min > 0)
        out->min_instances = e->min;
    if (e->max > 0)
        out->max_instances = e->max;
    if (e->desired > 0)
        out->desired_instances = e->desired;
    /* What the entry leaves alone keeps within what it sets. */
    if (out->max_instances < out->min_instances)
        out->max_instances = out->min_instances;
    if (out->desired_instances < out->min_instances)
        out->desired_instances = out->min_instances;
    if (out->desired_instances > out->max_instances)
        out->desired_instances = out->max_instances;
}

void sched_use_timezone(const struct asg_config *cfg)
{
    if (cfg->schedule_timezone[0]) {
        char tz[80];
        snprintf(tz, sizeof tz, ":%s", cfg->schedule_timezone);
        setenv("TZ", tz, 1);
    }
    tzset();
}
