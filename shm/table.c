#define _GNU_SOURCE
#include "table.h"
#include "tabledir.h"
#include "../common/util.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[ROW_STATE_COUNT] = {"free", "pending", "running",
                                                          "unhealthy", "terminating",
                                                          "launching:wait", "terminating:wait"};

static const char *const event_names[] = {"scale", "launch", "terminate", "health",
                                          "role", "config", "operator", "balancer", "rollout",
                                          "lifecycle", "suspend"};
static const char *const cause_names[] = {"load", "bounds", "operator"};
const double probe_bucket_ms[PROBE_BUCKETS - 1] = {0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000};

const char *event_kind_name(uint32_t k) { return k < EV_KIND_COUNT ? event_names[k] : "?"; }
const char *action_cause_name(uint32_t c) { return c < CAUSE_COUNT ? cause_names[c] : "?"; }

static const char *const refusal_names[REFUSED_COUNT] = {"register", "deregister", "control", "http",
                                                           "join", "connection"};
const char *refusal_kind_name(uint32_t k) { return k < REFUSED_COUNT ? refusal_names[k] : "?"; }

static const char *const lb_state_names[LBS_COUNT] = {"none", "added", "draining", "removed"};
const char *lb_state_name(uint32_t st) { return st < LBS_COUNT ? lb_state_names[st] : "invalid"; }

const char *row_state_name(uint32_t st)
{
    return st < ROW_STATE_COUNT ? state_names[st] : "invalid";
}

const char *ha_role_name(uint32_t role)
{
    return role == HA_LEADER ? "leader" : role == HA_STANDBY ? "standby" : "off";
}

static const char *const rollout_phase_names[RO_PHASE_COUNT] = {
    "none", "running", "paused", "succeeded", "failed", "rolled_back", "cancelled"};

const char *rollout_phase_name(uint32_t phase)
{
    return phase < RO_PHASE_COUNT ? rollout_phase_names[phase] : "?";
}

/* The rows and id hashes, then the layout's directory (shm/tabledir.h). */
static size_t table_bytes(uint32_t capacity)
{
    return sizeof(struct table_hdr) + sizeof(struct table_log) +
           (size_t)capacity * (sizeof(struct table_row) + sizeof(uint32_t)) +
           tabledir_bytes(&table_layout_current);
}

static void map_rows(struct table *t)
{
    t->log = (struct table_log *)((char *)t->hdr + sizeof(struct table_hdr));
    t->rows = (struct table_row *)((char *)t->log + sizeof(struct table_log));
    t->idhash = (_Atomic uint32_t *)(t->rows + t->capacity);
}

/* FNV-1a, never 0 (0 marks a free row). */
static uint32_t id_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < TABLE_ID_MAX && id[i]; i++)
        h = (h ^ (uint8_t)id[i]) * 16777619u;
    return h | 1u;
}

static void index_row(struct table *t, const struct table_row *r)
{
    uint32_t i = (uint32_t)(r - t->rows);
    atomic_store_explicit(&t->idhash[i], r->state == ROW_FREE ? 0 : id_hash(r->id),
                          memory_order_relaxed);
}

static uint64_t random_nonce(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
            v = 0;
        close(fd);
    }
    return v ? v : (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 40);
}

