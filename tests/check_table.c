#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/util.h"
#include "../shm/confseg.h"
#include "../shm/ops.h"
#include "../shm/table.h"
#include "check_suites.h"

static char name[64];
static struct table T;

static void setup(void)
{
    snprintf(name, sizeof name, "/asg-test-%d", (int)getpid());
    char err[512];
    table_unlink(name);
    ck_assert_msg(table_create(name, 64, &T, err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    table_detach(&T);
    table_unlink(name);
}

/* A row whose fields all derive from one number v: any torn copy shows. */
static void write_row(struct table *t, uint32_t i, uint32_t v)
{
    struct table_row *r = &t->rows[i];
    row_write_begin(r);
    r->state = ROW_RUNNING;
    snprintf(r->id, sizeof r->id, "row-%u", v);
    snprintf(r->addr, sizeof r->addr, "127.0.0.1:%u", v % 60000 + 1);
    r->load = r->cpu = r->mem = (double)v / 4294967296.0;
    r->misses = v;
    for (int k = 0; k < 8; k++)
        r->hist[k] = (float)(v & 0xffff);
    row_write_end(t, r);
}

static int check_row(const struct table_row *r)
{
    if (r->state == ROW_FREE)
        return 1;
    uint32_t v = r->misses;
    char id[64], addr[64];
    snprintf(id, sizeof id, "row-%u", v);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", v % 60000 + 1);
    double f = (double)v / 4294967296.0;
    if (strcmp(r->id, id) || strcmp(r->addr, addr) || r->load != f || r->cpu != f || r->mem != f)
        return 0;
    for (int k = 0; k < 8; k++)
        if (r->hist[k] != (float)(v & 0xffff))
            return 0;
    return 1;
}

START_TEST(test_create_attach_roundtrip)
{
    char err[512];
    struct table ro;
    ck_assert_msg(table_attach(name, true, &ro, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(ro.hdr->capacity, 64);
    ck_assert(table_lock(&T, 1000) == 0);
    struct table_row *r = table_row_new(&T, "i-1", RE_LAUNCH, "test", 0, NULL, now_ms());
    ck_assert_ptr_nonnull(r);
    struct probe_sample s = {0.5, 0.1, 0.1};
    table_probe_result(&T, r, &s, NULL, 3, now_ms());
    table_unlock(&T);
    struct table_row copy;
    ck_assert(table_read_row(&ro, (uint32_t)(r - T.rows), &copy));
    ck_assert_str_eq(copy.id, "i-1");
    ck_assert_int_eq(copy.state, ROW_RUNNING); /* pending, then it answered */
    ck_assert(copy.load == 0.5 && copy.has_sample);
    table_detach(&ro);
    /* A second create of the same name fails rather than clobbering. */
    struct table again;
    ck_assert(table_create(name, 64, &again, err, sizeof err) != 0);
}
END_TEST

START_TEST(test_hammer_writers_reader_consistent)
{
    enum { WRITERS = 4, ITER = 20000, ROWS = 8, SNAPSHOTS = 1000 };
    /* Writers go on until the reader has its snapshots (on a busy machine
     * ITER writes can be over before the reader got many): shared with
     * them, the reader's "enough" and how many writes each made. */
    struct hammer {
        atomic_int enough;
        atomic_int writes[WRITERS];
    } *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(h != MAP_FAILED);
    memset(h, 0, sizeof *h);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        ck_assert(pids[w] >= 0);
        if (pids[w] == 0) {
            uint32_t v = (uint32_t)w * 1000003u;
            int i;
            for (i = 0; i < ITER || !atomic_load(&h->enough); i++) {
                if (table_lock(&T, 5000) != 0)
                    _exit(3);
                write_row(&T, (uint32_t)(i % ROWS), v + (uint32_t)i);
                /* Each writer also counts its own work in its own row. */
                struct table_row *mine = &T.rows[ROWS + w];
                row_write_begin(mine);
                mine->state = ROW_RUNNING;
                mine->probes_ok++;
                row_write_end(&T, mine);
                table_unlock(&T);
            }
            atomic_store(&h->writes[w], i);
            _exit(0);
        }
    }
    char err[512];
    struct table ro;
    ck_assert_msg(table_attach(name, true, &ro, err, sizeof err) == 0, "%s", err);
    long snapshots = 0, torn = 0;
    int running = WRITERS;
    int64_t give_up = now_ms() + 30000;
    while (running > 0) {
        for (uint32_t i = 0; i < ROWS; i++) {
            struct table_row r;
            if (table_read_row(&ro, i, &r)) {
                snapshots++;
                torn += !check_row(&r);
            }
        }
        if (snapshots >= SNAPSHOTS || now_ms() > give_up)
            atomic_store(&h->enough, 1);
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer failed: %d", st);
            running--;
        }
    }
    ck_assert_msg(torn == 0, "%ld of %ld snapshots were torn", torn, snapshots);
    ck_assert_msg(snapshots >= SNAPSHOTS, "only %ld snapshots taken in 30 s of writes", snapshots);
    for (int w = 0; w < WRITERS; w++)
        ck_assert_int_eq(T.rows[ROWS + w].probes_ok, atomic_load(&h->writes[w])); /* no write lost */
    table_detach(&ro);
    munmap(h, sizeof *h);
}
END_TEST

/* Child: takes the lock, starts writing a row, dies by SIGKILL. */
static pid_t die_holding_lock(uint32_t row)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (table_lock(&T, 1000) != 0)
            _exit(3);
        struct table_row *r = &T.rows[row];
        row_write_begin(r);
        strcpy(r->id, "half-writ"); /* mid-write */
        raise(SIGKILL);
        _exit(4);
    }
    return pid;
}

