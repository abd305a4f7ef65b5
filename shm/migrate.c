#define _GNU_SOURCE
#include "migrate.h"
#include "table.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reading a segment's layout ---- */

static uint64_t read_num(const void *base, const struct dir_field *f)
{
    uint64_t v = 0;
    memcpy(&v, (const char *)base + f->offset, f->size < sizeof v ? f->size : sizeof v);
    return v; /* little-endian: a narrower field's value, zero-extended */
}

static void write_num(void *base, const struct dir_field *f, uint64_t v)
{
    memcpy((char *)base + f->offset, &v, f->size < sizeof v ? f->size : sizeof v);
}

int migrate_layout_of(const void *seg, size_t size, struct table_layout *out, uint32_t *capacity,
                      char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    struct {
        uint64_t magic;
        uint32_t version;
    } lead;
    if (size < sizeof lead || (memcpy(&lead, seg, sizeof lead), lead.magic != TABLE_MAGIC)) {
        snprintf(err, errsize, "not a table (no magic)");
        return -1;
    }
    char why[200];
    if (lead.version == table_layout_v19.version) {
        *out = table_layout_v19;
    } else if (tabledir_read(seg, size, lead.version, out, why, sizeof why) != 0) {
        snprintf(err, errsize, "layout version %u: %s", lead.version, why);
        return -1;
    }
    struct seg_geometry g;
    const struct dir_field *cap = tabledir_find(out, DIR_HDR, "capacity");
    uint32_t n = size >= out->rec_size[DIR_HDR] ? (uint32_t)read_num(seg, cap) : 0;
    if (n == 0 || n > 1000000 || !tabledir_geometry(out, n, &g) || g.total != size) {
        snprintf(err, errsize, "layout version %u: %zu bytes do not hold a table of capacity %u",
                 lead.version, size, n);
        tabledir_free(out);
        return -1;
    }
    *capacity = n;
    return 0;
}

/* ---- the copy ---- */

enum step_kind { STEP_SKIP, STEP_COPY, STEP_STRING };

/* What to do for one field of the target record: worked out once per
 * record, then done for every row or event. */
struct step {
    enum step_kind kind;
    uint32_t to_off, to_size, from_off, from_size;
};

static void note_default(struct migrate_report *rep, const char *what)
{
    rep->defaulted++;
    size_t used = strlen(rep->defaulted_names);
    if (used + strlen(what) + 3 < sizeof rep->defaulted_names)
        snprintf(rep->defaulted_names + used, sizeof rep->defaulted_names - used, "%s%s",
                 used ? ", " : "", what);
}

static const char *const rec_label[DIR_RECS] = {"header", "log", "row", "event"};

/* The steps for record rec: its fields in to, found by name in from. */
static size_t plan_record(const struct table_layout *from, const struct table_layout *to, uint32_t rec,
                          struct step *steps, struct migrate_report *rep)
{
    size_t n = 0;
    for (uint32_t i = 0; i < to->nfields; i++) {
        const struct dir_field *t = &to->fields[i];
        if (t->rec != rec || (t->flags & (DF_LOCAL | DF_RING)))
            continue;
        const struct dir_field *f = tabledir_find(from, rec, t->name);
        if (!f) {
            rep->added++;
            continue;
        }
        struct step s = {STEP_COPY, t->offset, t->size, f->offset, f->size};
        if (f->kind != t->kind || (f->size != t->size && t->kind != DK_STR)) {
            char what[DIR_NAME_MAX + 64];
            snprintf(what, sizeof what, "%s.%s (%u -> %u bytes)", rec_label[rec], t->name, f->size, t->size);
            note_default(rep, what);
            continue;
        }
        if (f->size != t->size)
            s.kind = STEP_STRING;
        steps[n++] = s;
    }
    return n;
}

