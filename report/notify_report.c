#include "notify_report.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "cloudevent.h"
#include "../common/webhook_cfg.h"

void webhook_report_of(const struct snapshot *s, int i, struct webhook_report *out)
{
    memset(out, 0, sizeof *out);
    const struct webhook_cfg *w = &s->cfg->webhooks[i];
    const struct notify_hook_state *h = &s->hdr->notify.hook[i];
    webhook_target(w->url, out->target, sizeof out->target);
    out->kinds = w->kinds;
    if (atomic_load(&h->url_hash) != webhook_url_hash(w->url))
        return;
    out->delivered = atomic_load(&h->delivered);
    out->failed = atomic_load(&h->failed);
    out->refused = atomic_load(&h->refused);
    out->dropped = atomic_load(&h->dropped);
    out->queued = atomic_load(&h->queued);
    out->last_status = atomic_load(&h->last_status);
    out->last_ok_ms = atomic_load(&h->last_ok_ms);
}

static void kinds_json(struct strbuf *b, unsigned kinds)
{
    if (kinds == webhook_all_kinds()) {
        sb_printf(b, "\"all\"");
        return;
    }
    sb_printf(b, "[");
    for (int k = 0, n = 0; webhook_kind_name(k); k++)
        if (kinds & (1u << k))
            sb_printf(b, "%s\"%s\"", n++ ? "," : "", webhook_kind_name(k));
    sb_printf(b, "]");
}

void notify_render_json(struct strbuf *b, const struct snapshot *s)
{
    const struct notify_state *ns = &s->hdr->notify;
    sb_printf(b, "\"notify\":{\"pid\":%d,\"cursor\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"webhooks\":[",
              s->cfg->nwebhooks ? (int)atomic_load(&ns->pid) : 0, atomic_load(&ns->cursor),
              atomic_load(&ns->lost));
    for (int i = 0; i < s->cfg->nwebhooks && i < WEBHOOKS_MAX; i++) {
        struct webhook_report r;
        webhook_report_of(s, i, &r);
        sb_printf(b, "%s{\"webhook\":%d,\"target\":", i ? "," : "", i + 1);
        sb_json_str(b, r.target);
        sb_printf(b, ",\"events\":");
        kinds_json(b, r.kinds);
        sb_printf(b, ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"refused\":%" PRIu64
                     ",\"dropped\":%" PRIu64 ",\"queued\":%u,\"last_status\":%u,\"last_delivery\":",
                  r.delivered, r.failed, r.refused, r.dropped, r.queued, r.last_status);
        if (r.last_ok_ms) {
            char when[40];
            cloudevent_time(r.last_ok_ms, when, sizeof when);
            sb_printf(b, "\"%s\"}", when);
        } else {
            sb_printf(b, "null}");
        }
    }
    sb_printf(b, "]}");
}

/* A label value: the target has no quote or backslash (curl's host and
 * port), but is escaped as the format says all the same. */
static void label(struct strbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            sb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_add(b, v, 1);
    }
}

static void family(struct strbuf *b, const struct snapshot *s, const char *name, const char *type,
                   const char *helptext, size_t field)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, helptext, name, type);
    for (int i = 0; i < s->cfg->nwebhooks && i < WEBHOOKS_MAX; i++) {
        struct webhook_report r;
        webhook_report_of(s, i, &r);
        sb_printf(b, "%s{webhook=\"%d\",target=\"", name, i + 1);
        label(b, r.target);
        uint64_t v = field == offsetof(struct webhook_report, queued) ? r.queued
                                                                       : *(const uint64_t *)((const char *)&r + field);
        sb_printf(b, "\"} %" PRIu64 "\n", v);
    }
}

void notify_render_metrics(struct strbuf *b, const struct snapshot *s)
{
    if (s->cfg->nwebhooks <= 0)
        return;
    family(b, s, "asg_notify_delivered_total", "counter", "Events a webhook accepted (2xx).",
           offsetof(struct webhook_report, delivered));
    family(b, s, "asg_notify_failed_total", "counter",
           "Deliveries to a webhook that failed (connection, timeout, non-2xx), each try counted.",
           offsetof(struct webhook_report, failed));
    family(b, s, "asg_notify_refused_total", "counter",
           "Events given up on because the webhook refused them (a 4xx other than 408 and 429).",
           offsetof(struct webhook_report, refused));
    family(b, s, "asg_notify_dropped_total", "counter",
           "Events dropped, oldest first, from a webhook's full queue (notify.queue).",
           offsetof(struct webhook_report, dropped));
    family(b, s, "asg_notify_queued", "gauge", "Events waiting to be delivered to a webhook.",
           offsetof(struct webhook_report, queued));
    sb_printf(b, "# HELP asg_notify_lost_total Events the event ring overwrote before the notifier read them.\n"
                 "# TYPE asg_notify_lost_total counter\nasg_notify_lost_total %" PRIu64 "\n",
              atomic_load(&s->hdr->notify.lost));
}

void notify_print_text(FILE *f, const struct snapshot *s)
{
    if (s->cfg->nwebhooks <= 0)
        return;
    const struct notify_state *ns = &s->hdr->notify;
    int pid = atomic_load(&ns->pid);
    fprintf(f, "notify: pid %d, at event %" PRIu64 ", %" PRIu64 " lost in the ring\n", pid,
            atomic_load(&ns->cursor), atomic_load(&ns->lost));
    for (int i = 0; i < s->cfg->nwebhooks && i < WEBHOOKS_MAX; i++) {
        struct webhook_report r;
        webhook_report_of(s, i, &r);
        fprintf(f, "  webhook %d %s: delivered %" PRIu64 ", failed %" PRIu64 ", refused %" PRIu64
                   ", queued %u, dropped %" PRIu64 "%s\n",
                i + 1, r.target, r.delivered, r.failed, r.refused, r.queued, r.dropped,
                r.last_status && (r.last_status < 200 || r.last_status >= 300) ? " (last answer not 2xx)" : "");
    }
}