static void fill_rows(int n)
{
    ck_assert(table_lock(&T, 1000) == 0);
    for (int i = 0; i < n; i++)
        write_row(&T, (uint32_t)i, (uint32_t)i + 100);
    table_unlock(&T);
}

START_TEST(test_lock_taken_over_from_dead_holder)
{
    fill_rows(10);
    pid_t pid = die_holding_lock(3);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ck_assert_int_eq(atomic_load(&T.hdr->lock_holder), pid);
    /* A writer that finds the holder dead takes the lock over. */
    int64_t t0 = now_ms();
    ck_assert(table_lock(&T, 3000) == 0);
    ck_assert_msg(now_ms() - t0 < 1000, "takeover took %lld ms", (long long)(now_ms() - t0));
    ck_assert_int_eq(T.hdr->lock_recoveries, 1);
    table_unlock(&T);
    /* Every row is still there and readable, the torn one included. */
    int present = 0;
    for (uint32_t i = 0; i < 64; i++) {
        struct table_row r;
        ck_assert_msg(table_read_row(&T, i, &r), "row %u unreadable after recovery", i);
        present += r.state != ROW_FREE;
    }
    ck_assert_int_eq(present, 10);
    /* And the lock works normally afterwards. */
    ck_assert(table_lock(&T, 1000) == 0);
    table_unlock(&T);
}
END_TEST

/* The lock word is the holder's pid: a waiter killed in its sleep, or a
 * process that took a wakeup and died, leaves the lock free and usable at
 * once; a waiter is woken by the unlock, not by its nap running out. */
