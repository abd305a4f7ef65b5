#include "zero.h"
#include "../common/util.h"

#include <stdatomic.h>
#include <time.h>

static bool zero_on(const struct snapshot *s) { return s->cfg->min_instances == 0 && s->cfg->lb_kind != LB_NONE; }

/* Unix ms as an ISO time, "-" for none. */
static const char *iso(int64_t wall, char *out, size_t size)
{
    time_t t = (time_t)(wall / 1000);
    struct tm tm;
    if (wall <= 0 || !gmtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        copy_str(out, size, "-");
    return out;
}

void render_zero_json(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct zero_state *z = &h->zero;
    const struct lb_demand *d = &h->lb_demand;
    sb_printf(b, "\"scale_to_zero\":{\"enabled\":%s,\"idle_s\":%d,\"at_zero\":%s,\"zero_since_ms\":%lld,"
                 "\"idle_since_ms\":%lld,\"cold_starts\":%llu,\"backend\":",
              zero_on(s) ? "true" : "false", s->cfg->scale_to_zero_idle_s, h->ctl.at_zero ? "true" : "false",
              (long long)z->zero_since_wall_ms, (long long)z->idle_since_wall_ms,
              (unsigned long long)z->cold_starts);
    if (d->read_ms)
        sb_printf(b, "{\"sessions\":%llu,\"current\":%u,\"queued\":%u,\"read_ms_ago\":%lld}",
                  (unsigned long long)d->sessions, (unsigned)d->current, (unsigned)d->queued,
                  (long long)(s->now - d->read_ms));
    else
        sb_printf(b, "null");
    sb_printf(b, "},");
}

void render_zero_metrics(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct lb_demand *d = &h->lb_demand;
    if (d->read_ms) {
        sb_printf(b, "# HELP asg_lb_backend_sessions_total Sessions the balancer's backend took (HAProxy's "
                     "BACKEND stot), those held waiting for a server included.\n"
                     "# TYPE asg_lb_backend_sessions_total counter\n"
                     "asg_lb_backend_sessions_total %llu\n", (unsigned long long)d->sessions);
        sb_printf(b, "# HELP asg_lb_backend_current Sessions at the backend now, served or waiting for a "
                     "server (HAProxy's BACKEND scur).\n# TYPE asg_lb_backend_current gauge\n"
                     "asg_lb_backend_current %u\n", (unsigned)d->current);
        sb_printf(b, "# HELP asg_lb_queue Requests in the backend's queue (HAProxy's BACKEND qcur).\n"
                     "# TYPE asg_lb_queue gauge\nasg_lb_queue %u\n", (unsigned)d->queued);
    }
    if (!zero_on(s))
        return;
    sb_printf(b, "# HELP asg_scale_to_zero_at_zero 1 while the group is scaled to zero.\n"
                 "# TYPE asg_scale_to_zero_at_zero gauge\nasg_scale_to_zero_at_zero %d\n",
              h->ctl.at_zero ? 1 : 0);
    sb_printf(b, "# HELP asg_scale_to_zero_idle_seconds Seconds since the balancer last saw a request.\n"
                 "# TYPE asg_scale_to_zero_idle_seconds gauge\nasg_scale_to_zero_idle_seconds %.3f\n",
              h->zero.idle_since_ms ? (double)(s->now - h->zero.idle_since_ms) / 1000.0 : 0.0);
    sb_printf(b, "# HELP asg_scale_to_zero_cold_starts_total Times a request woke the group from zero.\n"
                 "# TYPE asg_scale_to_zero_cold_starts_total counter\nasg_scale_to_zero_cold_starts_total %llu\n",
              (unsigned long long)h->zero.cold_starts);
}

void render_zero_text(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct lb_demand *d = &h->lb_demand;
    char t1[32], t2[32];
    if (!zero_on(s))
        return;
    if (h->ctl.at_zero)
        sb_printf(b, "scaled to zero since %s, idle since %s; a request at the balancer starts one instance",
                  iso(h->zero.zero_since_wall_ms, t1, sizeof t1), iso(h->zero.idle_since_wall_ms, t2, sizeof t2));
    else
        sb_printf(b, "scale to zero after %d s idle; idle since %s", s->cfg->scale_to_zero_idle_s,
                  iso(h->zero.idle_since_wall_ms, t1, sizeof t1));
    if (d->read_ms)
        sb_printf(b, "; backend: %u waiting, %u queued, %llu sessions so far", (unsigned)d->current,
                  (unsigned)d->queued, (unsigned long long)d->sessions);
    else
        sb_printf(b, "; backend not read yet");
    sb_printf(b, "; %llu cold start(s)\n", (unsigned long long)h->zero.cold_starts);
}