static void apply(const struct step *steps, size_t n, const char *src, char *dst)
{
    for (size_t i = 0; i < n; i++) {
        const struct step *s = &steps[i];
        uint32_t len = s->from_size < s->to_size ? s->from_size : s->to_size;
        memcpy(dst + s->to_off, src + s->from_off, len);
        if (s->kind == STEP_STRING)
            dst[s->to_off + s->to_size - 1] = '\0'; /* a longer one keeps what fits */
    }
}

struct copy_ctx {
    const struct table_layout *from, *to;
    const char *src;
    char *dst;
    struct seg_geometry gf, gt;
    uint32_t capacity;
    struct step *steps;
    struct migrate_report *rep;
};

static void copy_rows(struct copy_ctx *c)
{
    size_t n = plan_record(c->from, c->to, DIR_ROW, c->steps, c->rep);
    const struct dir_field *state = tabledir_find(c->to, DIR_ROW, "state");
    for (uint32_t i = 0; i < c->capacity; i++) {
        char *dst = c->dst + c->gt.rows_at + (size_t)i * c->to->rec_size[DIR_ROW];
        apply(c->steps, n, c->src + c->gf.rows_at + (size_t)i * c->from->rec_size[DIR_ROW], dst);
        if (state && read_num(dst, state) != ROW_FREE)
            c->rep->instances++;
    }
}

/* Each event goes to the slot its number gives in the new ring; where two
 * meet (a smaller ring), the newer stays. */
static void copy_events(struct copy_ctx *c)
{
    size_t n = plan_record(c->from, c->to, DIR_EVENT, c->steps, c->rep);
    const struct dir_field *rf = tabledir_find(c->from, DIR_LOG, "events");
    const struct dir_field *rt = tabledir_find(c->to, DIR_LOG, "events");
    const struct dir_field *nf = tabledir_find(c->from, DIR_EVENT, "number");
    const struct dir_field *nt = tabledir_find(c->to, DIR_EVENT, "number");
    uint32_t ef = c->from->rec_size[DIR_EVENT], et = c->to->rec_size[DIR_EVENT];
    uint32_t from_n = rf->size / ef, to_n = rt->size / et;
    for (uint32_t k = 0; k < from_n; k++) {
        const char *src = c->src + c->gf.log_at + rf->offset + (size_t)k * ef;
        uint64_t number = read_num(src, nf);
        if (number == 0 || number >= (UINT64_MAX >> 1))
            continue;
        char *dst = c->dst + c->gt.log_at + rt->offset + (size_t)((number - 1) % to_n) * et;
        if (read_num(dst, nt) >= number)
            continue;
        memset(dst, 0, et);
        apply(c->steps, n, src, dst);
        write_num(dst, nt, number);
    }
    for (uint32_t k = 0; k < to_n; k++)
        c->rep->events += read_num(c->dst + c->gt.log_at + rt->offset + (size_t)k * et, nt) != 0;
}

/* What the segment's own making sets: sizes, a fresh lock, the directory,
 * and the magic last, as table_create does. */
static void make_table(const struct copy_ctx *c, size_t dst_size)
{
    static const char *const names[] = {"capacity", "total_size", "hdr_size", "row_size", "version"};
    const uint64_t values[] = {c->capacity, dst_size, c->to->rec_size[DIR_HDR], c->to->rec_size[DIR_ROW],
                               c->to->version};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        const struct dir_field *f = tabledir_find(c->to, DIR_HDR, names[i]);
        if (f && f->kind == DK_NUM)
            write_num(c->dst, f, values[i]);
    }
    const struct dir_field *lock = tabledir_find(c->to, DIR_HDR, "lock");
    if (lock && lock->size == sizeof(sem_t))
        sem_init((sem_t *)(void *)(c->dst + lock->offset), 1, 0);
    if (c->to->has_dir)
        tabledir_write(c->to, c->dst, c->gt.dir_at, dst_size);
    /* The magic last, stored with release order (a fence would do the
     * same, but ThreadSanitizer builds refuse fences). Nobody maps the new
     * table before its rename anyway; this keeps table_create's rule. */
    const struct dir_field *magic = tabledir_find(c->to, DIR_HDR, "magic");
    if (magic && magic->size == sizeof(uint64_t) && magic->offset % _Alignof(uint64_t) == 0)
        atomic_store_explicit((_Atomic uint64_t *)(void *)(c->dst + magic->offset), TABLE_MAGIC,
                              memory_order_release);
    else
        write_num(c->dst, magic, TABLE_MAGIC);
}

