/* The published config (see confseg.h). */
#define _GNU_SOURCE
#include "confseg.h"
#include "../common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int fresh_name(const char *table_name, char *out, size_t size)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    int n = snprintf(out, size, "%s.config-%016llx", table_name, (unsigned long long)r);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void write_cfg(struct confseg_layout *s, const struct asg_config *cfg, uint64_t gen)
{
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    s->pub.cfg = *cfg;
    s->pub.gen = gen;
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
}

int confseg_create(const char *table_name, const struct asg_config *cfg, uint64_t gen,
                   struct confseg *c, char *err, size_t errsize)
{
    memset(c, 0, sizeof *c);
    if (fresh_name(table_name, c->name, sizeof c->name) != 0) {
        snprintf(err, errsize, "config segment for %s: cannot make a name", table_name);
        return -1;
    }
    int fd = shm_open(c->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsize, "config segment %s: cannot create: %s", c->name, strerror(errno));
        return -1;
    }
    size_t size = sizeof(struct confseg_layout);
    void *p = ftruncate(fd, (off_t)size) == 0
                  ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errsize, "config segment %s: cannot size or map: %s", c->name, strerror(e));
        shm_unlink(c->name);
        return -1;
    }
    struct confseg_layout *s = p;
    s->version = CONFSEG_VERSION;
    s->cfg_size = sizeof(struct asg_config);
    write_cfg(s, cfg, gen);
    atomic_thread_fence(memory_order_release);
    s->magic = CONFSEG_MAGIC; /* last: a reader never sees a half-made one */
    c->seg = s;
    c->size = size;
    c->writable = true;
    return 0;
}

/* Why a mapped segment is not one this program can read, or NULL. */
static const char *layout_problem(const struct confseg_layout *s, char *buf, size_t size)
{
    if (s->magic != CONFSEG_MAGIC)
        return "wrong magic (not an asg config segment, or not finished being created)";
    if (s->version != CONFSEG_VERSION || s->cfg_size != sizeof(struct asg_config)) {
        snprintf(buf, size, "layout version %u with a %u-byte config, this program's is version %u "
                 "with %zu bytes (a manager of another version)", s->version, s->cfg_size,
                 CONFSEG_VERSION, sizeof(struct asg_config));
        return buf;
    }
    return NULL;
}

int confseg_attach(const char *name, struct confseg *c, char *err, size_t errsize)
{
    memset(c, 0, sizeof *c);
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errsize, "config segment %s: cannot open: %s", name, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    size_t size = sizeof(struct confseg_layout);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(err, errsize, "config segment %s: cannot stat: %s", name, strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    /* Only a segment of ours, as for the table (shm/table.c). */
    if (st.st_uid != geteuid() || (st.st_mode & 077) || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size != size) {
        snprintf(err, errsize, "config segment %s: not ours (uid %u, mode %04o, %jd bytes; want uid %u, "
                 "0600, %zu bytes): refusing it", name, (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 07777), (intmax_t)st.st_size, (unsigned)geteuid(), size);
        close(fd);
        errno = EPERM;
        return -1;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errsize, "config segment %s: mmap: %s", name, strerror(errno));
        return -1;
    }
    char buf[200];
    const char *why = layout_problem(p, buf, sizeof buf);
    if (why) {
        snprintf(err, errsize, "config segment %s: %s", name, why);
        munmap(p, size);
        errno = EINVAL;
        return -1;
    }
    c->seg = p;
    c->size = size;
    copy_str(c->name, sizeof c->name, name);
    return 0;
}

int confseg_attach_table(const struct table *t, struct confseg *c, char *err, size_t errsize)
{
    struct table_hdr h;
    if (!table_read_hdr(t, &h)) {
        memset(c, 0, sizeof *c);
        snprintf(err, errsize, "shared table %s: header busy (a dead writer): no config name", t->name);
        return -1;
    }
    h.config_name[sizeof h.config_name - 1] = '\0';
    if (!h.config_name[0]) {
        memset(c, 0, sizeof *c);
        snprintf(err, errsize, "shared table %s names no config segment (no supervisor started)", t->name);
        errno = ENOENT;
        return -1;
    }
    return confseg_attach(h.config_name, c, err, errsize);
}

void confseg_detach(struct confseg *c)
{
    if (c->seg)
        munmap(c->seg, c->size);
    c->seg = NULL;
}

int confseg_unlink(const char *name) { return shm_unlink(name); }

/* NAME.config-HEX16, where NAME is shm_name "." HEX16: its table's name
 * length, or 0 for any other file. */
static size_t table_part(const char *file, const char *base)
{
    size_t n = strlen(base);
    const char *mark = strncmp(file, base, n) == 0 && file[n] == '.' ? strstr(file + n, ".config-") : NULL;
    if (!mark || mark != file + n + 17 || strlen(mark) != 8 + 16)
        return 0;
    return (size_t)(mark - file);
}

int confseg_sweep(const char *shm_name)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    const char *base = shm_name[0] == '/' ? shm_name + 1 : shm_name;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = table_part(e->d_name, base);
        struct stat st;
        char table[256];
        if (!n || n >= sizeof table || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            st.st_uid != geteuid() || !S_ISREG(st.st_mode))
            continue;
        memcpy(table, e->d_name, n);
        table[n] = '\0';
        if (fstatat(dirfd(d), table, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
            continue; /* its table is there: its manager may run, or come back */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            log_info("removed config segment /%s: its table is gone", e->d_name);
            removed++;
        }
    }
    closedir(d);
    return removed;
}

uint64_t confseg_publish(struct confseg *c, const struct asg_config *cfg)
{
    uint64_t gen = c->seg->pub.gen + 1;
    write_cfg(c->seg, cfg, gen);
    return gen;
}

bool confseg_read(const struct confseg *c, struct asg_config *out, uint64_t *gen)
{
    struct confseg_pub *copy = c->seg ? malloc(sizeof *copy) : NULL;
    bool ok = copy && table_seq_copy(copy, &c->seg->pub, sizeof *copy, &c->seg->seq);
    if (ok) {
        *out = copy->cfg;
        *gen = copy->gen;
    }
    free(copy);
    return ok;
}

int confseg_open_role(const struct table *t, struct confseg *c, struct asg_config *cfg, uint64_t *gen)
{
    char err[CONFSEG_NAME_MAX + 200];
    if (confseg_attach_table(t, c, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    confseg_refresh(c, cfg, gen);
    return 0;
}

bool confseg_refresh(const struct confseg *c, struct asg_config *cfg, uint64_t *gen)
{
    uint64_t g = 0;
    struct asg_config next;
    if (!confseg_read(c, &next, &g) || g == *gen || g == 0)
        return false;
    *cfg = next;
    *gen = g;
    log_set_level((enum log_level)cfg->log_level);
    log_set_facility(config_log_facility(cfg));
    log_info("config generation %llu applied", (unsigned long long)g);
    return true;
}