START_TEST(test_killed_waiter_leaves_the_lock_free)
{
    fill_rows(4);
    ck_assert(table_lock(&T, 1000) == 0);
    pid_t waiter = fork();
    if (waiter == 0)
        _exit(table_lock(&T, 60000) == 0 ? 0 : 1);
    /* It counts itself as a waiter, then it is killed asleep. */
    int64_t deadline = now_ms() + 5000;
    while (atomic_load(&T.hdr->lock_waiters) == 0 && now_ms() < deadline)
        sched_yield();
    ck_assert_uint_eq(atomic_load(&T.hdr->lock_waiters), 1);
    kill(waiter, SIGKILL);
    int st;
    ck_assert(waitpid(waiter, &st, 0) == waiter);
    table_unlock(&T);
    ck_assert_int_eq(atomic_load(&T.hdr->lock_holder), 0);
    pid_t thief = fork();
    if (thief == 0) {
        while (sem_wait(&T.hdr->lock) != 0) /* takes a wakeup meant for nobody */
            ;
        raise(SIGKILL);
    }
    ck_assert(waitpid(thief, &st, 0) == thief);
    ck_assert(table_lock(&T, 0) == 0); /* free: taken at the first try, no waiting */
    ck_assert_int_eq(T.hdr->lock_recoveries, 0);
    ck_assert_int_eq(table_count(&T, ROW_RUNNING), 4);
    /* A live waiter is woken by the unlock. */
    pid_t next = fork();
    if (next == 0)
        _exit(table_lock(&T, 60000) == 0 ? 0 : 1);
    while (atomic_load(&T.hdr->lock_waiters) == 0)
        sched_yield();
    table_unlock(&T);
    ck_assert(waitpid(next, &st, 0) == next);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Unlocking a lock this process does not hold changes nothing. */
    atomic_store(&T.hdr->lock_holder, next); /* as if the child still held it */
    table_unlock(&T);
    ck_assert_int_eq(atomic_load(&T.hdr->lock_holder), next);
    atomic_store(&T.hdr->lock_holder, 0);
}
END_TEST

START_TEST(test_supervisor_recovers_reaped_holder)
{
    fill_rows(5);
    pid_t pid = die_holding_lock(1);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_int_eq(table_recover_dead_holder(&T, pid + 100000), 0); /* not the holder */
    ck_assert_int_eq(table_recover_dead_holder(&T, pid), 1);
    ck_assert_int_eq(atomic_load(&T.hdr->suspect), 0);
    ck_assert(table_lock(&T, 0) == 0); /* free at once, no takeover needed */
    ck_assert_int_eq(table_count(&T, ROW_RUNNING), 5);
    table_unlock(&T);
}
END_TEST

START_TEST(test_reader_gives_up_on_dead_writer)
{
    /* A row left odd by a dead writer: a reader must not spin forever. */
    atomic_fetch_add(&T.rows[2].seq, 1);
    struct table_row r;
    int64_t t0 = now_ms();
    ck_assert(!table_read_row(&T, 2, &r));
    ck_assert(now_ms() - t0 < 2000);
}
END_TEST

/* A writer that is alive but slow (starved of CPU on a busy machine)
 * holds a row odd for longer than one try of a reader: the reader waits
 * for it, and gets the row it wrote. */
START_TEST(test_reader_waits_for_a_live_writer)
{
    pid_t child = fork();
    ck_assert(child >= 0);
    if (child == 0) {
        if (table_lock(&T, TABLE_LOCK_WAIT_MS) != 0)
            _exit(2);
        row_write_begin(&T.rows[3]);
        usleep(600 * 1000); /* the writer's own slowness, not a wait of the test */
        T.rows[3].misses = 7;
        row_write_end(&T, &T.rows[3]);
        table_unlock(&T);
        _exit(0);
    }
    while (!(atomic_load(&T.rows[3].seq) & 1u))
        sched_yield(); /* until the writer is in the row */
    struct table_row r;
    ck_assert(table_read_row(&T, 3, &r));
    ck_assert_uint_eq(r.misses, 7);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

#define NOTES 3000
static pthread_barrier_t notes_start;

static void *note_unlocked(void *arg)
{
    pthread_barrier_wait(&notes_start);
    for (int i = 0; i < NOTES; i++)
        table_note(arg, EV_ROLE, NULL, LOG_LVL_DEBUG, "supervisor %d", i);
    return NULL;
}

/* The supervisor notes without the lock, beside a role that holds it:
 * every event gets its own number and slot, none lost or doubled. */
START_TEST(test_notes_without_the_lock_beside_a_holder)
{
    log_set_level(LOG_LVL_INFO); /* the notes are the test, not the log */
    pthread_t th;
    ck_assert_int_eq(pthread_barrier_init(&notes_start, NULL, 2), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, note_unlocked, &T), 0);
    ck_assert_int_eq(table_lock(&T, TABLE_LOCK_WAIT_MS), 0);
    pthread_barrier_wait(&notes_start);
    for (int i = 0; i < NOTES; i++)
        table_note(&T, EV_SCALE, NULL, LOG_LVL_DEBUG, "role %d", i);
    table_unlock(&T);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&notes_start);
    uint64_t written = atomic_load(&T.log->events_written);
    ck_assert_uint_eq(written, 2 * NOTES);
    static struct table_event ev[TABLE_EVENTS];
    size_t n = table_read_events(&T, 0, ev, TABLE_EVENTS);
    ck_assert_uint_eq(n, TABLE_EVENTS); /* the newest, whole */
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(ev[i].number, 2 * NOTES - TABLE_EVENTS + i + 1);
}
END_TEST