int table_create(const char *name, uint32_t capacity, struct table *t,
                 char *err, size_t errsize)
{
    memset(t, 0, sizeof *t);
    size_t size = table_bytes(capacity);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errsize, "shared table %s: cannot create: %s", name, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        snprintf(err, errsize, "shared table %s: cannot size to %zu bytes: %s",
                 name, size, strerror(errno));
        close(fd);
        shm_unlink(name);
        return -1;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errsize, "shared table %s: mmap: %s", name, strerror(errno));
        shm_unlink(name);
        return -1;
    }
    struct table_hdr *h = p;
    h->version = TABLE_VERSION;
    h->capacity = capacity;
    h->total_size = size;
    h->hdr_size = sizeof(struct table_hdr);
    h->row_size = sizeof(struct table_row);
    h->created_ms = now_ms();
    h->nonce = random_nonce();
    tabledir_write(&table_layout_current, p, size - tabledir_bytes(&table_layout_current), size);
    if (sem_init(&h->lock, 1, 0) != 0) { /* no waiter yet */
        snprintf(err, errsize, "shared table %s: sem_init: %s", name, strerror(errno));
        munmap(p, size);
        shm_unlink(name);
        return -1;
    }
    /* The magic goes in last: a reader never sees a half-made table. */
    atomic_thread_fence(memory_order_release);
    h->magic = TABLE_MAGIC;
    t->hdr = h;
    t->size = size;
    t->capacity = capacity;
    copy_str(t->name, sizeof t->name, name);
    map_rows(t);
    return 0;
}

/* A table of another layout version is refused by name, before any size
 * is checked (a layout of another version has other sizes): magic and
 * version lead the header in every version. */
_Static_assert(offsetof(struct table_hdr, magic) == 0 && offsetof(struct table_hdr, version) == 8,
               "magic and version lead the header in every layout version");
static bool version_refused(int fd, const char *name, char *err, size_t errsize)
{
    /* On true: fd closed, errno EPROTO. */
    struct {
        uint64_t magic;
        uint32_t version;
    } lead;
    if (pread(fd, &lead, sizeof lead, 0) != (ssize_t)sizeof lead || lead.magic != TABLE_MAGIC ||
        lead.version == TABLE_VERSION)
        return false; /* too short, or not a table: the checks below say so */
    snprintf(err, errsize, "shared table %s has layout version %u; this program reads version %u "
             "only: refusing it%s", name, lead.version, TABLE_VERSION,
             lead.version < TABLE_VERSION ? " (asgd of this version migrates an older table once the "
                                            "older asgd has stopped)"
                                          : " (a newer asgd's table: run that version)");
    close(fd);
    errno = EPROTO;
    return true;
}

/* Long because each refusal says which check failed and what to do. */
int table_attach(const char *name, bool readonly, struct table *t,
                 char *err, size_t errsize)
{
    memset(t, 0, sizeof *t);
    int fd = shm_open(name, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errsize, "no shared table %s (is asgd running with this config?)", name);
        else
            snprintf(err, errsize, "shared table %s: cannot open: %s", name, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    /* Only a table of ours: a segment another uid made (a planted one, or
     * an unprivileged manager's) would have us signal the pids it lists. */
    if (fstat(fd, &st) == 0 && (st.st_uid != geteuid() || (st.st_mode & 077) || !S_ISREG(st.st_mode))) {
        snprintf(err, errsize, "shared table %s belongs to uid %u with mode %04o, not to us (uid %u, "
                 "0600): refusing a table we did not make; remove /dev/shm%s if it is stale",
                 name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid(), name);
        close(fd);
        errno = EPERM;
        return -1;
    }
    if (version_refused(fd, name, err, errsize))
        return -1;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct table_hdr)) {
        snprintf(err, errsize, "shared table %s: %jd bytes is smaller than a header (%zu)",
                 name, (intmax_t)st.st_size, sizeof(struct table_hdr));
        close(fd);
        errno = EINVAL;
        return -1;
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        int e = errno;
        snprintf(err, errsize, "shared table %s: mmap: %s", name, strerror(e));
        errno = e;
        return -1;
    }
    const struct table_hdr *h = p;
    const char *why = NULL;
    if (h->magic != TABLE_MAGIC)
        why = "wrong magic (not an asg table, or not finished being created)";
    else if (h->hdr_size != sizeof(struct table_hdr) || h->row_size != sizeof(struct table_row))
        why = "header or row size differs from this program's";
    else if (h->capacity == 0 || h->capacity > 1000000 || h->total_size != size ||
             table_bytes(h->capacity) != size)
        why = "size does not match its capacity";
    if (why) {
        snprintf(err, errsize, "shared table %s: %s (version %u, %zu bytes); "
                 "stop every asg process, or remove /dev/shm%s if none runs",
                 name, why, h->magic == TABLE_MAGIC ? h->version : 0, size, name);
        munmap(p, size);
        errno = EINVAL;
        return -1;
    }
    t->hdr = p;
    t->size = size;
    t->capacity = h->capacity;
    t->readonly = readonly;
    copy_str(t->name, sizeof t->name, name);
    map_rows(t);
    return 0;
}

