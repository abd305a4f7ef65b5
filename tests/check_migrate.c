/* The table's directory (shm/tabledir.h) and its migration by field name
 * (shm/migrate.h): this build's directory covers its structs; a table of
 * an older layout (a field fewer, fields moved, resized) is copied into
 * the current one by name; damaged directories are refused, naming the
 * field; a named table is rewritten in place and re-attached. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../shm/migrate.h"
#include "../shm/ops.h"
#include "../shm/table.h"
#include "../shm/tabledir.h"
#include "check_suites.h"

#define CAP 3

/* A zeroed segment of layout l and capacity CAP. */
static char *segment(const struct table_layout *l, size_t *size)
{
    struct seg_geometry g;
    ck_assert(tabledir_geometry(l, CAP, &g));
    char *p = calloc(1, g.total);
    ck_assert(p);
    *size = g.total;
    return p;
}

/* The address of field name of record rec (row or event k) in a segment. */
static char *at(const struct table_layout *l, char *seg, uint32_t rec, uint32_t k, const char *name)
{
    const struct dir_field *f = tabledir_find(l, rec, name);
    ck_assert_msg(f, "no field %s", name);
    struct seg_geometry g;
    ck_assert(tabledir_geometry(l, CAP, &g));
    size_t base = rec == DIR_HDR ? 0 : rec == DIR_LOG ? g.log_at : rec == DIR_ROW ? g.rows_at : 0;
    if (rec == DIR_ROW)
        base += (size_t)k * l->rec_size[DIR_ROW];
    if (rec == DIR_EVENT)
        base = g.log_at + tabledir_find(l, DIR_LOG, "events")->offset + (size_t)k * l->rec_size[DIR_EVENT];
    return seg + base + f->offset;
}

