/* The controller's own logic (sweep, converge, reconcile, the accounting of
 * instances that joined on their own), driven one evaluation at a time on
 * a real table with a fake provider that keeps its instances in memory. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/ctlsock.h"
#include "../common/util.h"
#include "../controller/controller.h"
#include "../lb/lb.h"
#include "../provider/provider.h"
#include "../provider/spec.h"
#include "../shm/ops.h"
#include "../shm/table.h"
#include "check_suites.h"

#define FAKE_MAX 256

/* ---- the fake balancer: members in memory ---- */

struct fake_lb {
    struct lb_member m[FAKE_MAX];
    size_t n;
    bool down;                 /* every call fails */
    int adds, drains, removes;
    int terminated_in_lb;      /* provider terminations of an instance still a member */
};

static struct fake_lb L;

static struct lb_member *lb_find(const char *name)
{
    for (size_t i = 0; i < L.n; i++)
        if (strcmp(L.m[i].name, name) == 0)
            return &L.m[i];
    return NULL;
}

static int lb_down(char *err, size_t errsize)
{
    snprintf(err, errsize, "fake balancer: down");
    return -1;
}

static int flb_list(struct lb *lb, struct lb_member **out, size_t *n, char *err, size_t errsize)
{
    (void)lb;
    if (L.down)
        return lb_down(err, errsize);
    *out = calloc(L.n + 1, sizeof **out);
    memcpy(*out, L.m, L.n * sizeof **out);
    *n = L.n;
    return 0;
}

static int flb_add(struct lb *lb, const char *nm, const char *addr, char *err, size_t errsize)
{
    (void)lb;
    if (L.down)
        return lb_down(err, errsize);
    struct lb_member *m = lb_find(nm);
    if (!m) {
        m = &L.m[L.n++];
        memset(m, 0, sizeof *m);
        copy_str(m->name, sizeof m->name, nm);
        copy_str(m->addr, sizeof m->addr, addr);
    }
    m->admin = LBM_READY;
    L.adds++;
    return 0;
}

static int flb_drain(struct lb *lb, const char *nm, const char *addr, char *err, size_t errsize)
{
    (void)lb, (void)addr;
    if (L.down)
        return lb_down(err, errsize);
    struct lb_member *m = lb_find(nm);
    if (m)
        m->admin = LBM_DRAIN;
    L.drains++;
    return 0;
}

static int flb_remove(struct lb *lb, const char *nm, const char *addr, char *err, size_t errsize)
{
    (void)lb, (void)addr;
    if (L.down)
        return lb_down(err, errsize);
    struct lb_member *m = lb_find(nm);
    if (m)
        *m = L.m[--L.n];
    L.removes++;
    return 0;
}

static const struct lb_ops fake_lb_ops = {
    .name = "fakelb", .list = flb_list, .add = flb_add, .drain = flb_drain, .remove = flb_remove};

/* ---- the fake provider ---- */

struct fake {
    struct provider_instance inst[FAKE_MAX];
    size_t n;
    int launches, terminations;
    int fail_next;         /* launches to answer LAUNCH_FAILED */
    int unknown_next;      /* launches to answer LAUNCH_UNKNOWN (after creating) */
};

static struct fake F;

static struct provider_instance *fake_find(const char *id_or_token)
{
    for (size_t i = 0; i < F.n; i++)
        if (strcmp(F.inst[i].id, id_or_token) == 0 || strcmp(F.inst[i].token, id_or_token) == 0)
            return &F.inst[i];
    return NULL;
}

/* Like EC2 with a ClientToken: asking again for the same row returns the
 * instance made the first time. */
static int fake_launch(struct provider *p, const char *id, struct provider_instance *out,
                       char *err, size_t errsize)
{
    char token[72];
    provider_launch_token(p, id, token, sizeof token);
    if (F.fail_next > 0) {
        F.fail_next--;
        snprintf(err, errsize, "fake: no capacity");
        return LAUNCH_FAILED;
    }
    struct provider_instance *in = fake_find(token);
    if (!in) {
        ck_assert_uint_lt(F.n, FAKE_MAX);
        in = &F.inst[F.n++];
        memset(in, 0, sizeof *in);
        snprintf(in->id, sizeof in->id, "i-%04zu", F.n);
        copy_str(in->token, sizeof in->token, token);
        snprintf(in->addr, sizeof in->addr, "127.0.0.1:%zu", 20000 + F.n);
        in->alive = true;
        F.launches++;
    }
    if (F.unknown_next > 0) {
        F.unknown_next--;
        snprintf(err, errsize, "fake: timed out");
        return LAUNCH_UNKNOWN;
    }
    *out = *in;
    return LAUNCH_OK;
}

static int fake_terminate(struct provider *p, const struct provider_handle *h, bool force, char *err,
                          size_t errsize)
{
    (void)p, (void)force, (void)err, (void)errsize;
    struct provider_instance *in = fake_find(h->id);
    if (in && in->alive) {
        in->alive = false;
        F.terminations++;
        L.terminated_in_lb += lb_find(h->id) != NULL;
    }
    return 0;
}

static bool fake_gone(struct provider *p, const struct provider_handle *h)
{
    (void)p;
    struct provider_instance *in = fake_find(h->id);
    return !in || !in->alive;
}

static int fake_list(struct provider *p, struct provider_instance **out, size_t *n, char *err,
                     size_t errsize)
{
    (void)p, (void)err, (void)errsize;
    *out = calloc(F.n + 1, sizeof **out);
    *n = 0;
    for (size_t i = 0; i < F.n; i++)
        if (F.inst[i].alive)
            (*out)[(*n)++] = F.inst[i];
    return 0;
}

static const struct provider_ops fake_ops = {
    .name = "fake", .launch = fake_launch, .terminate = fake_terminate, .gone = fake_gone,
    .list = fake_list};

/* ---- a table and a controller per test ---- */

static char name[64];
static struct table T;
static struct asg_config cfg;
static struct ctl *C;

static void setup(void)
{
    memset(&F, 0, sizeof F);
    memset(&L, 0, sizeof L);
    snprintf(name, sizeof name, "/asg-ctl-test-%d", (int)getpid());
    char err[512];
    table_unlink(name);
    ck_assert_msg(table_create(name, 64, &T, err, sizeof err) == 0, "%s", err);
    config_defaults(&cfg);
    copy_str(cfg.group_name, sizeof cfg.group_name, "web");
    cfg.min_instances = 2;
    cfg.desired_instances = 3;
    cfg.max_instances = 30;
    cfg.scale_out_above = 1.0; /* no load-driven scaling: these tests are about the group */
    cfg.scale_in_below = 0.0;
    table_lock(&T, 1000);
    table_supervisor_started(&T, cfg.group_name, NULL, NULL, NULL);
    table_unlock(&T);
    C = controller_open(&T, &cfg, &fake_ops, &F);
}

static void teardown(void)
{
    controller_close(C);
    table_detach(&T);
    table_unlink(name);
}

/* The controller again, with what the test changed in cfg. */
static void reopen(void)
{
    controller_close(C);
    C = controller_open(&T, &cfg, &fake_ops, &F);
}

static int count(uint32_t state)
{
    return table_count(&T, state);
}

/* What the monitor would do when every launched agent registers. */
static void all_register(void)
{
    table_lock(&T, 1000);
    for (uint32_t i = 0; i < T.capacity; i++) {
        struct table_row *r = &T.rows[i];
        if (r->state == ROW_PENDING && !(r->flags & ROW_F_UNCONFIRMED))
            table_registered(&T, r, r->addr[0] ? r->addr : "127.0.0.1:9", "", now_ms());
    }
    table_unlock(&T);
}

static int alive_instances(void)
{
    int n = 0;
    for (size_t i = 0; i < F.n; i++)
        n += F.inst[i].alive;
    return n;
}

/* ---- the tests ---- */

START_TEST(test_converges_to_desired_with_one_instance_each)
{
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_PENDING), 3);
    ck_assert_int_eq(F.launches, 3);
    /* Renamed after the provider's ids, and nothing launched twice. */
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_PENDING)
            ck_assert_msg(strncmp(T.rows[i].id, "i-", 2) == 0, "%s", T.rows[i].id);
    all_register();
    controller_evaluate(C);
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_RUNNING), 3);
    ck_assert_int_eq(F.launches, 3);
}
END_TEST

