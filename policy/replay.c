#include "replay.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define MINUTE_MS 60000LL
#define MAX_EVALUATIONS 200000000LL
/* Simulated time starts here, not at 0: the policy reads a zero
 * last_action_ms as "never acted". */
#define T0_MS 3600000LL

static int trace_error(char *err, size_t n, const char *path, size_t line, const char *why,
                       const char *text)
{
    snprintf(err, n, "%s:%zu: %s%s%.40s%s", path, line, why, text ? " '" : "", text ? text : "",
             text ? "'" : "");
    return -1;
}

/* One line: a whole number of requests, nothing else but trailing blanks. */
static int parse_minute(const char *s, uint32_t *v)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if (*end || errno || x > REPLAY_MAX_RPM)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

int replay_load_trace(const char *path, uint32_t **demand, size_t *n, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsize, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    uint32_t *v = NULL;
    size_t len = 0, cap = 0, line = 0;
    char buf[128];
    int rc = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        size_t bl = strlen(buf);
        if (bl == sizeof buf - 1 && buf[bl - 1] != '\n') {
            rc = trace_error(err, errsize, path, line, "line too long", NULL);
            break;
        }
        if (len == REPLAY_MAX_MINUTES) {
            rc = trace_error(err, errsize, path, line, "more than 10,000,000 minutes", NULL);
            break;
        }
        uint32_t x;
        if (parse_minute(buf, &x) != 0) {
            buf[strcspn(buf, "\r\n")] = '\0';
            rc = trace_error(err, errsize, path, line,
                             "expected requests per minute, a whole number 0..1000000000, got", buf);
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint32_t *nv = realloc(v, cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[len++] = x;
    }
    if (rc == 0 && ferror(f))
        rc = trace_error(err, errsize, path, line + 1, "read error", NULL);
    if (rc == 0 && len == 0)
        rc = trace_error(err, errsize, path, 1, "no minutes in the trace", NULL);
    fclose(f);
    if (rc != 0) {
        free(v);
        return -1;
    }
    *demand = v;
    *n = len;
    return 0;
}

/* ---- the simulated group ---- */

struct sim {
    const struct asg_config *cfg;
    const struct replay_opts *o;
    const uint32_t *demand;
    size_t minutes;
    int64_t *ready_at;          /* per instance: when it starts serving */
    int count, cap;
    struct replay_result *res;
    int64_t minute;             /* the minute being summed */
    double ready_ms, booting_ms; /* instances x ms in it */
    int target;                 /* the policy's last target */
};

static int ready_count(const struct sim *s, int64_t t)
{
    int n = 0;
    for (int i = 0; i < s->count; i++)
        n += s->ready_at[i] <= t;
    return n;
}

/* The next time after t at which an instance becomes ready, or INT64_MAX. */
static int64_t next_ready(const struct sim *s, int64_t t)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < s->count; i++)
        if (s->ready_at[i] > t && s->ready_at[i] < next)
            next = s->ready_at[i];
    return next;
}

/* A minute's totals, from its means alone (so the timeline adds up). */
static void close_minute(struct sim *s)
{
    if (s->minute < 0)
        return;
    double ready = s->ready_ms / MINUTE_MS, booting = s->booting_ms / MINUTE_MS;
    double demand = s->demand[s->minute], capacity = ready * s->o->capacity_rpm;
    bool over = demand > 0 && (ready == 0 || demand > 0.9 * capacity);
    s->res->instance_minutes += ready + booting;
    s->res->overload_minutes += over;
    if (demand > capacity)
        s->res->unserved_requests += demand - capacity;
    if (s->o->ready && (size_t)s->minute < s->minutes)
        s->o->ready[s->minute] = (float)ready;
    if (s->o->booting && (size_t)s->minute < s->minutes)
        s->o->booting[s->minute] = (float)booting;
    if (s->o->timeline)
        fprintf(s->o->timeline, "%lld,%.0f,%.4f,%.4f,%d,%d\n", (long long)s->minute, demand, ready, booting,
                s->target, over);
    s->ready_ms = s->booting_ms = 0;
}

