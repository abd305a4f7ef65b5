#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/url.h"
#include "check_suites.h"

START_TEST(test_shipped_file_is_the_defaults)
{
    struct asg_config file, def;
    char err[512];
    int rc = config_load("etc/asg.cfg", &file, err, sizeof err);
    ck_assert_msg(rc == 0, "etc/asg.cfg rejected: %s", err);
    config_defaults(&def);
    /* Everything but the name of the source must match: the file
     * documents the built-in defaults. */
    memcpy(file.source, def.source, sizeof def.source);
    ck_assert_msg(memcmp(&file, &def, sizeof def) == 0,
                  "etc/asg.cfg and config_defaults() disagree");
}
END_TEST

START_TEST(test_good_file_applies_values)
{
    const char *text =
        "group = { name = \"web\"; min_instances = 1; max_instances = 9; desired_instances = 3; };\n"
        "policy = { kind = \"target\"; target = 0.7; scale_out_above = 1; scale_in_below = 0; };\n"
        "monitor = { listen = \"127.0.0.1:0\"; adopt_unknown = true; };\n"
        "provider = { local = { stop_on_exit = false; }; };\n";
    struct asg_config c;
    char err[512];
    ck_assert_msg(config_load_string(text, "t.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.group_name, "web");
    /* The agent's https and named checks pass through the config. */
    const char *https = "provider = { local = { service_health = \"https://svc.asg.test/ready\"; }; };\n";
    ck_assert_msg(config_load_string(https, "h.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.local_service_health, "https://svc.asg.test/ready");
    const char *ca = "provider = { local = { service_health = \"https:/\"; service_ca = \"/etc/ca.pem\"; }; };\n";
    ck_assert_msg(config_load_string(ca, "h.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.local_service_ca, "/etc/ca.pem");
    ck_assert_msg(config_load_string(text, "t.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.max_instances, 9);
    ck_assert_int_eq(c.desired_instances, 3);
    ck_assert_int_eq(c.policy_kind, POLICY_TARGET);
    ck_assert(c.target > 0.69 && c.target < 0.71);
    ck_assert(c.scale_out_above == 1.0); /* an integer is accepted for a fraction */
    ck_assert(c.adopt_unknown);
    ck_assert(!c.local_stop_on_exit);
    ck_assert_int_eq(c.probe_interval_ms, 1000); /* untouched keys keep defaults */
    const char *ec2 = "tls = { mode = \"plaintext\"; };\n"
                      "provider = { kind = \"ec2\"; ec2 = { region = \"eu-west-1\";\n"
                      " image_id = \"ami-0abc\"; security_group_ids = [\"sg-1\", \"sg-2\"]; }; };\n";
    ck_assert_msg(config_load_string(ec2, "e.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(provider_kind_name(c.provider_kind), "ec2");
    ck_assert_str_eq(c.ec2_security_group_ids, "sg-1,sg-2");
    ck_assert_str_eq(c.ec2_instance_type, "t2.micro");
    ck_assert_int_eq(c.tls_mode, TLS_PLAINTEXT);
    /* Without tls.mode, an EC2 group is mutual TLS too (instances join). */
    ck_assert_msg(config_load_string(strchr(ec2, '\n') + 1, "e.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.tls_mode, TLS_AUTO);
}
END_TEST

struct bad {
    const char *text;
    int line;
    const char *why;
};

static const struct bad bad_files[] = {
    {"group = {\n  min_instances = \"two\";\n};\n", 2, "must be an integer"},
    {"group = {\n  name = \"g\";\n  colour = 3;\n};\n", 3, "unknown key 'group.colour'"},
    {"\n\ngroupp = { };\n", 3, "unknown group 'groupp'"},
    {"bogus = 1;\n", 1, "unknown key 'bogus'"},
    {"provider = { local = {\n service_health = \"http:/\";\n service_ca = \"/ca.pem\";\n}; };\n", 3,
     "for an https service_health"},
    {"group = { min_instances = -1; };\n", 1, "out of range 0..100000"},
    /* Scale to zero: only where the metric sees demand with no instance. */
    {"group = { min_instances = 0; };\n", 1, "min_instances 0 (scale to zero) needs a metric that sees "
     "demand with no instance: policy.metric \"requests\" and lb.kind \"haproxy\""},
    {"group = { min_instances = 0; };\npolicy = { metric = \"requests\"; };\nprovider = { local = "
     "{ service_requests = \"http:/n\"; }; };\n", 1, "with lb.kind it is none"},
    {"group = {\n min_instances = 3;\n max_instances = 2;\n desired_instances = 2;\n};\n", 3,
     "below group.min_instances"},
    {"group = {\n desired_instances = 9;\n};\n", 2, "outside min..max"},
    {"policy = {\n scale_out_above = 0.5;\n scale_in_below = 0.5;\n};\n", 3, "must be below"},
    {"policy = {\n target = 1.5;\n};\n", 2, "out of range 0..1"},
    {"policy = {\n kind = \"magic\";\n};\n", 2, "not one of: threshold, target"},
    {"policy = {\n kind = 1;\n};\n", 2, "must be a string"},
    {"monitor = {\n probe_interval_ms = 100;\n probe_timeout_ms = 5;\n};\n", 3,
     "out of range 10..3600000"},
    {"monitor = {\n listen = \"nowhere\";\n};\n", 2, "not host:port"},
    {"monitor = {\n listen = \"127.0.0.1:99999\";\n};\n", 2, "bad port"},
    {"monitor = {\n adopt_unknown = 1;\n};\n", 2, "must be true or false"},
    {"shm = {\n name = \"asg\";\n};\n", 2, "shm.name must be"},
    {"supervisor = {\n pidfile = \"asgd.pid\";\n};\n", 2, "absolute path"},
    {"provider = {\n kind = \"ec2\";\n};\n", 2, "provider.ec2.region must be set"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; };\n};\n", 2,
     "needs provider.ec2.launch_template or provider.ec2.image_id"},
    {"provider = {\n ec2 = {\n  security_group_ids = \"sg-1\";\n };\n};\n", 3, "must be a list of strings"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; image_id = \"ami-1\";\n"
     "  launch_template_version = \"3\"; };\n};\n", 4, "launch_template_version needs provider.ec2.launch_template"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; launch_template = \"lt-1\";\n"
     "  launch_template_version = \"latest\"; };\n};\n", 4, "must be a version number"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; launch_template = \"lt-1\";\n"
     "  launch_template_version = \"007\"; };\n};\n", 4, "must be a version number"},
    {"provider = {\n ec2 = {\n  security_group_ids = [\"sg-1\", \"\"];\n };\n};\n", 3, "item 2"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; image_id = \"ami-1\";\n"
     "  endpoint = \"ftp://x\"; };\n};\n", 4, "must start with https://"},
    {"provider = {\n kind = \"ec2\";\n ec2 = { region = \"us-east-1\"; image_id = \"ami-1\";\n"
     "  agent_port = 70000; };\n};\n", 4, "out of range 1..65535"},
    {"group = {\n name = \"bad name\";\n};\n", 2, "group.name must be"},
    {"group = {\n min_instances = = 2;\n};\n", 2, "syntax error"},
    {"group = {\n max_instances = 2000;\n};\n", 2, "exceeds shm.capacity"},
    {"policy = {\n evaluation_interval_ms = 1.5;\n};\n", 2, "must be an integer"},
    {"status = {\n token = \"hunter2\";\n};\n", 2, "a secret does not belong in the config file"},
    {"status = {\n listen = \"127.0.0.1\";\n};\n", 2, "status.listen"},
    {"tls = {\n ca = \"/etc/hostname\";\n};\n", 2, "unknown key 'tls.ca' (the manager now makes its own CA"},
    {"tls = {\n mode = \"none\";\n};\n", 2, "not one of: auto, plaintext"},
    {"group = { };\n  @include \"/etc/hostname\"\n", 2, "@include is not supported"},
    {"tls = {\n dir = \"var/lib/asg\";\n};\n", 2, "tls.dir must be an absolute path"},
    {"tls = {\n dir = \"/var/lib/../../etc\";\n};\n", 2, "without '..'"},
    {"supervisor = {\n pidfile = \"/etc/passwd\";\n};\n", 2, "NAME.pid file"},
    {"supervisor = {\n pidfile = \"/run/../etc/x.pid\";\n};\n", 2, "NAME.pid file"},
    {"monitor = {\n listen = \"203.0.113.9:7301\";\n};\n", 2, "not an address of this machine"},
    {"monitor = {\n listen = \"localhost:7301\";\n};\n", 2, "is not an IPv4 address"},
    {"status = {\n listen = \"198.51.100.7:9180\";\n};\n", 2, "not an address of this machine"},
    {"status = {\n listen = \"0.0.0.0:9180\";\n};\n", 2, "set status.token"},
    {"monitor = {\n listen = \"0.0.0.0:7301\";\n};\ntls = {\n mode = \"plaintext\";\n};\n", 5,
     "off loopback: anyone on the network"},
};

START_TEST(test_bad_file_names_the_line)
{
    const struct bad *b = &bad_files[_i];
    struct asg_config c;
    char err[512], want[32];
    int rc = config_load_string(b->text, "bad.cfg", &c, err, sizeof err);
    ck_assert_msg(rc != 0, "case %d accepted:\n%s", _i, b->text);
    snprintf(want, sizeof want, "bad.cfg:%d: ", b->line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %d: '%s' does not start with '%s'",
                  _i, err, want);
    ck_assert_msg(strstr(err, b->why) != NULL, "case %d: '%s' does not say '%s'", _i, err, b->why);
}
END_TEST

START_TEST(test_huge_string_rejected)
{
    char text[2048];
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(text, sizeof text, "provider = {\n local = {\n agent_path = \"/%s\";\n };\n};\n", big);
    struct asg_config c;
    char err[512];
    ck_assert(config_load_string(text, "big.cfg", &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "big.cfg:3: provider.local.agent_path is longer than") != NULL, "%s", err);
}
END_TEST

START_TEST(test_missing_and_unreadable_files)
{
    struct asg_config c;
    char err[512];
    ck_assert(config_load("/nonexistent/asg.cfg", &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "/nonexistent/asg.cfg: cannot read: No such file") != NULL, "%s", err);
    ck_assert(config_load("/", &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
    char path[] = "/tmp/asg-garbage-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    const unsigned char junk[] = {0x7f, 'E', 'L', 'F', 0, 1, 2, 0xff, 0xfe, '\n', '{', '{'};
    ck_assert(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    ck_assert(config_load(path, &c, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, ":1: ") != NULL, "%s", err);
    unlink(path);
}
END_TEST

/* Writes text to a new temporary file; its path in path (a mkstemp pattern). */
static void write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

START_TEST(test_lenient_reading_keeps_what_it_can)
{
    /* asgctl's reading: a syntax error's line skipped, a bad value and an
     * unknown key left out, the rules between keys not applied; the first
     * problem named with its line, and the good keys taken. */
    const char *text = "group = { min_instances = 9; max_instances = 4;\n"
                       "  desired_instances = ;\n"
                       "};\n"
                       "@include \"/etc/passwd\"\n"
                       "policy = { cooldown_ms = \"soon\"; nonsense = 1; };\n"
                       "shm = { name = \"/lenient\"; capacity = 5; };\n"
                       "tls = { dir = \"/tmp/lenient-tls\"; };\n";
    char path[] = "/tmp/asg-lenient-XXXXXX", err[512];
    write_temp(path, text);
    struct asg_config c;
    ck_assert(config_load(path, &c, err, sizeof err) != 0);
    int n = config_load_lenient(path, &c, err, sizeof err);
    ck_assert_int_ge(n, 4);
    char want[64];
    snprintf(want, sizeof want, "%s:4: @include is not supported", path); /* looked for first */
    ck_assert_msg(strstr(err, want), "%s", err);
    ck_assert_str_eq(c.shm_name, "/lenient");
    ck_assert_str_eq(c.tls_dir, "/tmp/lenient-tls");
    ck_assert_int_eq(c.shm_capacity, 5);
    ck_assert_int_eq(c.min_instances, 9);
    ck_assert_int_eq(c.cooldown_ms, 10000); /* its default */
    /* A good file: no problem, and the same as the strict reading. */
    unlink(path);
    char good[] = "/tmp/asg-lenient-XXXXXX";
    write_temp(good, "shm = { name = \"/fine\"; };\n");
    ck_assert_int_eq(config_load_lenient(good, &c, err, sizeof err), 0);
    ck_assert_str_eq(c.shm_name, "/fine");
    unlink(good);
    ck_assert_int_eq(config_load_lenient("/nonexistent/asg.cfg", &c, err, sizeof err), -1);
}
END_TEST

START_TEST(test_restart_keys)
{
    struct asg_config a, b;
    config_defaults(&a);
    config_defaults(&b);
    b.max_instances = 4;
    ck_assert_ptr_null(config_restart_key_changed(&a, &b));
    strcpy(b.shm_name, "/other");
    ck_assert_str_eq(config_restart_key_changed(&a, &b), "shm.name");
    /* Read once at start, so never changed by a reload. */
    config_defaults(&b);
    strcpy(b.ec2_region, "eu-west-1");
    ck_assert_str_eq(config_restart_key_changed(&a, &b), "provider.ec2.region");
    config_defaults(&b);
    b.tls_mode = TLS_PLAINTEXT;
    ck_assert_str_eq(config_restart_key_changed(&a, &b), "tls.mode");
    /* Applied live. */
    config_defaults(&b);
    b.adopt_unknown = true;
    b.scale_out_above = 0.9;
    strcpy(b.status_allowed_hosts, "a.example");
    ck_assert_ptr_null(config_restart_key_changed(&a, &b));
}
END_TEST

/* ha.etcd: plaintext only to a loopback literal or localhost, decided on
 * the host libcurl reads, not on how the text begins. */
static const char *const good_etcd[] = {
    "http://127.0.0.1:2379", "http://127.9.8.7:2379", "http://[::1]:2379", "http://localhost:2379",
    "https://etcd.example.com:2379", "https://127.0.0.1.nip.io:2379", "https://[2001:db8::1]:2379",
};

static const struct {
    const char *url, *why;
} bad_etcd[] = {
    {"http://127.0.0.1.nip.io:2379", "plaintext off loopback (127.0.0.1.nip.io is not"},
    {"http://127.evil.com:2379", "plaintext off loopback"},
    {"http://localhost.evil.com:2379", "plaintext off loopback"},
    {"http://10.1.2.3:2379", "plaintext off loopback"},
    {"http://[::2]:2379", "plaintext off loopback"},
    {"http://127.0.0.1@evil.com:2379", "a user or password"},
    {"http://u:p@127.0.0.1:2379", "a user or password"},
    {"http://0x7f.1:2379", "as curl reads it (it reads http://127.0.0.1:2379)"},
    {"http://127.1:2379", "as curl reads it"},
    {"http://2130706433:2379", "as curl reads it"},
    {"http://evil.com#@127.0.0.1:2379", "is not http(s)://HOST:PORT"},
    {"http://127.0.0.1:2379/v3", "as curl reads it"},
    {"http://127.0.0.1:2379?x=1", "as curl reads it"},
    {"http://[::1%25lo]:2379", "as curl reads it"},
    {"http://127.0.0.1", "the port must be given"},
    {"ftp://127.0.0.1:21", "the scheme must be http or https"},
    {"127.0.0.1:2379", "is not http(s)://HOST:PORT"},
};

START_TEST(test_etcd_urls)
{
    struct asg_config c;
    char text[300], err[512];
    for (size_t i = 0; i < sizeof good_etcd / sizeof good_etcd[0]; i++) {
        snprintf(text, sizeof text, "ha = { etcd = [\"%s\"]; };\n", good_etcd[i]);
        ck_assert_msg(config_load_string(text, "ha.cfg", &c, err, sizeof err) == 0, "%s refused: %s",
                      good_etcd[i], err);
    }
    for (size_t i = 0; i < sizeof bad_etcd / sizeof bad_etcd[0]; i++) {
        snprintf(text, sizeof text, "ha = { etcd = [\"http://127.0.0.1:2379\", \"%s\"]; };\n", bad_etcd[i].url);
        ck_assert_msg(config_load_string(text, "ha.cfg", &c, err, sizeof err) != 0, "%s accepted", bad_etcd[i].url);
        ck_assert_msg(strstr(err, bad_etcd[i].why) != NULL, "%s: '%s' does not say '%s'", bad_etcd[i].url, err,
                      bad_etcd[i].why);
    }
}
END_TEST

START_TEST(test_loopback_hosts)
{
    const char *yes[] = {"127.0.0.1", "127.255.0.9", "[::1]", "::1", "localhost", "LocalHost",
                         "[0:0:0:0:0:0:0:1]"};
    const char *no[] = {"127.0.0.1.nip.io", "127.evil.com", "128.0.0.1", "0x7f.1", "127.1", "[::2]", "[::]",
                        "0.0.0.0", "localhost.", "localhost.evil.com", "[127.0.0.1]", "", "[]", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(host_is_loopback(yes[i]), "%s is loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(!host_is_loopback(no[i]), "%s is not loopback", no[i]);
    struct endpoint_url u;
    char why[300];
    ck_assert_msg(endpoint_url_parse("https://[::1]:2379", &u, why, sizeof why) == 0, "%s", why);
    ck_assert(u.tls && u.port == 2379 && strcmp(u.host, "[::1]") == 0);
    ck_assert_msg(endpoint_url_parse("http://localhost:1", &u, why, sizeof why) == 0, "%s", why);
    ck_assert(!u.tls && u.port == 1 && strcmp(u.host, "localhost") == 0);
    ck_assert(endpoint_url_parse("http://localhost:0", &u, why, sizeof why) != 0);
    ck_assert(endpoint_url_parse("http://localhost:65536", &u, why, sizeof why) != 0);
}
END_TEST

/* min_instances 0 where the balancer sees the backend's waiting requests. */
START_TEST(test_scale_to_zero_accepted_behind_haproxy)
{
    struct asg_config c;
    char err[512];
    const char *text = "group = { min_instances = 0; desired_instances = 0; scale_to_zero_idle_s = 5; };\n"
                       "policy = { metric = \"requests\"; };\n"
                       "lb = { kind = \"haproxy\"; haproxy = { socket = \"/run/h.sock\"; backend = \"web\"; }; };\n";
    ck_assert_msg(config_load_string(text, "zero.cfg", &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c.min_instances, 0);
    ck_assert_int_eq(c.desired_instances, 0);
    ck_assert_int_eq(c.scale_to_zero_idle_s, 5);
    config_defaults(&c);
    ck_assert_int_eq(c.scale_to_zero_idle_s, 300);
}
END_TEST

Suite *config_suite(void)
{
    const TTest *tests[] = {
        test_shipped_file_is_the_defaults,
        test_good_file_applies_values,
        test_huge_string_rejected,
        test_missing_and_unreadable_files,
        test_restart_keys,
        test_lenient_reading_keeps_what_it_can,
        test_etcd_urls,
        test_loopback_hosts,
        test_scale_to_zero_accepted_behind_haproxy,
        NULL};
    TCase *tc;
    Suite *s = suite_of("config", "config", NULL, NULL, 0, tests, &tc);
    tcase_add_loop_test(tc, test_bad_file_names_the_line, 0,
                        (int)(sizeof bad_files / sizeof bad_files[0]));
    return s;
}