void table_detach(struct table *t)
{
    if (t->hdr)
        munmap(t->hdr, t->size);
    t->hdr = NULL;
    t->rows = NULL;
}

int table_unlink(const char *name) { return shm_unlink(name); }

/* Every layout since 18 keeps the supervisor's pid here. */
_Static_assert(offsetof(struct table_hdr, pid_supervisor) == 112, "pid_supervisor stays at 112");

int table_peek_other(const char *name, uint32_t *version, int32_t *pid_supervisor, char *err, size_t errsize)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    struct stat st;
    struct {
        uint64_t magic;
        uint32_t version;
    } lead;
    int32_t pid = 0;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
              !(st.st_mode & 077) && pread(fd, &lead, sizeof lead, 0) == (ssize_t)sizeof lead &&
              lead.magic == TABLE_MAGIC && pread(fd, &pid, sizeof pid, 112) == (ssize_t)sizeof pid;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        snprintf(err, errsize, "shared table %s: not a table of ours to look into", name);
        return -1;
    }
    *version = lead.version;
    *pid_supervisor = pid;
    return 0;
}

/* ---- the writer lock ----
 * The lock word is its holder's pid, 0 when free (as nginx's ngx_shmtx):
 * taken by compare-and-swap from 0, and from a dead holder by compare-and-
 * swap of that pid, so who holds it is never in doubt. The semaphore only
 * wakes waiters: a waiter counts itself in lock_waiters and sleeps on it
 * for at most 50 ms at a time (to look at the holder again); the unlocker
 * posts when anyone waits. A process killed anywhere in here leaves at
 * worst one spare wakeup. */

#define LOCK_NAP_MS 50

static void acquired(struct table *t)
{
    atomic_fetch_add(&t->hdr->lock_count, 1);
    atomic_store(&t->hdr->lock_since_ms, now_ms());
    if (atomic_load(&t->hdr->suspect))
        table_repair(t);
}

static bool try_take_back(struct table *t)
{
    int32_t me = (int32_t)getpid();
    return atomic_compare_exchange_strong(&t->hdr->lock_holder, &me, 0);
}

static bool try_take(struct table *t, int32_t from)
{
    int32_t expect = from;
    return atomic_compare_exchange_strong(&t->hdr->lock_holder, &expect, (int32_t)getpid());
}

static int take_over(struct table *t, int32_t dead)
{
    if (!try_take(t, dead))
        return 0; /* somebody else recovered it first */
    log_warn("shared table %s: lock holder pid %d died holding it; taking it over", t->name, (int)dead);
    atomic_store(&t->hdr->suspect, 1);
    atomic_fetch_add(&t->hdr->lock_count, 1);
    atomic_store(&t->hdr->lock_since_ms, now_ms());
    int fixed = table_repair(t);
    t->hdr->lock_recoveries++;
    log_warn("shared table %s: checked after lock recovery, %d row(s) corrected", t->name, fixed);
    return 1;
}

static void nap(struct table *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += LOCK_NAP_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    atomic_fetch_add(&t->hdr->lock_waiters, 1);
    if (atomic_load(&t->hdr->lock_holder) != 0) /* else the unlock may already have passed */
        while (sem_timedwait(&t->hdr->lock, &ts) != 0 && errno == EINTR)
            ;
    atomic_fetch_sub(&t->hdr->lock_waiters, 1);
}

