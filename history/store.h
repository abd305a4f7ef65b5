/* The history's database, written (docs/history.md has its schema): opened
 * by the history role alone, with care (a directory of ours that nobody
 * else may write, never through a link), WAL mode, synchronous=NORMAL, a
 * busy timeout, its schema made or migrated at the open. Every function
 * returns 0, or an SQLite result code (or -1 for a refusal of ours) with
 * why in err. */
#ifndef ASG_HISTORY_STORE_H
#define ASG_HISTORY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../report/histq.h"
#include "../shm/table.h"

struct sqlite3;

/* How far the events of one table (its nonce) have been recorded. */
struct hstore_cursor {
    uint64_t last_event;         /* the last event number recorded */
    uint64_t lost;               /* events overwritten before they were read */
};

/* What one hstore_record wrote. */
struct hstore_counts {
    uint64_t events, activities;
};

/* Opens (creating it 0600 when missing) the database at path. */
int hstore_open(const char *path, struct sqlite3 **out, char *err, size_t errsize);
void hstore_close(struct sqlite3 *db);

/* The cursor of table `nonce` (zeroes when none yet). */
int hstore_cursor(struct sqlite3 *db, const char *nonce, struct hstore_cursor *c, char *err, size_t errsize);

/* Records events ev[0..n) (oldest first, numbers above c->last_event) of
 * table `nonce` and group `group`, and their activities, and moves the
 * cursor past them, in one transaction: all of it or none. A number
 * above the next expected one counts the ones between as lost. */
int hstore_record(struct sqlite3 *db, const char *nonce, const char *group, const struct table_event *ev,
                  size_t n, struct hstore_cursor *c, struct hstore_counts *counts, char *err, size_t errsize);

/* Activities still in progress of any other table than `nonce` (a table
 * lost with the machine: nobody will end them): cancelled. */
int hstore_cancel_others(struct sqlite3 *db, const char *nonce, int64_t now_wall_ms, char *err, size_t errsize);

int hstore_sample(struct sqlite3 *db, const char *group, const struct hist_sample *s, char *err, size_t errsize);

/* Removes at most `batch` rows of each table older than before_ms;
 * *removed says how many went. */
int hstore_prune(struct sqlite3 *db, int64_t before_ms, int batch, int *removed, char *err, size_t errsize);

#endif