START_TEST(test_live_holder_times_out)
{
    ck_assert(table_lock(&T, 1000) == 0); /* we hold it and are alive */
    pid_t pid = fork();
    if (pid == 0)
        _exit(table_lock(&T, 300) == 0 ? 1 : 0);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock taken from a live holder");
    table_unlock(&T);
}
END_TEST

static void corrupt_and_expect(size_t off, const void *bytes, size_t n, const char *why)
{
    struct table_hdr saved = *T.hdr;
    memcpy((char *)T.hdr + off, bytes, n);
    char err[512];
    struct table t2;
    ck_assert(table_attach(name, true, &t2, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, why) != NULL, "'%s' does not say '%s'", err, why);
    memcpy(T.hdr, &saved, sizeof saved);
}

START_TEST(test_wrong_layout_refused)
{
    uint64_t magic = 0x1234;
    corrupt_and_expect(offsetof(struct table_hdr, magic), &magic, sizeof magic, "wrong magic");
    uint32_t version = 99;
    corrupt_and_expect(offsetof(struct table_hdr, version), &version, sizeof version,
                       "layout version");
    uint32_t rowsize = 12;
    corrupt_and_expect(offsetof(struct table_hdr, row_size), &rowsize, sizeof rowsize,
                       "row size");
    uint32_t cap = 65;
    corrupt_and_expect(offsetof(struct table_hdr, capacity), &cap, sizeof cap, "size does not match");
    /* A segment shorter than a header. */
    char small[64], err[512];
    snprintf(small, sizeof small, "/asg-test-small-%d", (int)getpid());
    int fd = shm_open(small, O_RDWR | O_CREAT, 0600);
    ck_assert(fd >= 0 && ftruncate(fd, 100) == 0);
    close(fd);
    struct table t2;
    ck_assert(table_attach(small, true, &t2, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "smaller than a header") != NULL, "%s", err);
    shm_unlink(small);
    ck_assert(table_attach("/asg-test-none", true, &t2, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "no shared table") != NULL, "%s", err);
}
END_TEST

/* A table of another layout version (an older binary's, left running or
 * left behind) is refused by name: the segment, its version and ours. */
START_TEST(test_other_version_refused_by_name)
{
    uint32_t mine = T.hdr->version;
    ck_assert_uint_eq(mine, TABLE_VERSION);
    T.hdr->version = TABLE_VERSION - 1;
    T.hdr->hdr_size = 1000; /* its sizes differ too: the version is what is named */
    char err[512], want[64];
    struct table t2;
    errno = 0;
    ck_assert(table_attach(name, false, &t2, err, sizeof err) != 0);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_msg(strstr(err, name) != NULL, "'%s' does not name the segment", err);
    snprintf(want, sizeof want, "layout version %d", TABLE_VERSION - 1);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    snprintf(want, sizeof want, "reads version %d", TABLE_VERSION);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    T.hdr->version = mine;
    T.hdr->hdr_size = sizeof(struct table_hdr);
    ck_assert_msg(table_attach(name, true, &t2, err, sizeof err) == 0, "%s", err);
    table_detach(&t2);
}
END_TEST