START_TEST(test_a_lost_launch_answer_makes_no_second_instance)
{
    F.unknown_next = 3; /* every first answer lost, the instances made anyway */
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_PENDING), 3);
    ck_assert_int_eq(F.launches, 3);
    /* Asked again with the same token once the backoff allows it. */
    for (int k = 0; k < 200 && (T.rows[0].flags & ROW_F_UNCONFIRMED); k++) {
        controller_evaluate(C);
        usleep(10000);
    }
    for (uint32_t i = 0; i < T.capacity; i++)
        ck_assert(!(T.rows[i].state == ROW_PENDING && (T.rows[i].flags & ROW_F_UNCONFIRMED)));
    ck_assert_int_eq(F.launches, 3);
    ck_assert_int_eq(count(ROW_PENDING), 3);
}
END_TEST

START_TEST(test_failed_launch_frees_its_row_and_backs_off)
{
    F.fail_next = 100;
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_PENDING), 0);
    ck_assert_int_eq(F.launches, 0);
    controller_evaluate(C); /* within the backoff: no new attempt */
    ck_assert_int_eq(F.fail_next, 100 - 3);
}
END_TEST

START_TEST(test_unhealthy_replacements_are_paced)
{
    cfg.desired_instances = 20;
    reopen();
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_RUNNING), 20);
    table_lock(&T, 1000);
    int marked = 0;
    for (uint32_t i = 0; i < T.capacity && marked < 10; i++)
        if (T.rows[i].state == ROW_RUNNING && table_failed(&T, &T.rows[i], "test: missed probes", now_ms()))
            marked++;
    table_unlock(&T);
    controller_evaluate(C);
    /* A tenth of the group at a time: 2 of 20 stopped, the rest wait. */
    ck_assert_int_ge(F.terminations, 1);
    ck_assert_int_le(F.terminations, 2);
    ck_assert_int_ge(count(ROW_UNHEALTHY), 8);
    /* A waiting one that answers again rejoins as running. */
    table_lock(&T, 1000);
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_UNHEALTHY) {
            struct probe_sample s = {0.5, 0.1, 0.1};
            ck_assert_int_eq(table_probe_result(&T, &T.rows[i], &s, NULL, 3, now_ms()), PROBE_REJOINED);
            break;
        }
    table_unlock(&T);
    ck_assert_int_ge(count(ROW_RUNNING), 11);
}
END_TEST

START_TEST(test_boot_timeout_replaces_a_silent_instance)
{
    cfg.boot_timeout_ms = 50;
    reopen();
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_PENDING), 3);
    int64_t deadline = now_ms() + 5000;
    while (F.terminations < 3 && now_ms() < deadline) {
        controller_evaluate(C);
        usleep(10000);
    }
    ck_assert_int_ge(F.terminations, 3); /* none registered: all stopped */
    ck_assert_int_le(alive_instances(), 3);
}
END_TEST

/* Meanwhile, as the monitor would: every launched agent registers; and the
 * first row's instance is gone and its slot reused by a newcomer (today only
 * the controller itself makes rows, but a plan does not count on it). */
static void registered_meanwhile(void *arg)
{
    (void)arg;
    all_register();
    table_lock(&T, 1000);
    table_gone(&T, &T.rows[0]);
    ck_assert_ptr_nonnull(table_row_new(&T, "web-newcomer", RE_ADOPT, "test", 0, NULL, now_ms()));
    table_unlock(&T);
}

/* A plan decided on a view the table has overtaken: its steps reach only
 * rows still as the view saw them (slot, incarnation, state). The launches
 * timed out in the view; by the time the plan is applied they registered,
 * and one slot holds another instance: nothing is stopped. */
START_TEST(test_a_plan_on_a_stale_view_touches_no_row_that_moved_on)
{
    cfg.boot_timeout_ms = 1000;
    reopen();
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_PENDING), 3);
    table_lock(&T, 1000);
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_PENDING)
            table_boot_clock_restart(&T, &T.rows[i], now_ms() - 5000); /* past the boot timeout */
    table_unlock(&T);
    uint64_t inc = T.rows[0].incarnation;
    controller_between_decide_and_apply(C, registered_meanwhile, NULL);
    controller_evaluate(C);
    controller_between_decide_and_apply(C, NULL, NULL);
    ck_assert_int_eq(F.terminations, 0);
    ck_assert_int_eq(count(ROW_TERMINATING), 0);
    ck_assert_str_eq(T.rows[0].id, "web-newcomer");
    ck_assert_uint_ne(T.rows[0].incarnation, inc);
    ck_assert_int_eq(T.rows[0].state, ROW_PENDING);
    ck_assert_int_eq(count(ROW_RUNNING), 2);
}
END_TEST

/* A row the view cannot read (a writer died half-way through it, or was
 * starved of the CPU past the lock's wait) is still an instance: at the
 * group's maximum the plan must not launch one more in its place. */
START_TEST(test_a_row_the_view_cannot_read_is_not_launched_for)
{
    cfg.max_instances = 3;
    reopen();
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_RUNNING), 3);
    ck_assert_int_eq(F.launches, 3);
    struct table_row *r = NULL;
    for (uint32_t i = 0; i < T.capacity && !r; i++)
        if (T.rows[i].state == ROW_RUNNING)
            r = &T.rows[i];
    atomic_fetch_add(&r->seq, 1); /* odd: a write begun, never ended */
    controller_evaluate(C);
    atomic_fetch_add(&r->seq, 1);
    ck_assert_int_eq(F.launches, 3);
    ck_assert_int_eq(T.capacity - (uint32_t)count(ROW_FREE), 3);
}
END_TEST

/* What the monitor does when an unknown agent registers: it records the
 * request only; the controller admits it at its next look. */
static struct table_row *ask_to_join(const char *id)
{
    table_lock(&T, 1000);
    ck_assert(table_inbox_ask(&T, id, "127.0.0.1:9", "", now_ms()));
    ck_assert_ptr_null(table_find(&T, id));
    table_unlock(&T);
    controller_evaluate(C);
    table_lock(&T, 1000);
    struct table_row *r = table_find(&T, id);
    table_unlock(&T);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(table_inbox_find(&T, id)); /* answered */
    return r;
}

START_TEST(test_joined_instances_move_the_target_both_ways)
{
    cfg.adopt_unknown = true;
    reopen();
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    ck_assert_int_eq(T.hdr->ctl.target, 3);
    /* Two strangers ask to join; the controller admits them: joined rows,
     * running, counted into the target. */
    table_lock(&T, 1000);
    ck_assert(table_inbox_ask(&T, "swarm-0", "127.0.0.1:9", "", now_ms()));
    ck_assert(table_inbox_ask(&T, "swarm-1", "127.0.0.1:9", "", now_ms()));
    table_unlock(&T);
    controller_evaluate(C);
    table_lock(&T, 1000);
    struct table_row *a = table_find(&T, "swarm-0"), *b = table_find(&T, "swarm-1");
    table_unlock(&T);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(a->flags & ROW_F_JOINED);
    ck_assert_int_eq(a->state, ROW_RUNNING);
    ck_assert_str_eq(a->reason, "registered");
    ck_assert_int_eq(T.hdr->ctl.target, 5);
    ck_assert_int_eq(table_joined_uncounted(&T), 0);
    ck_assert_int_eq(F.launches, 3); /* nothing launched, nothing scaled in for them */
    ck_assert_int_eq(F.terminations, 0);
    /* One deregisters (the monitor records it): the controller stops it,
     * the target falls and it is not replaced. */
    table_lock(&T, 1000);
    ck_assert(table_deregistered(&T, a));
    ck_assert_int_eq(a->state, ROW_RUNNING); /* a fact, not a stop */
    table_unlock(&T);
    controller_evaluate(C);
    ck_assert(a->state == ROW_TERMINATING || a->state == ROW_FREE); /* stopped (the fake has no such instance: gone) */
    controller_evaluate(C);
    ck_assert_int_eq(T.hdr->ctl.target, 4);
    ck_assert_int_eq(F.launches, 3);
    /* The other goes silent: it leaves the group the same way. */
    table_lock(&T, 1000);
    ck_assert(table_failed(&T, b, "missed probes", now_ms()));
    table_unlock(&T);
    controller_evaluate(C);
    controller_evaluate(C);
    ck_assert_int_eq(T.hdr->ctl.target, 3);
    ck_assert_int_eq(F.launches, 3);
}
END_TEST

