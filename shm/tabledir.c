#include "tabledir.h"
#include "table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- this build's directory, from the structs ----
 * Every field of the header, the log, a row and an event: X(field, kind,
 * flags). A field added to a struct and not here is caught by the layout
 * unit (tests/check_migrate.c: the fields must cover the record). */
#define N DK_NUM
#define S DK_STR
#define B DK_BLOB
#define L DF_LOCAL

#define HDR_DIR(X) \
    X(magic, N, L) X(version, N, L) X(capacity, N, L) X(total_size, N, L) X(hdr_size, N, L) \
    X(row_size, N, L) X(lock_holder, N, L) X(lock_waiters, N, L) X(lock, B, L) X(suspect, N, L) \
    X(lock_since_ms, N, 0) X(lock_count, N, 0) X(hseq, N, L) X(gen, N, 0) X(pid_supervisor, N, L) \
    X(pid_monitor, N, 0) X(pid_controller, N, 0) X(draining, N, 0) X(next_instance, N, 0) \
    X(nonce, N, 0) X(monitor_addr, S, 0) X(ctl, B, 0) X(spec, B, 0) X(bounds, B, 0) \
    X(created_ms, N, 0) X(last_probe_round_ms, N, 0) X(last_eval_ms, N, 0) X(probe_rounds, N, 0) \
    X(evaluations, N, 0) X(lock_recoveries, N, 0) X(role_restarts, B, 0) X(scale_out, N, 0) \
    X(scale_in, N, 0) X(replaced, N, 0) X(pid_status, N, 0) X(operator_desired, N, 0) \
    X(reloads_ok, N, 0) X(reloads_failed, N, 0) X(actions, B, 0) X(refused, B, 0) \
    X(illegal_transitions, N, 0) X(sched_active, N, 0) X(sched_next, N, 0) X(sched_since, N, 0) \
    X(sched_next_at, N, 0) X(lb_up, N, 0) X(lb_members, N, 0) X(lb_checked_ms, N, 0) \
    X(lb_error, S, 0) X(lb_errors, N, 0) X(ha_role, N, 0) X(ha_term, N, 0) X(ha_lease, N, 0) \
    X(ha_leader, S, 0) X(ha_leader_addr, S, 0) X(ha_error, S, 0) X(ha_managers, S, 0) \
    X(ha_failovers, N, 0) X(provider_calls, N, 0) X(group_nonce, S, 0) X(config_path, S, 0) \
    X(group_name, S, 0) X(config_name, S, 0) X(supervisor_start, N, L) X(relay_accepted, N, 0) \
    X(relay_grpc_took, N, 0) X(relay_grpc_waiting, N, 0) X(facts, N, 0) X(inbox_next, N, 0) X(inbox, B, 0) \
    X(rollout, B, 0) X(spec_cur, B, 0) X(spec_prev, B, 0) X(spec_gen_last, N, 0) X(spec_pinned, N, 0) \
    X(spec_seen_next, N, 0) X(spec_rejected, B, 0) X(spec_seen, B, 0) \
    X(notify, B, 0) \
    X(pid_history, N, 0) X(pad_history, N, 0) X(history, B, 0) \
    X(suspended, N, 0) X(pad_suspend, N, 0) X(suspend, B, 0) \
    X(lb_demand, B, 0) X(zero, B, 0)

#define LOG_DIR(X) \
    X(probes_sent, N, 0) X(probes_failed, N, 0) X(probe_us_sum, N, 0) X(probe_hist, B, 0) \
    X(probe_fine, B, 0) X(events_written, N, 0) X(events, B, DF_RING)