int table_lock(struct table *t, int timeout_ms)
{
    int64_t start = now_ms();
    for (;;) {
        if (try_take(t, 0)) {
            acquired(t);
            return 0;
        }
        int32_t holder = atomic_load(&t->hdr->lock_holder);
        if (holder == (int32_t)getpid()) {
            log_error("shared table %s: lock taken twice by pid %d (a bug)", t->name, (int)holder);
            errno = EDEADLK;
            return -1;
        }
        if (holder > 0 && !pid_alive(holder) && take_over(t, holder))
            return 0;
        int64_t waited = now_ms() - start;
        if (waited >= timeout_ms) {
            log_warn("shared table %s: lock held by pid %d for %lld ms; gave up after %lld ms",
                     t->name, (int)holder,
                     (long long)(now_ms() - atomic_load(&t->hdr->lock_since_ms)),
                     (long long)waited);
            errno = ETIMEDOUT;
            return -1;
        }
        nap(t);
    }
}

void table_unlock(struct table *t)
{
    if (!try_take_back(t)) {
        log_error("shared table %s: unlock by pid %d, which does not hold it (holder %d)", t->name,
                  (int)getpid(), (int)atomic_load(&t->hdr->lock_holder));
        return;
    }
    /* One pending wakeup is enough: a waiter that takes it looks at the
     * word again. Without this check posts would pile up while waiters
     * nap, and later naps would return at once until they were used up. */
    int pending = 0;
    if (atomic_load(&t->hdr->lock_waiters) > 0 && sem_getvalue(&t->hdr->lock, &pending) == 0 &&
        pending == 0)
        sem_post(&t->hdr->lock);
}

int table_recover_dead_holder(struct table *t, pid_t pid)
{
    if (atomic_load(&t->hdr->lock_holder) != (int32_t)pid)
        return 0;
    if (!take_over(t, (int32_t)pid))
        return 0;
    table_unlock(t);
    return 1;
}

static bool str_terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

/* The digest of generation gen, if the header still knows it. */
static const uint8_t *gen_digest(const struct table_hdr *h, uint64_t gen)
{
    if (gen && gen == h->spec.gen)
        return h->spec.digest;
    for (int i = 0; gen && i < SPEC_SEEN; i++)
        if (h->spec_seen[i].gen == gen)
            return h->spec_seen[i].digest;
    return NULL;
}

bool spec_gen_same(const struct table_hdr *h, uint64_t gen, uint64_t to)
{
    const uint8_t *a = gen_digest(h, gen), *b = gen_digest(h, to);
    return gen == to || (a && b && memcmp(a, b, SPEC_DIGEST_SIZE) == 0);
}

/* events_written is checked against the ring itself: a scribbled count
 * would hide every event behind numbers that never match. */
static int repair_event_count(struct table *t)
{
    struct table_log *h = t->log;
    uint64_t written = atomic_load(&h->events_written);
    if (written == 0 || h->events[(written - 1) % TABLE_EVENTS].number == written)
        return 0;
    uint64_t best = 0;
    for (uint32_t k = 0; k < TABLE_EVENTS; k++) {
        uint64_t n = h->events[k].number;
        if (n > best && (n - 1) % TABLE_EVENTS == k && n < (UINT64_MAX >> 1))
            best = n;
    }
    atomic_store(&h->events_written, best);
    log_warn("shared table %s: event count %llu did not match the log; reset to %llu", t->name,
             (unsigned long long)written, (unsigned long long)best);
    return 1;
}

