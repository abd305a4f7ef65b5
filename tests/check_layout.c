/* The shared table's layout, pinned to its version. A table outlives the
 * binary that made it (its instances are still out there after an
 * upgrade), and a binary reads only tables of its own TABLE_VERSION: so
 * every change of the header's or a row's layout must bump TABLE_VERSION.
 * These units fail when a size or an offset moves while TABLE_VERSION
 * stays, and show that the layout does not depend on the config (whose
 * keys come and go: it is published apart, shm/confseg.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../common/config.h"
#include "../shm/confseg.h"
#include "../shm/table.h"
#include "../shm/tabledir.h"
#include "check_layout.h"
#include "check_suites.h"

/* The layout of this version, as written down when it was made. Changing
 * the layout: bump TABLE_VERSION, then write the new numbers here (the
 * failures print them). */
#define PINNED_VERSION 22
#define PINNED_HDR_SIZE 18912
#define PINNED_ROW_SIZE 1632
#define PINNED_LOG_SIZE 65152

/* Every field of the header and of a row, with its offset. */
#define HDR_FIELDS(X) \
    X(magic, 0) X(version, 8) X(capacity, 12) X(total_size, 16) \
    X(hdr_size, 24) X(row_size, 28) X(lock_holder, 32) X(lock_waiters, 36) \
    X(lock, 40) X(suspect, 72) X(lock_since_ms, 80) X(lock_count, 88) \
    X(hseq, 96) X(gen, 104) X(pid_supervisor, 112) X(pid_monitor, 116) \
    X(pid_controller, 120) X(draining, 124) X(next_instance, 128) X(nonce, 136) \
    X(monitor_addr, 144) X(ctl, 208) X(spec, 1608) X(bounds, 1648) \
    X(created_ms, 1664) X(last_probe_round_ms, 1672) X(last_eval_ms, 1680) X(probe_rounds, 1688) \
    X(evaluations, 1696) X(lock_recoveries, 1704) X(role_restarts, 1712) X(scale_out, 1736) \
    X(scale_in, 1744) X(replaced, 1752) X(pid_status, 1760) X(operator_desired, 1764) \
    X(reloads_ok, 1768) X(reloads_failed, 1776) X(actions, 1784) X(refused, 1832) \
    X(illegal_transitions, 1880) X(sched_active, 1888) X(sched_next, 1892) X(sched_since, 1896) \
    X(sched_next_at, 1904) X(lb_up, 1912) X(lb_members, 1916) X(lb_checked_ms, 1920) \
    X(lb_error, 1928) X(lb_errors, 2128) X(ha_role, 2136) X(ha_term, 2144) \
    X(ha_lease, 2152) X(ha_leader, 2160) X(ha_leader_addr, 2224) X(ha_error, 2288) \
    X(ha_managers, 2448) X(ha_failovers, 2704) X(provider_calls, 2712) X(group_nonce, 2720) \
    X(config_path, 2760) X(group_name, 3016) X(config_name, 3064) X(supervisor_start, 3192) \
    X(relay_accepted, 3200) X(relay_grpc_took, 3208) X(relay_grpc_waiting, 3216) X(facts, 3224) \
    X(inbox_next, 3232) X(inbox, 3240) X(rollout, 8616) X(spec_cur, 8904) X(spec_prev, 13048) \
    X(spec_gen_last, 17192) X(spec_pinned, 17200) X(spec_seen_next, 17204) X(spec_rejected, 17208) \
    X(spec_seen, 17240) X(notify, 17560) X(pid_history, 18104) X(pad_history, 18108) X(history, 18112) X(suspended, 18384) X(pad_suspend, 18388) X(suspend, 18392) X(lb_demand, 18840) X(zero, 18864)

#define ROW_FIELDS(X) \
    X(seq, 0) X(state, 4) X(incarnation, 8) X(id, 16) \
    X(addr, 80) X(service_addr, 144) X(reason, 208) X(pid, 272) \
    X(misses, 276) X(flags, 280) X(pad, 284) X(pid_start, 288) \
    X(launch_token, 296) X(cert_issued_ms, 368) X(joined_counted, 376) X(load, 384) \
    X(cpu, 392) X(mem, 400) X(has_sample, 408) X(load_pinned, 409) \
    X(launch_ms, 416) X(running_since_ms, 424) X(last_probe_ms, 432) X(last_seen_ms, 440) \
    X(state_since_ms, 448) X(term_deadline_ms, 456) X(probes_ok, 464) X(probes_failed, 472) \
    X(hist_head, 480) X(hist_len, 484) X(hist, 488) X(lb_state, 1512) \
    X(lb_sessions, 1516) X(lb_since_ms, 1520) X(lb_requests, 1528) X(lb_counted_ms, 1536) \
    X(req_rate, 1544) X(req_rate_ms, 1552) X(svc_requests, 1560) X(svc_counted_ms, 1568) \
    X(svc_rate, 1576) X(svc_rate_ms, 1584) X(spec_gen, 1592) X(lb_5xx, 1600) X(lb_req_mark, 1608) \
    X(lb_5xx_mark, 1616) X(lb_weight, 1624) X(pad2, 1628)

