/* The history: events mapped to activities (history/activity.h), and the
 * store (history/store.h) on a real SQLite file: a batch recorded twice is
 * recorded once, a launch ends when its instance runs, a planted link and
 * a file that is not a database are refused, --since is parsed. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "../history/activity.h"
#include "../history/store.h"
#include "../report/histq.h"
#include "check_suites.h"

static struct table_event ev(uint64_t n, uint32_t kind, const char *inst, const char *msg)
{
    struct table_event e;
    memset(&e, 0, sizeof e);
    e.number = n;
    e.kind = kind;
    e.wall_ms = 1700000000000LL + (int64_t)n * 1000;
    copy_str(e.instance, sizeof e.instance, inst);
    copy_str(e.msg, sizeof e.msg, msg);
    return e;
}

START_TEST(test_events_map_to_activities)
{
    struct act_step a;
    struct table_event e = ev(1, EV_SCALE, "", "scale out: target 1 -> 2: load 0.90 above 0.80 for 2 periods");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_ONCE);
    ck_assert_str_eq(a.kind, "scale");
    ck_assert_str_eq(a.cause, "load 0.90 above 0.80 for 2 periods");
    e = ev(2, EV_LAUNCH, "i-2", "launched i-2 (pid 77): scale out");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_OPEN);
    ck_assert_str_eq(a.kind, "launch");
    ck_assert_str_eq(a.instance, "i-2");
    ck_assert_str_eq(a.cause, "scale out");
    e = ev(3, EV_HEALTH, "i-2", "instance i-2 answers probes: running");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_CLOSE);
    ck_assert_str_eq(a.result, ACT_SUCCESSFUL);
    e = ev(4, EV_LAUNCH, "i-3", "launch i-3 failed: no such program");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_ONCE);
    ck_assert_str_eq(a.result, ACT_FAILED);
    ck_assert_str_eq(a.cause, "no such program");
    e = ev(5, EV_TERMINATE, "i-2", "terminating i-2 (running): scale in");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_OPEN);
    ck_assert_str_eq(a.cause, "scale in");
    e = ev(6, EV_TERMINATE, "i-2", "instance i-2 removed from the group: stopped");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_int_eq(a.op, ACT_CLOSE);
    ck_assert_str_eq(a.else_kind, "launch");
    e = ev(7, EV_HEALTH, "i-2", "instance i-2 unhealthy: 3 missed probes (last seen 500 ms ago)");
    ck_assert(!activity_of_event(&e, &a));
    e = ev(8, EV_ROLE, "", "controller (pid 5) killed by signal 9");
    ck_assert(!activity_of_event(&e, &a));
    e = ev(9, EV_OPERATOR, "", "operator: desired 9 refused: outside 1..3");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_str_eq(a.kind, "operator");
    ck_assert_str_eq(a.result, ACT_FAILED);
    e = ev(10, EV_ROLLOUT, "", "rollout 1: generation 1 -> 2, 3 instances");
    ck_assert(activity_of_event(&e, &a));
    ck_assert_str_eq(a.kind, "rollout");
    ck_assert_str_eq(a.result, ACT_SUCCESSFUL);
}
END_TEST

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/asg-hist-XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

START_TEST(test_store_records_once_and_ends_launches)
{
    mkdir_tmp();
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/history.db", dir);
    sqlite3 *db;
    ck_assert_msg(hstore_open(path, &db, err, sizeof err) == 0, "%s", err);
    struct table_event e[] = {
        ev(3, EV_SCALE, "", "scale out: target 1 -> 2: load high"),
        ev(4, EV_LAUNCH, "i-2", "launched i-2 (pid 77): scale out"),
        ev(6, EV_HEALTH, "i-2", "instance i-2 answers probes: running"),
        ev(7, EV_LAUNCH, "i-3", "launched i-3 (pid 78): scale out"),
        ev(8, EV_TERMINATE, "i-3", "instance i-3 removed from the group: its process exited"),
    };
    struct hstore_cursor c = {2, 0};
    struct hstore_counts n;
    ck_assert_msg(hstore_record(db, "00ff", "g", e, 5, &c, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.last_event, 8);
    ck_assert_int_eq(c.lost, 1); /* number 5 never seen */
    ck_assert_int_eq(n.events, 5);
    /* Again, from a cursor that did not move (a crash before it was
     * kept): nothing twice. */
    struct hstore_cursor again = {2, 0};
    ck_assert(hstore_record(db, "00ff", "g", e, 5, &again, &n, err, sizeof err) == 0);
    ck_assert_int_eq(n.events, 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM events"), 5);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities"), 3);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities WHERE kind='launch' AND instances='i-2' AND "
                               "result='successful' AND end_ms - start_ms = 2000"), 1);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities WHERE kind='launch' AND instances='i-3' AND "
                               "result='failed'"), 1);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities WHERE kind='scale' AND instances='i-2,i-3'"), 1);
    struct hstore_cursor kept;
    ck_assert(hstore_cursor(db, "00ff", &kept, err, sizeof err) == 0);
    ck_assert_int_eq(kept.last_event, 8);
    /* A table lost: its open activities are cancelled by the next one. */
    struct table_event open1 = ev(9, EV_TERMINATE, "i-2", "terminating i-2 (running): scale in");
    ck_assert(hstore_record(db, "00ff", "g", &open1, 1, &c, &n, err, sizeof err) == 0);
    ck_assert(hstore_cancel_others(db, "abcd", 1, err, sizeof err) == 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities WHERE result='cancelled'"), 1);
    int removed;
    ck_assert(hstore_prune(db, 1700000000000LL + 7500, 500, &removed, err, sizeof err) == 0);
    ck_assert_int_eq(removed, 4 + 3); /* events 3, 4, 6, 7; the scale and both launches, ended */
    hstore_close(db);
    /* A reader sees the schema it knows. */
    sqlite3 *ro = histq_open(path, err, sizeof err);
    ck_assert_msg(ro != NULL, "%s", err);
    histq_close(ro);
    rm_tmp();
}
END_TEST