/* The published config: a reader copies whole generations, and refuses a
 * segment written with another config layout (a manager of another
 * version), naming both sizes. */
START_TEST(test_config_segment_generations)
{
    struct asg_config cfg, got;
    config_defaults(&cfg);
    cfg.max_instances = 7;
    char err[512];
    struct confseg w, r;
    ck_assert_msg(confseg_create(name, &cfg, 5, &w, err, sizeof err) == 0, "%s", err);
    ck_assert(strncmp(w.name, name, strlen(name)) == 0);
    struct stat st;
    char path[200];
    snprintf(path, sizeof path, "/dev/shm%s", w.name);
    ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    table_lock(&T, 1000);
    table_supervisor_started(&T, "web", NULL, NULL, w.name);
    table_unlock(&T);
    ck_assert_msg(confseg_attach_table(&T, &r, err, sizeof err) == 0, "%s", err);
    uint64_t gen = 0;
    ck_assert(confseg_refresh(&r, &got, &gen));
    ck_assert_uint_eq(gen, 5);
    ck_assert_int_eq(got.max_instances, 7);
    ck_assert(!confseg_refresh(&r, &got, &gen)); /* nothing new */
    cfg.max_instances = 9;
    ck_assert_uint_eq(confseg_publish(&w, &cfg), 6);
    ck_assert(confseg_refresh(&r, &got, &gen));
    ck_assert(gen == 6 && got.max_instances == 9);
    /* The reader's mapping is read-only, and cannot be made writable. */
    ck_assert(mprotect(r.seg, r.size, PROT_READ | PROT_WRITE) != 0 && errno == EACCES);
    confseg_detach(&r);
    w.seg->cfg_size += 8;
    ck_assert(confseg_attach(w.name, &r, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, w.name) && strstr(err, "config"), "%s", err);
    confseg_detach(&w);
    confseg_unlink(w.name);
}
END_TEST

/* A killed supervisor's config segment whose table was then removed is
 * swept at the next start; one whose table is there is kept. name plays
 * shm.name here: tables are named after it with a suffix. */