/* Version 19's layout, frozen (the last without a directory in its
 * segment): shm/tabledir.c carries its directory built in, checked against
 * these below so that it cannot drift. Never edit. */
#define V19_HDR_SIZE 3224
#define V19_ROW_SIZE 1600
#define V19_LOG_SIZE 65152
#define V19_EVENT_SIZE 248
#define V19_HDR_FIELDS(X) \
    X(magic, 0) X(version, 8) X(capacity, 12) X(total_size, 16) \
    X(hdr_size, 24) X(row_size, 28) X(lock_holder, 32) X(lock_waiters, 36) \
    X(lock, 40) X(suspect, 72) X(lock_since_ms, 80) X(lock_count, 88) \
    X(hseq, 96) X(gen, 104) X(pid_supervisor, 112) X(pid_monitor, 116) \
    X(pid_controller, 120) X(draining, 124) X(next_instance, 128) X(nonce, 136) \
    X(monitor_addr, 144) X(ctl, 208) X(spec, 1608) X(bounds, 1648) \
    X(created_ms, 1664) X(last_probe_round_ms, 1672) X(last_eval_ms, 1680) X(probe_rounds, 1688) \
    X(evaluations, 1696) X(lock_recoveries, 1704) X(role_restarts, 1712) X(scale_out, 1736) \
    X(scale_in, 1744) X(replaced, 1752) X(pid_status, 1760) X(operator_desired, 1764) \
    X(reloads_ok, 1768) X(reloads_failed, 1776) X(actions, 1784) X(refused, 1832) \
    X(illegal_transitions, 1880) X(sched_active, 1888) X(sched_next, 1892) X(sched_since, 1896) \
    X(sched_next_at, 1904) X(lb_up, 1912) X(lb_members, 1916) X(lb_checked_ms, 1920) \
    X(lb_error, 1928) X(lb_errors, 2128) X(ha_role, 2136) X(ha_term, 2144) \
    X(ha_lease, 2152) X(ha_leader, 2160) X(ha_leader_addr, 2224) X(ha_error, 2288) \
    X(ha_managers, 2448) X(ha_failovers, 2704) X(provider_calls, 2712) X(group_nonce, 2720) \
    X(config_path, 2760) X(group_name, 3016) X(config_name, 3064) X(supervisor_start, 3192) \
    X(relay_accepted, 3200) X(relay_grpc_took, 3208) X(relay_grpc_waiting, 3216)

#define V19_ROW_FIELDS(X) \
    X(seq, 0) X(state, 4) X(incarnation, 8) X(id, 16) \
    X(addr, 80) X(service_addr, 144) X(reason, 208) X(pid, 272) \
    X(misses, 276) X(flags, 280) X(pad, 284) X(pid_start, 288) \
    X(launch_token, 296) X(cert_issued_ms, 368) X(joined_counted, 376) X(load, 384) \
    X(cpu, 392) X(mem, 400) X(has_sample, 408) X(load_pinned, 409) \
    X(launch_ms, 416) X(running_since_ms, 424) X(last_probe_ms, 432) X(last_seen_ms, 440) \
    X(state_since_ms, 448) X(term_deadline_ms, 456) X(probes_ok, 464) X(probes_failed, 472) \
    X(hist_head, 480) X(hist_len, 484) X(hist, 488) X(lb_state, 1512) \
    X(lb_sessions, 1516) X(lb_since_ms, 1520) X(lb_requests, 1528) X(lb_counted_ms, 1536) \
    X(req_rate, 1544) X(req_rate_ms, 1552) X(svc_requests, 1560) X(svc_counted_ms, 1568) \
    X(svc_rate, 1576) X(svc_rate_ms, 1584) X(spec_gen, 1592)

