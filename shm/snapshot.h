/* A reader's consistent copy of the table: the header and every used row,
 * taken without the lock (each row's and the header's sequence counter
 * tell a torn copy), with every string cut at its field. */
#ifndef ASG_SNAPSHOT_H
#define ASG_SNAPSHOT_H

#include <stdint.h>

#include "../common/config.h"
#include "confseg.h"
#include "table.h"

/* The log's counters, as read at the copy (each one atomic). */
struct probe_totals {
    uint64_t sent, failed, us_sum;
    uint64_t hist[PROBE_BUCKETS];
    uint64_t fine[PROBE_FINE];
    uint64_t events_written;
};

/* A consistent copy of the header and of every used row, and the config
 * its supervisor published. */
struct snapshot {
    struct probe_totals probes;
    struct table_hdr *hdr;      /* malloc'd */
    struct table_row *rows;     /* malloc'd, only used rows */
    struct asg_config *cfg;     /* malloc'd: the published config (defaults without one) */
    uint64_t cfg_gen;           /* its generation, 0 without one */
    uint32_t nrows;
    uint32_t torn;              /* rows a dead writer left mid-write */
    int64_t now;                /* now_ms() at the copy */
};

/* cs: the table's published config (NULL: the defaults stand in). */
int snapshot_take(const struct table *t, const struct confseg *cs, struct snapshot *s);
void snapshot_free(struct snapshot *s);
int snapshot_count(const struct snapshot *s, uint32_t state);
/* The group's live target: the controller's, or the config's desired. */
int snapshot_target(const struct snapshot *s);

#endif