/* The bounds the controller admits against are the ones in force: at the
 * maximum, a request is refused with its reason, kept for the monitor to
 * tell the agent; without adoption on, none is admitted. */
START_TEST(test_admission_refuses_at_the_maximum_in_force)
{
    cfg.adopt_unknown = true;
    cfg.max_instances = 4;
    reopen();
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    ask_to_join("swarm-0"); /* 3 + 1: at the maximum now */
    table_lock(&T, 1000);
    ck_assert(table_inbox_ask(&T, "swarm-1", "127.0.0.1:9", "", now_ms()));
    table_unlock(&T);
    controller_evaluate(C);
    ck_assert_ptr_null(table_find(&T, "swarm-1"));
    const struct inbox_entry *e = table_inbox_find(&T, "swarm-1");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->state, INBOX_REFUSED);
    ck_assert_str_eq(e->reason, "the group is at its maximum size (4)");
    ck_assert_int_eq(T.hdr->ctl.target, 4);
    ck_assert_int_eq(F.launches, 3);
}
END_TEST

/* The inbox is small and fixed: when every entry waits, a newcomer is
 * turned away (it asks again) rather than pushing out one that asked
 * first; an answered refusal not yet told is the first to make room. */
START_TEST(test_the_inbox_is_bounded_and_keeps_who_asked_first)
{
    char id[32];
    table_lock(&T, 1000);
    for (int k = 0; k < TABLE_INBOX; k++) {
        snprintf(id, sizeof id, "early-%d", k);
        ck_assert(table_inbox_ask(&T, id, "127.0.0.1:9", "", now_ms()));
    }
    ck_assert(!table_inbox_ask(&T, "late-1", "127.0.0.1:9", "", now_ms()));
    ck_assert(table_inbox_ask(&T, "early-3", "127.0.0.1:10", "", now_ms())); /* asking again: refreshed */
    ck_assert_str_eq(table_inbox_find(&T, "early-3")->addr, "127.0.0.1:10");
    table_inbox_refuse(&T, table_inbox_find(&T, "early-5"), "the group is at its maximum size (3)", false);
    ck_assert(table_inbox_ask(&T, "late-1", "127.0.0.1:9", "", now_ms()));
    ck_assert_ptr_null(table_inbox_find(&T, "early-5"));
    for (int k = 0; k < TABLE_INBOX; k++) {
        snprintf(id, sizeof id, "early-%d", k);
        ck_assert(k == 5 || table_inbox_find(&T, id) != NULL);
    }
    table_unlock(&T);
}
END_TEST

/* The inbox is another process's writing: entries a buggy or dying
 * monitor left with a state out of range, or with an id not ended, are
 * dropped by the controller, not kept for ever (they would never be
 * answered, nor ever make room for an agent asking). */
START_TEST(test_garbage_in_the_inbox_is_dropped_not_kept)
{
    table_lock(&T, 1000);
    for (int k = 0; k < TABLE_INBOX; k++) {
        struct inbox_entry *e = &T.hdr->inbox[k];
        memset(e, 'x', sizeof *e); /* no string ended */
        e->seq = (uint64_t)k + 1;
        e->state = k % 2 ? INBOX_WAITING : 7 + (uint32_t)k;
    }
    ck_assert(!table_inbox_ask(&T, "late-1", "127.0.0.1:9", "", now_ms())); /* full of garbage */
    table_unlock(&T);
    controller_evaluate(C);
    table_lock(&T, 1000);
    for (int k = 0; k < TABLE_INBOX; k++)
        ck_assert_msg(T.hdr->inbox[k].state == INBOX_FREE, "entry %d kept in state %u", k, T.hdr->inbox[k].state);
    ck_assert(table_inbox_ask(&T, "late-1", "127.0.0.1:9", "", now_ms()));
    table_unlock(&T);
}
END_TEST

/* Low load has been counted for a while (the group sits at desired):
 * an instance that joins now is not scaled straight back in. */
START_TEST(test_a_joined_instance_is_not_scaled_straight_back_in)
{
    cfg.scale_in_below = 0.5;
    cfg.breach_periods = 1;
    cfg.warmup_ms = 0;
    cfg.desired_instances = 2;
    cfg.adopt_unknown = true;
    reopen();
    controller_evaluate(C);
    all_register();
    struct probe_sample low = {0.1, 0.1, 0.1};
    for (int k = 0; k < 3; k++) { /* low load counted at the floor */
        table_lock(&T, 1000);
        for (uint32_t i = 0; i < T.capacity; i++)
            if (T.rows[i].state == ROW_RUNNING)
                table_probe_result(&T, &T.rows[i], &low, NULL, 3, now_ms());
        table_unlock(&T);
        controller_evaluate(C);
    }
    ck_assert_int_eq(count(ROW_RUNNING), 2);
    struct table_row *j = ask_to_join("swarm-0");
    table_lock(&T, 1000);
    table_probe_result(&T, j, &low, NULL, 3, now_ms());
    table_unlock(&T);
    for (int k = 0; k < 3; k++)
        controller_evaluate(C);
    ck_assert_int_eq(T.hdr->ctl.target, 3);
    ck_assert_int_eq(j->state, ROW_RUNNING);
    ck_assert_int_eq(F.terminations, 0);
}
END_TEST

START_TEST(test_reconcile_adopts_and_forgets)
{
    controller_evaluate(C);
    all_register();
    /* One instance the table does not know (a row lost with a crash)... */
    struct provider_instance *in = &F.inst[F.n++];
    memset(in, 0, sizeof *in);
    copy_str(in->id, sizeof in->id, "i-stray");
    copy_str(in->addr, sizeof in->addr, "127.0.0.1:29999");
    in->alive = true;
    /* ...and one the table knows that no longer exists. */
    F.inst[0].alive = false;
    char gone_id[TABLE_ID_MAX];
    copy_str(gone_id, sizeof gone_id, F.inst[0].id);
    controller_reconcile(C);
    table_lock(&T, 1000);
    ck_assert_ptr_nonnull(table_find(&T, "i-stray"));
    struct table_row *g = table_find(&T, gone_id);
    table_unlock(&T);
    ck_assert_msg(!g || g->state == ROW_TERMINATING, "a gone instance kept as %s",
                  g ? row_state_name(g->state) : "-");
    ck_assert_int_ge(T.hdr->ctl.target, 3);
}
END_TEST

/* Three running instances with a service each, all in the balancer. */
static void three_in_the_balancer(void)
{
    cfg.lb_kind = LB_HAPROXY;
    cfg.lb_drain_timeout_ms = 60000;
    reopen();
    controller_use_lb(C, &fake_lb_ops, &L);
    controller_evaluate(C);
    table_lock(&T, 1000);
    for (uint32_t i = 0; i < T.capacity; i++) {
        struct table_row *r = &T.rows[i];
        char svc[TABLE_ADDR_MAX];
        snprintf(svc, sizeof svc, "127.0.0.1:%u", 30000 + i);
        if (r->state == ROW_PENDING)
            table_registered(&T, r, r->addr, svc, now_ms());
    }
    table_unlock(&T);
    controller_lb_step(C);
    ck_assert_int_eq(L.n, 3);
    ck_assert_int_eq(L.adds, 3);
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_RUNNING)
            ck_assert_uint_eq(T.rows[i].lb_state, LBS_ADDED);
}

static void lower_target_to(int target)
{
    table_lock(&T, 1000);
    table_operator_target(&T, target, target, now_ms()); /* as an operator's desired size */
    table_unlock(&T);
    controller_evaluate(C);
}

START_TEST(test_scale_in_drains_and_removes_before_terminating)
{
    three_in_the_balancer();
    lower_target_to(2);
    ck_assert_int_eq(count(ROW_TERMINATING), 1);
    ck_assert_int_eq(F.terminations, 0); /* held for the balancer */
    controller_lb_step(C);                /* drain */
    ck_assert_int_eq(L.drains, 1);
    struct lb_member *m = NULL;
    for (size_t i = 0; i < L.n; i++)
        if (L.m[i].admin == LBM_DRAIN)
            m = &L.m[i];
    ck_assert_ptr_nonnull(m);
    m->sessions = 2; /* still serving */
    for (int k = 0; k < 3; k++) {
        controller_lb_step(C);
        controller_evaluate(C);
    }
    ck_assert_int_eq(L.removes, 0);
    ck_assert_int_eq(F.terminations, 0);
    m->sessions = 0;
    controller_lb_step(C); /* removed, then terminated */
    ck_assert_int_eq(L.removes, 1);
    ck_assert_int_eq(F.terminations, 1);
    ck_assert_int_eq(L.terminated_in_lb, 0);
    ck_assert_int_eq(L.n, 2);
}
END_TEST