int table_repair(struct table *t)
{
    int fixed = 0;
    struct table_hdr *h = t->hdr;
    if (atomic_load(&h->hseq) & 1u) {
        atomic_fetch_add(&h->hseq, 1);
        fixed++;
    }
    for (uint32_t i = 0; i < t->capacity; i++) {
        struct table_row *r = &t->rows[i];
        bool bad = false;
        if (r->state >= ROW_STATE_COUNT) {
            r->state = ROW_UNHEALTHY; /* keep the row: the provider decides */
            bad = true;
        }
        if (!str_terminated(r->id, sizeof r->id)) {
            r->id[sizeof r->id - 1] = '\0';
            bad = true;
        }
        if (!str_terminated(r->addr, sizeof r->addr)) {
            r->addr[0] = '\0';
            bad = true;
        }
        if (!str_terminated(r->reason, sizeof r->reason)) {
            r->reason[0] = '\0';
            bad = true;
        }
        if (!str_terminated(r->service_addr, sizeof r->service_addr)) {
            r->service_addr[0] = '\0';
            bad = true;
        }
        if (!str_terminated(r->launch_token, sizeof r->launch_token)) {
            r->launch_token[0] = '\0'; /* a join against it then fails */
            bad = true;
        }
        if (r->lb_state >= LBS_COUNT) {
            r->lb_state = LBS_ADDED; /* the next balancer step finds out */
            bad = true;
        }
        if (r->hist_head >= TABLE_HIST || r->hist_len > TABLE_HIST) {
            r->hist_head = r->hist_len = 0;
            bad = true;
        }
        if (atomic_load(&r->seq) & 1u) {
            atomic_fetch_add(&r->seq, 1);
            bad = true;
        }
        index_row(t, r); /* the id index is derived: rebuilt, never trusted */
        if (bad) {
            fixed++;
            log_warn("shared table %s: row %u (%s) was half-written; corrected",
                     t->name, i, r->id);
        }
    }
    fixed += repair_event_count(t);
    atomic_store(&h->suspect, 0);
    return fixed;
}

/* ---- sequence counters ---- */

void row_write_begin(struct table_row *r)
{
    atomic_fetch_add_explicit(&r->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
}

void row_write_end(struct table *t, struct table_row *r)
{
    index_row(t, r);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&r->seq, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&t->hdr->gen, 1, memory_order_relaxed);
}

void hdr_write_begin(struct table *t)
{
    atomic_fetch_add_explicit(&t->hdr->hseq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
}

void hdr_write_end(struct table *t)
{
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&t->hdr->hseq, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&t->hdr->gen, 1, memory_order_relaxed);
}

/* Copy src while *seq is stable and even. Spins briefly, then yields; gives
 * up after about 200 ms, which only a dead writer causes. */
bool table_seq_copy(void *dst, const void *src, size_t n, const _Atomic uint32_t *seq)
{
    int64_t deadline = 0;
    for (unsigned tries = 0;; tries++) {
        uint32_t s1 = atomic_load_explicit(seq, memory_order_acquire);
        if (!(s1 & 1u)) {
            memcpy(dst, src, n);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(seq, memory_order_relaxed) == s1)
                return true;
        }
        if (tries > 64) {
            if (deadline == 0)
                deadline = now_ms() + 200;
            else if (now_ms() > deadline)
                return false;
            sched_yield();
        }
    }
}

/* A copy under a sequence counter of the table's. A writer holds the
 * lock while it writes: one that is alive but starved of CPU (a busy
 * machine) is waited for up to TABLE_LOCK_WAIT_MS; only a dead one's odd
 * counter is given up on after one try. */
static bool patient_copy(const struct table *t, void *dst, const void *src, size_t n,
                         const _Atomic uint32_t *seq)
{
    int64_t until = now_ms() + TABLE_LOCK_WAIT_MS;
    for (;;) {
        if (table_seq_copy(dst, src, n, seq))
            return true;
        pid_t holder = atomic_load(&t->hdr->lock_holder);
        if (holder <= 0 || holder == getpid() || !pid_alive(holder) || now_ms() >= until)
            return false;
    }
}

bool table_read_row(const struct table *t, uint32_t i, struct table_row *out)
{
    if (i >= t->capacity)
        return false;
    const struct table_row *r = &t->rows[i];
    return patient_copy(t, out, r, sizeof *out, &r->seq);
}

bool table_read_hdr(const struct table *t, struct table_hdr *out)
{
    return patient_copy(t, out, t->hdr, sizeof *out, &t->hdr->hseq);
}

bool table_slot_used(const struct table *t, uint32_t i)
{
    return i < t->capacity && atomic_load_explicit(&t->idhash[i], memory_order_acquire) != 0;
}

