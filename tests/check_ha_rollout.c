/* A rollout across a leader failover (controller/ha_rollout.c): the
 * state's rollout part written and read back whole, every field checked
 * on reading (a bad one named, never a crash), the size bound, and what
 * a new leader makes of it: its generations, the previous spec kept
 * whole, a pin, a rollout resumed or refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../controller/ha_rollout.h"
#include "check_suites.h"

#define NOW 5000000LL

static const char KV_OLD[] = "provider.local.service\0python3 s.py v1\0provider.local.service_health\0http:/";
static const char KV_NEW[] = "provider.local.service\0python3 s.py v2\0provider.local.service_health\0http:/";

static void digest(uint8_t d[SPEC_DIGEST_SIZE], int seed)
{
    for (int i = 0; i < SPEC_DIGEST_SIZE; i++)
        d[i] = (uint8_t)(seed * 37 + i * 11);
}

static void spec(struct ha_spec *s, int seed, const char *kv, size_t len)
{
    s->known = true;
    digest(s->digest, seed);
    s->len = (uint32_t)len;
    memcpy(s->kv, kv, len);
}

/* The last leader rolling out NEW (seed 2) over OLD (seed 1), one replaced. */
static void leader(struct ha_group_specs *s)
{
    memset(s, 0, sizeof *s);
    s->present = true;
    spec(&s->cur, 2, KV_NEW, sizeof KV_NEW);
    spec(&s->prev, 1, KV_OLD, sizeof KV_OLD);
    s->cur.len = 0; /* not pinned: the config's, not sent */
    struct rollout_state *ro = &s->ro;
    ro->phase = RO_RUNNING;
    ro->number = 7;
    ro->set = (struct rollout_settings){.surge = 1, .bake_ms = 3000, .rollback = 1, .npause = 2,
                                        .pause_at = {25, 50}, .canary = 1};
    ro->total = 3, ro->replaced = 1, ro->remaining = 2, ro->next_pause = 1, ro->canary_done = 1;
    ro->started_wall_ms = 1700000000000LL;
    snprintf(ro->reason, sizeof ro->reason, "started (operator) \"quoted\" é");
    s->has_from = s->has_to = true;
    digest(s->from, 1);
    digest(s->to, 2);
}

/* The state's text for s (and n instances of v), as the guard writes it. */
static char *state_text(const struct ha_group_specs *s, const struct ha_instance_spec *v, size_t n, size_t max)
{
    struct strbuf b = {0};
    sb_printf(&b, "{\"leader\":\"mgr-a\"");
    ha_specs_encode(&b, s);
    ha_instances_encode(&b, v, n, max);
    sb_printf(&b, "}");
    return b.s;
}

static int decode_text(const char *text, struct ha_group_specs *out, char *err, size_t errsize)
{
    json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "not JSON: %s", text);
    int rc = ha_specs_decode(o, out, err, errsize);
    json_object_put(o);
    return rc;
}

START_TEST(test_the_rollout_and_specs_read_back_as_written)
{
    struct ha_group_specs s, back;
    leader(&s);
    s.pinned = true, s.has_rejected = true;
    s.cur.len = sizeof KV_NEW;
    digest(s.rejected, 3);
    char *text = state_text(&s, NULL, 0, HA_STATE_MAX), err[200] = "";
    ck_assert_int_eq(decode_text(text, &back, err, sizeof err), 0);
    ck_assert_msg(back.present, "%s", err);
    ck_assert_mem_eq(&back.ro.set, &s.ro.set, sizeof s.ro.set);
    ck_assert_uint_eq(back.ro.phase, RO_RUNNING);
    ck_assert_uint_eq(back.ro.number, 7);
    ck_assert_int_eq(back.ro.total, 3);
    ck_assert_int_eq(back.ro.replaced, 1);
    ck_assert_int_eq(back.ro.remaining, 2);
    ck_assert_int_eq(back.ro.next_pause, 1);
    ck_assert_int_eq(back.ro.canary_done, 1);
    ck_assert_int_eq(back.ro.started_wall_ms, 1700000000000LL);
    ck_assert_str_eq(back.ro.reason, s.ro.reason);
    ck_assert(back.has_from && back.has_to && back.pinned && back.has_rejected);
    ck_assert_mem_eq(back.from, s.from, SPEC_DIGEST_SIZE);
    ck_assert_mem_eq(back.to, s.to, SPEC_DIGEST_SIZE);
    ck_assert_mem_eq(back.rejected, s.rejected, SPEC_DIGEST_SIZE);
    ck_assert_mem_eq(back.cur.digest, s.cur.digest, SPEC_DIGEST_SIZE);
    ck_assert_uint_eq(back.prev.len, sizeof KV_OLD);
    ck_assert_mem_eq(back.prev.kv, KV_OLD, sizeof KV_OLD);
    ck_assert_uint_eq(back.cur.len, sizeof KV_NEW);
    ck_assert_mem_eq(back.cur.kv, KV_NEW, sizeof KV_NEW);
    free(text);
}
END_TEST