START_TEST(test_orphan_config_segments_swept)
{
    struct asg_config cfg;
    config_defaults(&cfg);
    char err[512], live[96], gone[96], path[200];
    snprintf(live, sizeof live, "%s.fedcba9876543210", name);
    snprintf(gone, sizeof gone, "%s.0123456789abcdef", name);
    struct table t2;
    table_unlink(live);
    ck_assert_msg(table_create(live, 4, &t2, err, sizeof err) == 0, "%s", err);
    struct confseg kept, orphan;
    ck_assert_msg(confseg_create(live, &cfg, 1, &kept, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(confseg_create(gone, &cfg, 1, &orphan, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(confseg_sweep(name), 1);
    snprintf(path, sizeof path, "/dev/shm%s", orphan.name);
    ck_assert(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "/dev/shm%s", kept.name);
    ck_assert(access(path, F_OK) == 0);
    confseg_detach(&orphan);
    confseg_detach(&kept);
    confseg_unlink(kept.name);
    table_detach(&t2);
    table_unlink(live);
}
END_TEST

START_TEST(test_repair_fixes_impossible_values)
{
    fill_rows(3);
    ck_assert(table_lock(&T, 1000) == 0);
    T.rows[0].state = 77;
    memset(T.rows[1].addr, 'x', sizeof T.rows[1].addr);
    T.rows[2].hist_head = 9999;
    ck_assert_int_eq(table_repair(&T), 3);
    ck_assert_int_eq(T.rows[0].state, ROW_UNHEALTHY); /* kept, not dropped */
    ck_assert_str_eq(T.rows[1].addr, "");
    ck_assert_int_eq(T.rows[2].hist_head, 0);
    table_unlock(&T);
}
END_TEST

/* The id index follows every committed write (alloc, rename, free) and is
 * rebuilt by table_repair when a writer left it wrong. */
START_TEST(test_find_follows_index)
{
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "web-%d", i);
        struct table_row *r = table_row_new(&T, id, RE_LAUNCH, "test", 0, NULL, now_ms());
        ck_assert_ptr_nonnull(r);
    }
    ck_assert_ptr_eq(table_find(&T, "web-17"), &T.rows[17]);
    ck_assert_ptr_null(table_find(&T, "web-170"));
    struct table_row *r = &T.rows[17];
    row_write_begin(r);
    strcpy(r->id, "i-renamed");
    row_write_end(&T, r);
    ck_assert_ptr_null(table_find(&T, "web-17"));
    ck_assert_ptr_eq(table_find(&T, "i-renamed"), r);
    ck_assert(table_gone(&T, r));
    ck_assert_ptr_null(table_find(&T, "i-renamed"));
    ck_assert_ptr_eq(table_row_new(&T, "web-new", RE_LAUNCH, "test", 0, NULL, now_ms()), r); /* the freed slot first */
    /* A writer died after changing the id but before committing it. */
    struct table_row *q = &T.rows[3];
    row_write_begin(q);
    strcpy(q->id, "half-written");
    ck_assert_ptr_null(table_find(&T, "half-written"));
    table_repair(&T);
    ck_assert_ptr_eq(table_find(&T, "half-written"), q);
    ck_assert_ptr_eq(table_find(&T, "web-new"), r);
}
END_TEST

START_TEST(test_segment_mode_0600)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    struct stat st;
    ck_assert(stat(path, &st) == 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

/* Every (state, event) pair: the legal edges move the row where the table
 * says, every other one changes nothing and is counted. */
START_TEST(test_row_state_machine)
{
    static const int want[ROW_STATE_COUNT][RE_COUNT] = {
        /* launch, adopt, register, answer, fail, stop, gone, hold, continue */
        [ROW_FREE] = {ROW_PENDING, ROW_PENDING, -1, -1, -1, -1, -1, -1, -1},
        [ROW_PENDING] = {-1, -1, ROW_RUNNING, ROW_RUNNING, ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE,
                         ROW_LAUNCH_WAIT, -1},
        [ROW_RUNNING] = {-1, -1, ROW_RUNNING, ROW_RUNNING, ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE, -1, -1},
        [ROW_UNHEALTHY] = {-1, -1, -1, ROW_RUNNING, -1, ROW_TERMINATING, ROW_FREE, ROW_LAUNCH_WAIT, -1},
        [ROW_TERMINATING] = {-1, -1, -1, -1, -1, -1, ROW_FREE, ROW_TERM_WAIT, -1},
        [ROW_LAUNCH_WAIT] = {-1, -1, ROW_LAUNCH_WAIT, ROW_LAUNCH_WAIT, ROW_UNHEALTHY, ROW_TERMINATING, ROW_FREE,
                             ROW_LAUNCH_WAIT, ROW_RUNNING},
        [ROW_TERM_WAIT] = {-1, -1, -1, -1, -1, -1, ROW_FREE, -1, ROW_TERMINATING},
    };
    for (uint32_t s = 0; s < ROW_STATE_COUNT; s++)
        for (uint32_t e = 0; e < RE_COUNT; e++)
            ck_assert_msg(row_next_state(s, e) == want[s][e], "%s on %s", row_state_name(s),
                          row_event_name(e));
    ck_assert_int_eq(row_next_state(ROW_STATE_COUNT, RE_GONE), -1);
    ck_assert_int_eq(row_next_state(ROW_RUNNING, RE_COUNT), -1);
    /* Through the operations: an illegal event is refused and counted. */
    ck_assert(table_lock(&T, 1000) == 0);
    int64_t now = now_ms();
    struct table_row *r = table_row_new(&T, "sm-1", RE_LAUNCH, "test", 0, NULL, now);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->state, ROW_PENDING);
    uint64_t illegal = atomic_load(&T.hdr->illegal_transitions);
    ck_assert(table_stopping(&T, r, "scale in", now + 1000));
    ck_assert_int_eq(r->state, ROW_TERMINATING);
    ck_assert(!table_registered(&T, r, "127.0.0.1:9", "", now)); /* a stopping row cannot come back */
    ck_assert(!table_failed(&T, r, "died", now));
    ck_assert_int_eq(r->state, ROW_TERMINATING);
    ck_assert_str_eq(r->reason, "scale in");
    ck_assert_int_eq(atomic_load(&T.hdr->illegal_transitions), illegal + 2);
    ck_assert(table_gone(&T, r));
    ck_assert_int_eq(r->state, ROW_FREE);
    ck_assert(!table_gone(&T, r)); /* gone twice: refused */
    ck_assert_int_eq(atomic_load(&T.hdr->illegal_transitions), illegal + 3);
    ck_assert_int_eq(r->seq % 2, 0); /* every bracket closed */
    table_unlock(&T);
}
END_TEST

/* A config reverted (spec A, B, then A again) is a new generation, but the
 * instances of the first are of the spec in force: not replaced. */
START_TEST(test_an_earlier_generation_of_the_same_spec_is_current)
{
    struct spec_saved a = {.gen = 1}, b = {.gen = 2}, a2 = {.gen = 3};
    memset(a.digest, 0xaa, SPEC_DIGEST_SIZE);
    memset(b.digest, 0xbb, SPEC_DIGEST_SIZE);
    memset(a2.digest, 0xaa, SPEC_DIGEST_SIZE);
    ck_assert_int_eq(table_lock(&T, 1000), 0);
    table_spec_in_force(&T, &a, NULL, false, NULL);
    ck_assert(spec_gen_same(T.hdr, 1, T.hdr->spec.gen));
    table_spec_in_force(&T, &b, &a, false, NULL);
    ck_assert(!spec_gen_same(T.hdr, 1, T.hdr->spec.gen));
    ck_assert(spec_gen_same(T.hdr, 2, T.hdr->spec.gen));
    table_spec_in_force(&T, &a2, &b, false, NULL);
    ck_assert(spec_gen_same(T.hdr, 1, T.hdr->spec.gen));
    ck_assert(!spec_gen_same(T.hdr, 2, T.hdr->spec.gen));
    ck_assert(spec_gen_same(T.hdr, 3, T.hdr->spec.gen));
    ck_assert(!spec_gen_same(T.hdr, 0, T.hdr->spec.gen));  /* unknown is never current */
    ck_assert(!spec_gen_same(T.hdr, 7, T.hdr->spec.gen));
    for (uint64_t g = 4; g < 4 + SPEC_SEEN; g++) { /* the oldest falls out of the history */
        struct spec_saved x = {.gen = g};
        memset(x.digest, (int)g, SPEC_DIGEST_SIZE);
        table_spec_in_force(&T, &x, NULL, false, NULL);
    }
    table_spec_in_force(&T, &a2, NULL, false, NULL);
    ck_assert(!spec_gen_same(T.hdr, 1, T.hdr->spec.gen));
    table_unlock(&T);
}
END_TEST

Suite *table_suite(void)
{
    const TTest *tests[] = {
        test_an_earlier_generation_of_the_same_spec_is_current,
        test_reader_waits_for_a_live_writer,
        test_notes_without_the_lock_beside_a_holder,
        test_create_attach_roundtrip,
        test_hammer_writers_reader_consistent,
        test_lock_taken_over_from_dead_holder,
        test_supervisor_recovers_reaped_holder,
        test_killed_waiter_leaves_the_lock_free,
        test_reader_gives_up_on_dead_writer,
        test_live_holder_times_out,
        test_wrong_layout_refused,
        test_other_version_refused_by_name,
        test_config_segment_generations,
        test_orphan_config_segments_swept,
        test_repair_fixes_impossible_values,
        test_segment_mode_0600,
        test_find_follows_index,
        test_row_state_machine,
        NULL};
    return suite_of("table", "table", setup, teardown, 60, tests, NULL);
}