#define V19_LOG_FIELDS(X) \
    X(probes_sent, 0) X(probes_failed, 8) X(probe_us_sum, 16) X(probe_hist, 24) X(probe_fine, 120) \
    X(events_written, 1656) X(events, 1664)

#define V19_EVENT_FIELDS(X) \
    X(seq, 0) X(kind, 4) X(number, 8) X(wall_ms, 16) X(instance, 24) X(msg, 88)

struct pin {
    const char *field;
    size_t at, want;
};

#define HDR_PIN(f, off) {#f, offsetof(struct table_hdr, f), off},
#define ROW_PIN(f, off) {#f, offsetof(struct table_row, f), off},
static const struct pin hdr_pins[] = {HDR_FIELDS(HDR_PIN)};
static const struct pin row_pins[] = {ROW_FIELDS(ROW_PIN)};

/* The layout as it is, in the form of the lists above, for writing a new
 * version's pins down. */
static void print_layout(void)
{
    fprintf(stderr, "layout of this build (TABLE_VERSION %d):\n#define PINNED_HDR_SIZE %zu\n"
            "#define PINNED_ROW_SIZE %zu\n#define PINNED_LOG_SIZE %zu\n", TABLE_VERSION,
            sizeof(struct table_hdr), sizeof(struct table_row), sizeof(struct table_log));
    for (size_t i = 0; i < sizeof hdr_pins / sizeof hdr_pins[0]; i++)
        fprintf(stderr, "    hdr X(%s, %zu)\n", hdr_pins[i].field, hdr_pins[i].at);
    for (size_t i = 0; i < sizeof row_pins / sizeof row_pins[0]; i++)
        fprintf(stderr, "    row X(%s, %zu)\n", row_pins[i].field, row_pins[i].at);
}

/* The first pin that moved, or NULL. */
static const struct pin *moved(const struct pin *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].at != p[i].want)
            return &p[i];
    return NULL;
}

START_TEST(test_layout_pinned_to_version)
{
    const struct pin *h = moved(hdr_pins, sizeof hdr_pins / sizeof hdr_pins[0]);
    const struct pin *r = moved(row_pins, sizeof row_pins / sizeof row_pins[0]);
    bool sizes = sizeof(struct table_hdr) == PINNED_HDR_SIZE && sizeof(struct table_row) == PINNED_ROW_SIZE &&
                 sizeof(struct table_log) == PINNED_LOG_SIZE;
    if (TABLE_VERSION != PINNED_VERSION || !sizes || h || r)
        print_layout();
    ck_assert_msg(TABLE_VERSION == PINNED_VERSION,
                  "TABLE_VERSION is %d but the pins are version %d's: write down the layout of "
                  "version %d (printed above)", TABLE_VERSION, PINNED_VERSION, TABLE_VERSION);
    ck_assert_msg(sizes, "sizes are header %zu, row %zu, log %zu; version %d's were %d, %d, %d: a layout "
                  "change needs a new TABLE_VERSION", sizeof(struct table_hdr), sizeof(struct table_row),
                  sizeof(struct table_log), PINNED_VERSION, PINNED_HDR_SIZE, PINNED_ROW_SIZE,
                  PINNED_LOG_SIZE);
    ck_assert_msg(!h, "table_hdr.%s is at offset %zu, version %d had it at %zu: a layout change needs a "
                  "new TABLE_VERSION", h ? h->field : "", h ? h->at : 0, PINNED_VERSION, h ? h->want : 0);
    ck_assert_msg(!r, "table_row.%s is at offset %zu, version %d had it at %zu: a layout change needs a "
                  "new TABLE_VERSION", r ? r->field : "", r ? r->at : 0, PINNED_VERSION, r ? r->want : 0);
    /* Every version, past and future, leads with these two: a binary
     * names the version of a table it cannot read (shm/table.c). */
    ck_assert(offsetof(struct table_hdr, magic) == 0 && offsetof(struct table_hdr, version) == 8);
}
END_TEST

START_TEST(test_config_key_leaves_layout_alone)
{
    /* check_layout_cfg.c compiles shm/table.h against a struct asg_config
     * with a key more, and a big one: the table's sizes and offsets there
     * are the same as here. */
    struct layout_seen more = layout_with_bigger_config();
    ck_assert_msg(more.config_size > sizeof(struct asg_config), "the other unit's config is not bigger");
    ck_assert_msg(more.hdr_size == sizeof(struct table_hdr) && more.row_size == sizeof(struct table_row) &&
                      more.log_size == sizeof(struct table_log),
                  "with a %zu-byte config the header is %zu bytes (here %zu with %zu), row %zu (%zu), "
                  "log %zu (%zu): the table's layout depends on the config", more.config_size,
                  more.hdr_size, sizeof(struct table_hdr), sizeof(struct asg_config), more.row_size,
                  sizeof(struct table_row), more.log_size, sizeof(struct table_log));
    ck_assert_msg(more.last_hdr_field == offsetof(struct table_hdr, relay_grpc_waiting),
                  "the header's last field moved with the config's size");
}
END_TEST