START_TEST(test_a_spec_in_force_not_pinned_is_not_sent_whole)
{
    struct ha_group_specs s, back;
    leader(&s);
    s.cur.len = sizeof KV_NEW;
    char *text = state_text(&s, NULL, 0, HA_STATE_MAX), err[200] = "";
    ck_assert_int_eq(decode_text(text, &back, err, sizeof err), 0);
    ck_assert_uint_eq(back.cur.len, 0);
    ck_assert(!back.pinned && !back.has_rejected);
    free(text);
}
END_TEST

START_TEST(test_a_state_of_before_rollouts_has_none)
{
    struct ha_group_specs back;
    char err[200] = "";
    ck_assert_int_eq(decode_text("{\"leader\":\"a\",\"target\":3}", &back, err, sizeof err), 0);
    ck_assert(!back.present);
    json_object *o = json_tokener_parse("{\"target\":3}");
    struct ha_instance_spec *v = (void *)1;
    size_t n = 9;
    ck_assert_int_eq(ha_instances_decode(o, 64, &v, &n, err, sizeof err), 0);
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(n, 0);
    json_object_put(o);
}
END_TEST

/* The state with one field of the rollout part replaced: refused, naming it. */
static void refused(const char *from, const char *to, const char *field)
{
    struct ha_group_specs s, back;
    leader(&s);
    char *text = state_text(&s, NULL, 0, HA_STATE_MAX), err[200] = "";
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "%s not in %s", from, text);
    struct strbuf b = {0};
    sb_add(&b, text, (size_t)(at - text));
    sb_printf(&b, "%s%s", to, at + strlen(from));
    ck_assert_int_eq(decode_text(b.s, &back, err, sizeof err), -1);
    ck_assert_msg(strstr(err, field) != NULL, "error '%s' does not name %s", err, field);
    ck_assert(!back.present);
    sb_free(&b);
    free(text);
}

START_TEST(test_every_bad_field_is_refused_by_name)
{
    refused("\"phase\":1", "\"phase\":7", "rollout.phase");
    refused("\"phase\":1", "\"phase\":\"running\"", "rollout.phase");
    refused("\"number\":7", "\"number\":-1", "rollout.number");
    refused("\"rolling_back\":0", "\"rolling_back\":2", "rollout.rolling_back");
    refused("\"total\":3", "\"total\":99999999", "rollout.total");
    refused("\"next_pause\":1", "\"next_pause\":5", "rollout.next_pause");
    refused("\"replaced\":1", "\"replaced\":1.5", "rollout.replaced");
    refused("\"bake_ms\":3000", "\"bake_ms\":-1", "rollout.set.bake_ms");
    refused("\"surge_pct\":0", "\"surge_pct\":3", "rollout.set.surge_pct");
    refused("\"pause_at\":[25,50]", "\"pause_at\":[50,25]", "rollout.set");
    refused("\"pause_at\":[25,50]", "\"pause_at\":[1,2,3,4,5]", "rollout.set.pause_at");
    refused("\"pause_at\":[25,50]", "\"pause_at\":[\"x\"]", "rollout.set.pause_at");
    refused("\"to\":\"", "\"to\":\"zz", "rollout.to");
    refused("\"to\":\"", "\"to\":\"ab\",\"x\":\"", "rollout.to");
    refused("\"reason\":\"", "\"reason\":\"\\u0001", "rollout.reason");
    refused("\"reason\":\"", "\"reason\":\"" "0123456789012345678901234567890123456789012345678901234567890123456789"
            "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890", "rollout.reason");
    refused("\"pinned\":false", "\"pinned\":1", "spec.pinned");
    refused("\"pinned\":false", "\"pinned\":true", "spec.pinned"); /* without the spec rolled back from */
    refused("\"prev_kv\":\"", "\"prev_kv\":\"!!!!", "spec.prev_kv");
    refused("\"prev_kv\":\"", "\"prev_kv\":\"eA==\",\"y\":\"", "spec.prev_kv"); /* "x": no NUL, no value */
    refused("\"cur\":\"", "\"cur\":\"0\",\"z\":\"", "spec.cur");
    refused(",\"spec\":{", ",\"spec\":[],\"w\":{", "spec");
}
END_TEST

