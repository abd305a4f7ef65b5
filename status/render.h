/* What the table says, rendered for people and programs: the group as
 * JSON (asgctl status --json, /api/v1/group), the event log, and the
 * Prometheus text format (/metrics). Read-only: lock-free copies. */
#ifndef ASG_RENDER_H
#define ASG_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/strbuf.h"
#include "../shm/table.h"

/* A consistent copy of the header and of every used row. */
struct snapshot {
    struct table_hdr *hdr;      /* malloc'd */
    struct table_row *rows;     /* malloc'd, only used rows */
    uint32_t nrows;
    uint32_t torn;              /* rows a dead writer left mid-write */
    int64_t now;                /* now_ms() at the copy */
};

int snapshot_take(const struct table *t, struct snapshot *s);
void snapshot_free(struct snapshot *s);
int snapshot_count(const struct snapshot *s, uint32_t state);
/* The group's live target: the controller's, or the config's desired. */
int snapshot_target(const struct snapshot *s);

void render_status_json(struct strbuf *b, const struct snapshot *s, bool history);
void render_events_json(struct strbuf *b, const struct table *t, uint64_t after, size_t max);
void render_metrics(struct strbuf *b, const struct snapshot *s);

#endif
