/* Migration of a shared table from one layout version to another, field
 * by field, by name (shm/tabledir.h): what both layouts have is copied
 * (a string that changed size keeps what fits; any other field that
 * changed size or kind is left at its default, and said); what only the
 * new one has starts at zero. The lock, the sequence counters and the
 * supervisor's pid start afresh, as the segment's own making sets them.
 *
 * asgd migrates the table an older asgd left (once that asgd has
 * stopped); tests/tablefmt.c runs the same engine the other way, to write
 * a table of an older layout for the upgrade test. */
#ifndef ASG_MIGRATE_H
#define ASG_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "tabledir.h"

struct migrate_report {
    uint32_t from_version, to_version;
    uint32_t capacity;
    uint32_t instances;          /* rows in use, kept */
    uint32_t events;             /* events kept */
    uint32_t added;              /* fields the old layout did not have (zero) */
    uint32_t defaulted;          /* fields both have, left at their default */
    char defaulted_names[256];   /* which, and why, for the log */
};

/* The layout of the table segment seg (size bytes, another process's:
 * everything range-checked): its own directory, or the built-in one of
 * version 19; and its capacity, its size checked against it. 0, or -1
 * with err saying why it cannot be read. tabledir_free(out) after. */
int migrate_layout_of(const void *seg, size_t size, struct table_layout *out, uint32_t *capacity,
                      char *err, size_t errsize);

/* Copies the segment src of layout from into dst, a zeroed segment of
 * layout to and the same capacity (dst_size bytes), and makes dst a table
 * (magic, version, sizes, lock, directory). 0, or -1 with err. */
int migrate_copy(const struct table_layout *from, const void *src, size_t src_size,
                 const struct table_layout *to, void *dst, size_t dst_size,
                 struct migrate_report *rep, char *err, size_t errsize);

/* The table called name (ours, mode 0600), rewritten in layout to: made
 * under a temporary name beside it, then renamed over it, so that the name
 * holds the old table or the new one, never half of either (a temporary
 * name another uid holds is passed over for one of the same form with a
 * random suffix). Logs one line saying what was kept. 0; or, with err and
 * the table left as it was, -1 when the table cannot be read as a table
 * of ours of another layout, -2 when it can but no new one could be made
 * (no room in /dev/shm, say): a table not to be given up for that. */
int table_migrate(const char *name, const struct table_layout *to, struct migrate_report *rep,
                  char *err, size_t errsize);

#endif
