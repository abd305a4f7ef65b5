/* The history role (history/history.h). */
#include "history.h"

#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/util.h"
#include "../report/histq.h"
#include "../shm/confseg.h"
#include "../shm/snapshot.h"
#include "store.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define LOOP_MS 500
#define PRUNE_EVERY_MS (3600 * 1000)
#define PRUNE_BATCH 500

/* The role's whole state, made by history_main. */
struct hist {
    struct table *t;
    struct confseg conf;
    struct asg_config cfg;
    uint64_t cfg_gen;
    char path[256];
    char nonce[24];               /* the table's (hdr->nonce), as hex */
    sqlite3 *db;                  /* NULL while closed */
    struct hstore_cursor cur;     /* of this table, read at each open */
    int64_t retry_at, retry_ms;   /* monotonic: the next open, the backoff */
    int64_t next_sample, next_prune;
    bool pruning;                 /* a prune under way, one batch a loop */
    struct history_state pub;     /* what the header says, written by publish() */
    struct table_event *ev;       /* TABLE_EVENTS of them */
};

/* The header's copy, under its own sequence counter. */
static void publish(struct hist *h)
{
    struct history_state *s = &h->t->hdr->history;
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    s->ok = h->pub.ok;
    s->last_event = h->cur.last_event;
    s->events_lost = h->cur.lost;
    s->activities = h->pub.activities;
    s->samples = h->pub.samples;
    s->failures = h->pub.failures;
    s->pruned = h->pub.pruned;
    s->last_write_ms = h->pub.last_write_ms;
    s->error_since_ms = h->pub.error_since_ms;
    memcpy(s->error, h->pub.error, sizeof s->error);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
}

/* A write or an open failed: reported once per change of the reason (an
 * event and the log), the database closed, opened again after a backoff. */
static void failed(struct hist *h, const char *why)
{
    h->pub.failures++;
    if (!h->pub.ok && strcmp(h->pub.error, why) == 0) {
        h->retry_ms = h->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : h->retry_ms * 2;
    } else {
        h->retry_ms = RETRY_FIRST_MS;
        h->pub.error_since_ms = wall_ms();
        /* Without the lock, as the supervisor notes: each note claims its
         * own slot in the ring (shm/table.h), and this role takes no lock. */
        table_note(h->t, EV_ROLE, NULL, LOG_LVL_ERROR,
                   "history: %.120s; not recorded, tried again (the group is managed all the same)", why);
    }
    h->pub.ok = 0;
    copy_str(h->pub.error, sizeof h->pub.error, why);
    hstore_close(h->db);
    h->db = NULL;
    h->retry_at = now_ms() + h->retry_ms;
    publish(h);
}

static void wrote(struct hist *h)
{
    if (!h->pub.ok && h->pub.error[0])
        table_note(h->t, EV_ROLE, NULL, LOG_LVL_INFO, "history: writing %.100s again", h->path);
    h->pub.ok = 1;
    h->pub.error[0] = '\0';
    h->pub.error_since_ms = 0;
    h->pub.last_write_ms = wall_ms();
}

static bool open_db(struct hist *h)
{
    char err[HISTORY_ERROR_MAX];
    if (h->db)
        return true;
    if (now_ms() < h->retry_at)
        return false;
    int rc = hstore_open(h->path, &h->db, err, sizeof err);
    if (rc == 0)
        rc = hstore_cursor(h->db, h->nonce, &h->cur, err, sizeof err);
    if (rc == 0)
        rc = hstore_cancel_others(h->db, h->nonce, wall_ms(), err, sizeof err);
    if (rc != 0) {
        char why[HISTORY_ERROR_MAX];
        snprintf(why, sizeof why, "%.60s: %.130s", h->path, err);
        failed(h, why);
        return false;
    }
    log_info("history: %s open (events recorded up to %llu)", h->path, (unsigned long long)h->cur.last_event);
    return true;
}

static void record_events(struct hist *h)
{
    size_t n = table_read_events(h->t, h->cur.last_event, h->ev, TABLE_EVENTS);
    if (n == 0)
        return;
    struct hstore_counts counts;
    char err[HISTORY_ERROR_MAX];
    if (hstore_record(h->db, h->nonce, h->cfg.group_name, h->ev, n, &h->cur, &counts, err, sizeof err) != 0) {
        failed(h, err);
        return;
    }
    h->pub.activities += counts.activities;
    wrote(h);
}