/* Version 19's built-in directory against its frozen pins: each field
 * where the pins put it, as big as the room up to the next one (less at
 * most 7 bytes of padding), and nothing else. */
struct v19_pin {
    uint32_t rec;
    const char *field;
    uint32_t at;
};
#define V19_PIN(rec, f, off) {rec, #f, off},
#define V19_HDR_PIN(f, off) V19_PIN(DIR_HDR, f, off)
#define V19_LOG_PIN(f, off) V19_PIN(DIR_LOG, f, off)
#define V19_ROW_PIN(f, off) V19_PIN(DIR_ROW, f, off)
#define V19_EVENT_PIN(f, off) V19_PIN(DIR_EVENT, f, off)
static const struct v19_pin v19_pins[] = {V19_HDR_FIELDS(V19_HDR_PIN) V19_LOG_FIELDS(V19_LOG_PIN)
                                              V19_ROW_FIELDS(V19_ROW_PIN) V19_EVENT_FIELDS(V19_EVENT_PIN)};

START_TEST(test_v19_directory_matches_its_pins)
{
    const struct table_layout *l = &table_layout_v19;
    const uint32_t sizes[DIR_RECS] = {V19_HDR_SIZE, V19_LOG_SIZE, V19_ROW_SIZE, V19_EVENT_SIZE};
    size_t n = sizeof v19_pins / sizeof v19_pins[0];
    char err[200];
    ck_assert_msg(l->version == 19 && !l->has_dir, "the built-in directory is not version 19's");
    ck_assert_msg(memcmp(l->rec_size, sizes, sizeof sizes) == 0, "version 19's record sizes moved");
    ck_assert_msg(l->nfields == n, "version 19's directory has %u fields, its pins %zu", l->nfields, n);
    ck_assert_msg(tabledir_check(l, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < n; i++) {
        const struct v19_pin *p = &v19_pins[i];
        const struct dir_field *f = tabledir_find(l, p->rec, p->field);
        uint32_t end = i + 1 < n && v19_pins[i + 1].rec == p->rec ? v19_pins[i + 1].at : sizes[p->rec];
        ck_assert_msg(f && f->offset == p->at, "version 19's %s is at %u in the directory, %u in its pins",
                      p->field, f ? f->offset : 0, p->at);
        ck_assert_msg(f->size <= end - p->at && f->size + 8 > end - p->at,
                      "version 19's %s: %u bytes where its pins leave %u", p->field, f->size, end - p->at);
    }
}
END_TEST

/* Every pinned field of this version is in the directory a table carries
 * (shm/tabledir.c), where it is pinned: a field added to the structs and
 * pinned here, but not listed there, would not be migrated. */
START_TEST(test_directory_names_every_pinned_field)
{
    for (size_t i = 0; i < sizeof hdr_pins / sizeof hdr_pins[0]; i++) {
        const struct dir_field *f = tabledir_find(&table_layout_current, DIR_HDR, hdr_pins[i].field);
        ck_assert_msg(f && f->offset == hdr_pins[i].at, "table_hdr.%s is not in shm/tabledir.c's HDR_DIR "
                      "at %zu", hdr_pins[i].field, hdr_pins[i].at);
    }
    for (size_t i = 0; i < sizeof row_pins / sizeof row_pins[0]; i++) {
        const struct dir_field *f = tabledir_find(&table_layout_current, DIR_ROW, row_pins[i].field);
        ck_assert_msg(f && f->offset == row_pins[i].at, "table_row.%s is not in shm/tabledir.c's ROW_DIR "
                      "at %zu", row_pins[i].field, row_pins[i].at);
    }
}
END_TEST

Suite *layout_suite(void)
{
    const TTest *tests[] = {test_layout_pinned_to_version, test_config_key_leaves_layout_alone,
                            test_v19_directory_matches_its_pins, test_directory_names_every_pinned_field,
                            NULL};
    return suite_of("layout", "layout", NULL, NULL, 30, tests, NULL);
}
