/* Notifications (webhook/): the CloudEvents JSON built from events the
 * ring holds, whatever bytes their messages carry, and the webhooks'
 * config (both forms, the per-event filter, the URLs refused). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/strbuf.h"
#include "../common/utf8.h"
#include "../common/webhook_cfg.h"
#include "../report/cloudevent.h"
#include "check_suites.h"

static struct table_event event_of(uint32_t kind, uint64_t number, const char *instance, const char *msg)
{
    struct table_event e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.number = number;
    e.wall_ms = 1700000000123LL;
    strncpy(e.instance, instance, sizeof e.instance - 1);
    memcpy(e.msg, msg, strlen(msg) < sizeof e.msg ? strlen(msg) : sizeof e.msg);
    return e;
}

static struct ce_origin origin(void)
{
    struct ce_origin o;
    cloudevent_origin(&o, "host1", "web", "0123456789abcdef", 0xfeedULL);
    return o;
}

/* The event as JSON, parsed strictly (UTF-8 checked): NULL when it is not
 * valid JSON. */
static json_object *parse(const struct table_event *e)
{
    struct ce_origin o = origin();
    struct strbuf b = {0};
    cloudevent_json(&b, &o, e);
    ck_assert_msg(utf8_valid(b.s, b.len, NULL), "not UTF-8: %s", b.s);
    struct json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *j = json_tokener_parse_ex(tok, b.s, (int)b.len);
    ck_assert_msg(j && json_tokener_get_error(tok) == json_tokener_success, "not JSON: %s", b.s);
    json_tokener_free(tok);
    sb_free(&b);
    return j;
}

