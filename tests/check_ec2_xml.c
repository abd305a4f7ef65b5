/* The EC2 XML parser against every sample in ../shared/testdata/aws/
 * ec2-responses, checked value by value against what botocore (an
 * independent parser) made of the same file. */
#define _GNU_SOURCE
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../aws/ec2_xml.h"
#include "check_suites.h"

#define MAX_FILES 64
static char files[MAX_FILES][512];
static int nfiles;

static void find_samples(void)
{
    const char *d = getenv("ASG_TESTDATA");
    char base[400];
    snprintf(base, sizeof base, "%s/aws/ec2-responses", d ? d : "../shared/testdata");
    const char *dirs[] = {"aws-docs", "botocore", "libcloud", "moto-generated"};
    for (int i = 0; i < 4; i++) {
        char dir[450];
        snprintf(dir, sizeof dir, "%s/%s", base, dirs[i]);
        DIR *dp = opendir(dir);
        if (!dp)
            continue;
        struct dirent *e;
        while ((e = readdir(dp)) != NULL && nfiles < MAX_FILES) {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".xml") == 0)
                snprintf(files[nfiles++], sizeof files[0], "%s/%.*s", dir, (int)(n - 4), e->d_name);
        }
        closedir(dp);
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static json_object *jget(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Compares one expected instance (botocore's) with ours. */
static void check_instance(const char *file, json_object *exp, const char *state_key,
                           const struct ec2_instance *got)
{
    ck_assert_msg(strcmp(jstr(exp, "InstanceId"), got->id) == 0, "%s: id %s vs %s", file,
                  jstr(exp, "InstanceId"), got->id);
    json_object *st = jget(exp, state_key);
    if (st) {
        ck_assert_msg(json_object_get_int(jget(st, "Code")) == got->state_code,
                      "%s %s: state code %d vs %d", file, got->id,
                      json_object_get_int(jget(st, "Code")), got->state_code);
        ck_assert_str_eq(jstr(st, "Name"), got->state_name);
    }
    ck_assert_msg(strcmp(jstr(exp, "PrivateIpAddress"), got->private_ip) == 0, "%s %s: ip %s vs %s",
                  file, got->id, jstr(exp, "PrivateIpAddress"), got->private_ip);
    json_object *tags = jget(exp, "Tags");
    int nt = tags ? (int)json_object_array_length(tags) : 0;
    ck_assert_msg(nt == got->ntags, "%s %s: %d tags vs %d", file, got->id, nt, got->ntags);
    for (int i = 0; i < nt; i++) {
        json_object *t = json_object_array_get_idx(tags, (size_t)i);
        const char *v = ec2_tag_value(got, jstr(t, "Key"));
        ck_assert_msg(v && strcmp(v, jstr(t, "Value")) == 0, "%s %s: tag %s", file, got->id,
                      jstr(t, "Key"));
    }
}

START_TEST(test_sample_matches_botocore)
{
    const char *base = files[_i];
    char path[600];
    size_t len, jlen;
    snprintf(path, sizeof path, "%s.xml", base);
    char *xml = slurp(path, &len);
    snprintf(path, sizeof path, "%s.botocore.json", base);
    char *js = slurp(path, &jlen);
    json_object *doc = json_tokener_parse(js);
    ck_assert_msg(doc != NULL, "%s: bad json", path);
    json_object *parsed = jget(doc, "parsed");
    int http = json_object_get_int(jget(doc, "http_status"));

    struct ec2_response r;
    char err[256];
    ck_assert_msg(ec2_parse(xml, len, &r, err, sizeof err) == 0, "%s: %s", base, err);
    if (http >= 400) {
        json_object *e = jget(parsed, "Error");
        ck_assert_msg(r.kind == EC2_RESP_ERROR, "%s: not seen as an error", base);
        ck_assert_str_eq(r.error_code, jstr(e, "Code"));
        ck_assert_str_eq(r.error_message, jstr(e, "Message"));
        ck_assert_str_eq(r.request_id, jstr(jget(parsed, "ResponseMetadata"), "RequestId"));
    } else {
        ck_assert_msg(r.kind == EC2_RESP_OK, "%s: seen as an error", base);
        /* Flatten what botocore found into one list of instances. */
        json_object *list = json_object_new_array();
        const char *state_key = "State";
        json_object *res = jget(parsed, "Reservations");
        for (size_t i = 0; res && i < json_object_array_length(res); i++) {
            json_object *ins = jget(json_object_array_get_idx(res, i), "Instances");
            for (size_t k = 0; ins && k < json_object_array_length(ins); k++)
                json_object_array_add(list, json_object_get(json_object_array_get_idx(ins, k)));
        }
        json_object *other = jget(parsed, "Instances");
        if (!other && (other = jget(parsed, "TerminatingInstances")))
            state_key = "CurrentState";
        if (!other && (other = jget(parsed, "InstanceStatuses")))
            state_key = "InstanceState";
        for (size_t k = 0; other && k < json_object_array_length(other); k++)
            json_object_array_add(list, json_object_get(json_object_array_get_idx(other, k)));
        size_t n = json_object_array_length(list);
        ck_assert_msg(n == r.ninstances, "%s: %zu instances vs %zu", base, n, r.ninstances);
        for (size_t k = 0; k < n; k++)
            check_instance(base, json_object_array_get_idx(list, k), state_key, &r.instances[k]);
        ck_assert_str_eq(r.next_token, jstr(parsed, "NextToken"));
        json_object_put(list);
    }
    ec2_response_free(&r);
    json_object_put(doc);
    free(xml);
    free(js);
}
END_TEST

START_TEST(test_all_samples_found)
{
    ck_assert_msg(nfiles == 22, "found %d EC2 samples, expected 22", nfiles);
}
END_TEST

static void expect_reject(const char *xml, const char *why)
{
    struct ec2_response r;
    char err[256];
    ck_assert_msg(ec2_parse(xml, strlen(xml), &r, err, sizeof err) != 0, "accepted: %s", xml);
    ck_assert_msg(strstr(err, why) != NULL, "'%s' does not say '%s'", err, why);
}

START_TEST(test_hostile_documents)
{
    expect_reject("<DescribeInstancesResponse><reservationSet>", "not well-formed");
    expect_reject("not xml at all", "not well-formed");
    expect_reject("<html><body>500</body></html>", "not an EC2 response");
    expect_reject("<Response><Errors/></Response>", "without an <Error>");
    expect_reject("<Response><Errors><Error><Message>m</Message></Error></Errors></Response>",
                  "without a <Code>");
    expect_reject("<RunInstancesResponse><instancesSet><item><instanceState><code>x</code>"
                  "</instanceState></item></instancesSet></RunInstancesResponse>", "no <instanceId>");
    expect_reject("<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>"
                  "<instanceState><code>sixteen</code></instanceState></item></instancesSet>"
                  "</RunInstancesResponse>", "not a 16-bit number");
    char big[400] = "<RunInstancesResponse><instancesSet><item><instanceId>i-";
    memset(big + strlen(big), '9', 60);
    strcat(big, "</instanceId></item></instancesSet></RunInstancesResponse>");
    expect_reject(big, "longer than 31");
    /* An entity is not expanded (no billion laughs, no external files). */
    const char *ent = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                      "<TerminateInstancesResponse><requestId>&x;</requestId></TerminateInstancesResponse>";
    struct ec2_response r;
    char err[256];
    if (ec2_parse(ent, strlen(ent), &r, err, sizeof err) == 0) {
        ck_assert_msg(strstr(r.request_id, "root:") == NULL, "external entity expanded");
        ec2_response_free(&r);
    }
}
END_TEST

START_TEST(test_high_byte_of_state_ignored)
{
    const char *xml = "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
                      "<instanceId>i-1</instanceId><instanceState><code>272</code><name>running</name>"
                      "</instanceState></item></instancesSet></item></reservationSet>"
                      "<nextToken>abc+/=</nextToken></DescribeInstancesResponse>";
    struct ec2_response r;
    char err[256];
    ck_assert_msg(ec2_parse(xml, strlen(xml), &r, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(r.ninstances, 1);
    ck_assert_int_eq(r.instances[0].state_code, 16);
    ck_assert_str_eq(r.next_token, "abc+/=");
    ec2_response_free(&r);
}
END_TEST

Suite *ec2_xml_suite(void)
{
    find_samples();
    Suite *s = suite_create("ec2-xml");
    TCase *tc = tcase_create("samples");
    tcase_add_test(tc, test_all_samples_found);
    tcase_add_test(tc, test_hostile_documents);
    tcase_add_test(tc, test_high_byte_of_state_ignored);
    if (nfiles)
        tcase_add_loop_test(tc, test_sample_matches_botocore, 0, nfiles);
    suite_add_tcase(s, tc);
    return s;
}
