/* What the table says, rendered for people and programs: the group as
 * JSON (asgctl status --json, /api/v1/group), the event log, and the
 * Prometheus text format (/metrics). Read-only: lock-free copies. */
#ifndef ASG_RENDER_H
#define ASG_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/strbuf.h"
#include "../shm/snapshot.h"
#include "../shm/table.h"

void render_status_json(struct strbuf *b, const struct snapshot *s, bool history);
void render_events_json(struct strbuf *b, const struct table *t, uint64_t after, size_t max);
void render_metrics(struct strbuf *b, const struct snapshot *s);

/* The group's rollout (asgctl rollout status --json, /api/v1/rollout, and
 * "rollout" in the group's JSON): one JSON object, no newline. */
void render_rollout_json(struct strbuf *b, const struct snapshot *s);

/* The suspended processes ("suspended" in the group's JSON): a JSON array
 * of {"process", "by", "since_ms"}, one per suspended process. */
void render_suspended_json(struct strbuf *b, const struct table_hdr *h);

/* Live instances (not terminating) of the running rollout's target
 * generation (new; when none runs, of the spec in force) and of any other
 * (old). */
void rollout_instance_counts(const struct snapshot *s, int *old, int *new_);

#endif