/* ---- row helpers (lock held) ---- */

struct table_row *table_row_at(struct table *t, uint32_t slot, uint64_t incarnation)
{
    struct table_row *r = slot < t->capacity ? &t->rows[slot] : NULL;
    return r && r->incarnation == incarnation && r->state != ROW_FREE ? r : NULL;
}

struct table_row *table_find(struct table *t, const char *id)
{
    uint32_t h = id_hash(id);
    for (uint32_t i = 0; i < t->capacity; i++) {
        if (atomic_load_explicit(&t->idhash[i], memory_order_relaxed) != h)
            continue;
        struct table_row *r = &t->rows[i];
        if (r->state != ROW_FREE && strncmp(r->id, id, sizeof r->id) == 0)
            return r;
    }
    return NULL;
}

static struct table_row *free_row(struct table *t)
{
    for (uint32_t i = 0; i < t->capacity; i++)
        if (atomic_load_explicit(&t->idhash[i], memory_order_relaxed) == 0 &&
            t->rows[i].state == ROW_FREE)
            return &t->rows[i];
    /* A writer that died mid-free leaves a stale hash until table_repair. */
    for (uint32_t i = 0; i < t->capacity; i++)
        if (t->rows[i].state == ROW_FREE)
            return &t->rows[i];
    return NULL;
}

struct table_row *table_alloc_row(struct table *t, const char *id)
{
    struct table_row *r = free_row(t);
    if (r) {
        row_write_begin(r);
        uint64_t inc = r->incarnation + 1;
        uint32_t seq = atomic_load(&r->seq);
        memset((char *)r + sizeof r->seq, 0, sizeof *r - sizeof r->seq);
        atomic_store(&r->seq, seq);
        r->incarnation = inc;
        copy_str(r->id, sizeof r->id, id);
        return r; /* state free: the caller applies its event, then row_write_end */
    }
    return NULL;
}

void row_push_sample(struct table_row *r, double load)
{
    r->hist[r->hist_head] = (float)load;
    r->hist_head = (r->hist_head + 1) % TABLE_HIST;
    if (r->hist_len < TABLE_HIST)
        r->hist_len++;
}

int table_count(const struct table *t, uint32_t state)
{
    int n = 0;
    for (uint32_t i = 0; i < t->capacity; i++)
        if (t->rows[i].state == state)
            n++;
    return n;
}

/* ---- events and counters ---- */

void table_note(struct table *t, uint32_t kind, const char *instance, int level,
                const char *fmt, ...)
{
    char msg[1000]; /* the log gets it whole; the event keeps what fits */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_msg((enum log_level)level, "%s", msg);
    /* The slot is claimed first: the supervisor notes without the lock,
     * beside a role that holds it, and each gets its own. */
    uint64_t n = atomic_fetch_add(&t->log->events_written, 1);
    struct table_event *e = &t->log->events[n % TABLE_EVENTS];
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    e->kind = kind;
    e->number = n + 1;
    e->wall_ms = wall_ms();
    copy_str(e->instance, sizeof e->instance, instance ? instance : "");
    copy_str(e->msg, sizeof e->msg, msg);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_acq_rel);
}

/* Events claimed this close to the newest may still be being written: a
 * reader stops before one instead of passing it by. Further back, an
 * unfinished one was left by a dead writer, and is passed. */
#define EVENTS_IN_FLIGHT 16

size_t table_read_events(const struct table *t, uint64_t after, struct table_event *out, size_t max)
{
    uint64_t written = atomic_load(&t->log->events_written);
    uint64_t first = written > TABLE_EVENTS ? written - TABLE_EVENTS : 0;
    if (after > first)
        first = after;
    size_t n = 0;
    for (uint64_t k = first; k < written && n < max; k++) {
        const struct table_event *e = &t->log->events[k % TABLE_EVENTS];
        bool whole = table_seq_copy(&out[n], e, sizeof *e, &e->seq) && out[n].number == k + 1;
        if (!whole && k + EVENTS_IN_FLIGHT >= written)
            break; /* claimed, not written yet: the next read has it */
        if (whole && out[n].kind < EV_KIND_COUNT && memchr(out[n].msg, 0, sizeof out[n].msg) &&
            memchr(out[n].instance, 0, sizeof out[n].instance))
            n++; /* else overwritten meanwhile, or torn by a dead writer */
    }
    return n;
}

