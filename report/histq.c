/* The history's database, read (report/histq.h). */
#define _GNU_SOURCE
#include "histq.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/group.h"
#include "../common/pki.h"
#include "../common/util.h"
#include "../shm/snapshot.h"

#include <stddef.h>

void histq_path(const struct asg_config *cfg, char *out, size_t size)
{
    if (cfg->history_path[0]) {
        snprintf(out, size, "%s", cfg->history_path);
        return;
    }
    char dir[200];
    pki_dir(cfg, dir, sizeof dir);
    snprintf(out, size, "%.200s/history.db", dir);
}

struct sqlite3 *histq_open(const char *path, char *err, size_t errsize)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 1000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
    int version = -1;
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL)) == SQLITE_OK &&
        (rc = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        snprintf(err, errsize, "history database %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    if (version != HISTQ_SCHEMA_VERSION) {
        snprintf(err, errsize, "history database %s: schema version %d, this build reads %d%s", path, version,
                 HISTQ_SCHEMA_VERSION, version == 0 ? " (not made yet)" : "");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

void histq_close(struct sqlite3 *db) { sqlite3_close(db); }

static void col_str(sqlite3_stmt *st, int i, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    copy_str(out, size, t ? (const char *)t : "");
}

static int failed(sqlite3 *db, char *err, size_t errsize)
{
    snprintf(err, errsize, "history database: %s", sqlite3_errmsg(db));
    return -1;
}

int histq_activities(struct sqlite3 *db, int64_t since_ms, int limit, struct hist_activity *out, size_t max,
                     char *err, size_t errsize)
{
    static const char q[] =
        "SELECT * FROM (SELECT id, group_name, kind, cause, description, instances, start_ms, "
        "COALESCE(end_ms, 0), result FROM activities WHERE start_ms >= ?1 ORDER BY start_ms DESC, id DESC "
        "LIMIT ?2) ORDER BY start_ms, id";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        return failed(db, err, errsize);
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int(st, 2, limit < (int)max ? limit : (int)max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && (size_t)n < max) {
        struct hist_activity *a = &out[n++];
        a->id = sqlite3_column_int64(st, 0);
        col_str(st, 1, a->group, sizeof a->group);
        col_str(st, 2, a->kind, sizeof a->kind);
        col_str(st, 3, a->cause, sizeof a->cause);
        col_str(st, 4, a->description, sizeof a->description);
        col_str(st, 5, a->instances, sizeof a->instances);
        a->start_ms = sqlite3_column_int64(st, 6);
        a->end_ms = sqlite3_column_int64(st, 7);
        col_str(st, 8, a->result, sizeof a->result);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return failed(db, err, errsize);
    return n;
}

int histq_samples(struct sqlite3 *db, int64_t since_ms, struct hist_sample *out, size_t max, char *err,
                  size_t errsize)
{
    static const char q[] =
        "SELECT * FROM (SELECT time_ms, running, pending, total, desired, target, min, max, demand, mean_load, "
        "request_rate FROM samples WHERE time_ms >= ?1 ORDER BY time_ms DESC LIMIT ?2) ORDER BY time_ms";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        return failed(db, err, errsize);
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && (size_t)n < max) {
        struct hist_sample *s = &out[n++];
        s->time_ms = sqlite3_column_int64(st, 0);
        int *ints[] = {&s->running, &s->pending, &s->total, &s->desired, &s->target, &s->min, &s->max};
        for (int k = 0; k < 7; k++)
            *ints[k] = sqlite3_column_int(st, 1 + k);
        s->demand = sqlite3_column_double(st, 8);
        s->mean_load = sqlite3_column_double(st, 9);
        s->request_rate = sqlite3_column_double(st, 10);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return failed(db, err, errsize);
    return n;
}

void histq_activities_json(struct strbuf *b, const struct hist_activity *a, int n)
{
    sb_printf(b, "{\"activities\":[");
    for (int i = 0; i < n; i++) {
        sb_printf(b, "%s{\"id\":%lld,\"group\":", i ? "," : "", (long long)a[i].id);
        sb_json_str(b, a[i].group);
        sb_printf(b, ",\"kind\":");
        sb_json_str(b, a[i].kind);
        sb_printf(b, ",\"cause\":");
        sb_json_str(b, a[i].cause);
        sb_printf(b, ",\"description\":");
        sb_json_str(b, a[i].description);
        sb_printf(b, ",\"instances\":[");
        const char *p = a[i].instances;
        for (bool first = true; *p; first = false) {
            size_t len = strcspn(p, ",");
            char one[INSTANCE_ID_MAX];
            snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one ? len : sizeof one - 1), p);
            sb_printf(b, "%s", first ? "" : ",");
            sb_json_str(b, one);
            p += len + (p[len] == ',');
        }
        sb_printf(b, "],\"start_ms\":%lld,\"end_ms\":", (long long)a[i].start_ms);
        if (a[i].end_ms)
            sb_printf(b, "%lld", (long long)a[i].end_ms);
        else
            sb_printf(b, "null");
        sb_printf(b, ",\"result\":");
        sb_json_str(b, a[i].result);
        sb_printf(b, "}");
    }
    sb_printf(b, "]}\n");
}

void histq_samples_json(struct strbuf *b, const struct hist_sample *s, int n)
{
    sb_printf(b, "{\"samples\":[");
    for (int i = 0; i < n; i++)
        sb_printf(b, "%s{\"time_ms\":%lld,\"running\":%d,\"pending\":%d,\"total\":%d,\"desired\":%d,"
                     "\"target\":%d,\"min\":%d,\"max\":%d,\"demand\":%.3f,\"mean_load\":%.4f,"
                     "\"request_rate\":%.3f}",
                  i ? "," : "", (long long)s[i].time_ms, s[i].running, s[i].pending, s[i].total, s[i].desired,
                  s[i].target, s[i].min, s[i].max, s[i].demand, s[i].mean_load, s[i].request_rate);
    sb_printf(b, "]}\n");
}

/* RFC 3339: 2026-12-03T10:00:00[.fff](Z|+HH:MM|-HH:MM). */
static int64_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long off = 0;
    int hh, mm, used = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        off = 0;
    else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) == 2 && p[1 + used] == '\0' &&
             hh < 24 && mm < 60)
        off = (*p == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
    else
        return -1;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : ((int64_t)t - off) * 1000;
}