START_TEST(test_instances_read_back_and_bad_ones_are_refused)
{
    struct ha_instance_spec v[3] = {{"web-1", {1, 2, 3, 4, 5, 6, 7, 8}}, {"web-2", {0xff}}, {"i-0abc", {9}}};
    struct ha_group_specs s;
    leader(&s);
    char *text = state_text(&s, v, 3, HA_STATE_MAX), err[200] = "";
    json_object *o = json_tokener_parse(text);
    struct ha_instance_spec *back = NULL;
    size_t n = 0;
    ck_assert_int_eq(ha_instances_decode(o, 64, &back, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(back[i].id, v[i].id);
        ck_assert_mem_eq(back[i].prefix, v[i].prefix, HA_PREFIX_BYTES);
    }
    free(back);
    ck_assert_int_eq(ha_instances_decode(o, 2, &back, &n, err, sizeof err), -1); /* more than the table's rows */
    ck_assert_ptr_null(back);
    json_object_put(o);
    free(text);
    static const char *const bad[] = {"{\"instance_specs\":{\"web 1\":\"0102030405060708\"}}",
                                      "{\"instance_specs\":{\"web-1\":\"01020304\"}}",
                                      "{\"instance_specs\":{\"web-1\":\"010203040506070g\"}}",
                                      "{\"instance_specs\":{\"web-1\":7}}", "{\"instance_specs\":[1]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = json_tokener_parse(bad[i]);
        ck_assert_int_eq(ha_instances_decode(o, 64, &back, &n, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "instance_specs") != NULL, "%s: %s", bad[i], err);
        ck_assert_ptr_null(back);
        json_object_put(o);
    }
}
END_TEST

START_TEST(test_instances_past_the_size_bound_are_left_out)
{
    size_t n = 5000;
    struct ha_instance_spec *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        snprintf(v[i].id, sizeof v[i].id, "a-rather-long-group-name-for-a-test-%zu", i);
    struct strbuf b = {0};
    sb_printf(&b, "{\"x\":1");
    size_t listed = ha_instances_encode(&b, v, n, 64 * 1024);
    sb_printf(&b, "}");
    ck_assert_uint_lt(listed, n);
    ck_assert_uint_gt(listed, 100);
    ck_assert_uint_le(b.len, 64 * 1024);
    json_object *o = json_tokener_parse(b.s);
    ck_assert_ptr_nonnull(o);
    struct ha_instance_spec *back = NULL;
    size_t got = 0;
    char err[200];
    ck_assert_int_eq(ha_instances_decode(o, n, &back, &got, err, sizeof err), 0);
    ck_assert_uint_eq(got, listed);
    free(back);
    json_object_put(o);
    sb_free(&b);
    free(v);
}
END_TEST

/* Our table: the config's spec (NEW) in force as gen, nothing before it. */
static struct spec_saved ours_cur, ours_prev;
static void ours(uint64_t gen, int seed)
{
    memset(&ours_cur, 0, sizeof ours_cur);
    memset(&ours_prev, 0, sizeof ours_prev);
    ours_cur.gen = gen;
    digest(ours_cur.digest, seed);
    ours_cur.len = sizeof KV_NEW;
    memcpy(ours_cur.kv, KV_NEW, sizeof KV_NEW);
}

static const uint8_t NONE[SPEC_DIGEST_SIZE];

START_TEST(test_a_new_leader_resumes_the_rollout_in_its_own_generations)
{
    struct ha_group_specs lead;
    leader(&lead);
    ours(1, 2);
    struct ha_takeover *t = malloc(sizeof *t);
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(t->set_spec && !t->pinned);
    ck_assert_uint_eq(t->cur.gen, 1);
    ck_assert_uint_eq(t->prev.gen, 2); /* the last leader's previous spec: a number of ours, new */
    ck_assert_mem_eq(t->prev.digest, lead.prev.digest, SPEC_DIGEST_SIZE);
    ck_assert_uint_eq(t->prev.len, sizeof KV_OLD); /* whole: a rollback can launch it */
    ck_assert(t->set_ro);
    ck_assert_uint_eq(t->ro.to_gen, 1);
    ck_assert_uint_eq(t->ro.from_gen, 2);
    ck_assert_int_eq(t->ro.started_ms, NOW);
    ck_assert_int_eq(t->ro.window_ms, 0);
    ck_assert_uint_eq(t->ro.number, 7);
    ck_assert_int_eq(t->ro.replaced, 1);
    ck_assert_str_eq(t->why, "");
    uint8_t d[SPEC_DIGEST_SIZE];
    digest(d, 1);
    ck_assert_uint_eq(ha_gen_of(d, HA_PREFIX_BYTES, &t->cur, &t->prev), 2);
    digest(d, 2);
    ck_assert_uint_eq(ha_gen_of(d, HA_PREFIX_BYTES, &t->cur, &t->prev), 1);
    digest(d, 9);
    ck_assert_uint_eq(ha_gen_of(d, HA_PREFIX_BYTES, &t->cur, &t->prev), 0); /* unknown: due */
    free(t);
}
END_TEST

START_TEST(test_a_previous_spec_we_keep_already_keeps_its_number)
{
    struct ha_group_specs lead;
    leader(&lead);
    ours(4, 2);
    ours_prev.gen = 3;
    digest(ours_prev.digest, 1);
    ours_prev.len = sizeof KV_OLD;
    memcpy(ours_prev.kv, KV_OLD, sizeof KV_OLD);
    struct ha_takeover *t = malloc(sizeof *t);
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 4, NOW, t);
    ck_assert(!t->set_spec);
    ck_assert_uint_eq(t->ro.from_gen, 3);
    ck_assert_uint_eq(t->ro.to_gen, 4);
    ours_prev.len = 0; /* kept by digest only: learnt whole now */
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 4, NOW, t);
    ck_assert(t->set_spec);
    ck_assert_uint_eq(t->prev.gen, 3);
    ck_assert_uint_eq(t->prev.len, sizeof KV_OLD);
    free(t);
}
END_TEST