#define ROW_DIR(X) \
    X(seq, N, L) X(state, N, 0) X(incarnation, N, 0) X(id, S, 0) X(addr, S, 0) \
    X(service_addr, S, 0) X(reason, S, 0) X(pid, N, 0) X(misses, N, 0) X(flags, N, 0) \
    X(pad, N, 0) X(pid_start, N, 0) X(launch_token, S, 0) X(cert_issued_ms, N, 0) \
    X(joined_counted, N, 0) X(load, N, 0) X(cpu, N, 0) X(mem, N, 0) X(has_sample, N, 0) \
    X(load_pinned, N, 0) X(launch_ms, N, 0) X(running_since_ms, N, 0) X(last_probe_ms, N, 0) \
    X(last_seen_ms, N, 0) X(state_since_ms, N, 0) X(term_deadline_ms, N, 0) X(probes_ok, N, 0) \
    X(probes_failed, N, 0) X(hist_head, N, 0) X(hist_len, N, 0) X(hist, B, 0) X(lb_state, N, 0) \
    X(lb_sessions, N, 0) X(lb_since_ms, N, 0) X(lb_requests, N, 0) X(lb_counted_ms, N, 0) \
    X(req_rate, N, 0) X(req_rate_ms, N, 0) X(svc_requests, N, 0) X(svc_counted_ms, N, 0) \
    X(svc_rate, N, 0) X(svc_rate_ms, N, 0) X(spec_gen, N, 0) X(lb_5xx, N, 0) \
    X(lb_req_mark, N, 0) X(lb_5xx_mark, N, 0) X(lb_weight, N, 0) X(pad2, N, 0)

#define EVENT_DIR(X) \
    X(seq, N, L) X(kind, N, 0) X(number, N, 0) X(wall_ms, N, 0) X(instance, S, 0) X(msg, S, 0)

