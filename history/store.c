/* The history's database, written (history/store.h). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "activity.h"

/* Version 1 of the schema (docs/history.md describes every column). A
 * later version adds a step to migrate() and bumps HISTQ_SCHEMA_VERSION. */
static const char schema_v1[] =
    "CREATE TABLE activities ("
    " id INTEGER PRIMARY KEY,"
    " table_nonce TEXT NOT NULL,"
    " event INTEGER NOT NULL,"
    " group_name TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " cause TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " instances TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER,"
    " result TEXT NOT NULL CHECK (result IN ('successful','failed','cancelled','in progress')),"
    " end_description TEXT,"
    " UNIQUE (table_nonce, event));"
    "CREATE INDEX activities_start ON activities (start_ms);"
    "CREATE INDEX activities_open ON activities (table_nonce, kind, instances) WHERE result = 'in progress';"
    "CREATE TABLE events ("
    " table_nonce TEXT NOT NULL,"
    " number INTEGER NOT NULL,"
    " group_name TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " instance TEXT NOT NULL,"
    " message TEXT NOT NULL,"
    " PRIMARY KEY (table_nonce, number));"
    "CREATE INDEX events_time ON events (time_ms);"
    "CREATE TABLE samples ("
    " time_ms INTEGER NOT NULL,"
    " group_name TEXT NOT NULL,"
    " running INTEGER NOT NULL, pending INTEGER NOT NULL, total INTEGER NOT NULL,"
    " desired INTEGER NOT NULL, target INTEGER NOT NULL, min INTEGER NOT NULL, max INTEGER NOT NULL,"
    " demand REAL NOT NULL, mean_load REAL NOT NULL, request_rate REAL NOT NULL,"
    " PRIMARY KEY (group_name, time_ms));"
    "CREATE INDEX samples_time ON samples (time_ms);"
    "CREATE TABLE cursors ("
    " table_nonce TEXT PRIMARY KEY,"
    " last_event INTEGER NOT NULL,"
    " lost INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);";

