/* Lock-free consistent copies of the whole table, for readers. */
#include "snapshot.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

static int take_config(const struct confseg *cs, struct snapshot *s)
{
    s->cfg = malloc(sizeof *s->cfg);
    if (!s->cfg)
        return -1;
    if (cs)
        return confseg_read(cs, s->cfg, &s->cfg_gen) ? 0 : -1;
    config_defaults(s->cfg);
    return 0;
}

int snapshot_take(const struct table *t, const struct confseg *cs, struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    if (take_config(cs, s) != 0) {
        free(s->cfg);
        s->cfg = NULL;
        return -1;
    }
    s->hdr = malloc(sizeof *s->hdr);
    if (!s->hdr || !table_read_hdr(t, s->hdr)) {
        free(s->hdr);
        free(s->cfg);
        s->hdr = NULL;
        s->cfg = NULL;
        return -1;
    }
    s->hdr->lb_error[sizeof s->hdr->lb_error - 1] = '\0';
    /* The history role writes its part under its own counter (table.h). */
    struct history_state *hs = &s->hdr->history;
    if (!table_seq_copy(hs, &t->hdr->history, sizeof *hs, &t->hdr->history.seq))
        memset(hs, 0, sizeof *hs);
    hs->error[sizeof hs->error - 1] = '\0';
    s->hdr->monitor_addr[sizeof s->hdr->monitor_addr - 1] = '\0';
    s->hdr->rollout.reason[sizeof s->hdr->rollout.reason - 1] = '\0';
    s->hdr->ha_leader[sizeof s->hdr->ha_leader - 1] = '\0';
    s->hdr->ha_leader_addr[sizeof s->hdr->ha_leader_addr - 1] = '\0';
    s->rows = calloc(t->capacity ? t->capacity : 1, sizeof *s->rows);
    if (!s->rows) {
        free(s->hdr);
        free(s->cfg);
        return -1;
    }
    for (uint32_t i = 0; i < t->capacity; i++) {
        if (!table_read_row(t, i, &s->rows[s->nrows])) {
            s->torn++;
            continue;
        }
        struct table_row *r = &s->rows[s->nrows];
        /* A copy: strings a dead or hostile writer left unterminated end
         * here, not past their field. */
        r->id[sizeof r->id - 1] = r->addr[sizeof r->addr - 1] = r->reason[sizeof r->reason - 1] = '\0';
        r->service_addr[sizeof r->service_addr - 1] = '\0';
        if (r->lb_state >= LBS_COUNT)
            r->lb_state = LBS_NONE;
        if (r->state != ROW_FREE && r->state < ROW_STATE_COUNT)
            s->nrows++;
    }
    const struct table_log *l = t->log;
    s->probes.sent = atomic_load(&l->probes_sent);
    s->probes.failed = atomic_load(&l->probes_failed);
    s->probes.us_sum = atomic_load(&l->probe_us_sum);
    for (int k = 0; k < PROBE_BUCKETS; k++)
        s->probes.hist[k] = atomic_load(&l->probe_hist[k]);
    for (int k = 0; k < PROBE_FINE; k++)
        s->probes.fine[k] = atomic_load(&l->probe_fine[k]);
    s->probes.events_written = atomic_load(&l->events_written);
    s->now = now_ms();
    return 0;
}

void snapshot_free(struct snapshot *s)
{
    free(s->hdr);
    free(s->rows);
    free(s->cfg);
    memset(s, 0, sizeof *s);
}

int snapshot_count(const struct snapshot *s, uint32_t state)
{
    int n = 0;
    for (uint32_t i = 0; i < s->nrows; i++)
        n += s->rows[i].state == state;
    return n;
}

int snapshot_target(const struct snapshot *s)
{
    return s->hdr->ctl.target || s->hdr->ctl.at_zero ? s->hdr->ctl.target : s->cfg->desired_instances;
}