int64_t histq_parse_since(const char *s, int64_t now)
{
    char *end;
    if (s[0] >= '0' && s[0] <= '9') {
        long long v = strtoll(s, &end, 10);
        long long unit = 0;
        if (end[0] && !end[1])
            unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400 : 0;
        if (unit && v >= 0 && v <= 3650LL * 86400 / unit)
            return now - v * unit * 1000;
    }
    return parse_rfc3339(s);
}

/* ok: the role's last write went through; a role that has not written
 * yet, and has no error, is starting. */
static const char *health(const struct snapshot *s)
{
    const struct history_state *hs = &s->hdr->history;
    if (!s->cfg->history_enabled)
        return "disabled";
    if (hs->ok && !hs->error[0])
        return hs->last_write_ms || hs->last_event ? "ok" : "starting";
    return "failing";
}

void histq_status_json(struct strbuf *b, const struct snapshot *s)
{
    const struct history_state *hs = &s->hdr->history;
    char path[256];
    histq_path(s->cfg, path, sizeof path);
    sb_printf(b, "{\"enabled\":%s,\"ok\":%s,\"state\":\"%s\",\"error\":", s->cfg->history_enabled ? "true" : "false",
              strcmp(health(s), "ok") == 0 ? "true" : "false", health(s));
    sb_json_str(b, hs->error);
    sb_printf(b, ",\"path\":");
    sb_json_str(b, path);
    sb_printf(b, ",\"last_event\":%llu,\"events_lost\":%llu,\"activities\":%llu,\"samples\":%llu,"
                 "\"failures\":%llu,\"pruned\":%llu,\"last_write_ms\":%lld,\"error_since_ms\":%lld,"
                 "\"retention_days\":%d,\"sample_interval_s\":%d}",
              (unsigned long long)hs->last_event, (unsigned long long)hs->events_lost,
              (unsigned long long)hs->activities, (unsigned long long)hs->samples,
              (unsigned long long)hs->failures, (unsigned long long)hs->pruned, (long long)hs->last_write_ms,
              (long long)hs->error_since_ms, s->cfg->history_retention_days, s->cfg->history_sample_interval_s);
}

void histq_metrics(struct strbuf *b, const struct snapshot *s)
{
    const struct history_state *hs = &s->hdr->history;
    sb_printf(b, "# HELP asg_history_ok 1 while the history database takes every write (history.enabled).\n"
                 "# TYPE asg_history_ok gauge\nasg_history_ok %d\n", strcmp(health(s), "failing") != 0);
    static const struct { const char *name, *help; size_t off; } counters[] = {
        {"asg_history_write_failures_total", "Writes to the history database that failed (each tried again).",
         offsetof(struct history_state, failures)},
        {"asg_history_events_lost_total", "Events overwritten in the ring before the history recorded them.",
         offsetof(struct history_state, events_lost)},
        {"asg_history_activities_total", "Activities the history wrote (begun or ended).",
         offsetof(struct history_state, activities)},
        {"asg_history_samples_total", "Samples of the group the history wrote.",
         offsetof(struct history_state, samples)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)hs + counters[i].off, sizeof v);
        sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name, counters[i].help,
                  counters[i].name, counters[i].name, (unsigned long long)v);
    }
}

void histq_status_line(const struct snapshot *s, char *out, size_t size)
{
    const struct history_state *hs = &s->hdr->history;
    const char *h = health(s);
    if (strcmp(h, "failing") == 0)
        snprintf(out, size, "history: FAILING: %s (%llu failed writes; the group is managed all the same)",
                 hs->error, (unsigned long long)hs->failures);
    else
        snprintf(out, size, "history: %s, %llu activities, %llu samples, %llu events lost", h,
                 (unsigned long long)hs->activities, (unsigned long long)hs->samples,
                 (unsigned long long)hs->events_lost);
}
