/* The history's database read (docs/history.md): the activities and the
 * samples the history role (history/) wrote, for the status API and
 * asgctl history. Opened read-only, queries only: the role is the one
 * writer. */
#ifndef ASG_HISTQ_H
#define ASG_HISTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/strbuf.h"

/* PRAGMA user_version of the schema this build writes and reads. */
#define HISTQ_SCHEMA_VERSION 1
#define HISTQ_LIMIT_MAX 10000

/* One sample of the group (the samples table's columns). */
struct hist_sample {
    int64_t time_ms;             /* Unix ms */
    int running, pending, total; /* instances: total = running + pending */
    int desired, target, min, max;
    double demand;               /* the instances' summed load (instances' worth of work) */
    double mean_load;            /* the running instances' mean load, 0..1 */
    double request_rate;         /* requests/s the group served (balancer or services) */
};

/* One activity (the activities table's columns). */
struct hist_activity {
    int64_t id;
    char group[48];
    char kind[24];
    char cause[160];
    char description[200];
    char instances[200];         /* ","-joined */
    int64_t start_ms, end_ms;    /* Unix ms; end 0 while in progress */
    char result[16];
};

/* The database's path: history.path, or STATE_DIR/history.db. */
void histq_path(const struct asg_config *cfg, char *out, size_t size);

struct sqlite3;
/* Opens path read-only (never through a link, query_only): NULL with why. */
struct sqlite3 *histq_open(const char *path, char *err, size_t errsize);
void histq_close(struct sqlite3 *db);

/* The newest `limit` activities that began at or after since_ms, oldest
 * first, into out (at most max): how many, or -1 with why. */
int histq_activities(struct sqlite3 *db, int64_t since_ms, int limit, struct hist_activity *out, size_t max,
                     char *err, size_t errsize);
/* The samples taken at or after since_ms, oldest first: the newest max
 * of them. */
int histq_samples(struct sqlite3 *db, int64_t since_ms, struct hist_sample *out, size_t max, char *err,
                  size_t errsize);

/* As JSON objects (the API's and asgctl's --json): {"activities":[...]}
 * and {"samples":[...]}. */
void histq_activities_json(struct strbuf *b, const struct hist_activity *a, int n);
void histq_samples_json(struct strbuf *b, const struct hist_sample *s, int n);

struct snapshot;
/* The history role's health as the header says it: {"enabled":...,
 * "ok":...,"error":...} (status JSON, asgctl status), and its /metrics. */
void histq_status_json(struct strbuf *b, const struct snapshot *s);
void histq_metrics(struct strbuf *b, const struct snapshot *s);
/* One line for asgctl status's text: "history: ok, ..." */
void histq_status_line(const struct snapshot *s, char *out, size_t size);

/* "2h", "30m", "7d", "90s" before now, or an RFC 3339 time
 * (2026-12-03T10:00:00Z, or with +HH:MM): Unix ms, or -1. */
int64_t histq_parse_since(const char *s, int64_t now_ms);

#endif