/* The group as the table says it now. */
static void take_sample(const struct snapshot *s, struct hist_sample *out)
{
    memset(out, 0, sizeof *out);
    out->time_ms = wall_ms();
    out->running = snapshot_count(s, ROW_RUNNING);
    out->pending = snapshot_count(s, ROW_PENDING);
    out->total = out->running + out->pending;
    const struct group_bounds *b = &s->hdr->bounds;
    bool in_force = b->max > 0;
    out->min = in_force ? b->min : s->cfg->min_instances;
    out->max = in_force ? b->max : s->cfg->max_instances;
    out->desired = in_force ? b->desired : s->cfg->desired_instances;
    out->target = snapshot_target(s);
    int loaded = 0;
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        if (r->state != ROW_RUNNING)
            continue;
        if (r->has_sample) {
            out->demand += r->load;
            loaded++;
        }
        out->request_rate += r->req_rate_ms ? r->req_rate : r->svc_rate_ms ? r->svc_rate : 0;
    }
    out->mean_load = loaded ? out->demand / loaded : 0;
}

static void sample(struct hist *h, int64_t now)
{
    if (now < h->next_sample)
        return;
    h->next_sample = now + (int64_t)h->cfg.history_sample_interval_s * 1000;
    struct snapshot s;
    if (snapshot_take(h->t, &h->conf, &s) != 0)
        return;
    /* A standby (ha.etcd) sees the group second-hand: the leader's
     * history samples it. */
    bool standby = s.cfg->ha_etcd[0] && s.hdr->ha_role != HA_LEADER;
    struct hist_sample one;
    take_sample(&s, &one);
    snapshot_free(&s);
    if (standby)
        return;
    char err[HISTORY_ERROR_MAX];
    if (hstore_sample(h->db, h->cfg.group_name, &one, err, sizeof err) != 0) {
        failed(h, err);
        return;
    }
    h->pub.samples++;
    wrote(h);
}

/* Once an hour, a batch a loop until a batch finds less than its fill:
 * the database is never held for long. */
static void prune(struct hist *h, int64_t now)
{
    if (!h->pruning && now < h->next_prune)
        return;
    if (!h->pruning) {
        h->pruning = true;
        h->next_prune = now + PRUNE_EVERY_MS;
    }
    int removed = 0;
    char err[HISTORY_ERROR_MAX];
    int64_t before = wall_ms() - (int64_t)h->cfg.history_retention_days * 86400 * 1000;
    if (hstore_prune(h->db, before, PRUNE_BATCH, &removed, err, sizeof err) != 0) {
        failed(h, err);
        return;
    }
    h->pub.pruned += (uint64_t)removed;
    h->pruning = removed >= PRUNE_BATCH;
    if (!h->pruning && h->pub.pruned)
        log_debug("history: %llu rows pruned so far", (unsigned long long)h->pub.pruned);
}

static void step(struct hist *h)
{
    if (!open_db(h))
        return;
    record_events(h);
    if (h->db)
        sample(h, now_ms());
    if (h->db)
        prune(h, now_ms());
    publish(h);
}

int history_main(struct table *t, const struct asg_config *cfg)
{
    umask(077); /* the -wal and -shm files SQLite makes: ours alone, as the database */
    struct hist *h = calloc(1, sizeof *h);
    if (!h || !(h->ev = calloc(TABLE_EVENTS, sizeof *h->ev))) {
        log_error("history: out of memory");
        free(h);
        return 1;
    }
    h->t = t;
    h->cfg = *cfg;
    if (confseg_open_role(t, &h->conf, &h->cfg, &h->cfg_gen) != 0) {
        free(h->ev);
        free(h);
        return 1;
    }
    histq_path(&h->cfg, h->path, sizeof h->path);
    snprintf(h->nonce, sizeof h->nonce, "%016llx", (unsigned long long)t->hdr->nonce);
    h->pub.ok = 1;
    h->retry_ms = RETRY_FIRST_MS;
    h->next_sample = now_ms() + 1000; /* the first soon after the start: the roles are up */
    int sigfd = signals_install(false);
    while (!g_sig.term) {
        step(h);
        struct pollfd p = {sigfd, POLLIN, 0};
        if (poll(&p, 1, h->pruning ? 0 : LOOP_MS) > 0)
            signals_drain_pipe();
        if (g_sig.hup) {
            g_sig.hup = 0;
            confseg_refresh(&h->conf, &h->cfg, &h->cfg_gen);
        }
    }
    if (h->db)
        record_events(h); /* the last ones, the drain's */
    hstore_close(h->db);
    confseg_detach(&h->conf);
    free(h->ev);
    free(h);
    return 0;
}