static int by_offset(const void *a, const void *b)
{
    const struct dir_field *x = *(const struct dir_field *const *)a, *y = *(const struct dir_field *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

START_TEST(test_directory_covers_the_structs)
{
    const struct table_layout *l = &table_layout_current;
    char err[200];
    ck_assert_msg(tabledir_check(l, err, sizeof err) == 0, "%s", err);
    ck_assert(l->version == TABLE_VERSION && l->has_dir);
    for (uint32_t rec = 0; rec < DIR_RECS; rec++) {
        const struct dir_field *f[DIR_FIELDS_MAX];
        size_t n = 0;
        for (uint32_t i = 0; i < l->nfields; i++)
            if (l->fields[i].rec == rec)
                f[n++] = &l->fields[i];
        qsort(f, n, sizeof f[0], by_offset);
        uint32_t end = 0;
        for (size_t i = 0; i < n; i++) {
            /* A gap of 8 bytes or more is a field the directory misses. */
            ck_assert_msg(f[i]->offset >= end && f[i]->offset - end < 8,
                          "record %u: %s at %u, the field before ends at %u: a field is missing from "
                          "shm/tabledir.c's lists, or two overlap", rec, f[i]->name, f[i]->offset, end);
            end = f[i]->offset + f[i]->size;
        }
        ck_assert_msg(l->rec_size[rec] - end < 8, "record %u ends at %u after its last field, %u bytes: a "
                      "field is missing from shm/tabledir.c's lists", rec, l->rec_size[rec], end);
    }
}
END_TEST

/* Every field that is not local gets bytes of its own (a string a string). */
static void fill(const struct table_layout *l, char *seg)
{
    for (uint32_t i = 0; i < l->nfields; i++) {
        const struct dir_field *f = &l->fields[i];
        if (f->flags & (DF_LOCAL | DF_RING))
            continue;
        uint32_t copies = f->rec == DIR_ROW ? CAP : f->rec == DIR_EVENT ? 4 : 1;
        for (uint32_t k = 0; k < copies; k++) {
            char *p = at(l, seg, f->rec, k, f->name);
            for (uint32_t b = 0; b < f->size; b++)
                p[b] = (char)('a' + (i * 7 + k * 3 + b) % 26);
            if (f->kind == DK_STR)
                p[f->size - 1] = '\0';
        }
    }
    for (uint32_t k = 0; k < 4; k++) { /* events numbered as in a ring */
        uint64_t n = k + 1;
        memcpy(at(l, seg, DIR_EVENT, k, "number"), &n, sizeof n);
    }
    uint32_t cap = CAP;
    memcpy(at(l, seg, DIR_HDR, 0, "capacity"), &cap, sizeof cap);
}

START_TEST(test_round_trip_through_version_19)
{
    const struct table_layout *cur = &table_layout_current, *v19 = &table_layout_v19;
    size_t n1, n2, n3;
    char *a = segment(cur, &n1), *b = segment(v19, &n2), *c = segment(cur, &n3), err[300];
    fill(cur, a);
    struct migrate_report rep;
    ck_assert_msg(migrate_copy(cur, a, n1, v19, b, n2, &rep, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rep.instances == CAP && rep.events == 4, "%u instances, %u events", rep.instances, rep.events);
    ck_assert_msg(migrate_copy(v19, b, n2, cur, c, n3, &rep, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rep.instances == CAP && rep.events == 4 && rep.from_version == 19 &&
                      rep.to_version == TABLE_VERSION, "%u instances, %u events", rep.instances, rep.events);
    /* What version 19 has comes back; what it has not starts at zero. */
    for (uint32_t i = 0; i < cur->nfields; i++) {
        const struct dir_field *f = &cur->fields[i], *old = tabledir_find(v19, f->rec, f->name);
        if (f->flags & (DF_LOCAL | DF_RING))
            continue;
        uint32_t copies = f->rec == DIR_ROW ? CAP : f->rec == DIR_EVENT ? 4 : 1;
        bool kept = old && old->kind == f->kind && old->size == f->size;
        for (uint32_t k = 0; k < copies; k++) {
            const char *want = at(cur, a, f->rec, k, f->name), *got = at(cur, c, f->rec, k, f->name);
            char *zero = calloc(1, f->size);
            ck_assert_msg(memcmp(got, kept ? want : zero, f->size) == 0, "%s (copy %u) %s", f->name, k,
                          kept ? "changed on the way" : "not zero");
            free(zero);
        }
    }
    uint32_t version, cap;
    memcpy(&version, at(cur, c, DIR_HDR, 0, "version"), sizeof version);
    memcpy(&cap, at(cur, c, DIR_HDR, 0, "capacity"), sizeof cap);
    ck_assert(version == TABLE_VERSION && cap == CAP);
    struct table_layout back;
    ck_assert_msg(migrate_layout_of(c, n3, &back, &cap, err, sizeof err) == 0, "%s", err);
    ck_assert(back.nfields == cur->nfields && cap == CAP &&
              memcmp(back.fields, cur->fields, cur->nfields * sizeof *cur->fields) == 0);
    tabledir_free(&back);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* An older layout made from this one: row.spec_gen not there yet, row.pid
 * and row.reason elsewhere (reason twice as long), row.misses 8 bytes. */
static struct dir_field *older_fields(struct table_layout *l)
{
    struct dir_field *f = calloc(table_layout_current.nfields, sizeof *f);
    ck_assert(f);
    *l = table_layout_current;
    l->version = 17;
    uint32_t end = l->rec_size[DIR_ROW];
    l->rec_size[DIR_ROW] += 160;
    uint32_t n = 0;
    for (uint32_t i = 0; i < table_layout_current.nfields; i++) {
        struct dir_field x = table_layout_current.fields[i];
        if (x.rec == DIR_ROW && strcmp(x.name, "spec_gen") == 0)
            continue;
        if (x.rec == DIR_ROW && strcmp(x.name, "pid") == 0)
            x.offset = end;
        if (x.rec == DIR_ROW && strcmp(x.name, "misses") == 0)
            x.offset = end + 8, x.size = 8;
        if (x.rec == DIR_ROW && strcmp(x.name, "reason") == 0)
            x.offset = end + 16, x.size = 128;
        f[n++] = x;
    }
    l->nfields = n;
    l->fields = f;
    return f;
}

START_TEST(test_older_layout_copied_by_name)
{
    struct table_layout old;
    struct dir_field *of = older_fields(&old);
    size_t n1, n2;
    char *a = segment(&old, &n1), *b = segment(&table_layout_current, &n2), err[300];
    struct seg_geometry g;
    ck_assert(tabledir_geometry(&old, CAP, &g));
    tabledir_write(&old, a, g.dir_at, n1);
    uint64_t magic = TABLE_MAGIC;
    uint32_t version = 17, cap = CAP, running = ROW_RUNNING;
    int32_t pid = 4321;
    memcpy(a, &magic, 8);
    memcpy(a + 8, &version, 4);
    memcpy(at(&old, a, DIR_HDR, 0, "capacity"), &cap, 4);
    memcpy(at(&old, a, DIR_ROW, 1, "state"), &running, 4);
    strcpy(at(&old, a, DIR_ROW, 1, "id"), "grp-7");
    memcpy(at(&old, a, DIR_ROW, 1, "pid"), &pid, 4);
    memset(at(&old, a, DIR_ROW, 1, "misses"), 0x11, 8);
    memset(at(&old, a, DIR_ROW, 1, "reason"), 'r', 100);
    /* Where this layout keeps spec_gen, the old one kept nothing named. */
    memset(at(&table_layout_current, a, DIR_ROW, 1, "spec_gen"), 0x55, 8);
    struct table_layout read;
    ck_assert_msg(migrate_layout_of(a, n1, &read, &cap, err, sizeof err) == 0, "%s", err);
    ck_assert(read.version == 17 && cap == CAP);
    struct migrate_report rep;
    ck_assert_msg(migrate_copy(&read, a, n1, &table_layout_current, b, n2, &rep, err, sizeof err) == 0, "%s",
                  err);
    const struct table_row *row = (const struct table_row *)(b + sizeof(struct table_hdr) +
                                                             sizeof(struct table_log)) + 1;
    ck_assert_msg(row->state == ROW_RUNNING && strcmp(row->id, "grp-7") == 0 && row->pid == 4321,
                  "state %u id %s pid %d", row->state, row->id, row->pid);
    ck_assert_msg(strlen(row->reason) == sizeof row->reason - 1 && row->reason[0] == 'r',
                  "the longer reason does not keep what fits: %zu bytes", strlen(row->reason));
    ck_assert_msg(row->misses == 0 && row->spec_gen == 0, "misses %u spec_gen %llu", row->misses,
                  (unsigned long long)row->spec_gen);
    ck_assert_msg(rep.instances == 1 && rep.added == 1 && rep.defaulted == 1 &&
                      strstr(rep.defaulted_names, "row.misses (8 -> 4 bytes)"),
                  "added %u defaulted %u (%s)", rep.added, rep.defaulted, rep.defaulted_names);
    tabledir_free(&read);
    free(of);
    free(a);
    free(b);
}
END_TEST

/* A segment of this layout, damaged by damage, refused naming want. */
static void refused(void (*damage)(char *seg, size_t size, struct dir_field *dir), const char *want)
{
    size_t n;
    char *a = segment(&table_layout_current, &n), err[300] = "";
    fill(&table_layout_current, a);
    uint64_t magic = TABLE_MAGIC;
    uint32_t version = TABLE_VERSION;
    memcpy(a, &magic, 8);
    memcpy(a + 8, &version, 4);
    struct seg_geometry g;
    ck_assert(tabledir_geometry(&table_layout_current, CAP, &g));
    tabledir_write(&table_layout_current, a, g.dir_at, n);
    damage(a, n, (struct dir_field *)(a + g.dir_at + sizeof(struct dir_head)));
    struct table_layout l;
    uint32_t cap;
    ck_assert_msg(migrate_layout_of(a, n, &l, &cap, err, sizeof err) != 0, "not refused (want: %s)", want);
    ck_assert_msg(strstr(err, want), "refused with \"%s\", not naming \"%s\"", err, want);
    free(a);
}

static struct dir_field *named(struct dir_field *dir, uint32_t rec, const char *name)
{
    for (uint32_t i = 0; i < table_layout_current.nfields; i++)
        if (dir[i].rec == rec && strcmp(dir[i].name, name) == 0)
            return &dir[i];
    ck_abort_msg("no %s", name);
    return NULL;
}

static void past_end(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; named(d, DIR_ROW, "lb_state")->offset = 1u << 30; }
static void twice(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; strcpy(named(d, DIR_ROW, "cpu")->name, "load"); }
static void unterminated(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; memset(named(d, DIR_HDR, "gen")->name, 'x', DIR_NAME_MAX); }
static void bad_kind(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; named(d, DIR_HDR, "ha_error")->kind = 9; }
static void bad_ring(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; named(d, DIR_LOG, "events")->size -= 3; }
static void no_capacity(char *s, size_t n, struct dir_field *d) { (void)s, (void)n; strcpy(named(d, DIR_HDR, "capacity")->name, "room"); }
static void bad_trailer(char *s, size_t n, struct dir_field *d) { (void)d; memset(s + n - 8, 0xff, 8); }
static void bad_head(char *s, size_t n, struct dir_field *d)
{
    (void)s, (void)n;
    char *head = (char *)d - sizeof(struct dir_head); /* 4-aligned only: copied, not cast */
    uint32_t fields;
    memcpy(&fields, head + offsetof(struct dir_head, nfields), sizeof fields);
    fields++;
    memcpy(head + offsetof(struct dir_head, nfields), &fields, sizeof fields);
}
static void big_capacity(char *s, size_t n, struct dir_field *d) { (void)n, (void)d; memset(s + offsetof(struct table_hdr, capacity), 0x7f, 4); }
/* A table of version 18, made before directories. */
static void old_version(char *s, size_t n, struct dir_field *d)
{
    (void)d;
    s[8] = 18;
    s[9] = s[10] = s[11] = 0;
    memset(s + n - sizeof(struct dir_trailer), 0, sizeof(struct dir_trailer));
}

START_TEST(test_bad_directories_refused_by_name)
{
    refused(past_end, "directory field lb_state (row): offset 1073741824 size 4 passes the end of its record");
    refused(twice, "directory field load (row)");
    refused(twice, "is named twice");
    refused(unterminated, "has no name");
    refused(bad_kind, "directory field ha_error (header)");
    refused(bad_ring, "directory field events (log): not a ring of whole events");
    refused(no_capacity, "directory field capacity (header): missing");
    refused(bad_trailer, "no directory at its end");
    refused(bad_head, "directory's head is damaged");
    refused(big_capacity, "do not hold a table of capacity");
    refused(old_version, "layout version 18: no directory at its end");
}
END_TEST

/* A real table, rewritten as version 19's and back: the name holds the
 * old one or the new one, mode 0600, rows and events there. */
START_TEST(test_named_table_migrated_in_place)
{
    char name[64], err[512];
    snprintf(name, sizeof name, "/asg-test-migrate-%d", (int)getpid());
    table_unlink(name);
    struct table t;
    ck_assert_msg(table_create(name, 8, &t, err, sizeof err) == 0, "%s", err);
    ck_assert(table_lock(&t, 1000) == 0);
    struct table_row *r = table_alloc_row(&t, "grp-3");
    r->state = ROW_RUNNING;
    r->pid = 999;
    row_push_sample(r, 0.25);
    r->spec_gen = 4;
    row_write_end(&t, r);
    table_note(&t, EV_LAUNCH, "grp-3", LOG_LVL_DEBUG, "launched grp-3");
    table_unlock(&t);
    table_detach(&t);
    struct migrate_report rep;
    ck_assert_msg(table_migrate(name, &table_layout_v19, &rep, err, sizeof err) == 0, "%s", err);
    ck_assert(table_attach(name, true, &t, err, sizeof err) != 0 && errno == EPROTO);
    ck_assert_msg(table_migrate(name, &table_layout_current, &rep, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rep.instances == 1 && rep.events == 1, "%u %u", rep.instances, rep.events);
    ck_assert_msg(table_attach(name, false, &t, err, sizeof err) == 0, "%s", err);
    ck_assert(table_lock(&t, 1000) == 0);
    table_repair(&t);
    r = table_find(&t, "grp-3");
    ck_assert(r && r->pid == 999 && r->spec_gen == 4 && r->hist_len == 1 && r->hist[0] == 0.25f);
    table_unlock(&t);
    struct table_event ev[4];
    ck_assert(table_read_events(&t, 0, ev, 4) == 1 && strcmp(ev[0].msg, "launched grp-3") == 0);
    table_detach(&t);
    struct stat st;
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    snprintf(path, sizeof path, "/dev/shm%s.migrating", name);
    ck_assert(stat(path, &st) != 0);
    ck_assert_msg(table_migrate(name, &table_layout_current, &rep, err, sizeof err) != 0 &&
                      strstr(err, "already has layout version"), "%s", err);
    table_unlink(name);
}
END_TEST

/* A version 19 table of one instance under name, owned by uid (the unit
 * runs as root: the table's owner is made another uid, as an unprivileged
 * manager's would be). */
static void older_table_of(const char *name, uid_t uid)
{
    char err[512];
    struct table t;
    table_unlink(name);
    ck_assert_msg(table_create(name, 8, &t, err, sizeof err) == 0, "%s", err);
    ck_assert(table_lock(&t, 1000) == 0);
    struct table_row *r = table_alloc_row(&t, "grp-7");
    r->state = ROW_RUNNING;
    row_write_end(&t, r);
    table_unlock(&t);
    table_detach(&t);
    struct migrate_report rep;
    ck_assert_msg(table_migrate(name, &table_layout_v19, &rep, err, sizeof err) == 0, "%s", err);
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert(fd >= 0 && fchown(fd, uid, uid) == 0);
    close(fd);
}

static void unlink_migrating(const char *name)
{
    char pattern[128];
    glob_t g;
    snprintf(pattern, sizeof pattern, "/dev/shm%s.migrating*", name);
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
}

/* In a child as uid (when not 0), with its files limited to fsize bytes
 * (when not 0): table_migrate's result, or 100 + what went wrong around it. */
static int migrate_as(const char *name, uid_t uid, rlim_t fsize)
{
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (uid && (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0))
            _exit(101);
        if (fsize) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {fsize, fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(102);
        }
        char err[512];
        struct migrate_report rep;
        int rc = table_migrate(name, &table_layout_current, &rep, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "table_migrate: %s\n", err);
        struct table t;
        if (rc == 0 && table_attach(name, true, &t, err, sizeof err) != 0) {
            fprintf(stderr, "table_attach: %s\n", err);
            _exit(103);
        }
        bool kept = false; /* by its row: the id hashes are rebuilt on re-attach (table_repair) */
        for (uint32_t i = 0; rc == 0 && i < t.capacity; i++)
            kept |= t.rows[i].state == ROW_RUNNING && strcmp(t.rows[i].id, "grp-7") == 0;
        if (rc == 0 && !kept)
            _exit(104);
        _exit(rc < 0 ? -rc : rc);
    }
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* /dev/shm is anybody's: a stranger who makes NAME.migrating first (a
 * segment or a symlink of theirs, which an unprivileged manager cannot
 * remove there) must not keep the table from being migrated, which asgd
 * would answer by setting the table aside, its instances' history lost. */
START_TEST(test_a_strangers_migrating_name_does_not_stop_a_migration)
{
    char name[64], squat[96];
    snprintf(name, sizeof name, "/asg-test-squat-%d", (int)getpid());
    snprintf(squat, sizeof squat, "%s.migrating", name);
    unlink_migrating(name);
    older_table_of(name, 65533);
    int fd = shm_open(squat, O_RDWR | O_CREAT | O_EXCL, 0644);
    ck_assert(fd >= 0 && fchown(fd, 65534, 65534) == 0);
    close(fd);
    int rc = migrate_as(name, 65533, 0);
    ck_assert_msg(rc == 0, "migration past a stranger's %s: %d", squat, rc);
    struct stat st;
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", squat);
    ck_assert(stat(path, &st) == 0 && st.st_uid == 65534); /* theirs, left alone */
    unlink_migrating(name);
    table_unlink(name);
}
END_TEST

/* A table that cannot be written anew (here: files limited to 4 KiB) is
 * readable still: the answer says so (-2), for asgd to keep it rather
 * than set it aside as unreadable (-1). */
START_TEST(test_a_table_that_cannot_be_written_anew_is_not_unreadable)
{
    char name[64];
    snprintf(name, sizeof name, "/asg-test-nospace-%d", (int)getpid());
    unlink_migrating(name);
    older_table_of(name, 0);
    ck_assert_int_eq(migrate_as(name, 0, 4096), 2);
    uint32_t version;
    int32_t pid;
    char err[512];
    ck_assert_msg(table_peek_other(name, &version, &pid, err, sizeof err) == 0 && version == 19, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s.migrating", name);
    ck_assert(access(path, F_OK) != 0);
    unlink_migrating(name);
    table_unlink(name);
}
END_TEST

Suite *migrate_suite(void)
{
    const TTest *tests[] = {test_directory_covers_the_structs, test_round_trip_through_version_19,
                            test_older_layout_copied_by_name, test_bad_directories_refused_by_name,
                            test_named_table_migrated_in_place,
                            test_a_strangers_migrating_name_does_not_stop_a_migration,
                            test_a_table_that_cannot_be_written_anew_is_not_unreadable, NULL};
    return suite_of("migrate", "migrate", NULL, NULL, 30, tests, NULL);
}