START_TEST(test_drain_timeout_removes_a_busy_member)
{
    three_in_the_balancer();
    cfg.lb_drain_timeout_ms = 30;
    reopen();
    controller_use_lb(C, &fake_lb_ops, &L);
    lower_target_to(2);
    controller_lb_step(C);
    for (size_t i = 0; i < L.n; i++)
        L.m[i].sessions = 5; /* never idle */
    usleep(60 * 1000);
    controller_lb_step(C);
    ck_assert_int_eq(L.removes, 1);
    ck_assert_int_eq(F.terminations, 1);
    ck_assert_int_eq(L.terminated_in_lb, 0);
}
END_TEST

START_TEST(test_balancer_down_holds_scale_in_but_not_a_dead_instance)
{
    three_in_the_balancer();
    L.down = true;
    controller_lb_step(C);
    lower_target_to(2);
    for (int k = 0; k < 5; k++) {
        controller_lb_step(C);
        controller_evaluate(C);
    }
    ck_assert_int_eq(count(ROW_TERMINATING), 1);
    ck_assert_int_eq(F.terminations, 0); /* a live instance is not stopped undrained */
    ck_assert_int_eq(count(ROW_RUNNING), 2);
    /* An unhealthy one is replaced meanwhile: it serves nothing. */
    table_lock(&T, 1000);
    struct table_row *sick = NULL;
    for (uint32_t i = 0; i < T.capacity && !sick; i++)
        if (T.rows[i].state == ROW_RUNNING)
            sick = &T.rows[i];
    table_failed(&T, sick, "test: dead", now_ms());
    table_unlock(&T);
    controller_evaluate(C);
    ck_assert_int_eq(F.terminations, 1);
    ck_assert_int_eq(count(ROW_TERMINATING), 2);
    /* Back: the held one is drained, removed, stopped; the dead one's
     * member goes as a stray once its row is gone. */
    L.down = false;
    for (int k = 0; k < 6; k++) {
        controller_lb_step(C);
        controller_evaluate(C);
    }
    ck_assert_int_eq(F.terminations, 2);
    ck_assert_int_eq(L.terminated_in_lb, 1); /* the dead one only */
}
END_TEST

START_TEST(test_balancer_restart_is_rebuilt_and_strays_removed)
{
    three_in_the_balancer();
    L.n = 0; /* the balancer lost its runtime members */
    struct lb_member *stray = &L.m[L.n++];
    memset(stray, 0, sizeof *stray);
    copy_str(stray->name, sizeof stray->name, "web-77"); /* ours by name, no row */
    struct lb_member *theirs = &L.m[L.n++];
    memset(theirs, 0, sizeof *theirs);
    copy_str(theirs->name, sizeof theirs->name, "static-1"); /* the operator's */
    controller_lb_step(C);
    ck_assert_ptr_nonnull(lb_find("static-1"));
    ck_assert_int_eq(lb_find("web-77")->admin, LBM_DRAIN);
    controller_lb_step(C);
    ck_assert_ptr_null(lb_find("web-77"));
    ck_assert_ptr_nonnull(lb_find("static-1"));
    ck_assert_int_eq(L.n, 4); /* three again, and the operator's own */
}
END_TEST

/* The predictive policy's memory of demand is in the table: a controller
 * opened again on it carries on from what the last one saw. */
START_TEST(test_predictive_memory_survives_a_controller_restart)
{
    cfg.policy_kind = POLICY_PREDICTIVE;
    cfg.warmup_ms = 0;
    reopen();
    controller_evaluate(C);
    all_register();
    struct probe_sample busy = {0.5, 0.5, 0.1, false, 0};
    /* Two minutes and more of evaluations: the monotonic clock is real,
     * so the minutes are faked by moving the recorded minute back. */
    for (int k = 0; k < 3; k++) {
        table_lock(&T, 1000);
        for (uint32_t i = 0; i < T.capacity; i++)
            if (T.rows[i].state == ROW_RUNNING)
                table_probe_result(&T, &T.rows[i], &busy, NULL, 3, now_ms());
        T.hdr->ctl.fc.minute_ms -= 60000; /* as if a minute had passed */
        table_unlock(&T);
        controller_evaluate(C);
    }
    uint32_t seen = T.hdr->ctl.fc.recent_len;
    ck_assert_uint_ge(seen, 2);
    float last = T.hdr->ctl.fc.recent[(T.hdr->ctl.fc.recent_head + FC_RECENT - 1) % FC_RECENT];
    ck_assert(last > 1.0f); /* three instances at 0.5 */
    reopen(); /* a new controller process, the same table */
    controller_evaluate(C);
    ck_assert_uint_ge(T.hdr->ctl.fc.recent_len, seen);
    ck_assert(T.hdr->ctl.fc.recent[(T.hdr->ctl.fc.recent_head + FC_RECENT - 1) % FC_RECENT] > 1.0f);
}
END_TEST

/* The newest event whose message has all of the given words, or NULL. */
static const char *event_with(const char *a, const char *b)
{
    static struct table_event ev[TABLE_EVENTS];
    size_t n = table_read_events(&T, 0, ev, TABLE_EVENTS);
    while (n-- > 0)
        if (strstr(ev[n].msg, a) && (!b || strstr(ev[n].msg, b)))
            return ev[n].msg;
    return NULL;
}

static void terminate_request(const char *id, bool decrement)
{
    struct ctl_request rq = {CTL_REQ_MAGIC, REQ_TERMINATE, decrement ? 1 : 0, 0, ""};
    copy_str(rq.id, sizeof rq.id, id);
    controller_request(C, &rq);
}

/* The id of some running instance. */
static const char *a_running_id(void)
{
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_RUNNING)
            return T.rows[i].id;
    ck_abort_msg("no running instance");
    return NULL;
}

/* The group after the operator's request, once the victim is gone and the
 * controller has had its evaluations: the size it settles at, and no
 * launch made for it. */
static void settle(void)
{
    for (int k = 0; k < 5; k++) {
        controller_evaluate(C);
        all_register();
    }
}

START_TEST(test_terminate_with_decrement_shrinks_the_group_at_desired)
{
    /* Group of 3 at desired 3 (min 2): AWS's ShouldDecrementDesiredCapacity
     * lowers desired with the instance; nothing replaces it. */
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    ck_assert_int_eq(count(ROW_RUNNING), 3);
    ck_assert_int_eq(T.hdr->ctl.target, 3);
    char victim[TABLE_ID_MAX];
    copy_str(victim, sizeof victim, a_running_id());
    terminate_request(victim, true);
    settle();
    ck_assert_int_eq(F.launches, 3); /* no replacement */
    ck_assert_int_eq(alive_instances(), 2);
    ck_assert_int_eq(count(ROW_RUNNING), 2);
    ck_assert_int_eq(T.hdr->ctl.target, 2);
    ck_assert_int_eq(T.hdr->operator_desired, 2);
    ck_assert(table_find(&T, victim) == NULL);
    ck_assert(event_with("and decrement: target 3 -> 2, desired 3 -> 2", NULL));

    /* Now at min 2: refused with the reason, and the instance stays. */
    copy_str(victim, sizeof victim, a_running_id());
    terminate_request(victim, true);
    settle();
    ck_assert_int_eq(F.launches, 3);
    ck_assert_int_eq(F.terminations, 1);
    ck_assert_int_eq(count(ROW_RUNNING), 2);
    ck_assert_int_eq(T.hdr->ctl.target, 2);
    ck_assert_int_eq(T.hdr->operator_desired, 2);
    ck_assert(table_find(&T, victim) != NULL && table_find(&T, victim)->state == ROW_RUNNING);
    ck_assert(event_with("with decrement refused", "at its minimum 2"));

    /* Without decrement: replaced, the size kept. */
    terminate_request(victim, false);
    settle();
    ck_assert_int_eq(F.terminations, 2);
    ck_assert_int_eq(F.launches, 4);
    ck_assert_int_eq(count(ROW_RUNNING), 2);
    ck_assert_int_eq(T.hdr->ctl.target, 2);
}
END_TEST

