/* The notifier's counters (struct notify_state) as asgctl status shows
 * them, as JSON ("notify" in the group's JSON: asgctl status --json,
 * /api/v1/group) and as Prometheus metrics (asg_notify_*). A webhook is
 * named by its place in notify.webhooks (1, 2, ...) and its
 * scheme://host:port, never its path or query. */
#ifndef ASG_NOTIFY_REPORT_H
#define ASG_NOTIFY_REPORT_H

#include <stdio.h>

#include "../common/strbuf.h"
#include "../shm/snapshot.h"

/* The counters of webhook i of the snapshot's config: those in the table
 * when they are about its URL, else zero (the notifier has not taken it
 * up yet). */
struct webhook_report {
    char target[160];
    unsigned kinds;
    uint64_t delivered, failed, refused, dropped;
    uint32_t queued, last_status;
    int64_t last_ok_ms;
};
void webhook_report_of(const struct snapshot *s, int i, struct webhook_report *out);

/* "notify":{...} (no comma around it). */
void notify_render_json(struct strbuf *b, const struct snapshot *s);
/* The asg_notify_* families (none without webhooks). */
void notify_render_metrics(struct strbuf *b, const struct snapshot *s);
/* asgctl status's lines (none without webhooks). */
void notify_print_text(FILE *f, const struct snapshot *s);

#endif
