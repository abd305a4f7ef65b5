/* asgctl history (asgctl/history.h). */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/strbuf.h"
#include "../common/util.h"
#include "../report/histq.h"

static const char usage_line[] = "asgctl: usage: history [-n N (1..10000)] [--since T (2h, 30m, 7d, RFC 3339)] [--json]\n";

struct hist_args {
    long n;
    int64_t since_ms;
    bool json;
};

static int parse(int argc, char **argv, struct hist_args *a)
{
    a->n = 20;
    a->since_ms = 0;
    a->json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            if (!parse_whole(argv[++i], 1, HISTQ_LIMIT_MAX, &a->n)) {
                fprintf(stderr, "asgctl: history: -n takes 1..%d, not '%s'\n", HISTQ_LIMIT_MAX, argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            a->since_ms = histq_parse_since(argv[++i], wall_ms());
            if (a->since_ms < 0) {
                fprintf(stderr, "asgctl: history: --since '%s': not a duration (2h, 30m, 7d, 90s) or an "
                        "RFC 3339 time (2026-12-03T10:00:00Z)\n", argv[i]);
                return 2;
            }
        } else {
            fputs(usage_line, stderr);
            return 2;
        }
    }
    return 0;
}

static void when(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms || !gmtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        copy_str(out, size, "-");
}

static void print_text(const struct hist_activity *a, int n)
{
    printf("%-20s %-10s %-11s %-9s %-24s %s\n", "START (UTC)", "KIND", "RESULT", "TOOK", "INSTANCES", "CAUSE");
    for (int i = 0; i < n; i++) {
        char start[32], took[16] = "-";
        when(a[i].start_ms, start, sizeof start);
        if (a[i].end_ms >= a[i].start_ms && a[i].end_ms)
            snprintf(took, sizeof took, "%.1fs", (double)(a[i].end_ms - a[i].start_ms) / 1000);
        printf("%-20s %-10s %-11s %-9s %-24s %s\n", start, a[i].kind, a[i].result, took,
               a[i].instances[0] ? a[i].instances : "-", a[i].cause[0] ? a[i].cause : a[i].description);
    }
}

int history_command(const struct asg_config *cfg, const char *shm, int argc, char **argv)
{
    (void)shm;
    struct hist_args a;
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc;
    char path[256], err[512];
    histq_path(cfg, path, sizeof path);
    struct sqlite3 *db = histq_open(path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "asgctl: %s (run as the manager's user, with its -c FILE)\n", err);
        return 1;
    }
    struct hist_activity *acts = calloc((size_t)a.n, sizeof *acts);
    int n = acts ? histq_activities(db, a.since_ms, (int)a.n, acts, (size_t)a.n, err, sizeof err) : -1;
    histq_close(db);
    if (n < 0) {
        fprintf(stderr, "asgctl: %s\n", acts ? err : "out of memory");
        free(acts);
        return 1;
    }
    if (a.json) {
        struct strbuf b = {0};
        histq_activities_json(&b, acts, n);
        fputs(b.s ? b.s : "{\"activities\":[]}\n", stdout);
        sb_free(&b);
    } else {
        print_text(acts, n);
    }
    free(acts);
    return 0;
}
