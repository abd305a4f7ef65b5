/* Cron-style times ("M H DOM MON DOW" with *, lists, ranges and /steps),
 * for scheduled scaling (policy/schedule.h) and the config's checks. */
#ifndef ASG_CRON_H
#define ASG_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A parsed cron spec: minute hour day-of-month month day-of-week. */
struct cron {
    uint64_t minute;           /* bits 0..59 */
    uint32_t hour;             /* bits 0..23 */
    uint32_t dom;              /* bits 1..31 */
    uint32_t month;            /* bits 1..12 */
    uint32_t dow;              /* bits 0..6, Sunday 0 (7 is Sunday too) */
    bool dom_any, dow_any;
};

/* "M H DOM MON DOW" with *, lists, ranges and /steps. -1 with why. */
int cron_parse(const char *spec, struct cron *out, char *err, size_t errsize);
bool cron_matches(const struct cron *c, const struct tm *local);

#endif