START_TEST(test_store_refuses_links_and_other_files)
{
    mkdir_tmp();
    char path[128], target[128], err[256];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/history.db", dir);
    snprintf(target, sizeof target, "%s/elsewhere", dir);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert(hstore_open(path, &db, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
    ck_assert_int_eq(access(target, F_OK), -1); /* nothing made through it */
    unlink(path);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database, it is the operator's file\n", f);
    fclose(f);
    ck_assert(hstore_open(path, &db, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "not a database"), "%s", err);
    unlink(path);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    ck_assert(hstore_open(path, &db, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "others may write"), "%s", err);
    rm_tmp();
}
END_TEST

/* A full disk (SQLITE_FULL, here a database held to its size): the
 * batch is rolled back whole and the cursor stays, so the next try, with
 * room again, records every event once. */
START_TEST(test_a_full_database_loses_nothing_when_room_comes_back)
{
    mkdir_tmp();
    char path[128], err[256], msg[160];
    snprintf(path, sizeof path, "%s/history.db", dir);
    sqlite3 *db;
    ck_assert_msg(hstore_open(path, &db, err, sizeof err) == 0, "%s", err);
    int64_t pages = 0;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %lld", (long long)pages);
    ck_assert_int_eq(sqlite3_exec(db, pragma, NULL, NULL, NULL), SQLITE_OK);
    static struct table_event e[TABLE_EVENTS];
    for (int i = 0; i < TABLE_EVENTS; i++) {
        snprintf(msg, sizeof msg, "launched g-%d (pid %d): scale out, with a message long enough to fill pages", i, i);
        char id[32];
        snprintf(id, sizeof id, "g-%d", i);
        e[i] = ev((uint64_t)i + 1, EV_LAUNCH, id, msg);
    }
    struct hstore_cursor c = {0, 0};
    struct hstore_counts n;
    int rc = hstore_record(db, "00ff", "g", e, TABLE_EVENTS, &c, &n, err, sizeof err);
    ck_assert_int_eq(rc, SQLITE_FULL);
    ck_assert_msg(strstr(err, "full"), "%s", err);
    ck_assert_int_eq(c.last_event, 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM events"), 0);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_msg(hstore_record(db, "00ff", "g", e, TABLE_EVENTS, &c, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.last_event, TABLE_EVENTS);
    ck_assert_int_eq(c.lost, 0);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM events"), TABLE_EVENTS);
    ck_assert_int_eq(count(db, "SELECT count(*) FROM activities WHERE result = 'in progress'"), TABLE_EVENTS);
    hstore_close(db);
    rm_tmp();
}
END_TEST

START_TEST(test_since_takes_durations_and_rfc3339)
{
    int64_t now = 1700000000000LL;
    ck_assert_int_eq(histq_parse_since("2h", now), now - 7200000);
    ck_assert_int_eq(histq_parse_since("30m", now), now - 1800000);
    ck_assert_int_eq(histq_parse_since("7d", now), now - 7 * 86400000LL);
    ck_assert_int_eq(histq_parse_since("2023-11-14T22:13:20Z", now), 1700000000000LL);
    ck_assert_int_eq(histq_parse_since("2023-11-14T23:13:20+01:00", now), 1700000000000LL);
    ck_assert_int_eq(histq_parse_since("2023-11-14T22:13:20.5Z", now), 1700000000000LL);
    const char *bad[] = {"", "2", "2x", "-2h", "h", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13:20Zjunk",
                         "99999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(histq_parse_since(bad[i], now) == -1, "'%s' taken", bad[i]);
}
END_TEST

Suite *history_suite(void)
{
    const TTest *tests[] = {test_events_map_to_activities, test_store_records_once_and_ends_launches,
                            test_store_refuses_links_and_other_files,
                            test_a_full_database_loses_nothing_when_room_comes_back,
                            test_since_takes_durations_and_rfc3339,
                            NULL};
    return suite_of("history", "history", NULL, NULL, 0, tests, NULL);
}