/* The last leader rolled back from NEW: OLD pinned in force, NEW rejected. */
static void rolled_back(struct ha_group_specs *lead)
{
    leader(lead);
    spec(&lead->cur, 1, KV_OLD, sizeof KV_OLD);
    spec(&lead->prev, 2, KV_NEW, sizeof KV_NEW);
    lead->pinned = lead->has_rejected = true;
    digest(lead->rejected, 2);
    lead->ro.rolling_back = 1;
    digest(lead->from, 2);
    digest(lead->to, 1);
}

START_TEST(test_a_rolled_back_spec_stays_pinned_under_a_new_leader)
{
    struct ha_group_specs lead;
    rolled_back(&lead);
    ours(1, 2);
    struct ha_takeover *t = malloc(sizeof *t);
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(t->set_spec && t->pinned);
    ck_assert_uint_eq(t->cur.gen, 2);
    ck_assert_mem_eq(t->cur.digest, lead.cur.digest, SPEC_DIGEST_SIZE);
    ck_assert_mem_eq(t->cur.kv, KV_OLD, sizeof KV_OLD);
    ck_assert_uint_eq(t->prev.gen, 1);
    ck_assert_mem_eq(t->rejected, ours_cur.digest, SPEC_DIGEST_SIZE);
    ck_assert(t->set_ro && t->ro.rolling_back);
    ck_assert_uint_eq(t->ro.to_gen, 2);
    ck_assert_uint_eq(t->ro.from_gen, 1);
    /* Not sent whole: no pin, and the rollback it was running is not ours to go on with. */
    lead.cur.len = 0;
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(!t->pinned && !t->set_ro);
    ck_assert_msg(strstr(t->why, "not ours in force") != NULL, "%s", t->why);
    free(t);
}
END_TEST

START_TEST(test_a_rollout_to_a_spec_we_do_not_have_is_not_resumed)
{
    struct ha_group_specs lead;
    leader(&lead);
    ours(1, 5); /* our config says yet another spec */
    struct ha_takeover *t = malloc(sizeof *t);
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(!t->set_ro);
    ck_assert_msg(strstr(t->why, "rollout 7") != NULL, "%s", t->why);
    /* An ended one is taken for the record, its generations ours or 0. */
    lead.ro.phase = RO_SUCCEEDED;
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(t->set_ro);
    ck_assert_uint_eq(t->ro.phase, RO_SUCCEEDED);
    ck_assert_uint_eq(t->ro.to_gen, 0);
    /* Nothing of rollouts in the state: nothing changes. */
    lead.present = false;
    ha_takeover_plan(&lead, &ours_cur, &ours_prev, false, NONE, 1, NOW, t);
    ck_assert(!t->set_ro && !t->set_spec);
    free(t);
}
END_TEST

Suite *ha_rollout_suite(void)
{
    const TTest *const tests[] = {test_the_rollout_and_specs_read_back_as_written,
                                         test_a_spec_in_force_not_pinned_is_not_sent_whole,
                                         test_a_state_of_before_rollouts_has_none,
                                         test_every_bad_field_is_refused_by_name,
                                         test_instances_read_back_and_bad_ones_are_refused,
                                         test_instances_past_the_size_bound_are_left_out,
                                         test_a_new_leader_resumes_the_rollout_in_its_own_generations,
                                         test_a_previous_spec_we_keep_already_keeps_its_number,
                                         test_a_rolled_back_spec_stays_pinned_under_a_new_leader,
                                         test_a_rollout_to_a_spec_we_do_not_have_is_not_resumed,
                                         NULL};
    return suite_of("ha_rollout", "failover", NULL, NULL, 0, tests, NULL);
}