START_TEST(test_terminate_with_decrement_above_desired_keeps_desired)
{
    /* An operator's extra instance (target 4 over desired 3): the target
     * comes down, desired stays as it was. */
    controller_evaluate(C);
    all_register();
    struct ctl_request one = {CTL_REQ_MAGIC, REQ_LAUNCH_ONE, 0, 0, ""};
    controller_request(C, &one);
    settle();
    ck_assert_int_eq(count(ROW_RUNNING), 4);
    terminate_request(a_running_id(), true);
    settle();
    ck_assert_int_eq(F.launches, 4);
    ck_assert_int_eq(count(ROW_RUNNING), 3);
    ck_assert_int_eq(T.hdr->ctl.target, 3);
    ck_assert_int_eq(T.hdr->operator_desired, 0);
    ck_assert(event_with("and decrement: target 4 -> 3, desired 3 -> 3", NULL));
}
END_TEST

/* ---- the provider registry ---- */

/* The config's kind called name (tests never name a kind's constant). */
static int kind_named(const char *name)
{
    for (int k = 0; k < PROVIDER_KIND_COUNT; k++)
        if (strcmp(provider_kind_name(k), name) == 0)
            return k;
    ck_abort_msg("the config has no provider kind %s", name);
    return -1;
}

/* Every kind provider.kind accepts has exactly one entry, named as the
 * config names it, and every entry is one of those kinds, complete. */
START_TEST(test_every_provider_kind_has_one_registry_entry)
{
    for (int k = 0; k < PROVIDER_KIND_COUNT; k++) {
        int entries = 0;
        for (size_t i = 0; provider_def_at(i); i++)
            entries += provider_def_at(i)->kind == k;
        ck_assert_msg(entries == 1, "kind %s has %d registry entries", provider_kind_name(k), entries);
        const struct provider_def *d = provider_def_of(k);
        ck_assert_str_eq(d->ops->name, provider_kind_name(k));
    }
    size_t n = 0;
    for (; provider_def_at(n); n++) {
        const struct provider_def *d = provider_def_at(n);
        ck_assert_msg(d->kind >= 0 && d->kind < PROVIDER_KIND_COUNT, "entry %zu: kind %d", n, d->kind);
        ck_assert(d->ops && d->ops->launch && d->ops->terminate && d->ops->gone && d->ops->list);
        ck_assert(d->init && d->free && d->kill_timeout_ms && d->reconcile_ms);
    }
    ck_assert_int_eq(n, PROVIDER_KIND_COUNT);
    ck_assert_ptr_null(provider_def_of(PROVIDER_KIND_COUNT));
    ck_assert_ptr_null(provider_def_of(-1));
}
END_TEST

/* What the rest of the manager branches on, as each provider declares it. */
START_TEST(test_provider_capabilities_are_as_declared)
{
    struct asg_config c;
    config_defaults(&c);
    c.provider_kind = kind_named("local");
    ck_assert(provider_has(&c, PROVIDER_CAP_PROCESSES));
    ck_assert(!provider_has(&c, PROVIDER_CAP_LAUNCH_TOKENS));
    ck_assert(!provider_has(&c, PROVIDER_CAP_JOIN));
    c.provider_kind = kind_named("ec2");
    ck_assert(!provider_has(&c, PROVIDER_CAP_PROCESSES));
    ck_assert(provider_has(&c, PROVIDER_CAP_LAUNCH_TOKENS));
    ck_assert(provider_has(&c, PROVIDER_CAP_JOIN));
    ck_assert(provider_has(&c, PROVIDER_CAP_LAUNCH_TOKENS | PROVIDER_CAP_JOIN));
    ck_assert(!provider_has(&c, PROVIDER_CAP_JOIN | PROVIDER_CAP_PROCESSES));
    c.provider_kind = kind_named("exec");  /* the commands own their instances */
    ck_assert(!provider_has(&c, PROVIDER_CAP_PROCESSES));
    ck_assert(!provider_has(&c, PROVIDER_CAP_LAUNCH_TOKENS));
    ck_assert(provider_has(&c, PROVIDER_CAP_JOIN));
    c.provider_kind = PROVIDER_KIND_COUNT; /* none has anything */
    ck_assert(!provider_has(&c, PROVIDER_CAP_PROCESSES));
    ck_assert(!provider_has(&c, PROVIDER_CAP_LAUNCH_TOKENS));
    /* Each its own grace before force and reconciliation interval. */
    c.local_kill_timeout_ms = 1234;
    c.ec2_terminate_timeout_ms = 5678;
    c.ec2_reconcile_interval_ms = 4321;
    c.provider_kind = kind_named("local");
    ck_assert_int_eq(provider_kill_timeout_ms(&c), 1234);
    ck_assert_int_eq(provider_reconcile_ms(&c, false), 10000);
    ck_assert_int_eq(provider_reconcile_ms(&c, true), 2000);
    c.provider_kind = kind_named("ec2");
    ck_assert_int_eq(provider_kill_timeout_ms(&c), 5678);
    ck_assert_int_eq(provider_reconcile_ms(&c, false), 4321);
    ck_assert_int_eq(provider_reconcile_ms(&c, true), 4321);
    c.exec_terminate_timeout_ms = 2468;
    c.exec_reconcile_interval_ms = 1357;
    c.provider_kind = kind_named("exec");
    ck_assert_int_eq(provider_kill_timeout_ms(&c), 2468);
    ck_assert_int_eq(provider_reconcile_ms(&c, false), 1357);
    ck_assert_int_eq(provider_reconcile_ms(&c, true), 1357);
}
END_TEST

START_TEST(test_an_unknown_provider_kind_fails_init_by_name)
{
    struct asg_config c;
    config_defaults(&c);
    c.provider_kind = 77;
    struct provider p;
    char err[256] = "";
    ck_assert_int_eq(provider_init(&p, &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "provider.kind 77: no such provider") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "local, ec2") != NULL, "%s", err);
    ck_assert_ptr_null(p.ops);
    provider_free(&p); /* harmless after a failed init */
}
END_TEST

/* How long the controller gives an instance the operator terminates
 * before it asks again harder, with provider kind's config. */
static int64_t grace_given(const char *kind)
{
    cfg.provider_kind = kind_named(kind);
    cfg.local_kill_timeout_ms = 200;
    cfg.ec2_terminate_timeout_ms = 400000;
    reopen();
    controller_evaluate(C);
    all_register();
    controller_evaluate(C);
    char victim[TABLE_ID_MAX];
    copy_str(victim, sizeof victim, a_running_id());
    int64_t before = now_ms();
    terminate_request(victim, false);
    const struct table_row *r = table_find(&T, victim);
    ck_assert_msg(r && r->state == ROW_TERMINATING, "%s not terminating", victim);
    return r->term_deadline_ms - before;
}

/* The grace before force is each provider's own: an EC2 group's
 * terminating instances do not go by provider.local.kill_timeout_ms. */
START_TEST(test_the_grace_before_force_is_the_providers_own)
{
    int64_t local = grace_given("local");
    ck_assert_msg(local >= 200 && local < 5000, "local: %lld ms", (long long)local);
    int64_t ec2 = grace_given("ec2");
    ck_assert_msg(ec2 >= 400000 && ec2 < 405000, "ec2: %lld ms", (long long)ec2);
}
END_TEST

/* ---- the local provider: which processes are the group's ---- */

#define OUR_NONCE "0123456789abcdef0123456789abcdef"
#define OTHER_NONCE "fedcba9876543210fedcba9876543210"

/* A process of ours: the real asg-agent (agent true) as id with nonce in its
 * environment (NULL: none), or a sleep; returned once it runs its program. */
static pid_t spawn(bool agent, const char *id, const char *nonce)
{
    const char *bin = getenv("ASG_BIN");
    char path[512], env_nonce[80];
    snprintf(path, sizeof path, "%s/asg-agent", bin ? bin : "bin");
    snprintf(env_nonce, sizeof env_nonce, "ASG_GROUP_NONCE=%s", nonce ? nonce : "");
    char *env[] = {nonce ? env_nonce : NULL, NULL};
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (agent)
            execve(path, (char *[]){"asg-agent", "--listen", "127.0.0.1:0", "--id", (char *)id, NULL}, env);
        else
            execve("/bin/sleep", (char *[]){"sleep", "30", NULL}, env);
        _exit(127);
    }
    char exe[512];
    const char *want = agent ? "/asg-agent" : "/sleep";
    for (int i = 0; i < 200; i++) {
        if (pid_exe_if_ours(pid, exe, sizeof exe) && strlen(exe) >= strlen(want) &&
            strcmp(exe + strlen(exe) - strlen(want), want) == 0)
            return pid;
        sleep_ms(10);
    }
    ck_abort_msg("%s did not start", agent ? path : "sleep");
    return -1;
}