/* Accounts instances ready and booting over [from, to). */
static void account(struct sim *s, int64_t from, int64_t to)
{
    while (from < to) {
        int64_t m = (from - T0_MS) / MINUTE_MS;
        if (m != s->minute) {
            close_minute(s);
            s->minute = m;
        }
        int64_t end = T0_MS + (m + 1) * MINUTE_MS;
        int64_t nr = next_ready(s, from);
        if (nr < end)
            end = nr;
        if (to < end)
            end = to;
        double span = (double)(end - from);
        int ready = ready_count(s, from);
        s->ready_ms += ready * span;
        s->booting_ms += (s->count - ready) * span;
        from = end;
    }
}

static void launch(struct sim *s, int64_t t)
{
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        int64_t *nr = realloc(s->ready_at, (size_t)s->cap * sizeof *nr);
        if (!nr)
            abort();
        s->ready_at = nr;
    }
    s->ready_at[s->count++] = t + s->o->boot_delay_ms;
}

/* Scale in takes the newest instance first: a booting one if any. */
static void terminate_newest(struct sim *s)
{
    int newest = 0;
    for (int i = 1; i < s->count; i++)
        if (s->ready_at[i] > s->ready_at[newest])
            newest = i;
    s->ready_at[newest] = s->ready_at[--s->count];
}

/* What the monitor would have written, reduced as the controller does. */
static struct policy_input observe(const struct sim *s, int64_t t)
{
    struct policy_input in;
    memset(&in, 0, sizeof in);
    int ready = ready_count(s, t);
    double rate = s->demand[(t - T0_MS) / MINUTE_MS];
    double load = ready ? rate / ((double)ready * s->o->capacity_rpm) : 0;
    if (load > 1.0)
        load = 1.0; /* an agent reports 0..1: saturated is 1 */
    /* The balancer counts what it sends each instance, served or not: the
     * rate per instance over the target rate, not bounded by capacity. */
    if (s->cfg->policy_metric == METRIC_REQUESTS)
        load = ready ? rate / 60.0 / ready / s->cfg->target_requests : 0;
    for (int i = 0; i < s->count; i++) {
        if (s->ready_at[i] > t) {
            in.pending++;
            continue;
        }
        in.running++;
        if (t - s->ready_at[i] >= s->cfg->warmup_ms) {
            in.warm++;
            in.load_sum += load;
        }
    }
    return in;
}

int replay_run(const struct asg_config *cfg, const uint32_t *demand, size_t n,
               const struct replay_opts *o, struct replay_result *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    int64_t step = cfg->evaluation_interval_ms;
    if (o->capacity_rpm == 0) {
        snprintf(err, errsize, "capacity must be at least 1 request a minute");
        return -1;
    }
    if (step <= 0 || (int64_t)n * MINUTE_MS / step > MAX_EVALUATIONS) {
        snprintf(err, errsize, "%zu minutes at one evaluation every %lld ms is more than %lld "
                 "evaluations", n, (long long)step, MAX_EVALUATIONS);
        return -1;
    }
    struct sim s = {.cfg = cfg, .o = o, .demand = demand, .minutes = n, .res = out, .minute = -1};
    if (o->timeline)
        fputs(REPLAY_TIMELINE_HEADER, o->timeline);
    struct ctl_state st;
    memset(&st, 0, sizeof st);
    int start_size = cfg->desired_instances < cfg->min_instances ? cfg->min_instances
                   : cfg->desired_instances > cfg->max_instances ? cfg->max_instances
                   : cfg->desired_instances;
    for (int i = 0; i < start_size; i++)
        launch(&s, T0_MS - o->boot_delay_ms - cfg->warmup_ms); /* warm at the start */
    int64_t end = T0_MS + (int64_t)n * MINUTE_MS;
    for (int64_t t = T0_MS; t < end; t += step) {
        struct policy_input in = observe(&s, t);
        struct decision d = policy_decide(cfg, &in, &st, t);
        if (d.change != 0)
            out->scaling_actions++;
        while (s.count < d.target)
            launch(&s, t);
        while (s.count > d.target)
            terminate_newest(&s);
        if (s.count > out->peak_instances)
            out->peak_instances = s.count;
        s.target = d.target;
        account(&s, t, t + step < end ? t + step : end);
    }
    close_minute(&s);
    out->minutes = n;
    free(s.ready_at);
    return 0;
}
