/* The shared table's directory: the name, record, offset, size and kind of
 * every field of its header, its log, a row and an event. From layout
 * version 20 on, every table carries the directory of the binary that made
 * it (at the segment's end), so that any later binary can copy what it
 * knows from it by name (shm/migrate.h); version 19's, which had none, is
 * built in. The directory of this build is made from the structs
 * themselves (offsetof, sizeof), so it follows every change of theirs.
 *
 * A segment of layout version 20 or later:
 *   header | log | rows (capacity) | id hashes (capacity) | directory | trailer
 * the directory being a dir_head and its fields, the trailer 16 bytes that
 * say where the directory starts. */
#ifndef ASG_TABLEDIR_H
#define ASG_TABLEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dir_rec { DIR_HDR, DIR_LOG, DIR_ROW, DIR_EVENT, DIR_RECS };

enum dir_kind {
    DK_NUM = 1,  /* a number (integer, float, bool): copied whole or not at all */
    DK_STR = 2,  /* a NUL-terminated string: a shorter one keeps what fits */
    DK_BLOB = 3, /* a struct or an array: copied whole or not at all */
};

/* Never carried from another table: what the segment's own making sets
 * (magic, version, sizes), the lock and sequence counters, which start
 * afresh, and the supervisor's pid (checked before: it no longer runs). */
#define DF_LOCAL 1u
/* The log's event ring: copied event by event, by number. */
#define DF_RING 2u

#define DIR_NAME_MAX 32
#define DIR_FIELDS_MAX 1024

/* One field; also its form in the segment (the table never leaves its host). */
struct dir_field {
    char name[DIR_NAME_MAX];
    uint32_t rec;                /* enum dir_rec */
    uint32_t offset, size;       /* within its record */
    uint32_t kind;               /* enum dir_kind */
    uint32_t flags;              /* DF_* */
    uint32_t pad;
};

struct table_layout {
    uint32_t version;
    uint32_t rec_size[DIR_RECS]; /* sizeof the header, log, row, event */
    uint32_t nfields;
    const struct dir_field *fields;
    bool has_dir;                /* its segments carry a directory (20 on) */
    struct dir_field *owned;     /* read from a segment: freed by tabledir_free */
};

/* The directory in a segment: dir_head, then nfields dir_fields; then the
 * trailer, the segment's last bytes. */
#define DIR_MAGIC 0x3130524944475341ULL /* "ASGDIR01" in memory order */
struct dir_head {
    uint64_t magic;
    uint32_t version;
    uint32_t nfields;
    uint32_t rec_size[DIR_RECS];
};
struct dir_trailer {
    uint64_t magic;
    uint64_t dir_at;             /* the dir_head's offset in the segment */
};

/* This build's layout (TABLE_VERSION), and version 19's. */
extern const struct table_layout table_layout_current;
extern const struct table_layout table_layout_v19;

/* Where a segment of layout l and capacity puts its parts; false when the
 * sizes overflow. */
struct seg_geometry {
    size_t log_at, rows_at, idhash_at, dir_at, total;
};
bool tabledir_geometry(const struct table_layout *l, uint32_t capacity, struct seg_geometry *g);

/* The directory's bytes in a segment (head, fields, trailer). */
size_t tabledir_bytes(const struct table_layout *l);
/* Writes l's directory and trailer at dir_at of a segment of size bytes. */
void tabledir_write(const struct table_layout *l, void *seg, size_t dir_at, size_t size);

/* The field called name in record rec, or NULL. */
const struct dir_field *tabledir_find(const struct table_layout *l, uint32_t rec, const char *name);

/* Checks a layout: every field inside its record, named, of a known kind,
 * not named twice; the fields a table needs (magic, version, capacity, the
 * event ring) where and as they must be. 0, or -1 with err naming the
 * field and why. */
int tabledir_check(const struct table_layout *l, char *err, size_t errsize);

/* Reads the directory a segment of size bytes carries (version 20 on)
 * into out, checked as above. Everything is range-checked: the segment is
 * another process's. 0, or -1 with err. tabledir_free releases it. */
int tabledir_read(const void *seg, size_t size, uint32_t version, struct table_layout *out,
                  char *err, size_t errsize);
void tabledir_free(struct table_layout *l);

#endif