static int sql_failed(sqlite3 *db, int rc, const char *what, char *err, size_t errsize)
{
    snprintf(err, errsize, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return rc ? rc : -1;
}

/* Runs one statement with its parameters: types says each one's type
 * ('i' int64, 't' text, 'd' double, 'n' null). SQLITE_OK, or its code. */
static int run(sqlite3 *db, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        if (types[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else if (types[i] == 't')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else if (types[i] == 'd')
            sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        else
            sqlite3_bind_null(st, i + 1);
    }
    va_end(ap);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int one_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc == SQLITE_DONE ? SQLITE_ERROR : rc;
}

/* A file beside the database (its -wal, -shm): absent, or a regular file
 * of ours with one link; never a link someone planted for us to write
 * through. */
static bool sibling_ok(int dfd, const char *name, char *err, size_t errsize)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT || (snprintf(err, errsize, "%s: %s", name, strerror(errno)), false);
    if (S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_nlink == 1)
        return true;
    snprintf(err, errsize, "%s is %s; refusing it", name,
             S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file of ours with one link");
    return false;
}

/* The directory must be ours and writable by nobody else (as the state
 * directory is: common/secret.h), so that nobody can plant a link at the
 * path between our checks and SQLite's open; the file is made here, 0600,
 * when missing. */
static int check_place(const char *path, char *err, size_t errsize)
{
    char dir[256];
    const char *slash = strrchr(path, '/');
    if (!slash || path[0] != '/' || !slash[1] || (size_t)(slash - path) >= sizeof dir) {
        snprintf(err, errsize, "%s: not an absolute path of a file", path);
        return -1;
    }
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) != 0) {
        snprintf(err, errsize, "%s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    int rc = -1;
    char wal[300], shm[300];
    snprintf(wal, sizeof wal, "%s-wal", slash + 1);
    snprintf(shm, sizeof shm, "%s-shm", slash + 1);
    if (st.st_uid != geteuid() || (st.st_mode & 022))
        snprintf(err, errsize, "%s: a directory of another owner, or that others may write; refusing it", dir);
    else if (sibling_ok(dfd, slash + 1, err, errsize) && sibling_ok(dfd, wal, err, errsize) &&
             sibling_ok(dfd, shm, err, errsize)) {
        int fd = openat(dfd, slash + 1, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            snprintf(err, errsize, "%s: %s", path, strerror(errno));
        else
            rc = 0, close(fd);
    }
    close(dfd);
    return rc;
}

/* Made (version 0: a new file) or migrated to HISTQ_SCHEMA_VERSION. */
static int migrate(sqlite3 *db, char *err, size_t errsize)
{
    int64_t v = 0;
    int rc = one_int(db, "PRAGMA user_version", &v);
    if (rc != SQLITE_OK)
        return sql_failed(db, rc, "reading its schema version", err, errsize);
    if (v == HISTQ_SCHEMA_VERSION)
        return 0;
    if (v > HISTQ_SCHEMA_VERSION) {
        snprintf(err, errsize, "schema version %lld is a newer asgd's (this one writes %d); left alone",
                 (long long)v, HISTQ_SCHEMA_VERSION);
        return -1;
    }
    char *msg = NULL;
    char sql[sizeof schema_v1 + 96];
    snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;COMMIT;", schema_v1, HISTQ_SCHEMA_VERSION);
    rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errsize, "making its schema: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return 0;
}

int hstore_open(const char *path, struct sqlite3 **out, char *err, size_t errsize)
{
    *out = NULL;
    if (check_place(path, err, errsize) != 0)
        return -1;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        rc = sql_failed(db, rc, path, err, errsize);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 2000);
    sqlite3_extended_result_codes(db, 0);
    char mode[16] = "";
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        copy_str(mode, sizeof mode, m ? (const char *)m : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
        rc = SQLITE_CANTOPEN;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        rc = sql_failed(db, rc, mode[0] && strcmp(mode, "wal") ? "WAL mode refused" : path, err, errsize);
    else
        rc = migrate(db, err, errsize);
    if (rc != 0) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void hstore_close(struct sqlite3 *db) { sqlite3_close(db); }

int hstore_cursor(struct sqlite3 *db, const char *nonce, struct hstore_cursor *c, char *err, size_t errsize)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT last_event, lost FROM cursors WHERE table_nonce = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_failed(db, rc, "reading the cursor", err, errsize);
    sqlite3_bind_text(st, 1, nonce, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c->last_event = (uint64_t)sqlite3_column_int64(st, 0);
        c->lost = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_failed(db, rc, "reading the cursor", err, errsize);
}

/* A launch or termination is one of the instances its cause touched: the
 * latest scale, operator's request or rollout step of the last minute. */
static int link_to_cause(sqlite3 *db, const char *nonce, const char *instance, int64_t at)
{
    static const char q[] =
        "UPDATE activities SET instances = CASE WHEN instances = '' THEN ?1 ELSE instances || ',' || ?1 END "
        "WHERE id = (SELECT id FROM activities WHERE table_nonce = ?2 AND kind IN ('scale','operator','rollout') "
        "AND start_ms BETWEEN ?3 - 60000 AND ?3 ORDER BY start_ms DESC, id DESC LIMIT 1) "
        "AND length(instances) < 180 AND ',' || instances || ',' NOT LIKE '%,' || ?1 || ',%'";
    return run(db, q, "tti", instance, nonce, at);
}

static int close_open(sqlite3 *db, const char *nonce, const char *kind, const char *instance,
                      const char *result, const struct table_event *ev)
{
    static const char q[] =
        "UPDATE activities SET end_ms = ?1, result = ?2, end_description = ?3 WHERE id = (SELECT id FROM "
        "activities WHERE table_nonce = ?4 AND kind = ?5 AND instances = ?6 AND result = 'in progress' "
        "ORDER BY start_ms DESC, id DESC LIMIT 1)";
    return run(db, q, "ittttt", ev->wall_ms, result, ev->msg, nonce, kind, instance);
}

static int record_activity(sqlite3 *db, const char *nonce, const char *group, const struct table_event *ev,
                           uint64_t *written)
{
    struct act_step a;
    if (!activity_of_event(ev, &a))
        return SQLITE_OK;
    int rc;
    if (a.op == ACT_CLOSE) {
        rc = close_open(db, nonce, a.kind, a.instance, a.result, ev);
        if (rc == SQLITE_OK && sqlite3_changes(db) == 0 && a.else_kind)
            rc = close_open(db, nonce, a.else_kind, a.instance, ACT_FAILED, ev);
        *written += rc == SQLITE_OK && sqlite3_changes(db) > 0;
        return rc;
    }
    static const char q[] =
        "INSERT OR IGNORE INTO activities (table_nonce, event, group_name, kind, cause, description, instances, "
        "start_ms, end_ms, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    if (a.op == ACT_OPEN)
        rc = run(db, q, "titttttint", nonce, (int64_t)ev->number, group, a.kind, a.cause, ev->msg, a.instance,
                 ev->wall_ms, a.result);
    else
        rc = run(db, q, "titttttiit", nonce, (int64_t)ev->number, group, a.kind, a.cause, ev->msg, a.instance,
                 ev->wall_ms, ev->wall_ms, a.result);
    if (rc != SQLITE_OK || sqlite3_changes(db) == 0)
        return rc;
    (*written)++;
    if (a.instance[0] && (strcmp(a.kind, "launch") == 0 || strcmp(a.kind, "terminate") == 0))
        rc = link_to_cause(db, nonce, a.instance, ev->wall_ms);
    return rc;
}

static int record_one(sqlite3 *db, const char *nonce, const char *group, const struct table_event *ev,
                      struct hstore_counts *counts)
{
    static const char q[] = "INSERT OR IGNORE INTO events (table_nonce, number, group_name, time_ms, kind, "
                            "instance, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    int rc = run(db, q, "titittt", nonce, (int64_t)ev->number, group, ev->wall_ms, event_kind_name(ev->kind),
                 ev->instance, ev->msg);
    if (rc != SQLITE_OK || sqlite3_changes(db) == 0)
        return rc; /* one recorded before (a cursor behind its events): never twice */
    counts->events++;
    return record_activity(db, nonce, group, ev, &counts->activities);
}

int hstore_record(struct sqlite3 *db, const char *nonce, const char *group, const struct table_event *ev,
                  size_t n, struct hstore_cursor *c, struct hstore_counts *counts, char *err, size_t errsize)
{
    struct hstore_cursor next = *c;
    memset(counts, 0, sizeof *counts);
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        if (ev[i].number <= next.last_event)
            continue;
        next.lost += ev[i].number - next.last_event - 1;
        next.last_event = ev[i].number;
        rc = record_one(db, nonce, group, &ev[i], counts);
    }
    if (rc == SQLITE_OK)
        rc = run(db, "INSERT OR REPLACE INTO cursors (table_nonce, last_event, lost, updated_ms) "
                     "VALUES (?1, ?2, ?3, ?4)", "tiii", nonce, (int64_t)next.last_event, (int64_t)next.lost, wall_ms());
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sql_failed(db, rc, "recording events", err, errsize);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        memset(counts, 0, sizeof *counts);
        return rc;
    }
    *c = next;
    return 0;
}

int hstore_cancel_others(struct sqlite3 *db, const char *nonce, int64_t now, char *err, size_t errsize)
{
    int rc = run(db, "UPDATE activities SET result = 'cancelled', end_ms = ?1, end_description = "
                     "'its table was lost (a new manager table): nobody will end it' WHERE result = 'in progress' "
                     "AND table_nonce != ?2", "it", now, nonce);
    return rc == SQLITE_OK ? 0 : sql_failed(db, rc, "cancelling activities of a lost table", err, errsize);
}

int hstore_sample(struct sqlite3 *db, const char *group, const struct hist_sample *s, char *err, size_t errsize)
{
    int rc = run(db, "INSERT OR REPLACE INTO samples (time_ms, group_name, running, pending, total, desired, "
                     "target, min, max, demand, mean_load, request_rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                     "?9, ?10, ?11, ?12)", "itiiiiiiiddd", s->time_ms, group, (int64_t)s->running,
                 (int64_t)s->pending, (int64_t)s->total, (int64_t)s->desired, (int64_t)s->target, (int64_t)s->min,
                 (int64_t)s->max, s->demand, s->mean_load, s->request_rate);
    return rc == SQLITE_OK ? 0 : sql_failed(db, rc, "writing a sample", err, errsize);
}

int hstore_prune(struct sqlite3 *db, int64_t before, int batch, int *removed, char *err, size_t errsize)
{
    static const char *const q[] = {
        "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples WHERE time_ms < ?1 LIMIT ?2)",
        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE time_ms < ?1 LIMIT ?2)",
        "DELETE FROM activities WHERE id IN (SELECT id FROM activities WHERE start_ms < ?1 AND "
        "result != 'in progress' LIMIT ?2)",
    };
    *removed = 0;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        int rc = run(db, q[i], "ii", before, (int64_t)batch);
        if (rc != SQLITE_OK)
            return sql_failed(db, rc, "pruning", err, errsize);
        *removed += sqlite3_changes(db);
    }
    return 0;
}