static const char *str_at(json_object *j, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(j, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

START_TEST(test_required_attributes_of_cloudevents_1_0)
{
    struct table_event e = event_of(EV_LAUNCH, 42, "i-7", "launched i-7 (scale-out)");
    json_object *j = parse(&e);
    ck_assert_str_eq(str_at(j, "specversion"), "1.0");
    /* a digest of the group nonce (never the nonce), the table nonce, the number */
    ck_assert_str_eq(str_at(j, "id"), "c11c389ecc31f9cd32417dcae200b61b-000000000000feed-42");
    ck_assert_str_eq(str_at(j, "source"), "asg://host1/web");
    ck_assert_str_eq(str_at(j, "type"), "io.asg.launch");
    ck_assert_str_eq(str_at(j, "time"), "2023-11-14T22:13:20.123Z");
    ck_assert_str_eq(str_at(j, "subject"), "i-7");
    ck_assert_str_eq(str_at(j, "datacontenttype"), "application/json");
    json_object *d;
    ck_assert(json_object_object_get_ex(j, "data", &d));
    ck_assert_str_eq(str_at(d, "message"), "launched i-7 (scale-out)");
    ck_assert_str_eq(str_at(d, "kind"), "launch");
    ck_assert_str_eq(str_at(d, "group"), "web");
    ck_assert_str_eq(str_at(d, "instance"), "i-7");
    json_object *num;
    ck_assert(json_object_object_get_ex(d, "number", &num));
    ck_assert_int_eq(json_object_get_int64(num), 42);
    json_object_put(j);
}
END_TEST

START_TEST(test_an_event_about_no_instance_has_no_subject)
{
    struct table_event e = event_of(EV_SCALE, 3, "", "target 2 -> 3");
    json_object *j = parse(&e), *v, *d;
    ck_assert(!json_object_object_get_ex(j, "subject", &v)); /* optional, and never empty */
    ck_assert_str_eq(str_at(j, "type"), "io.asg.scale");
    ck_assert(json_object_object_get_ex(j, "data", &d));
    ck_assert(json_object_object_get_ex(d, "instance", &v) && v == NULL); /* null */
    json_object_put(j);
}
END_TEST

/* Messages carry what operators and agents wrote (a reason, an id): quotes,
 * backslashes, control bytes, invalid UTF-8, and a character the ring's
 * 160 bytes cut in two. The JSON stays valid, and valid text survives. */
START_TEST(test_odd_bytes_in_a_message_make_valid_json)
{
    struct table_event e = event_of(EV_HEALTH, 9, "i-\"1\"", "a \"quote\" \\ back\nslash\t\x01\x1f end");
    json_object *j = parse(&e), *d;
    ck_assert(json_object_object_get_ex(j, "data", &d));
    ck_assert_str_eq(str_at(d, "message"), "a \"quote\" \\ back\nslash\t\x01\x1f end");
    ck_assert_str_eq(str_at(j, "subject"), "i-\"1\"");
    json_object_put(j);

    e = event_of(EV_HEALTH, 10, "i-1", "bad \xff\xfe bytes \xc0\xaf and \xed\xa0\x80 a surrogate");
    j = parse(&e);
    ck_assert(json_object_object_get_ex(j, "data", &d));
    const char *m = str_at(d, "message");
    ck_assert_ptr_nonnull(strstr(m, "bad \xef\xbf\xbd")); /* U+FFFD in place of a bad byte */
    ck_assert_ptr_nonnull(strstr(m, "a surrogate"));
    json_object_put(j);

    /* A message filling the whole field, its last character cut: no NUL
     * in the field at all, and 2 bytes of a 3-byte character at its end. */
    char full[sizeof e.msg + 1];
    memset(full, 'x', sizeof full);
    full[sizeof e.msg - 2] = '\xe2';
    full[sizeof e.msg - 1] = '\x80';
    full[sizeof e.msg] = '\0';
    e = event_of(EV_HEALTH, 11, "i-1", full);
    ck_assert_int_eq(e.msg[sizeof e.msg - 1], '\x80');
    j = parse(&e);
    ck_assert(json_object_object_get_ex(j, "data", &d));
    ck_assert_int_ge(strlen(str_at(d, "message")), sizeof e.msg - 2);
    json_object_put(j);

    /* U+2028 is valid JSON but breaks JavaScript that evals it: escaped. */
    e = event_of(EV_OPERATOR, 12, "", "line\xe2\x80\xa8sep");
    struct ce_origin o = origin();
    struct strbuf b = {0};
    cloudevent_json(&b, &o, &e);
    ck_assert_ptr_null(strstr(b.s, "\xe2\x80\xa8"));
    sb_free(&b);
}
END_TEST

START_TEST(test_ids_differ_by_event_and_table_and_repeat_for_the_same_event)
{
    struct table_event a = event_of(EV_LAUNCH, 1, "i-1", "x"), b2 = event_of(EV_LAUNCH, 2, "i-1", "x");
    json_object *ja = parse(&a), *ja2 = parse(&a), *jb = parse(&b2);
    ck_assert_str_eq(str_at(ja, "id"), str_at(ja2, "id"));
    ck_assert_str_ne(str_at(ja, "id"), str_at(jb, "id"));
    struct ce_origin o1, o2;
    cloudevent_origin(&o1, "h", "g", "n", 1);
    cloudevent_origin(&o2, "h", "g", "n", 2); /* a new table: its numbers start again */
    ck_assert_str_ne(o1.id_prefix, o2.id_prefix);
    /* The group's nonce marks its agents: a webhook never learns it. */
    const char *nonce = "0123456789abcdef0123456789abcdef";
    struct ce_origin o3, o4;
    cloudevent_origin(&o3, "h", "g", nonce, 1);
    cloudevent_origin(&o4, "h", "g", "fedcba9876543210fedcba9876543210", 1);
    ck_assert_ptr_null(strstr(o3.id_prefix, nonce));
    ck_assert_ptr_null(strstr(o3.id_prefix, "0123456789abcdef"));
    ck_assert_str_ne(o3.id_prefix, o4.id_prefix); /* two groups, two ids */
    json_object_put(ja);
    json_object_put(ja2);
    json_object_put(jb);
}
END_TEST

START_TEST(test_time_is_rfc3339_utc_with_milliseconds)
{
    char t[40];
    cloudevent_time(0, t, sizeof t);
    ck_assert_str_eq(t, "1970-01-01T00:00:00.000Z");
    cloudevent_time(1700000000005LL, t, sizeof t);
    ck_assert_str_eq(t, "2023-11-14T22:13:20.005Z");
}
END_TEST

/* The config's list of kind names (common/, below the table) is the
 * table's: every kind can be filtered by its name, and nothing else. */
START_TEST(test_every_event_kind_has_its_filter_name)
{
    int n = 0;
    for (uint32_t k = 0; k < EV_KIND_COUNT; k++, n++)
        ck_assert_msg(webhook_kind_of(event_kind_name(k)) >= 0,
                      "event kind %s (shm/table.h) is missing from common/webhook_cfg.c's names",
                      event_kind_name(k));
    ck_assert_ptr_null(webhook_kind_name(n));
}
END_TEST

static int load(const char *text, struct asg_config *c, char *err, size_t n)
{
    return config_load_string(text, "n.cfg", c, err, n);
}

START_TEST(test_webhooks_config_both_forms_and_the_filter)
{
    struct asg_config c;
    char err[512];
    ck_assert_msg(load("notify = { webhooks = [\"http://127.0.0.1:9/a\", \"https://hooks.example/x?k=1\"]; };", &c,
                       err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.nwebhooks, 2);
    ck_assert_str_eq(c.webhooks[1].url, "https://hooks.example/x?k=1");
    ck_assert_uint_eq(c.webhooks[0].kinds, webhook_all_kinds());
    ck_assert_int_eq(c.notify_queue, 1000);
    ck_assert_msg(load("notify = { webhooks = ( { url = \"http://127.0.0.1:9/\"; events = [\"launch\", \"terminate\"]; },"
                       " \"http://127.0.0.1:10/\" ); queue = 5; retry_max_s = 2; timeout_ms = 300; };",
                       &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.nwebhooks, 2);
    ck_assert_uint_eq(c.webhooks[0].kinds, (1u << EV_LAUNCH) | (1u << EV_TERMINATE));
    ck_assert_uint_eq(c.webhooks[1].kinds, webhook_all_kinds());
    ck_assert_int_eq(c.notify_queue, 5);
    ck_assert_int_eq(c.notify_retry_max_s, 2);
    char target[160];
    webhook_target("https://user.example:8443/secret/path?token=abc", target, sizeof target);
    ck_assert_str_eq(target, "https://user.example:8443"); /* never the path or query */
}
END_TEST

START_TEST(test_webhooks_config_refuses_what_it_cannot_deliver_safely)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"notify = { webhooks = [\"ftp://127.0.0.1/x\"]; };", "not an http:// or https://"},
        {"notify = { webhooks = [\"file:///etc/passwd\"]; };", "not an http:// or https://"},
        {"notify = { webhooks = [\"http://u:p@127.0.0.1/\"]; };", "user or password"},
        {"notify = { webhooks = [\"http://127.0.0.1/a b\"]; };", "space"},
        {"notify = { webhooks = [\"http://\"]; };", "item 1: the URL"},
        /* a receiver's secret in its path or query is never quoted (the error is logged and an event) */
        {"notify = { webhooks = [\"https://hooks.example/services/s3cretpath x\"]; };", "space"},
        {"notify = { webhooks = [\"htps://hooks.example/services/s3cretpath\"]; };", "not an http://"},
        {"notify = { webhooks = ( { url = \"http://127.0.0.1/\"; events = [\"lunch\"]; } ); };", "item 1 is not one of"},
        {"notify = { webhooks = ( { events = [\"launch\"]; } ); };", "has no url"},
        {"notify = { webhooks = ( { url = \"http://127.0.0.1/\"; color = 1; } ); };", "unknown key 'color'"},
        {"notify = { webhooks = \"http://127.0.0.1/\"; };", "must be a list"},
        {"notify = { webhooks = [\"http://a/\",\"http://b/\",\"http://c/\",\"http://d/\",\"http://e/\","
         "\"http://f/\",\"http://g/\",\"http://h/\",\"http://i/\"]; };", "at most 8"},
        {"notify = { secret = \"s3cret\"; };", "notify.secret must be \"file:/path\""},
        {"notify = { queue = 0; };", "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct asg_config c;
        char err[512] = "";
        ck_assert_msg(load(bad[i].text, &c, err, sizeof err) != 0, "accepted: %s", bad[i].text);
        ck_assert_msg(strstr(err, bad[i].why) && strstr(err, "n.cfg:1"), "%s: error '%s' lacks '%s'",
                      bad[i].text, err, bad[i].why);
        ck_assert_msg(!strstr(err, "s3cret"), "%s: the error quotes a secret: %s", bad[i].text, err);
    }
}
END_TEST

Suite *notify_ce_suite(void)
{
    const TTest *tests[] = {test_required_attributes_of_cloudevents_1_0,
                                         test_an_event_about_no_instance_has_no_subject,
                                         test_odd_bytes_in_a_message_make_valid_json,
                                         test_ids_differ_by_event_and_table_and_repeat_for_the_same_event,
                                         test_time_is_rfc3339_utc_with_milliseconds,
                                         test_every_event_kind_has_its_filter_name,
                                         test_webhooks_config_both_forms_and_the_filter,
                                         test_webhooks_config_refuses_what_it_cannot_deliver_safely,
                                         NULL};
    return suite_of("notify_ce", "cloudevents", NULL, NULL, 0, tests, NULL);
}