/* True when pid is still running 100 ms on (not signalled). */
static bool survives(pid_t pid)
{
    sleep_ms(100);
    int st;
    return waitpid(pid, &st, WNOHANG) == 0;
}

/* True once pid has died (signalled), within 5 s. */
static bool dies(pid_t pid)
{
    int st;
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return true;
        sleep_ms(10);
    }
    return false;
}

static void reap_now(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

static int terminate_row(const char *id, pid_t pid, uint32_t flags)
{
    struct asg_config c;
    config_defaults(&c);
    struct provider p;
    memset(&p, 0, sizeof p);
    p.ops = provider_local.ops;
    p.cfg = &c;
    copy_str(p.group_nonce, sizeof p.group_nonce, OUR_NONCE);
    struct table_row r;
    memset(&r, 0, sizeof r);
    copy_str(r.id, sizeof r.id, id);
    r.state = ROW_TERMINATING;
    r.flags = flags;
    r.pid = pid;
    r.pid_start = 0; /* a row that never had one, or a planted one */
    struct provider_handle h;
    controller_handle_of_row(&r, &h);
    char err[256];
    return p.ops->terminate(&p, &h, true, err, sizeof err);
}

/* A row is a claim, never a licence: with no start time to compare, the
 * pid it names was signalled on liveness alone (a planted or damaged row
 * could name any process of our uid). */
START_TEST(test_a_row_without_start_time_signals_only_the_groups_agent)
{
    pid_t sleeper = spawn(false, NULL, OUR_NONCE);
    ck_assert_int_eq(terminate_row("g-1", sleeper, 0), 0);
    ck_assert_msg(survives(sleeper), "a sleep named by a row was killed");
    pid_t stranger = spawn(true, "g-1", OTHER_NONCE);
    ck_assert_int_eq(terminate_row("g-1", stranger, 0), 0);
    ck_assert_msg(survives(stranger), "another group's agent was killed");
    ck_assert_int_eq(terminate_row("g-1", stranger, ROW_F_JOINED), 0);
    ck_assert_msg(survives(stranger), "another group's agent was killed for a joined row");
    pid_t ours = spawn(true, "g-1", OUR_NONCE);
    ck_assert_int_eq(terminate_row("g-2", ours, 0), 0);
    ck_assert_msg(survives(ours), "our agent was killed for another id's row");
    ck_assert_int_eq(terminate_row("g-1", ours, 0), 0);
    ck_assert_msg(dies(ours), "the group's own agent was not signalled");
    pid_t by_hand = spawn(true, "g-3", NULL);
    ck_assert_int_eq(terminate_row("g-3", by_hand, 0), 0);
    ck_assert_msg(survives(by_hand), "an agent without the nonce was killed for a launched row");
    ck_assert_int_eq(terminate_row("g-3", by_hand, ROW_F_JOINED), 0);
    ck_assert_msg(dies(by_hand), "a joined agent started by hand was not signalled");
    reap_now(sleeper);
    reap_now(stranger);
}
END_TEST

/* Adoption lists only the group's: its nonce, and ids GROUP-N. */
START_TEST(test_the_scan_lists_only_the_groups_agents)
{
    pid_t pids[] = {spawn(true, "g-7", OUR_NONCE), spawn(true, "g-web-1", OUR_NONCE),
                    spawn(true, "g-8", OTHER_NONCE), spawn(true, "g-9", NULL),
                    spawn(true, "g-", OUR_NONCE)};
    struct provider_instance *list = NULL;
    size_t n = 0;
    ck_assert_int_eq(local_scan_proc("g", OUR_NONCE, &list, &n), 0);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 1; k < sizeof pids / sizeof pids[0]; k++)
            ck_assert_msg(list[i].pid != pids[k], "listed %s (pid %d)", list[i].id, list[i].pid);
        found += list[i].pid == pids[0] && strcmp(list[i].id, "g-7") == 0;
    }
    ck_assert_int_eq(found, 1);
    free(list);
    for (size_t k = 0; k < sizeof pids / sizeof pids[0]; k++)
        reap_now(pids[k]);
}
END_TEST

/* ---- launch specs: pure functions ---- */

/* The generation after a.spec's for b (a's being generation 7), and the
 * key launch_spec_changed names. */
static uint64_t next_generation(const struct asg_config *a, const struct asg_config *b, const char **key)
{
    struct launch_spec *sa = malloc(sizeof *sa), *sb = malloc(sizeof *sb);
    ck_assert(sa && sb);
    launch_spec_of(a, sa);
    launch_spec_of(b, sb);
    uint64_t gen = launch_spec_generation(7, sa->digest, sb);
    *key = launch_spec_changed(sa, sb);
    free(sa);
    free(sb);
    return gen;
}

START_TEST(test_the_same_config_is_the_same_launch_spec)
{
    struct asg_config a, b;
    config_defaults(&a);
    config_defaults(&b);
    const char *key;
    ck_assert_uint_eq(next_generation(&a, &b, &key), 7);
    ck_assert_ptr_null(key);
    struct launch_spec *s = malloc(sizeof *s);
    launch_spec_of(&a, s);
    ck_assert_uint_eq(launch_spec_generation(0, s->digest, s), 1); /* the first */
    free(s);
}
END_TEST

START_TEST(test_keys_outside_the_launch_spec_keep_the_generation)
{
    struct asg_config a, b;
    config_defaults(&a);
    b = a;
    b.min_instances = 1, b.desired_instances = 5, b.max_instances = 9;
    b.scale_out_above = 0.95, b.scale_in_below = 0.05, b.policy_kind = POLICY_TARGET;
    b.probe_interval_ms = 77, b.unhealthy_after = 9, b.boot_timeout_ms = 1234;
    b.local_kill_timeout_ms = 99, b.local_stop_on_exit = !a.local_stop_on_exit;
    b.lb_kind = LB_HAPROXY, b.log_level = 0;
    copy_str(b.status_listen, sizeof b.status_listen, "127.0.0.1:9");
    copy_str(b.ec2_image_id, sizeof b.ec2_image_id, "ami-1"); /* the other provider's */
    copy_str(b.local_service_health, sizeof b.local_service_health, "http:/"); /* no service: unused */
    const char *key;
    ck_assert_uint_eq(next_generation(&a, &b, &key), 7);
    ck_assert_ptr_null(key);
    /* ec2: the instance type is not sent with a launch template */
    a.provider_kind = b.provider_kind = PROVIDER_EC2;
    copy_str(a.ec2_launch_template, sizeof a.ec2_launch_template, "lt-1");
    copy_str(b.ec2_launch_template, sizeof b.ec2_launch_template, "lt-1");
    copy_str(b.ec2_image_id, sizeof b.ec2_image_id, "");
    copy_str(a.ec2_instance_type, sizeof a.ec2_instance_type, "t3.small");
    copy_str(b.ec2_instance_type, sizeof b.ec2_instance_type, "t3.large");
    ck_assert_uint_eq(next_generation(&a, &b, &key), 7);
}
END_TEST

