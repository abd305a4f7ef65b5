/* Scheduled scaling: cron parsing and matching, the entry in force at a
 * time in a time zone, the DST edges, entries that fire together. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/config.h"
#include "../common/cron.h"
#include "../policy/schedule.h"
#include "check_suites.h"

static struct asg_config cfg;

static void entry(const char *at, int min, int max, int desired)
{
    struct schedule_entry *e = &cfg.schedule[cfg.nschedule++];
    snprintf(e->at, sizeof e->at, "%s", at);
    e->min = min;
    e->max = max;
    e->desired = desired;
}

static void zone(const char *tz)
{
    snprintf(cfg.schedule_timezone, sizeof cfg.schedule_timezone, "%s", tz);
    sched_use_timezone(&cfg);
}

static void setup(void)
{
    config_defaults(&cfg);
    zone("UTC");
}

static struct tm local(int y, int mon, int d, int h, int m)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = m,
                    .tm_isdst = -1};
    time_t t = mktime(&tm);
    localtime_r(&t, &tm);
    return tm;
}

START_TEST(test_cron_parses_fields_and_refuses_bad_ones)
{
    struct cron c;
    char err[160];
    ck_assert_int_eq(cron_parse("*/15 8-18 * * 1-5", &c, err, sizeof err), 0);
    ck_assert_uint_eq(c.minute, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    ck_assert_uint_eq(c.hour, ((1u << 19) - 1) & ~((1u << 8) - 1));
    ck_assert_uint_eq(c.dow, 0x3e);
    ck_assert_int_eq(cron_parse("0 0 * * 7", &c, err, sizeof err), 0);
    ck_assert_uint_eq(c.dow, 1); /* 7 is Sunday too */
    const char *bad[][2] = {{"0 8 * *", "has 4 fields"},         {"61 * * * *", "outside 0..59"},
                            {"a * * * *", "is not *"},             {"5-1 * * * *", "outside"},
                            {"*/0 * * * *", "is not *"},           {"0 24 * * *", "outside 0..23"},
                            {"0 0 0 * *", "outside 1..31"},        {"0 0 * 13 *", "outside 1..12"},
                            {"0 0 * * * *", "has 6 fields"},       {"1,,2 * * * *", "is not *"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(cron_parse(bad[i][0], &c, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
}
END_TEST

START_TEST(test_cron_days_either_when_both_are_set)
{
    struct cron c;
    char err[160];
    ck_assert_int_eq(cron_parse("0 0 1 * 1", &c, err, sizeof err), 0);
    struct tm mon2 = local(2026, 3, 2, 0, 0), thu1 = local(2026, 1, 1, 0, 0), thu15 = local(2026, 1, 15, 0, 0);
    ck_assert(cron_matches(&c, &mon2));  /* a Monday */
    ck_assert(cron_matches(&c, &thu1));  /* the 1st */
    ck_assert(!cron_matches(&c, &thu15));
    ck_assert_int_eq(cron_parse("0 0 * * 1", &c, err, sizeof err), 0);
    ck_assert(!cron_matches(&c, &thu1)); /* only the weekday counts */
}
END_TEST

START_TEST(test_the_entry_in_force_and_the_next)
{
    entry("0 8 * * *", 0, 0, 4);
    entry("0 20 * * *", 0, 0, 1);
    struct sched_state s = sched_at(&cfg, 1768467600); /* 2026-01-15 09:00Z */
    ck_assert_int_eq(s.active, 0);
    ck_assert_int_eq(s.since, 1768464000);             /* 08:00Z */
    ck_assert_int_eq(s.next, 1);
    ck_assert_int_eq(s.next_at, 1768507200);           /* 20:00Z */
    s = sched_at(&cfg, 1768460400);                    /* 07:00Z: last night's */
    ck_assert_int_eq(s.active, 1);
    ck_assert_int_eq(s.since, 1768420800);
    struct asg_config eff;
    sched_apply(&cfg, 0, &eff);
    ck_assert_int_eq(eff.desired_instances, 4);
    ck_assert_int_eq(eff.max_instances, 5);            /* left as configured */
    cfg.schedule[0].desired = 9;                       /* above the configured max, which it leaves */
    sched_apply(&cfg, 0, &eff);
    ck_assert_int_eq(eff.desired_instances, 5);         /* clamped into min..max */
    ck_assert_int_eq(eff.max_instances, 5);
}
END_TEST

START_TEST(test_entries_firing_together_the_later_wins)
{
    entry("0 8 * * *", 0, 0, 4);
    entry("0 8 * * 1-5", 0, 0, 6);
    struct sched_state s = sched_at(&cfg, 1768467600); /* a Thursday */
    ck_assert_int_eq(s.active, 1);
    s = sched_at(&cfg, 1768467600 + 2 * 86400);       /* Saturday: only the first fired */
    ck_assert_int_eq(s.active, 0);
}
END_TEST

START_TEST(test_times_are_the_zones_with_dst)
{
    zone("America/New_York");
    entry("0 8 * * *", 0, 0, 4);
    ck_assert_int_eq(sched_at(&cfg, 1768482000 + 60).since, 1768482000); /* 08:00 EST = 13:00Z */
    ck_assert_int_eq(sched_at(&cfg, 1784116800 + 60).since, 1784116800); /* 08:00 EDT = 12:00Z */
    zone("UTC");
    ck_assert_int_eq(sched_at(&cfg, 1784116800 + 60).since, 1784116800 - 4 * 3600);
}
END_TEST

START_TEST(test_a_skipped_local_time_does_not_fire_and_a_repeated_one_fires_last)
{
    zone("America/New_York");
    entry("30 2 * * *", 0, 0, 4);
    /* 2026-03-08: 02:00 EST jumps to 03:00 EDT: no 02:30 that day; the
     * 7th's (07:30Z) stays in force. */
    ck_assert_int_eq(sched_at(&cfg, 1772971200).since, 1772868600);
    cfg.nschedule = 0;
    entry("30 1 * * *", 0, 0, 4);
    /* 2026-11-01: 01:30 EDT (05:30Z), then 01:30 EST (06:30Z). */
    ck_assert_int_eq(sched_at(&cfg, 1793511000 + 600).since, 1793511000);
    ck_assert_int_eq(sched_at(&cfg, 1793516400).since, 1793514600);
}
END_TEST

START_TEST(test_schedule_config_is_checked)
{
    struct asg_config c;
    char err[512];
    const char *good = "schedule = { timezone = \"Europe/Paris\"; entries = ( { at = \"0 8 * * 1-5\"; "
                       "min = 2; max = 5; desired = 4; }, { at = \"0 20 * * *\"; desired = 2; } ); };";
    ck_assert_msg(config_load_string(good, "t.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.nschedule, 2);
    ck_assert_str_eq(c.schedule[1].at, "0 20 * * *");
    ck_assert_int_eq(c.schedule[1].min, 0);
    const char *bad[][2] = {
        {"schedule = { entries = ( { at = \"0 8 * *\"; desired = 2; } ); };", "t.cfg:1: schedule entry 1: at:"},
        {"schedule = { entries = ( { at = \"0 8 * * *\"; } ); };", "needs at and one of min, max, desired"},
        {"schedule = { entries = ( { at = \"0 8 * * *\"; min = 4; max = 3; } ); };", "min 4 is above max 3"},
        {"schedule = { entries = ( { at = \"0 8 * * *\"; size = 3; } ); };", "size is not one of"},
        {"schedule = { entries = ( { at = \"0 8 * * *\"; desired = 0; } ); };", "desired is not one of"},
        {"schedule = { timezone = \"Mars/Olympus\"; };", "not a zone of /usr/share/zoneinfo"},
        {"schedule = { timezone = \"../../etc/passwd\"; };", "not a zone"},
        {"schedule = { entries = { at = \"0 8 * * *\"; }; };", "must be a list"},
        {"schedule = { entries = ( { at = \"0 8 * * *\"; desired = 5000; } ); };", "more instances than shm.capacity"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(config_load_string(bad[i][0], "t.cfg", &c, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
}
END_TEST

/* One place combines config, schedule and operator; what it gives is
 * what the policy and the monitor's admission use. */
START_TEST(test_effective_bounds_combine_config_schedule_and_operator)
{
    struct asg_config c, e;
    config_defaults(&c);
    c.min_instances = 1, c.max_instances = 2, c.desired_instances = 2;
    c.nschedule = 1;
    c.schedule[0].min = 0, c.schedule[0].max = 4, c.schedule[0].desired = 0;
    sched_effective(&c, -1, 0, &e);           /* no entry in force: the config's */
    ck_assert_int_eq(e.max_instances, 2);
    sched_effective(&c, 0, 0, &e);            /* the entry raises the maximum */
    ck_assert_int_eq(e.min_instances, 1);
    ck_assert_int_eq(e.max_instances, 4);
    ck_assert_int_eq(e.desired_instances, 2);
    sched_effective(&c, 0, 3, &e);            /* the operator's choice, within it */
    ck_assert_int_eq(e.desired_instances, 3);
    sched_effective(&c, 0, 9, &e);            /* ... and held to its maximum */
    ck_assert_int_eq(e.desired_instances, 4);
    sched_effective(&c, -1, 9, &e);           /* the config's maximum without the entry */
    ck_assert_int_eq(e.desired_instances, 2);
    c.schedule[0].min = 3;
    sched_effective(&c, 0, 1, &e);            /* never below the minimum in force */
    ck_assert_int_eq(e.desired_instances, 3);
}
END_TEST

Suite *schedule_suite(void)
{
    const TTest *tests[] = {test_cron_parses_fields_and_refuses_bad_ones,
                            test_cron_days_either_when_both_are_set,
                            test_the_entry_in_force_and_the_next,
                            test_entries_firing_together_the_later_wins,
                            test_times_are_the_zones_with_dst,
                            test_a_skipped_local_time_does_not_fire_and_a_repeated_one_fires_last,
                            test_schedule_config_is_checked,
                            test_effective_bounds_combine_config_schedule_and_operator,
                            NULL};
    return suite_of("schedule", "core", setup, NULL, 0, tests, NULL);
}
