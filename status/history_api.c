/* The history's read endpoints (status/history_api.h). */
#include "history_api.h"

#include <stdio.h>
#include <stdlib.h>

#include "../common/util.h"
#include "../report/histq.h"

/* The newest this many (1.4 MB of them, about 2 MB of JSON): a day at
 * history.sample_interval_s = 60 is 1,440; at 1 s, the last 5.5 hours. */
#define SAMPLES_MAX 20000
#define DAY_MS (86400LL * 1000)

static unsigned since_of(const char *since, int64_t dflt, int64_t *out, char *err, size_t errsize)
{
    *out = dflt;
    if (!since)
        return 200;
    *out = histq_parse_since(since, wall_ms());
    if (*out >= 0)
        return 200;
    snprintf(err, errsize, "since must be a duration (2h, 30m, 7d, 90s) or an RFC 3339 time");
    return 400;
}

unsigned history_api_activities(const struct asg_config *cfg, const char *limit, const char *since,
                                struct strbuf *b, char *err, size_t errsize)
{
    long n = 100;
    int64_t from;
    if (limit && !parse_whole(limit, 1, HISTQ_LIMIT_MAX, &n)) {
        snprintf(err, errsize, "limit must be 1..%d", HISTQ_LIMIT_MAX);
        return 400;
    }
    if (since_of(since, 0, &from, err, errsize) != 200)
        return 400;
    char path[256];
    histq_path(cfg, path, sizeof path);
    struct sqlite3 *db = histq_open(path, err, errsize);
    if (!db)
        return 503;
    struct hist_activity *a = calloc((size_t)n, sizeof *a);
    int got = a ? histq_activities(db, from, (int)n, a, (size_t)n, err, errsize) : -1;
    histq_close(db);
    if (got >= 0)
        histq_activities_json(b, a, got);
    free(a);
    return got >= 0 ? 200 : 503;
}

unsigned history_api_samples(const struct asg_config *cfg, const char *since, struct strbuf *b, char *err,
                             size_t errsize)
{
    int64_t from;
    if (since_of(since, wall_ms() - DAY_MS, &from, err, errsize) != 200)
        return 400;
    char path[256];
    histq_path(cfg, path, sizeof path);
    struct sqlite3 *db = histq_open(path, err, errsize);
    if (!db)
        return 503;
    struct hist_sample *s = calloc(SAMPLES_MAX, sizeof *s);
    int got = s ? histq_samples(db, from, s, SAMPLES_MAX, err, errsize) : -1;
    histq_close(db);
    if (got >= 0)
        histq_samples_json(b, s, got);
    free(s);
    return got >= 0 ? 200 : 503;
}