int migrate_copy(const struct table_layout *from, const void *src, size_t src_size,
                 const struct table_layout *to, void *dst, size_t dst_size,
                 struct migrate_report *rep, char *err, size_t errsize)
{
    memset(rep, 0, sizeof *rep);
    struct copy_ctx c = {from, to, src, dst, {0}, {0}, 0, NULL, rep};
    if (tabledir_check(from, err, errsize) != 0 || tabledir_check(to, err, errsize) != 0)
        return -1;
    const struct dir_field *cap = tabledir_find(from, DIR_HDR, "capacity");
    c.capacity = src_size >= from->rec_size[DIR_HDR] ? (uint32_t)read_num(src, cap) : 0;
    if (!tabledir_geometry(from, c.capacity, &c.gf) || c.gf.total != src_size ||
        !tabledir_geometry(to, c.capacity, &c.gt) || c.gt.total != dst_size) {
        snprintf(err, errsize, "capacity %u: the old table (%zu bytes) or the new one (%zu) is not that size",
                 c.capacity, src_size, dst_size);
        return -1;
    }
    c.steps = calloc(to->nfields, sizeof *c.steps);
    if (!c.steps) {
        snprintf(err, errsize, "%s", strerror(errno));
        return -1;
    }
    rep->from_version = from->version;
    rep->to_version = to->version;
    rep->capacity = c.capacity;
    apply(c.steps, plan_record(from, to, DIR_HDR, c.steps, rep), src, dst);
    apply(c.steps, plan_record(from, to, DIR_LOG, c.steps, rep), c.src + c.gf.log_at, c.dst + c.gt.log_at);
    copy_rows(&c);
    copy_events(&c);
    free(c.steps);
    make_table(&c, dst_size);
    return 0;
}

/* ---- on a named table ---- */