#define FIELD_OF(rec, type, f, kind, flags) \
    {#f, rec, (uint32_t)offsetof(type, f), (uint32_t)sizeof(((type *)0)->f), kind, flags, 0},
#define HDR_F(f, k, fl) FIELD_OF(DIR_HDR, struct table_hdr, f, k, fl)
#define LOG_F(f, k, fl) FIELD_OF(DIR_LOG, struct table_log, f, k, fl)
#define ROW_F(f, k, fl) FIELD_OF(DIR_ROW, struct table_row, f, k, fl)
#define EVENT_F(f, k, fl) FIELD_OF(DIR_EVENT, struct table_event, f, k, fl)

static const struct dir_field current_fields[] = {HDR_DIR(HDR_F) LOG_DIR(LOG_F) ROW_DIR(ROW_F)
                                                      EVENT_DIR(EVENT_F)};

const struct table_layout table_layout_current = {
    .version = TABLE_VERSION,
    .rec_size = {sizeof(struct table_hdr), sizeof(struct table_log), sizeof(struct table_row),
                 sizeof(struct table_event)},
    .nfields = sizeof current_fields / sizeof current_fields[0],
    .fields = current_fields,
    .has_dir = true,
};

/* ---- version 19's, frozen ----
 * Written down from tests/check_layout.c's pins of version 19 (which
 * tests/check_migrate.c checks it against): never edit. */
static const struct dir_field v19_fields[] = {
    {"magic", DIR_HDR, 0, 8, N, L, 0}, {"version", DIR_HDR, 8, 4, N, L, 0},
    {"capacity", DIR_HDR, 12, 4, N, L, 0}, {"total_size", DIR_HDR, 16, 8, N, L, 0},
    {"hdr_size", DIR_HDR, 24, 4, N, L, 0}, {"row_size", DIR_HDR, 28, 4, N, L, 0},
    {"lock_holder", DIR_HDR, 32, 4, N, L, 0}, {"lock_waiters", DIR_HDR, 36, 4, N, L, 0},
    {"lock", DIR_HDR, 40, 32, B, L, 0}, {"suspect", DIR_HDR, 72, 4, N, L, 0},
    {"lock_since_ms", DIR_HDR, 80, 8, N, 0, 0}, {"lock_count", DIR_HDR, 88, 8, N, 0, 0},
    {"hseq", DIR_HDR, 96, 4, N, L, 0}, {"gen", DIR_HDR, 104, 8, N, 0, 0},
    {"pid_supervisor", DIR_HDR, 112, 4, N, L, 0}, {"pid_monitor", DIR_HDR, 116, 4, N, 0, 0},
    {"pid_controller", DIR_HDR, 120, 4, N, 0, 0}, {"draining", DIR_HDR, 124, 4, N, 0, 0},
    {"next_instance", DIR_HDR, 128, 8, N, 0, 0}, {"nonce", DIR_HDR, 136, 8, N, 0, 0},
    {"monitor_addr", DIR_HDR, 144, 64, S, 0, 0}, {"ctl", DIR_HDR, 208, 1400, B, 0, 0},
    {"spec", DIR_HDR, 1608, 40, B, 0, 0}, {"bounds", DIR_HDR, 1648, 16, B, 0, 0},
    {"created_ms", DIR_HDR, 1664, 8, N, 0, 0}, {"last_probe_round_ms", DIR_HDR, 1672, 8, N, 0, 0},
    {"last_eval_ms", DIR_HDR, 1680, 8, N, 0, 0}, {"probe_rounds", DIR_HDR, 1688, 8, N, 0, 0},
    {"evaluations", DIR_HDR, 1696, 8, N, 0, 0}, {"lock_recoveries", DIR_HDR, 1704, 8, N, 0, 0},
    {"role_restarts", DIR_HDR, 1712, 24, B, 0, 0}, {"scale_out", DIR_HDR, 1736, 8, N, 0, 0},
    {"scale_in", DIR_HDR, 1744, 8, N, 0, 0}, {"replaced", DIR_HDR, 1752, 8, N, 0, 0},
    {"pid_status", DIR_HDR, 1760, 4, N, 0, 0}, {"operator_desired", DIR_HDR, 1764, 4, N, 0, 0},
    {"reloads_ok", DIR_HDR, 1768, 8, N, 0, 0}, {"reloads_failed", DIR_HDR, 1776, 8, N, 0, 0},
    {"actions", DIR_HDR, 1784, 48, B, 0, 0}, {"refused", DIR_HDR, 1832, 48, B, 0, 0},
    {"illegal_transitions", DIR_HDR, 1880, 8, N, 0, 0}, {"sched_active", DIR_HDR, 1888, 4, N, 0, 0},
    {"sched_next", DIR_HDR, 1892, 4, N, 0, 0}, {"sched_since", DIR_HDR, 1896, 8, N, 0, 0},
    {"sched_next_at", DIR_HDR, 1904, 8, N, 0, 0}, {"lb_up", DIR_HDR, 1912, 4, N, 0, 0},
    {"lb_members", DIR_HDR, 1916, 4, N, 0, 0}, {"lb_checked_ms", DIR_HDR, 1920, 8, N, 0, 0},
    {"lb_error", DIR_HDR, 1928, 200, S, 0, 0}, {"lb_errors", DIR_HDR, 2128, 8, N, 0, 0},
    {"ha_role", DIR_HDR, 2136, 4, N, 0, 0}, {"ha_term", DIR_HDR, 2144, 8, N, 0, 0},
    {"ha_lease", DIR_HDR, 2152, 8, N, 0, 0}, {"ha_leader", DIR_HDR, 2160, 64, S, 0, 0},
    {"ha_leader_addr", DIR_HDR, 2224, 64, S, 0, 0}, {"ha_error", DIR_HDR, 2288, 160, S, 0, 0},
    {"ha_managers", DIR_HDR, 2448, 256, S, 0, 0}, {"ha_failovers", DIR_HDR, 2704, 8, N, 0, 0},
    {"provider_calls", DIR_HDR, 2712, 8, N, 0, 0}, {"group_nonce", DIR_HDR, 2720, 40, S, 0, 0},
    {"config_path", DIR_HDR, 2760, 256, S, 0, 0}, {"group_name", DIR_HDR, 3016, 48, S, 0, 0},
    {"config_name", DIR_HDR, 3064, 128, S, 0, 0}, {"supervisor_start", DIR_HDR, 3192, 8, N, L, 0},
    {"relay_accepted", DIR_HDR, 3200, 8, N, 0, 0}, {"relay_grpc_took", DIR_HDR, 3208, 8, N, 0, 0},
    {"relay_grpc_waiting", DIR_HDR, 3216, 4, N, 0, 0},
    {"probes_sent", DIR_LOG, 0, 8, N, 0, 0}, {"probes_failed", DIR_LOG, 8, 8, N, 0, 0},
    {"probe_us_sum", DIR_LOG, 16, 8, N, 0, 0}, {"probe_hist", DIR_LOG, 24, 96, B, 0, 0},
    {"probe_fine", DIR_LOG, 120, 1536, B, 0, 0}, {"events_written", DIR_LOG, 1656, 8, N, 0, 0},
    {"events", DIR_LOG, 1664, 63488, B, DF_RING, 0},
    {"seq", DIR_ROW, 0, 4, N, L, 0}, {"state", DIR_ROW, 4, 4, N, 0, 0},
    {"incarnation", DIR_ROW, 8, 8, N, 0, 0}, {"id", DIR_ROW, 16, 64, S, 0, 0},
    {"addr", DIR_ROW, 80, 64, S, 0, 0}, {"service_addr", DIR_ROW, 144, 64, S, 0, 0},
    {"reason", DIR_ROW, 208, 64, S, 0, 0}, {"pid", DIR_ROW, 272, 4, N, 0, 0},
    {"misses", DIR_ROW, 276, 4, N, 0, 0}, {"flags", DIR_ROW, 280, 4, N, 0, 0},
    {"pad", DIR_ROW, 284, 4, N, 0, 0}, {"pid_start", DIR_ROW, 288, 8, N, 0, 0},
    {"launch_token", DIR_ROW, 296, 72, S, 0, 0}, {"cert_issued_ms", DIR_ROW, 368, 8, N, 0, 0},
    {"joined_counted", DIR_ROW, 376, 1, N, 0, 0}, {"load", DIR_ROW, 384, 8, N, 0, 0},
    {"cpu", DIR_ROW, 392, 8, N, 0, 0}, {"mem", DIR_ROW, 400, 8, N, 0, 0},
    {"has_sample", DIR_ROW, 408, 1, N, 0, 0}, {"load_pinned", DIR_ROW, 409, 1, N, 0, 0},
    {"launch_ms", DIR_ROW, 416, 8, N, 0, 0}, {"running_since_ms", DIR_ROW, 424, 8, N, 0, 0},
    {"last_probe_ms", DIR_ROW, 432, 8, N, 0, 0}, {"last_seen_ms", DIR_ROW, 440, 8, N, 0, 0},
    {"state_since_ms", DIR_ROW, 448, 8, N, 0, 0}, {"term_deadline_ms", DIR_ROW, 456, 8, N, 0, 0},
    {"probes_ok", DIR_ROW, 464, 8, N, 0, 0}, {"probes_failed", DIR_ROW, 472, 8, N, 0, 0},
    {"hist_head", DIR_ROW, 480, 4, N, 0, 0}, {"hist_len", DIR_ROW, 484, 4, N, 0, 0},
    {"hist", DIR_ROW, 488, 1024, B, 0, 0}, {"lb_state", DIR_ROW, 1512, 4, N, 0, 0},
    {"lb_sessions", DIR_ROW, 1516, 4, N, 0, 0}, {"lb_since_ms", DIR_ROW, 1520, 8, N, 0, 0},
    {"lb_requests", DIR_ROW, 1528, 8, N, 0, 0}, {"lb_counted_ms", DIR_ROW, 1536, 8, N, 0, 0},
    {"req_rate", DIR_ROW, 1544, 8, N, 0, 0}, {"req_rate_ms", DIR_ROW, 1552, 8, N, 0, 0},
    {"svc_requests", DIR_ROW, 1560, 8, N, 0, 0}, {"svc_counted_ms", DIR_ROW, 1568, 8, N, 0, 0},
    {"svc_rate", DIR_ROW, 1576, 8, N, 0, 0}, {"svc_rate_ms", DIR_ROW, 1584, 8, N, 0, 0},
    {"spec_gen", DIR_ROW, 1592, 8, N, 0, 0},
    {"seq", DIR_EVENT, 0, 4, N, L, 0}, {"kind", DIR_EVENT, 4, 4, N, 0, 0},
    {"number", DIR_EVENT, 8, 8, N, 0, 0}, {"wall_ms", DIR_EVENT, 16, 8, N, 0, 0},
    {"instance", DIR_EVENT, 24, 64, S, 0, 0}, {"msg", DIR_EVENT, 88, 160, S, 0, 0},
};

const struct table_layout table_layout_v19 = {
    .version = 19,
    .rec_size = {3224, 65152, 1600, 248},
    .nfields = sizeof v19_fields / sizeof v19_fields[0],
    .fields = v19_fields,
    .has_dir = false,
};

#undef N
#undef S
#undef B
#undef L

/* ---- geometry ---- */

size_t tabledir_bytes(const struct table_layout *l)
{
    if (!l->has_dir)
        return 0;
    return sizeof(struct dir_head) + (size_t)l->nfields * sizeof(struct dir_field) +
           sizeof(struct dir_trailer);
}

bool tabledir_geometry(const struct table_layout *l, uint32_t capacity, struct seg_geometry *g)
{
    /* Record sizes are at most 32 bits and capacity at most 1,000,000
     * (checked by the callers): 64-bit sums cannot overflow. */
    uint64_t log_at = l->rec_size[DIR_HDR];
    uint64_t rows_at = log_at + l->rec_size[DIR_LOG];
    uint64_t idhash_at = rows_at + (uint64_t)capacity * l->rec_size[DIR_ROW];
    uint64_t dir_at = idhash_at + (uint64_t)capacity * sizeof(uint32_t);
    uint64_t total = dir_at + tabledir_bytes(l);
    if (total > SIZE_MAX || capacity > 1000000)
        return false;
    *g = (struct seg_geometry){(size_t)log_at, (size_t)rows_at, (size_t)idhash_at, (size_t)dir_at,
                               (size_t)total};
    return true;
}

void tabledir_write(const struct table_layout *l, void *seg, size_t dir_at, size_t size)
{
    struct dir_head head = {.magic = DIR_MAGIC, .version = l->version, .nfields = l->nfields};
    memcpy(head.rec_size, l->rec_size, sizeof head.rec_size);
    memcpy((char *)seg + dir_at, &head, sizeof head);
    memcpy((char *)seg + dir_at + sizeof head, l->fields, (size_t)l->nfields * sizeof(struct dir_field));
    struct dir_trailer tr = {.magic = DIR_MAGIC, .dir_at = dir_at};
    memcpy((char *)seg + size - sizeof tr, &tr, sizeof tr);
}

const struct dir_field *tabledir_find(const struct table_layout *l, uint32_t rec, const char *name)
{
    for (uint32_t i = 0; i < l->nfields; i++)
        if (l->fields[i].rec == rec && strncmp(l->fields[i].name, name, DIR_NAME_MAX) == 0)
            return &l->fields[i];
    return NULL;
}

/* ---- checks ---- */

static const char *const rec_names[DIR_RECS] = {"header", "log", "row", "event"};

/* One field on its own: 0, or -1 with err. */
static int field_checked(const struct table_layout *l, uint32_t i, char *err, size_t errsize)
{
    const struct dir_field *f = &l->fields[i];
    if (!memchr(f->name, '\0', sizeof f->name) || !f->name[0]) {
        snprintf(err, errsize, "directory field %u has no name (empty or not terminated)", i);
        return -1;
    }
    const char *rec = f->rec < DIR_RECS ? rec_names[f->rec] : NULL;
    const char *why = !rec ? "is in no record"
                      : f->kind < DK_NUM || f->kind > DK_BLOB ? "has an unknown kind"
                      : f->size == 0 ? "has no size"
                      : (uint64_t)f->offset + f->size > l->rec_size[f->rec] ? "passes the end of its record"
                      : f->flags & ~(DF_LOCAL | DF_RING) ? "has unknown flags"
                                                         : NULL;
    if (!why)
        for (uint32_t k = 0; k < i && !why; k++)
            if (l->fields[k].rec == f->rec && strcmp(l->fields[k].name, f->name) == 0)
                why = "is named twice";
    if (why) {
        snprintf(err, errsize, "directory field %s (%s): offset %u size %u %s (the %s is %u bytes)",
                 f->name, rec ? rec : "?", f->offset, f->size, why, rec ? rec : "record",
                 f->rec < DIR_RECS ? l->rec_size[f->rec] : 0);
        return -1;
    }
    return 0;
}

/* A field every table has, where every version keeps it. */
static int needed(const struct table_layout *l, uint32_t rec, const char *name, int64_t offset,
                  uint32_t size, char *err, size_t errsize)
{
    const struct dir_field *f = tabledir_find(l, rec, name);
    if (f && f->kind == DK_NUM && f->size == size && (offset < 0 || f->offset == offset))
        return 0;
    snprintf(err, errsize, "directory field %s (%s): %s", name, rec_names[rec],
             f ? "not where or as every layout keeps it" : "missing");
    return -1;
}

static int ring_checked(const struct table_layout *l, char *err, size_t errsize)
{
    const struct dir_field *ev = tabledir_find(l, DIR_LOG, "events");
    uint32_t esize = l->rec_size[DIR_EVENT];
    if (ev && (ev->flags & DF_RING) && esize && ev->size % esize == 0 && ev->size / esize > 0)
        return 0;
    snprintf(err, errsize, "directory field events (log): %s", ev ? "not a ring of whole events" : "missing");
    return -1;
}

int tabledir_check(const struct table_layout *l, char *err, size_t errsize)
{
    if (l->nfields == 0 || l->nfields > DIR_FIELDS_MAX) {
        snprintf(err, errsize, "directory of %u fields (1 to %d)", l->nfields, DIR_FIELDS_MAX);
        return -1;
    }
    static const uint32_t rec_max[DIR_RECS] = {1u << 20, 16u << 20, 1u << 20, 1u << 16};
    for (int r = 0; r < DIR_RECS; r++)
        if (l->rec_size[r] == 0 || l->rec_size[r] > rec_max[r]) {
            snprintf(err, errsize, "directory: a %s of %u bytes (1 to %u)", rec_names[r], l->rec_size[r],
                     rec_max[r]);
            return -1;
        }
    for (uint32_t i = 0; i < l->nfields; i++)
        if (field_checked(l, i, err, errsize) != 0)
            return -1;
    if (needed(l, DIR_HDR, "magic", 0, 8, err, errsize) != 0 ||
        needed(l, DIR_HDR, "version", 8, 4, err, errsize) != 0 ||
        needed(l, DIR_HDR, "capacity", -1, 4, err, errsize) != 0 ||
        needed(l, DIR_EVENT, "number", -1, 8, err, errsize) != 0)
        return -1;
    return ring_checked(l, err, errsize);
}

/* ---- a segment's own directory ---- */

int tabledir_read(const void *seg, size_t size, uint32_t version, struct table_layout *out,
                  char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    struct dir_trailer tr;
    struct dir_head head;
    if (size < sizeof tr + sizeof head) {
        snprintf(err, errsize, "%zu bytes: too small to carry a directory", size);
        return -1;
    }
    memcpy(&tr, (const char *)seg + size - sizeof tr, sizeof tr);
    if (tr.magic != DIR_MAGIC || tr.dir_at > size - sizeof tr - sizeof head) {
        snprintf(err, errsize, "no directory at its end (layout version %u carries none, or it is damaged)",
                 version);
        return -1;
    }
    memcpy(&head, (const char *)seg + tr.dir_at, sizeof head);
    uint64_t room = (size - sizeof tr - tr.dir_at - sizeof head) / sizeof(struct dir_field);
    if (head.magic != DIR_MAGIC || head.version != version || head.nfields == 0 ||
        head.nfields > DIR_FIELDS_MAX || head.nfields != room) {
        snprintf(err, errsize, "its directory's head is damaged (version %u, %u fields, room for %llu)",
                 head.version, head.nfields, (unsigned long long)room);
        return -1;
    }
    out->owned = malloc((size_t)head.nfields * sizeof *out->owned);
    if (!out->owned) {
        snprintf(err, errsize, "directory: %s", strerror(errno));
        return -1;
    }
    memcpy(out->owned, (const char *)seg + tr.dir_at + sizeof head, (size_t)head.nfields * sizeof *out->owned);
    out->version = version;
    memcpy(out->rec_size, head.rec_size, sizeof out->rec_size);
    out->nfields = head.nfields;
    out->fields = out->owned;
    out->has_dir = true;
    if (tabledir_check(out, err, errsize) != 0) {
        tabledir_free(out);
        return -1;
    }
    return 0;
}

void tabledir_free(struct table_layout *l)
{
    free(l->owned);
    l->owned = NULL;
    l->fields = NULL;
    l->nfields = 0;
}