#define SET(field, v) (copy_str(c->field, sizeof c->field, v))
static void local_service(struct asg_config *c) { SET(local_service, "/bin/web\x1f--port\x1f{port}"); }
static void local_agent(struct asg_config *c) { SET(local_agent_path, "/opt/asg-agent"); }
static void local_health(struct asg_config *c) { local_service(c), SET(local_service_health, "http:/up"); }
static void local_requests(struct asg_config *c) { local_service(c), SET(local_service_requests, "http:/n"); }
static void local_ca(struct asg_config *c) { local_service(c), SET(local_service_ca, "/etc/ca.pem"); }
static void plaintext(struct asg_config *c) { c->tls_mode = TLS_PLAINTEXT; }
static void ec2(struct asg_config *c) { c->provider_kind = PROVIDER_EC2; }
static void ec2_template(struct asg_config *c) { SET(ec2_launch_template, "lt-2"); }
static void ec2_template_version(struct asg_config *c) { ec2_template(c), SET(ec2_launch_template_version, "4"); }
static void ec2_image(struct asg_config *c) { SET(ec2_image_id, "ami-2"); }
static void ec2_type(struct asg_config *c) { SET(ec2_instance_type, "m5.large"); }
static void ec2_subnet(struct asg_config *c) { SET(ec2_subnet_id, "subnet-2"); }
static void ec2_groups(struct asg_config *c) { SET(ec2_security_group_ids, "sg-1,sg-2"); }
static void ec2_key(struct asg_config *c) { SET(ec2_key_name, "ops"); }
static void ec2_agent(struct asg_config *c) { SET(ec2_agent_path, "/opt/asg-agent"); }
static void ec2_port(struct asg_config *c) { c->ec2_agent_port = 7400; }
static void ec2_manager(struct asg_config *c) { SET(ec2_manager_address, "10.0.0.1:7301"); }
static void ec2_service(struct asg_config *c) { SET(ec2_service, "/bin/web"); }
static void ec2_health(struct asg_config *c) { ec2_service(c), SET(ec2_service_health, "http:/up"); }
static void ec2_requests(struct asg_config *c) { ec2_service(c), SET(ec2_service_requests, "http:/n"); }
static void ec2_lb_port(struct asg_config *c) { ec2_service(c), c->lb_kind = LB_ELBV2, c->lb_elbv2_port = 8080; }
static void exec_kind(struct asg_config *c) { c->provider_kind = PROVIDER_EXEC; }
static void exec_command(struct asg_config *c) { SET(exec_launch, "/usr/local/bin/launch-v2"); }
static void exec_manager(struct asg_config *c) { SET(exec_manager_address, "10.0.0.1:7301"); }
#undef SET

START_TEST(test_each_launch_spec_field_is_a_new_generation)
{
    /* base: the config before the change (ec2 with a service for the
     * fields that count only with one); change: the operator's edit. */
    static const struct {
        void (*base)(struct asg_config *), (*change)(struct asg_config *);
        const char *key;
    } cases[] = {
        {NULL, local_service, "provider.local.service"},
        {NULL, local_agent, "provider.local.agent_path"},
        {local_service, local_health, "provider.local.service_health"},
        {local_service, local_requests, "provider.local.service_requests"},
        {local_service, local_ca, "provider.local.service_ca"},
        {NULL, plaintext, "tls.mode"},
        {NULL, ec2, "provider.kind"},
        {ec2, ec2_template, "provider.ec2.launch_template"},
        {ec2_template, ec2_template_version, "provider.ec2.launch_template_version"},
        {ec2, ec2_image, "provider.ec2.image_id"},
        {ec2, ec2_type, "provider.ec2.instance_type"},
        {ec2, ec2_subnet, "provider.ec2.subnet_id"},
        {ec2, ec2_groups, "provider.ec2.security_group_ids"},
        {ec2, ec2_key, "provider.ec2.key_name"},
        {ec2, ec2_agent, "provider.ec2.agent_path"},
        {ec2, ec2_port, "provider.ec2.agent_port"},
        {ec2, ec2_manager, "provider.ec2.manager_address"},
        {ec2, ec2_service, "provider.ec2.service"},
        {ec2_service, ec2_health, "provider.ec2.service_health"},
        {ec2_service, ec2_requests, "provider.ec2.service_requests"},
        {ec2_service, ec2_lb_port, "lb.elbv2.port"},
        {exec_kind, exec_command, "provider.exec.launch"},
        {exec_kind, exec_manager, "provider.exec.manager_address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct asg_config a, b;
        config_defaults(&a);
        if (cases[i].base == ec2_service || (cases[i].base && cases[i].base != local_service))
            ec2(&a);
        if (cases[i].base)
            cases[i].base(&a);
        b = a;
        cases[i].change(&b);
        const char *key;
        ck_assert_msg(next_generation(&a, &b, &key) == 8, "%s: the same generation", cases[i].key);
        ck_assert_msg(key && strcmp(key, cases[i].key) == 0, "%s: changed key said %s", cases[i].key,
                      key ? key : "none");
    }
}
END_TEST

/* ---- launch specs: the controller ---- */

static uint64_t row_gen(const char *id)
{
    struct table_row *r = table_find(&T, id);
    ck_assert_msg(r != NULL, "no row %s", id);
    return r->spec_gen;
}

/* A saved spec (the table's, or a last leader's from etcd) sets launch
 * settings only, and only when they make the spec its digest names: a key
 * outside the spec (where the provider's calls go, what terminates) or a
 * value changed since it was saved is refused. */
START_TEST(test_a_saved_spec_sets_only_its_own_keys_and_only_as_digested)
{
    struct asg_config a, b;
    config_defaults(&a);
    a.provider_kind = PROVIDER_EXEC;
    copy_str(a.exec_launch, sizeof a.exec_launch, "/usr/bin/launch-v1 {manager}");
    struct launch_spec *s = malloc(sizeof *s);
    launch_spec_of(&a, s);
    char kv[SPEC_KV_MAX];
    size_t len = launch_spec_save(s, kv, sizeof kv);
    ck_assert_uint_gt(len, 0);
    char err[200];
    config_defaults(&b);
    ck_assert_int_eq(launch_spec_apply(kv, len, s->digest, &b, err, sizeof err), 0);
    struct launch_spec *got = malloc(sizeof *got);
    launch_spec_of(&b, got);
    ck_assert_mem_eq(got->digest, s->digest, LAUNCH_SPEC_DIGEST);
    ck_assert_str_eq(b.exec_launch, "/usr/bin/launch-v1 {manager}");
    /* one key more, outside the spec */
    char more[SPEC_KV_MAX];
    static const char extra[] = "provider.exec.terminate\0/tmp/not-ours\0";
    memcpy(more, kv, len);
    memcpy(more + len, extra, sizeof extra - 1);
    config_defaults(&b);
    ck_assert_int_eq(launch_spec_apply(more, len + sizeof extra - 1, s->digest, &b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "provider.exec.terminate") != NULL, "%s", err);
    /* a value damaged since: not the spec its digest names */
    char *v = memmem(kv, len, "launch-v1", 9);
    ck_assert_ptr_nonnull(v);
    v[8] = '2';
    config_defaults(&b);
    ck_assert_int_eq(launch_spec_apply(kv, len, s->digest, &b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "digest") != NULL, "%s", err);
    free(got);
    free(s);
}
END_TEST

/* The spec a rollback would launch, damaged in the table since it was
 * kept: the rollback is refused (it would have pinned it, found it
 * unusable and launched the config's spec, the one rolled back from,
 * under the earlier generation's number). */
START_TEST(test_a_rollback_to_a_damaged_earlier_spec_is_refused)
{
    controller_evaluate(C);
    all_register();
    copy_str(cfg.local_service, sizeof cfg.local_service, "/bin/web-v2");
    reopen();
    controller_evaluate(C);
    ck_assert_uint_eq(T.hdr->spec.gen, 2);
    ck_assert_uint_eq(T.hdr->spec_prev.gen, 1);
    ck_assert_uint_gt(T.hdr->spec_prev.len, 0);
    struct ctl_request rq = {.magic = CTL_REQ_MAGIC, .kind = REQ_ROLLOUT, .value = RA_START};
    controller_request(C, &rq);
    ck_assert_uint_eq(T.hdr->rollout.phase, RO_RUNNING);
    /* a value of the kept spec changed under it */
    table_lock(&T, 1000);
    char *v = memmem(T.hdr->spec_prev.kv, T.hdr->spec_prev.len, "plaintext", 9);
    char *at = v ? v : memmem(T.hdr->spec_prev.kv, T.hdr->spec_prev.len, "auto", 4);
    ck_assert_ptr_nonnull(at);
    at[0] = 'X';
    table_unlock(&T);
    rq.value = RA_ROLLBACK;
    controller_request(C, &rq);
    ck_assert(!T.hdr->spec_pinned);
    ck_assert_uint_eq(T.hdr->spec.gen, 2);
    ck_assert(!T.hdr->rollout.rolling_back);
}
END_TEST

START_TEST(test_launches_carry_the_launch_spec_generation)
{
    controller_evaluate(C);
    all_register();
    ck_assert_uint_eq(T.hdr->spec.gen, 1);
    ck_assert_int_eq(count(ROW_RUNNING), 3);
    for (uint32_t i = 0; i < T.capacity; i++)
        ck_assert(T.rows[i].state == ROW_FREE || T.rows[i].spec_gen == 1);
    /* The same config again (a controller restart): the same generation. */
    reopen();
    controller_evaluate(C);
    ck_assert_uint_eq(T.hdr->spec.gen, 1);
    /* A new service and one more instance: generation 2 for it alone. */
    copy_str(cfg.local_service, sizeof cfg.local_service, "/bin/web");
    cfg.desired_instances = 4;
    reopen();
    controller_evaluate(C);
    all_register();
    ck_assert_uint_eq(T.hdr->spec.gen, 2);
    ck_assert_int_eq(count(ROW_RUNNING), 4);
    int per_gen[3] = {0};
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state != ROW_FREE && T.rows[i].spec_gen < 3)
            per_gen[T.rows[i].spec_gen]++;
    ck_assert_int_eq(per_gen[1], 3);
    ck_assert_int_eq(per_gen[2], 1);
    /* An instance found at the provider: its generation is not known. */
    struct provider_instance *in = &F.inst[F.n++];
    memset(in, 0, sizeof *in);
    copy_str(in->id, sizeof in->id, "i-stray");
    copy_str(in->addr, sizeof in->addr, "127.0.0.1:29999");
    in->alive = true;
    controller_reconcile(C);
    ck_assert_uint_eq(row_gen("i-stray"), 0);
}
END_TEST