void table_probe_observed(struct table *t, bool ok, int64_t rtt_us)
{
    struct table_log *h = t->log;
    atomic_fetch_add_explicit(&h->probes_sent, 1, memory_order_relaxed);
    if (!ok) {
        atomic_fetch_add_explicit(&h->probes_failed, 1, memory_order_relaxed);
        return;
    }
    int b = 0;
    while (b < PROBE_BUCKETS - 1 && (double)rtt_us / 1000.0 > probe_bucket_ms[b])
        b++;
    atomic_fetch_add_explicit(&h->probe_hist[b], 1, memory_order_relaxed);
    int f = rtt_us > 1 ? (int)floor(8.0 * log2((double)rtt_us)) : 0;
    f = f < 0 ? 0 : f >= PROBE_FINE ? PROBE_FINE - 1 : f;
    atomic_fetch_add_explicit(&h->probe_fine[f], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->probe_us_sum, (uint64_t)(rtt_us > 0 ? rtt_us : 0), memory_order_relaxed);
}

#ifdef ASG_TEST_HOOKS
void table_fault_point(const char *role, struct table *t)
{
    /* Process-wide because a test arms one fault per process (ASG_FAULT).
     * armed: -1 unknown, 0 off, N: die at the Nth call. */
    static int armed = -1;
    static int calls;
    if (armed == 0)
        return;
    if (armed < 0) {
        const char *spec = getenv("ASG_FAULT");
        char want[48];
        snprintf(want, sizeof want, "%s:lock-kill:", role);
        armed = 0;
        if (spec && strncmp(spec, want, strlen(want)) == 0)
            armed = atoi(spec + strlen(want));
        if (armed < 0)
            armed = 0;
        if (armed == 0)
            return;
    }
    if (++calls == armed) {
        /* Die in the middle of a row write: the worst moment. */
        struct table_row *victim = NULL;
        for (uint32_t i = 0; i < t->capacity && !victim; i++)
            if (t->rows[i].state != ROW_FREE)
                victim = &t->rows[i];
        log_warn("ASG_FAULT: %s killing itself holding the table lock, mid-write of row %s",
                 role, victim ? victim->id : "(none)");
        if (victim)
            row_write_begin(victim);
        kill(getpid(), SIGKILL);
    }
}

void fault_stop_point(const char *role, const char *what)
{
    /* Process-wide because a test arms one fault per process (ASG_FAULT). */
    static int armed = -1, calls;
    if (armed < 0) {
        const char *spec = getenv("ASG_FAULT");
        char want[64];
        snprintf(want, sizeof want, "%s:%s:", role, what);
        armed = spec && strncmp(spec, want, strlen(want)) == 0 ? atoi(spec + strlen(want)) : 0;
    }
    if (armed > 0 && ++calls == armed) {
        log_warn("ASG_FAULT: %s stopping itself (SIGSTOP) at %s", role, what);
        raise(SIGSTOP);
    }
}

bool fault_reached(const char *role, const char *what)
{
    /* Only calls for the armed fault count (one fault per process), so
     * that the calls of other fault points do not move its count.
     * Process-wide because a test arms one fault per process. */
    static int calls;
    const char *spec = getenv("ASG_FAULT");
    char want[64];
    snprintf(want, sizeof want, "%s:%s:", role, what);
    if (!spec || strncmp(spec, want, strlen(want)) != 0)
        return false;
    int armed = atoi(spec + strlen(want));
    if (armed <= 0)
        return false;
    if (calls < armed && ++calls == armed)
        log_warn("ASG_FAULT: %s: %s from now on", role, what);
    return calls >= armed;
}
#endif