/* Maps the table called name read-only, if it is ours: 0, or -1 with err. */
static int map_old(const char *name, void **seg, size_t *size, char *err, size_t errsize)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errsize, "cannot open it: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) || st.st_size < 16 ||
        (uint64_t)st.st_size > ((uint64_t)1 << 36)) {
        snprintf(err, errsize, "not a table of ours (uid %u, mode %04o, %jd bytes)", (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 07777), (intmax_t)st.st_size);
        close(fd);
        return -1;
    }
    *size = (size_t)st.st_size;
    *seg = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (*seg == MAP_FAILED) {
        snprintf(err, errsize, "mmap: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* A fresh segment under tmp, mode 0600, created exclusively. */
static int create_excl(const char *tmp, size_t size, void **seg)
{
    int fd = shm_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    *seg = ftruncate(fd, (off_t)size) == 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                                           : MAP_FAILED;
    int e = errno;
    close(fd);
    if (*seg == MAP_FAILED) {
        shm_unlink(tmp);
        errno = e;
        return -2;
    }
    return 0;
}

/* A fresh segment of size bytes, mode 0600, under name.migrating (its
 * name written to tmp); one left there by a migration that died half-way
 * is replaced. /dev/shm is anybody's: when that name is taken by a
 * segment we cannot remove (another uid's, planted there), a name of the
 * same form with a random suffix is used instead, so that nobody can keep
 * the table from being migrated. */
static void *make_new(const char *name, char *tmp, size_t tmpsize, size_t size, char *err, size_t errsize)
{
    void *seg = NULL;
    snprintf(tmp, tmpsize, "%s.migrating", name);
    int rc = create_excl(tmp, size, &seg);
    if (rc == -1 && errno == EEXIST) {
        if (shm_unlink(tmp) == 0)
            rc = create_excl(tmp, size, &seg);
        else
            errno = EEXIST; /* not ours to remove: another name */
    }
    for (int tries = 0; rc == -1 && errno == EEXIST && tries < 3; tries++) {
        uint32_t r;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            break;
        snprintf(tmp, tmpsize, "%s.migrating-%08x", name, r);
        rc = create_excl(tmp, size, &seg);
    }
    if (rc == 0)
        return seg;
    if (rc == -1)
        snprintf(err, errsize, "cannot create %s: %s", tmp, strerror(errno));
    else
        snprintf(err, errsize, "cannot size %s to %zu bytes: %s", tmp, size, strerror(errno));
    return NULL;
}

/* Copies into a new segment (its name in tmp): 0; -1 when the copy
 * refuses the old table (tmp removed); -2 when no new segment could be
 * made. */
static int write_new(const char *name, char *tmp, size_t tmpsize, const struct table_layout *from,
                     const void *old, size_t old_size, const struct table_layout *to, uint32_t capacity,
                     struct migrate_report *rep, char *err, size_t errsize)
{
    struct seg_geometry g;
    if (!tabledir_geometry(to, capacity, &g)) {
        snprintf(err, errsize, "capacity %u is too big for layout %u", capacity, to->version);
        return -1;
    }
    void *seg = make_new(name, tmp, tmpsize, g.total, err, errsize);
    if (!seg)
        return -2;
    int rc = migrate_copy(from, old, old_size, to, seg, g.total, rep, err, errsize);
    munmap(seg, g.total);
    if (rc != 0)
        shm_unlink(tmp);
    return rc;
}

/* Long because each way it can fail says where. */
int table_migrate(const char *name, const struct table_layout *to, struct migrate_report *rep,
                  char *err, size_t errsize)
{
    char tmp[TABLE_NAME_MAX + 32] = "", why[400], from_path[TABLE_NAME_MAX + 48], to_path[TABLE_NAME_MAX + 16];
    memset(rep, 0, sizeof *rep);
    if (name[0] != '/' || strchr(name + 1, '/') || strlen(name) >= TABLE_NAME_MAX) {
        snprintf(err, errsize, "shared table %s: not a table name", name);
        return -1;
    }
    void *old;
    size_t old_size;
    struct table_layout from;
    uint32_t capacity;
    if (map_old(name, &old, &old_size, why, sizeof why) != 0) {
        snprintf(err, errsize, "shared table %s: %s", name, why);
        return -1;
    }
    int rc = migrate_layout_of(old, old_size, &from, &capacity, why, sizeof why);
    if (rc == 0 && from.version == to->version) {
        snprintf(why, sizeof why, "it already has layout version %u", to->version);
        rc = -1;
    }
    if (rc == 0)
        rc = write_new(name, tmp, sizeof tmp, &from, old, old_size, to, capacity, rep, why, sizeof why);
    tabledir_free(&from);
    munmap(old, old_size);
    snprintf(from_path, sizeof from_path, "/dev/shm%s", tmp);
    snprintf(to_path, sizeof to_path, "/dev/shm%s", name);
    if (rc == 0 && rename(from_path, to_path) != 0) {
        snprintf(why, sizeof why, "cannot rename %s over it: %s", from_path, strerror(errno));
        shm_unlink(tmp);
        rc = -2;
    }
    if (rc != 0) {
        snprintf(err, errsize, "shared table %s: %s", name, why);
        return rc;
    }
    if (rep->defaulted)
        log_warn("shared table %s: left at their defaults (changed in size or kind): %s", name,
                 rep->defaulted_names);
    log_warn("migrated shared table %s from layout version %u to %u: %u instance(s), %u event(s) kept%s",
             name, rep->from_version, rep->to_version, rep->instances, rep->events,
             rep->added ? " (fields new to it start at zero)" : "");
    return 0;
}