/* ---- suspended processes (controller/suspend.h) ---- */

static void suspend_req(int on, uint32_t mask, const char *by)
{
    struct ctl_request rq = {CTL_REQ_MAGIC, REQ_SUSPEND, on, mask, ""};
    copy_str(rq.id, sizeof rq.id, by);
    controller_request(C, &rq);
}

static const struct table_event *last_event(struct table_event *ev)
{
    uint64_t w = atomic_load(&T.log->events_written);
    ck_assert(table_read_events(&T, w - 1, ev, 1) == 1);
    return ev;
}

/* The controller records who suspended what and when, keeps the first
 * record on a second suspend, clears it on resume; an evaluation with
 * launch suspended launches nothing, and one after resume does. */
START_TEST(test_suspend_is_recorded_with_who_and_when_and_holds_launches)
{
    suspend_req(1, SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_SCALE), "tester via api-token");
    ck_assert_uint_eq(T.hdr->suspended, SUSP_BIT(SUSP_LAUNCH) | SUSP_BIT(SUSP_SCALE));
    ck_assert_str_eq(T.hdr->suspend[SUSP_LAUNCH].by, "tester via api-token");
    ck_assert(T.hdr->suspend[SUSP_LAUNCH].since_wall_ms > 0);
    struct table_event ev;
    ck_assert_uint_eq(last_event(&ev)->kind, EV_SUSPEND);
    ck_assert_msg(strstr(ev.msg, "tester via api-token: suspended launch, scale"), "%s", ev.msg);
    suspend_req(1, SUSP_BIT(SUSP_LAUNCH), "someone else");
    ck_assert_str_eq(T.hdr->suspend[SUSP_LAUNCH].by, "tester via api-token");
    ck_assert_msg(strstr(last_event(&ev)->msg, "already suspended"), "%s", ev.msg);
    controller_evaluate(C);
    controller_evaluate(C);
    ck_assert_int_eq(F.launches, 0);
    ck_assert_int_eq(T.hdr->ctl.target, 3); /* decided, held */
    suspend_req(0, SUSP_ALL, "tester");
    ck_assert_uint_eq(T.hdr->suspended, 0);
    ck_assert_str_eq(T.hdr->suspend[SUSP_LAUNCH].by, "");
    ck_assert(T.hdr->suspend[SUSP_SCALE].since_wall_ms == 0);
    ck_assert_msg(strstr(last_event(&ev)->msg, "resumed launch, scale"), "%s", ev.msg);
    controller_evaluate(C);
    ck_assert_int_eq(F.launches, 3);
}
END_TEST

/* Reconcile suspended: an instance the table lacks is not adopted until
 * resume. Balancer suspended: nothing is added to it until resume. */
START_TEST(test_reconcile_and_balancer_suspended_call_nothing)
{
    controller_evaluate(C);
    all_register();
    struct provider_instance *in = &F.inst[F.n++];
    memset(in, 0, sizeof *in);
    copy_str(in->id, sizeof in->id, "i-stray");
    copy_str(in->addr, sizeof in->addr, "127.0.0.1:29999");
    in->alive = true;
    suspend_req(1, SUSP_BIT(SUSP_RECONCILE), "tester");
    controller_reconcile(C);
    table_lock(&T, 1000);
    ck_assert_ptr_null(table_find(&T, "i-stray"));
    table_unlock(&T);
    suspend_req(0, SUSP_BIT(SUSP_RECONCILE), "tester");
    controller_reconcile(C);
    table_lock(&T, 1000);
    ck_assert_ptr_nonnull(table_find(&T, "i-stray"));
    table_unlock(&T);

    teardown();
    setup();
    cfg.lb_kind = LB_HAPROXY;
    reopen();
    controller_use_lb(C, &fake_lb_ops, &L);
    suspend_req(1, SUSP_BIT(SUSP_BALANCER), "tester");
    controller_evaluate(C);
    table_lock(&T, 1000);
    for (uint32_t i = 0; i < T.capacity; i++)
        if (T.rows[i].state == ROW_PENDING)
            table_registered(&T, &T.rows[i], T.rows[i].addr, "127.0.0.1:30001", now_ms());
    table_unlock(&T);
    controller_lb_step(C);
    ck_assert_int_eq(L.adds, 0);
    suspend_req(0, SUSP_BIT(SUSP_BALANCER), "tester");
    controller_lb_step(C);
    ck_assert_int_eq(L.adds, 3);
}
END_TEST

Suite *controller_suite(void)
{
    const TTest *tests[] = {
        test_converges_to_desired_with_one_instance_each,
        test_a_lost_launch_answer_makes_no_second_instance,
        test_failed_launch_frees_its_row_and_backs_off,
        test_unhealthy_replacements_are_paced,
        test_boot_timeout_replaces_a_silent_instance,
        test_a_plan_on_a_stale_view_touches_no_row_that_moved_on,
        test_a_row_the_view_cannot_read_is_not_launched_for,
        test_joined_instances_move_the_target_both_ways,
        test_admission_refuses_at_the_maximum_in_force,
        test_the_inbox_is_bounded_and_keeps_who_asked_first,
        test_garbage_in_the_inbox_is_dropped_not_kept,
        test_reconcile_adopts_and_forgets,
        test_a_joined_instance_is_not_scaled_straight_back_in,
        test_scale_in_drains_and_removes_before_terminating,
        test_drain_timeout_removes_a_busy_member,
        test_balancer_down_holds_scale_in_but_not_a_dead_instance,
        test_balancer_restart_is_rebuilt_and_strays_removed,
        test_predictive_memory_survives_a_controller_restart,
        test_terminate_with_decrement_shrinks_the_group_at_desired,
        test_terminate_with_decrement_above_desired_keeps_desired,
        test_the_same_config_is_the_same_launch_spec,
        test_keys_outside_the_launch_spec_keep_the_generation,
        test_each_launch_spec_field_is_a_new_generation,
        test_launches_carry_the_launch_spec_generation,
        test_a_saved_spec_sets_only_its_own_keys_and_only_as_digested,
        test_a_rollback_to_a_damaged_earlier_spec_is_refused,
        test_the_grace_before_force_is_the_providers_own,
        test_suspend_is_recorded_with_who_and_when_and_holds_launches,
        test_reconcile_and_balancer_suspended_call_nothing,
        NULL};
    const TTest *registry[] = {
        test_every_provider_kind_has_one_registry_entry,
        test_provider_capabilities_are_as_declared,
        test_an_unknown_provider_kind_fails_init_by_name,
        NULL};
    const TTest *local[] = {
        test_a_row_without_start_time_signals_only_the_groups_agent,
        test_the_scan_lists_only_the_groups_agents,
        NULL};
    Suite *s = suite_of("controller", "core", setup, teardown, 0, tests, NULL);
    TCase *tc = tcase_create("local provider");
    for (size_t i = 0; local[i]; i++)
        tcase_add_test(tc, local[i]);
    suite_add_tcase(s, tc);
    TCase *reg = tcase_create("provider registry");
    for (size_t i = 0; registry[i]; i++)
        tcase_add_test(reg, registry[i]);
    suite_add_tcase(s, reg);
    return s;
}
