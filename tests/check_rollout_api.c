/* An operator's rollout request as asgctl and the status API read it:
 * --canary-weight and --pause-at (common/ctlsock.h), and the body of
 * POST /api/v1/rollout (status/rollout_api.h), each bad field named. */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../common/ctlsock.h"
#include "../status/rollout_api.h"
#include "check_suites.h"

START_TEST(test_percent_is_a_whole_0_to_100_with_or_without_its_sign)
{
    int p = -1;
    ck_assert_int_eq(rollout_percent_parse("0", &p), 0);
    ck_assert_int_eq(p, 0);
    ck_assert_int_eq(rollout_percent_parse("100%", &p), 0);
    ck_assert_int_eq(p, 100);
    ck_assert_int_eq(rollout_percent_parse("25%", &p), 0);
    ck_assert_int_eq(p, 25);
    const char *bad[] = {"", "%", "101%", "-1", "5x", "1.5%", "%5", "1000000%", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(rollout_percent_parse(bad[i], &p) != 0, "'%s' taken", bad[i]);
}
END_TEST

START_TEST(test_pauses_are_at_most_four_ascending_within_1_to_99)
{
    struct rollout_settings s = {0};
    char why[160];
    ck_assert_int_eq(rollout_pauses_parse("20%,50%", &s, why, sizeof why), 0);
    ck_assert_int_eq(s.npause, 2);
    ck_assert_int_eq(s.pause_at[0], 20);
    ck_assert_int_eq(s.pause_at[1], 50);
    ck_assert_int_eq(rollout_pauses_parse("1,25%,50,99%", &s, why, sizeof why), 0);
    ck_assert_int_eq(s.npause, 4);
    ck_assert_int_eq(s.pause_at[3], 99);
    const char *bad[] = {"", "50%,20%", "20,20", "0%", "100%", "10,20,30,40,50", "10,,20", "10,", ",10",
                         "ten", "10%%", NULL};
    for (int i = 0; bad[i]; i++) {
        struct rollout_settings t = {.npause = 1, .pause_at = {33}};
        why[0] = '\0';
        ck_assert_msg(rollout_pauses_parse(bad[i], &t, why, sizeof why) != 0, "'%s' taken", bad[i]);
        ck_assert_msg(why[0], "'%s' refused without a reason", bad[i]);
        ck_assert_msg(t.npause == 1 && t.pause_at[0] == 33, "'%s' refused but changed the settings", bad[i]);
    }
}
END_TEST

static int request_of(const char *body, struct ctl_request *rq, char *why, size_t whysize)
{
    json_object *o = json_tokener_parse(body);
    ck_assert_msg(o, "not JSON: %s", body);
    int rc = rollout_api_request(o, rq, why, whysize);
    json_object_put(o);
    return rc;
}

START_TEST(test_api_start_reads_every_setting)
{
    struct ctl_request rq;
    char why[200] = "";
    ck_assert_msg(request_of("{\"action\":\"start\",\"max_surge\":\"25%\",\"max_unavailable\":1,\"canary\":2,"
                             "\"canary_weight\":\"10%\",\"bake_s\":30,\"pause_at\":[20,60]}",
                             &rq, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(rq.magic, CTL_REQ_MAGIC);
    ck_assert_uint_eq(rq.kind, REQ_ROLLOUT);
    ck_assert_int_eq(rq.value, RA_START);
    ck_assert_uint_eq(rq.given, RS_SURGE | RS_UNAVAILABLE | RS_CANARY | RS_CANARY_WEIGHT | RS_BAKE | RS_PAUSES);
    ck_assert(rq.set.surge == 25 && rq.set.surge_pct == 1);
    ck_assert(rq.set.unavailable == 1 && rq.set.unavailable_pct == 0);
    ck_assert(rq.set.canary == 2 && rq.set.canary_weight == 10 && rq.set.bake_ms == 30000);
    ck_assert(rq.set.npause == 2 && rq.set.pause_at[0] == 20 && rq.set.pause_at[1] == 60);
    ck_assert_ptr_null(rollout_settings_invalid(&rq.set));
    /* Only what is given is marked given: the rest are the config's. */
    ck_assert_int_eq(request_of("{\"action\":\"start\",\"max_surge\":3,\"canary_weight\":5}", &rq, why, sizeof why), 0);
    ck_assert_uint_eq(rq.given, RS_SURGE | RS_CANARY_WEIGHT);
    ck_assert(rq.set.surge == 3 && !rq.set.surge_pct && rq.set.canary_weight == 5);
    ck_assert_int_eq(request_of("{\"action\":\"start\"}", &rq, why, sizeof why), 0);
    ck_assert_uint_eq(rq.given, 0);
}
END_TEST

START_TEST(test_api_actions_by_name)
{
    const char *names[] = {"start", "pause", "resume", "rollback", "cancel"};
    const int actions[] = {RA_START, RA_PAUSE, RA_RESUME, RA_ROLLBACK, RA_CANCEL};
    for (int i = 0; i < 5; i++) {
        char body[64], why[200];
        struct ctl_request rq;
        snprintf(body, sizeof body, "{\"action\":\"%s\"}", names[i]);
        ck_assert_msg(request_of(body, &rq, why, sizeof why) == 0, "%s: %s", names[i], why);
        ck_assert_int_eq(rq.value, actions[i]);
        ck_assert_str_eq(rollout_action_name(rq.value), names[i]);
    }
}
END_TEST

/* Each bad body is refused with a reason naming its field. */
START_TEST(test_api_names_the_bad_field)
{
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "action"},
        {"{\"action\":\"go\"}", "action"},
        {"{\"action\":null}", "action"},
        {"{\"action\":\"start\",\"max_surge\":\"x\"}", "max_surge"},
        {"{\"action\":\"start\",\"max_surge\":-1}", "max_surge"},
        {"{\"action\":\"start\",\"max_surge\":100001}", "max_surge"},
        {"{\"action\":\"start\",\"max_surge\":\"101%\"}", "max_surge"},
        {"{\"action\":\"start\",\"max_surge\":1.5}", "max_surge"},
        {"{\"action\":\"start\",\"max_unavailable\":true}", "max_unavailable"},
        {"{\"action\":\"start\",\"canary\":-1}", "canary"},
        {"{\"action\":\"start\",\"canary\":\"2\"}", "canary"},
        {"{\"action\":\"start\",\"canary_weight\":101}", "canary_weight"},
        {"{\"action\":\"start\",\"canary_weight\":\"-5%\"}", "canary_weight"},
        {"{\"action\":\"start\",\"bake_s\":86401}", "bake_s"},
        {"{\"action\":\"start\",\"bake_s\":\"30\"}", "bake_s"},
        {"{\"action\":\"start\",\"pause_at\":[50,20]}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":[20,20]}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":[0]}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":[99,100]}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":[1,2,3,4,5]}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":\"20%\"}", "pause_at"},
        {"{\"action\":\"start\",\"pause_at\":[\"20\"]}", "pause_at"},
        {"{\"action\":\"start\",\"max_surge\":0,\"max_unavailable\":\"0%\"}", "max_surge"},
        {"{\"action\":\"start\",\"rollback\":true}", "rollback"},
        {"{\"action\":\"cancel\",\"canary\":1}", "canary"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ctl_request rq;
        char why[200] = "";
        ck_assert_msg(request_of(bad[i].body, &rq, why, sizeof why) != 0, "%s taken", bad[i].body);
        ck_assert_msg(strstr(why, bad[i].field), "%s: '%s' does not name %s", bad[i].body, why, bad[i].field);
    }
}
END_TEST

Suite *rollout_api_suite(void)
{
    const TTest *tests[] = {
        test_percent_is_a_whole_0_to_100_with_or_without_its_sign,
        test_pauses_are_at_most_four_ascending_within_1_to_99,
        test_api_start_reads_every_setting,
        test_api_actions_by_name,
        test_api_names_the_bad_field,
        NULL};
    return suite_of("rollout_api", "rollout_api", NULL, NULL, 0, tests, NULL);
}
