#include "config.h"
#include "util.h"
#include "cron.h"
#include "utf8.h"
#include "url.h"
#include "webhook_cfg.h"
#include "termination.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

enum ktype { K_INT, K_FRAC, K_STR, K_BOOL, K_ENUM, K_STRLIST };

/* One row per key: where it lives, its type and range, its default, and
 * whether a reload (SIGHUP) may change it. Defaults, validation, the
 * restart check and `asgd --keys` (which asg.cfg(5)'s key reference must match)
 * all come from here. */
struct keydef {
    const char *path;
    enum ktype type;
    size_t off;
    size_t size;              /* K_STR, K_STRLIST: buffer size */
    long lo, hi;              /* K_INT range */
    const char *const *names; /* K_ENUM values, NULL-terminated */
    bool restart;             /* read once at start: a reload must not change it */
    long idef;                /* default of K_INT, K_BOOL, K_ENUM (an index in names) */
    double fdef;              /* default of K_FRAC */
    const char *sdef;         /* default of K_STR, K_STRLIST */
    char sep;                 /* K_STRLIST: what joins the items in the field */
};

static const char *const policy_names[] = {"threshold", "target", "predictive", NULL};
static const char *const provider_names[] = {"local", "ec2", "exec", NULL};
static const char *const lb_names[] = {"none", "haproxy", "elbv2", NULL};
static const char *const metric_names[] = {"load", "requests", NULL};
static const char *const tls_names[] = {"auto", "plaintext", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
const char *const config_hook_result_names[] = {"continue", "abandon", NULL};
/* The facilities a daemon of the operator's may use: its own (daemon), the
 * generic one (user) and the eight left to the site (local0..local7). */
const char *const config_facility_names[] = {"daemon", "user", "local0", "local1", "local2",
                                             "local3", "local4", "local5", "local6", "local7", NULL};
static const int facility_values[] = {LOG_DAEMON, LOG_USER, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2,
                                      LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};

enum { LIVE = 0, RESTART = 1 };

#define OFF(f) offsetof(struct asg_config, f)
#define SZ(f) sizeof(((struct asg_config *)0)->f)
#define INT(p, f, lo, hi, d, r) {p, K_INT, OFF(f), 0, lo, hi, NULL, r, d, 0, NULL}
#define FRAC(p, f, d, r) {p, K_FRAC, OFF(f), 0, 0, 0, NULL, r, 0, d, NULL}
#define STR(p, f, d, r) {p, K_STR, OFF(f), SZ(f), 0, 0, NULL, r, 0, 0, d}
#define BOOL(p, f, d, r) {p, K_BOOL, OFF(f), 0, 0, 0, NULL, r, d, 0, NULL}
#define ENUM(p, f, n, d, r) {p, K_ENUM, OFF(f), 0, 0, 0, n, r, d, 0, NULL}
#define STRLIST(p, f, r) {p, K_STRLIST, OFF(f), SZ(f), 0, 0, NULL, r, 0, 0, "", ','}
/* A command and its arguments: any characters but the joining 0x1f. */
#define ARGV(p, f, r) {p, K_STRLIST, OFF(f), SZ(f), 0, 0, NULL, r, 0, 0, "", CONFIG_ARGV_SEP}

#define HOUR_MS 3600000L
static const struct keydef keys[] = {
    STR("group.name", group_name, "asg", RESTART),
    INT("group.min_instances", min_instances, 0, 100000, 2, LIVE),
    INT("group.max_instances", max_instances, 1, 100000, 5, LIVE),
    INT("group.desired_instances", desired_instances, 0, 100000, 2, LIVE),
    STRLIST("group.termination_policy", termination_policy, LIVE),
    INT("group.scale_to_zero_idle_s", scale_to_zero_idle_s, 1, 7 * 86400L, 300, LIVE),
    INT("group.max_instance_lifetime_s", max_instance_lifetime_s, 0, 3650 * 86400L, 0, LIVE),
    BOOL("rollout.auto", rollout_auto, false, LIVE),
    STR("rollout.max_surge", rollout_max_surge, "1", LIVE),
    STR("rollout.max_unavailable", rollout_max_unavailable, "0", LIVE),
    INT("rollout.bake_s", rollout_bake_s, 0, 86400, 30, LIVE),
    BOOL("rollout.rollback", rollout_rollback, true, LIVE),
    FRAC("rollout.error_margin", rollout_error_margin, 0.05, LIVE),
    INT("rollout.min_requests", rollout_min_requests, 1, 1000000000L, 20, LIVE),
    ENUM("policy.kind", policy_kind, policy_names, POLICY_THRESHOLD, LIVE),
    ENUM("policy.metric", policy_metric, metric_names, METRIC_LOAD, LIVE),
    INT("policy.target_requests", target_requests, 1, 10000000, 100, LIVE),
    FRAC("policy.utilization", utilization, 0.90, LIVE),
    INT("policy.boot_ms", boot_ms, 0, HOUR_MS, 60000, LIVE),
    FRAC("policy.scale_out_above", scale_out_above, 0.60, LIVE),
    FRAC("policy.scale_in_below", scale_in_below, 0.30, LIVE),
    FRAC("policy.target", target, 0.50, LIVE),
    FRAC("policy.target_tolerance", target_tolerance, 0.10, LIVE),
    INT("policy.breach_periods", breach_periods, 1, 1000, 3, LIVE),
    INT("policy.evaluation_interval_ms", evaluation_interval_ms, 50, HOUR_MS, 1000, LIVE),
    INT("policy.cooldown_ms", cooldown_ms, 0, HOUR_MS, 10000, LIVE),
    INT("policy.scale_in_stabilization_ms", scale_in_stabilization_ms, 0, HOUR_MS, 60000, LIVE),
    INT("policy.warmup_ms", warmup_ms, 0, HOUR_MS, 5000, LIVE),
    STR("monitor.listen", monitor_listen, "127.0.0.1:7301", RESTART),
    INT("monitor.probe_interval_ms", probe_interval_ms, 1, HOUR_MS, 1000, LIVE),
    INT("monitor.probe_timeout_ms", probe_timeout_ms, 10, HOUR_MS, 500, LIVE),
    INT("monitor.unhealthy_after", unhealthy_after, 1, 1000, 3, LIVE),
    BOOL("monitor.adopt_unknown", adopt_unknown, false, LIVE),
    ENUM("provider.kind", provider_kind, provider_names, PROVIDER_LOCAL, RESTART),
    INT("provider.boot_timeout_ms", boot_timeout_ms, 100, HOUR_MS, 30000, LIVE),
    STR("provider.local.agent_path", local_agent_path, "", RESTART),
    BOOL("provider.local.stop_on_exit", local_stop_on_exit, true, LIVE),
    ARGV("provider.local.service", local_service, LIVE),
    STR("provider.local.service_health", local_service_health, "tcp", LIVE),
    STR("provider.local.service_requests", local_service_requests, "", LIVE),
    STR("provider.local.service_ca", local_service_ca, "", LIVE),
    INT("provider.local.kill_timeout_ms", local_kill_timeout_ms, 10, 600000, 3000, LIVE),
    STR("provider.ec2.region", ec2_region, "", RESTART),
    STR("provider.ec2.endpoint", ec2_endpoint, "", RESTART),
    STR("provider.ec2.launch_template", ec2_launch_template, "", LIVE),
    STR("provider.ec2.launch_template_version", ec2_launch_template_version, "", LIVE),
    STR("provider.ec2.image_id", ec2_image_id, "", LIVE),
    STR("provider.ec2.instance_type", ec2_instance_type, "t2.micro", LIVE),
    STR("provider.ec2.subnet_id", ec2_subnet_id, "", LIVE),
    STRLIST("provider.ec2.security_group_ids", ec2_security_group_ids, LIVE),
    STR("provider.ec2.key_name", ec2_key_name, "", LIVE),
    INT("provider.ec2.agent_port", ec2_agent_port, 1, 65535, 7302, LIVE),
    INT("provider.ec2.reconcile_interval_ms", ec2_reconcile_interval_ms, 1000, HOUR_MS, 30000, LIVE),
    INT("provider.ec2.terminate_timeout_ms", ec2_terminate_timeout_ms, 10, 600000, 3000, LIVE),
    INT("provider.ec2.call_timeout_ms", ec2_call_timeout_ms, 100, 120000, 10000, RESTART),
    STR("provider.ec2.manager_address", ec2_manager_address, "", LIVE),
    STR("provider.ec2.agent_path", ec2_agent_path, "/usr/local/bin/asg-agent", LIVE),
    ARGV("provider.ec2.service", ec2_service, LIVE),
    STR("provider.ec2.service_health", ec2_service_health, "tcp", LIVE),
    STR("provider.ec2.service_requests", ec2_service_requests, "", LIVE),
    ARGV("provider.exec.launch", exec_launch, LIVE),
    ARGV("provider.exec.terminate", exec_terminate, LIVE),
    ARGV("provider.exec.list", exec_list, LIVE),
    INT("provider.exec.timeout_ms", exec_timeout_ms, 100, 600000, 30000, LIVE),
    INT("provider.exec.terminate_timeout_ms", exec_terminate_timeout_ms, 10, 600000, 3000, LIVE),
    INT("provider.exec.reconcile_interval_ms", exec_reconcile_interval_ms, 500, HOUR_MS, 10000, LIVE),
    STR("provider.exec.manager_address", exec_manager_address, "", LIVE),
    ENUM("lb.kind", lb_kind, lb_names, LB_NONE, RESTART),
    STR("lb.haproxy.socket", lb_haproxy_socket, "", RESTART),
    STR("lb.haproxy.backend", lb_haproxy_backend, "", RESTART),
    STR("lb.elbv2.target_group_arn", lb_elbv2_target_group_arn, "", RESTART),
    STR("lb.elbv2.endpoint", lb_elbv2_endpoint, "", RESTART),
    INT("lb.elbv2.port", lb_elbv2_port, 1, 65535, 80, RESTART),
    BOOL("lb.weight_by_load", lb_weight_by_load, false, LIVE),
    INT("lb.drain_timeout_ms", lb_drain_timeout_ms, 0, HOUR_MS, 30000, LIVE),
    INT("lb.interval_ms", lb_interval_ms, 100, 60000, 1000, LIVE),
    INT("lb.reconcile_interval_ms", lb_reconcile_interval_ms, 500, HOUR_MS, 5000, LIVE),
    INT("lb.call_timeout_ms", lb_call_timeout_ms, 100, 60000, 2000, LIVE),
    STRLIST("ha.etcd", ha_etcd, RESTART),
    INT("ha.lease_ttl_ms", ha_lease_ttl_ms, 2000, 600000, 5000, RESTART),
    STR("ha.prefix", ha_prefix, "/asg", RESTART),
    STR("ha.id", ha_id, "", RESTART),
    STR("ha.tls.ca", ha_tls_ca, "", RESTART),
    STR("ha.tls.cert", ha_tls_cert, "", RESTART),
    STR("ha.tls.key", ha_tls_key, "", RESTART),
    STR("schedule.timezone", schedule_timezone, "", LIVE),
    ENUM("tls.mode", tls_mode, tls_names, TLS_AUTO, RESTART),
    STR("tls.dir", tls_dir, "", RESTART),
    STR("status.listen", status_listen, "127.0.0.1:9180", RESTART),
    STR("status.token", status_token, "", LIVE),
    STRLIST("status.allowed_hosts", status_allowed_hosts, LIVE),
    INT("notify.queue", notify_queue, 1, 10000, 1000, LIVE),
    INT("notify.retry_max_s", notify_retry_max_s, 1, 86400, 300, LIVE),
    INT("notify.timeout_ms", notify_timeout_ms, 100, 600000, 5000, LIVE),
    STR("notify.secret", notify_secret, "", LIVE),
    BOOL("history.enabled", history_enabled, true, RESTART),
    STR("history.path", history_path, "", RESTART),
    INT("history.retention_days", history_retention_days, 1, 3650, 30, LIVE),
    INT("history.sample_interval_s", history_sample_interval_s, 1, 3600, 60, LIVE),
    STR("shm.name", shm_name, "/asg", RESTART),
    INT("shm.capacity", shm_capacity, 1, 100000, 1024, RESTART),
    STR("supervisor.pidfile", pidfile, "/run/asg/asgd.pid", RESTART),
    INT("supervisor.drain_timeout_ms", drain_timeout_ms, 100, 600000, 10000, LIVE),
    INT("supervisor.restart_stable_ms", restart_stable_ms, 100, HOUR_MS, 10000, LIVE),
    INT("supervisor.restart_backoff_ms", restart_backoff_ms, 10, 60000, 250, LIVE),
    INT("supervisor.restart_backoff_max_ms", restart_backoff_max_ms, 10, HOUR_MS, 30000, LIVE),
    ENUM("supervisor.log_level", log_level, level_names, LOG_LVL_INFO, LIVE),
    ENUM("supervisor.log_facility", log_facility, config_facility_names, 0, LIVE),
    ARGV("lifecycle.launching.command", hook_launching.command, LIVE),
    STR("lifecycle.launching.http", hook_launching.http, "", LIVE),
    INT("lifecycle.launching.timeout_s", hook_launching.timeout_s, 1, 86400, 300, LIVE),
    ENUM("lifecycle.launching.default", hook_launching.default_result, config_hook_result_names, 1, LIVE),
    ARGV("lifecycle.terminating.command", hook_terminating.command, LIVE),
    STR("lifecycle.terminating.http", hook_terminating.http, "", LIVE),
    INT("lifecycle.terminating.timeout_s", hook_terminating.timeout_s, 1, 86400, 300, LIVE),
    ENUM("lifecycle.terminating.default", hook_terminating.default_result, config_hook_result_names, 0, LIVE),
    INT("lifecycle.max_concurrent", hook_max_concurrent, 1, 64, 4, LIVE),
    INT("lifecycle.log_lines_per_s", hook_log_lines_per_s, 1, 10000, 20, LIVE),
};
#define NKEYS (sizeof keys / sizeof keys[0])

int config_log_facility(const struct asg_config *cfg)
{
    size_t n = sizeof facility_values / sizeof facility_values[0];
    return cfg->log_facility >= 0 && (size_t)cfg->log_facility < n ? facility_values[cfg->log_facility]
                                                                   : LOG_DAEMON;
}

static void set_default(struct asg_config *c, const struct keydef *k)
{
    char *field = (char *)c + k->off;
    switch (k->type) {
    case K_INT:
    case K_ENUM: *(int *)field = (int)k->idef; break;
    case K_BOOL: *(bool *)field = k->idef != 0; break;
    case K_FRAC: *(double *)field = k->fdef; break;
    case K_STR:
    case K_STRLIST: copy_str(field, k->size, k->sdef); break;
    }
}

void config_defaults(struct asg_config *c)
{
    memset(c, 0, sizeof *c);
    copy_str(c->source, sizeof c->source, "(built-in defaults)");
    for (size_t i = 0; i < NKEYS; i++)
        set_default(c, &keys[i]);
}

/* Bytes of a key's value in struct asg_config; 0 for strings. */
static size_t value_size(const struct keydef *k)
{
    return k->type == K_INT || k->type == K_ENUM ? sizeof(int)
           : k->type == K_BOOL                   ? sizeof(bool)
           : k->type == K_FRAC                   ? sizeof(double)
                                                 : 0;
}

static bool same_value(const struct asg_config *a, const struct asg_config *b, const struct keydef *k)
{
    const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
    size_t n = value_size(k);
    return n ? memcmp(fa, fb, n) == 0 : strcmp(fa, fb) == 0;
}

const char *config_restart_key_changed(const struct asg_config *a, const struct asg_config *b)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].restart && !same_value(a, b, &keys[i]))
            return keys[i].path;
    return NULL;
}

/* Type and range, as asg.cfg(5) and asgd --keys say them. */
static void describe_type(const struct keydef *k, char *out, size_t size)
{
    static const char *const type_names[] = {"integer", "fraction 0..1", "string", "boolean",
                                             "one of", "list of strings"};
    snprintf(out, size, "%s", type_names[k->type]);
    if (k->type == K_INT)
        snprintf(out, size, "integer %ld..%ld", k->lo, k->hi);
    for (int n = 0; k->type == K_ENUM && k->names[n]; n++)
        snprintf(out + strlen(out), size - strlen(out), "%s`%s`", n ? ", " : " ", k->names[n]);
}

void config_describe(FILE *f)
{
    fprintf(f, "| key | type | default | on SIGHUP |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct keydef *k = &keys[i];
        char type[128], def[128];
        describe_type(k, type, sizeof type);
        switch (k->type) {
        case K_INT: snprintf(def, sizeof def, "%ld", k->idef); break;
        case K_ENUM: snprintf(def, sizeof def, "`%s`", k->names[k->idef]); break;
        case K_BOOL: snprintf(def, sizeof def, "%s", k->idef ? "true" : "false"); break;
        case K_FRAC: snprintf(def, sizeof def, "%.2f", k->fdef); break;
        case K_STR:
        case K_STRLIST: snprintf(def, sizeof def, k->sdef[0] ? "`%s`" : "(none)", k->sdef); break;
        }
        fprintf(f, "| `%s` | %s | %s | %s |\n", k->path, type, def,
                k->restart ? "needs a restart" : "applied");
    }
}

const char *policy_kind_name(int k) { return k >= 0 && k <= POLICY_PREDICTIVE ? policy_names[k] : "?"; }

int policy_kind_of(const char *s)
{
    for (int k = 0; policy_names[k]; k++)
        if (strcmp(s, policy_names[k]) == 0)
            return k;
    return -1;
}
const char *provider_kind_name(int k) { return k >= 0 && k < PROVIDER_KIND_COUNT ? provider_names[k] : "?"; }
const char *lb_kind_name(int k) { return k >= 0 && k <= LB_ELBV2 ? lb_names[k] : "?"; }
const char *policy_metric_name(int m) { return m == METRIC_REQUESTS ? "requests" : "load"; }

static const struct keydef *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* True when some key lives below this group path ("provider.local"). */
static bool known_group(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
            return true;
    return false;
}

struct errbuf {
    char *buf;
    size_t size;
    const char *file;
    bool lenient;             /* asgctl: note the problem and go on */
    int problems;             /* how many; buf holds the first */
};

static int fail(struct errbuf *e, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct errbuf *e, const config_setting_t *s, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    unsigned line = s ? config_setting_source_line(s) : 0;
    if (e->problems++ > 0)
        return -1; /* lenient: the first problem is the one to show */
    if (line)
        snprintf(e->buf, e->size, "%s:%u: %s", e->file, line, why);
    else
        snprintf(e->buf, e->size, "%s: %s", e->file, why);
    return -1;
}

/* Text enters the manager as UTF-8 or not at all: it goes into logs,
 * events and JSON, and a stray byte there would be mojibake or worse. */
static int not_utf8(struct errbuf *e, const config_setting_t *s, const char *path, const char *v)
{
    size_t bad = 0;
    if (utf8_valid(v, strlen(v), &bad))
        return 0;
    return fail(e, s, "%s is not valid UTF-8 (byte %zu of the string is 0x%02x)", path, bad + 1,
                (unsigned char)v[bad]);
}

/* An enum key: one of k->names, stored as its index. */
static int set_enum(struct errbuf *e, const struct keydef *k, const config_setting_t *s, int *field)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_STRING)
        return fail(e, s, "%s must be a string", k->path);
    const char *v = config_setting_get_string(s);
    for (int i = 0; k->names[i]; i++)
        if (strcmp(v, k->names[i]) == 0) {
            *field = i;
            return 0;
        }
    if (not_utf8(e, s, k->path, v) != 0)
        return -1;
    char list[128] = "";
    for (int i = 0; k->names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, k->names[i], sizeof list - strlen(list) - 1);
    }
    return fail(e, s, "%s = \"%.40s\" is not one of: %s", k->path, v, list);
}

/* A list of strings, joined by k->sep into field (k->size bytes). */
static int set_strlist(struct errbuf *e, const struct keydef *k, const config_setting_t *s, char *field)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return fail(e, s, "%s must be a list of strings, like [\"a\", \"b\"]", k->path);
    field[0] = '\0';
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *it = config_setting_get_elem(s, (unsigned)i);
        const char *v = config_setting_get_string(it);
        if (!v || !v[0] || strchr(v, k->sep))
            return fail(e, s, "%s: item %d must be a non-empty string without %s", k->path, i + 1,
                        k->sep == ',' ? "commas" : "control character 0x1f");
        if (not_utf8(e, it, k->path, v) != 0)
            return -1;
        size_t used = strlen(field);
        if (used + strlen(v) + 2 > k->size)
            return fail(e, s, "%s is longer than %zu characters in all", k->path, k->size - 1);
        snprintf(field + used, k->size - used, "%s%s", used ? (char[]){k->sep, 0} : "", v);
    }
    return 0;
}

static int apply_key(struct errbuf *e, const struct keydef *k,
                     const config_setting_t *s, struct asg_config *c)
{
    char *field = (char *)c + k->off;
    int t = config_setting_type(s);
    switch (k->type) {
    case K_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(e, s, "%s must be an integer", k->path);
        long long v = config_setting_get_int64(s);
        if (v < k->lo || v > k->hi)
            return fail(e, s, "%s = %lld is out of range %ld..%ld",
                        k->path, v, k->lo, k->hi);
        *(int *)field = (int)v;
        return 0;
    }
    case K_FRAC: {
        double v;
        if (t == CONFIG_TYPE_FLOAT)
            v = config_setting_get_float(s);
        else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(s);
        else
            return fail(e, s, "%s must be a number", k->path);
        if (!isfinite(v) || v < 0.0 || v > 1.0)
            return fail(e, s, "%s = %g is out of range 0..1 (a fraction)", k->path, v);
        *(double *)field = v;
        return 0;
    }
    case K_STR: {
        if (t != CONFIG_TYPE_STRING)
            return fail(e, s, "%s must be a string", k->path);
        const char *v = config_setting_get_string(s);
        if (not_utf8(e, s, k->path, v) != 0)
            return -1;
        if (!copy_str(field, k->size, v))
            return fail(e, s, "%s is longer than %zu characters", k->path, k->size - 1);
        return 0;
    }
    case K_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail(e, s, "%s must be true or false", k->path);
        *(bool *)field = config_setting_get_bool(s) != 0;
        return 0;
    case K_ENUM:
        return set_enum(e, k, s, (int *)field);
    case K_STRLIST:
        return set_strlist(e, k, s, field);
    }
    return fail(e, s, "internal: bad key type");
}

int config_set_text(struct asg_config *cfg, const char *key, const char *text, char *err, size_t errsize)
{
    const struct keydef *k = find_key(key);
    if (!k) {
        snprintf(err, errsize, "no key %.60s", key);
        return -1;
    }
    char *field = (char *)cfg + k->off;
    long v;
    switch (k->type) {
    case K_STR:
    case K_STRLIST:
        if (copy_str(field, k->size, text))
            return 0;
        snprintf(err, errsize, "%.60s: longer than %zu characters", key, k->size - 1);
        return -1;
    case K_INT:
        if (parse_whole(text, k->lo, k->hi, &v)) {
            *(int *)field = (int)v;
            return 0;
        }
        break;
    case K_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
            *(bool *)field = text[0] == 't';
            return 0;
        }
        break;
    case K_ENUM:
        for (int i = 0; k->names[i]; i++)
            if (strcmp(k->names[i], text) == 0) {
                *(int *)field = i;
                return 0;
            }
        break;
    case K_FRAC:
        break;
    }
    snprintf(err, errsize, "%.60s: bad value '%.60s'", key, text);
    return -1;
}

int rollout_amount_parse(const char *s, int *value, bool *pct)
{
    size_t n = strlen(s);
    *pct = n > 0 && s[n - 1] == '%';
    char num[16];
    if (n == 0 || n - *pct >= sizeof num)
        return -1;
    memcpy(num, s, n - *pct);
    num[n - *pct] = '\0';
    long v;
    if (!parse_whole(num, 0, *pct ? 100 : 100000, &v))
        return -1;
    *value = (int)v;
    return 0;
}

/* Walks every setting: unknown keys and misplaced groups are errors. */
/* schedule.entries: a list of groups { at = "M H DOM MON DOW"; min = N;
 * max = N; desired = N; } (any of the three). */
static int schedule_entries(struct errbuf *e, const config_setting_t *list, struct asg_config *c)
{
    if (!config_setting_is_list(list))
        return fail(e, list, "schedule.entries must be a list: ( { at = \"0 8 * * 1-5\"; desired = 4; }, ... )");
    int n = config_setting_length(list);
    if (n > SCHEDULE_MAX)
        return fail(e, list, "schedule.entries has %d entries, at most %d", n, SCHEDULE_MAX);
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct schedule_entry *se = &c->schedule[i];
        memset(se, 0, sizeof *se);
        if (!config_setting_is_group(g))
            return fail(e, g, "schedule entry %d must be a group { at = ...; desired = ...; }", i + 1);
        for (int k = 0; k < config_setting_length(g); k++) {
            const config_setting_t *f = config_setting_get_elem(g, (unsigned)k);
            const char *name = config_setting_name(f);
            int *slot = !strcmp(name, "min") ? &se->min : !strcmp(name, "max") ? &se->max
                        : !strcmp(name, "desired") ? &se->desired : NULL;
            if (!strcmp(name, "at") && config_setting_type(f) == CONFIG_TYPE_STRING) {
                char why[160];
                struct cron cr;
                if (not_utf8(e, f, "schedule entry's at", config_setting_get_string(f)) != 0)
                    return -1;
                if (!copy_str(se->at, sizeof se->at, config_setting_get_string(f)) ||
                    cron_parse(se->at, &cr, why, sizeof why) != 0)
                    return fail(e, f, "schedule entry %d: at: %s", i + 1,
                                strlen(config_setting_get_string(f)) >= sizeof se->at ? "too long" : why);
            } else if (slot && config_setting_type(f) == CONFIG_TYPE_INT &&
                       config_setting_get_int(f) >= 1 && config_setting_get_int(f) <= 100000) {
                *slot = config_setting_get_int(f);
            } else {
                return fail(e, f, "schedule entry %d: %s is not one of at (a cron string), min, max, "
                            "desired (1..100000)", i + 1, name);
            }
        }
        if (!se->at[0] || !(se->min || se->max || se->desired))
            return fail(e, g, "schedule entry %d needs at and one of min, max, desired", i + 1);
        if (se->min && se->max && se->min > se->max)
            return fail(e, g, "schedule entry %d: min %d is above max %d", i + 1, se->min, se->max);
        if (se->desired && ((se->min && se->desired < se->min) || (se->max && se->desired > se->max)))
            return fail(e, g, "schedule entry %d: desired %d is outside its min..max", i + 1, se->desired);
    }
    c->nschedule = n;
    return 0;
}

static int walk(struct errbuf *e, const config_setting_t *grp, const char *prefix,
                struct asg_config *c)
{
    int n = config_setting_length(grp);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[160];
        if (!name)
            return fail(e, s, "unexpected unnamed value in %s", prefix[0] ? prefix : "the top level");
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        const struct keydef *k = find_key(path);
        int rc = 0;
        if (strcmp(path, "schedule.entries") == 0) {
            if ((rc = schedule_entries(e, s, c)) != 0)
                c->nschedule = 0;
        } else if (strcmp(path, "notify.webhooks") == 0) {
            char why[300];
            const config_setting_t *at = s;
            if ((rc = webhooks_parse(s, c->webhooks, &c->nwebhooks, why, sizeof why, &at)) != 0) {
                c->nwebhooks = 0;
                rc = fail(e, at, "%s", why);
            }
        } else if (config_setting_is_group(s)) {
            rc = known_group(path) ? walk(e, s, path, c) : fail(e, s, "unknown group '%s'", path);
        } else if (!k) {
            rc = fail(e, s, "unknown key '%s'%s", path,
                      strncmp(path, "tls.", 4) == 0
                          ? " (the manager now makes its own CA and one certificate per instance in"
                            " tls.dir; see tls.mode)"
                          : "");
        } else if ((rc = apply_key(e, k, s, c)) != 0) {
            set_default(c, k); /* lenient: as if the key were not there */
        }
        if (rc != 0 && !e->lenient)
            return -1;
    }
    return 0;
}

static const config_setting_t *lookup(const config_t *cf, const char *path)
{
    return config_lookup((config_t *)cf, path);
}

static bool charset(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
            !strchr(extra, *s))
            return false;
    return true;
}

static int check_schedule(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    const char *tz = c->schedule_timezone;
    char path[200];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
    if (tz[0] && (!charset(tz, "/_+-") || strstr(tz, "..") || tz[0] == '/' || access(path, R_OK) != 0))
        return fail(e, lookup(cf, "schedule.timezone"),
                    "schedule.timezone '%s' is not a zone of /usr/share/zoneinfo (like \"Europe/Paris\" or "
                    "\"UTC\")", tz);
    for (int i = 0; i < c->nschedule; i++)
        if (c->schedule[i].max > c->shm_capacity || c->schedule[i].min > c->shm_capacity ||
            c->schedule[i].desired > c->shm_capacity)
            return fail(e, lookup(cf, "schedule.entries"),
                        "schedule entry %d asks for more instances than shm.capacity (%d)", i + 1,
                        c->shm_capacity);
    return 0;
}

static int check_lb(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (c->lb_kind == LB_HAPROXY) {
        if (c->lb_haproxy_socket[0] != '/')
            return fail(e, lookup(cf, c->lb_haproxy_socket[0] ? "lb.haproxy.socket" : "lb.kind"),
                        "lb.kind \"haproxy\" needs lb.haproxy.socket, the absolute path of HAProxy's "
                        "stats socket (at level admin)");
        if (!c->lb_haproxy_backend[0] || !charset(c->lb_haproxy_backend, "-_.:")) /* HAProxy's names */
            return fail(e, lookup(cf, c->lb_haproxy_backend[0] ? "lb.haproxy.backend" : "lb.kind"),
                        "lb.kind \"haproxy\" needs lb.haproxy.backend, a backend name of "
                        "A-Z a-z 0-9 - _ . :");
    } else if (c->lb_kind == LB_ELBV2) {
        if (c->provider_kind != PROVIDER_EC2)
            return fail(e, lookup(cf, "lb.kind"), "lb.kind \"elbv2\" needs provider.kind \"ec2\"");
        if (strncmp(c->lb_elbv2_target_group_arn, "arn:", 4) != 0 ||
            strcspn(c->lb_elbv2_target_group_arn, " \t\r\n") != strlen(c->lb_elbv2_target_group_arn))
            return fail(e, lookup(cf, c->lb_elbv2_target_group_arn[0] ? "lb.elbv2.target_group_arn" : "lb.kind"),
                        "lb.kind \"elbv2\" needs lb.elbv2.target_group_arn, the target group's ARN "
                        "(arn:aws:elasticloadbalancing:...)");
    }
    /* exec: the operator's launch command gives the agent its flags, so
     * its --service-requests is the command's to set. */
    const char *counted = c->provider_kind == PROVIDER_EC2    ? c->ec2_service_requests
                          : c->provider_kind == PROVIDER_EXEC ? "(the launch command's)"
                                                              : c->local_service_requests;
    if (c->policy_metric == METRIC_REQUESTS && c->lb_kind != LB_HAPROXY && !counted[0])
        return fail(e, lookup(cf, "policy.metric"),
                    "policy.metric \"requests\" needs requests counted per instance: lb.kind \"haproxy\", "
                    "or the service's own count (provider.%s.service_requests)",
                    c->provider_kind == PROVIDER_EC2 ? "ec2" : "local");
    return 0;
}

/* A launch template's version, as RunInstances takes it: a version number,
 * $Latest or $Default; only with a template. */
static int check_template_version(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    const char *v = c->ec2_launch_template_version;
    const config_setting_t *at = lookup(cf, "provider.ec2.launch_template_version");
    if (!v[0])
        return 0;
    if (!c->ec2_launch_template[0])
        return fail(e, at, "provider.ec2.launch_template_version needs provider.ec2.launch_template");
    bool number = strspn(v, "0123456789") == strlen(v) && v[0] != '0' && strlen(v) <= 18;
    if (!number && strcmp(v, "$Latest") != 0 && strcmp(v, "$Default") != 0)
        return fail(e, at, "provider.ec2.launch_template_version must be a version number (1, 2, ...), "
                           "\"$Latest\" or \"$Default\"");
    return 0;
}

static int check_ec2(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    char why[128];
    const config_setting_t *kind = lookup(cf, "provider.kind");
    if (!c->ec2_region[0] || !charset(c->ec2_region, "-"))
        return fail(e, c->ec2_region[0] ? lookup(cf, "provider.ec2.region") : kind,
                    "provider.ec2.region must be set (like \"us-east-1\") for provider \"ec2\"");
    if (!c->ec2_launch_template[0] && !c->ec2_image_id[0])
        return fail(e, kind, "provider \"ec2\" needs provider.ec2.launch_template or provider.ec2.image_id");
    if (check_template_version(e, cf, c) != 0)
        return -1;
    if (c->ec2_endpoint[0] && strncmp(c->ec2_endpoint, "https://", 8) != 0 &&
        strncmp(c->ec2_endpoint, "http://", 7) != 0)
        return fail(e, lookup(cf, "provider.ec2.endpoint"),
                    "provider.ec2.endpoint must start with https:// or http://");
    if (c->ec2_manager_address[0] &&
        !valid_address(c->ec2_manager_address, strlen(c->ec2_manager_address), false, why, sizeof why))
        return fail(e, lookup(cf, "provider.ec2.manager_address"), "provider.ec2.manager_address: %s", why);
    const char *ids[] = {c->ec2_image_id, c->ec2_subnet_id, c->ec2_instance_type,
                         c->ec2_launch_template, c->ec2_security_group_ids, c->ec2_key_name};
    const char *keys_[] = {"image_id", "subnet_id", "instance_type", "launch_template",
                           "security_group_ids", "key_name"};
    for (int i = 0; i < 6; i++) {
        char path[64];
        snprintf(path, sizeof path, "provider.ec2.%s", keys_[i]);
        if (!charset(ids[i], i == 5 ? "-._ @+=" : "-._,"))
            return fail(e, lookup(cf, path), "%s has characters EC2 does not use", path);
    }
    if (c->ec2_agent_path[0] != '/' || !charset(c->ec2_agent_path, "/-._"))
        return fail(e, lookup(cf, "provider.ec2.agent_path"),
                    "provider.ec2.agent_path must be an absolute path of A-Z a-z 0-9 / - . _");
    return 0;
}

/* One exec command: set, an absolute program (run without a shell or a
 * PATH search), and only the placeholders provider/exec.c fills in; the
 * list command names no instance. */
static int check_exec_argv(struct errbuf *e, const config_t *cf, const char *key, const char *argv,
                           bool per_instance)
{
    if (!argv[0])
        return fail(e, lookup(cf, "provider.kind"), "provider \"exec\" needs %s, a command as a list of "
                    "strings, its program an absolute path", key);
    if (argv[0] != '/')
        return fail(e, lookup(cf, key), "%s: the program must be an absolute path (it runs without a "
                    "shell or PATH)", key);
    for (const char *p = strchr(argv, '{'); p; p = strchr(p + 1, '{')) {
        bool id = strncmp(p, "{id}", 4) == 0;
        if (!(id && per_instance) && strncmp(p, "{group}", 7) != 0 && strncmp(p, "{manager}", 9) != 0)
            return fail(e, lookup(cf, key), "%s: unknown placeholder at \"%.12s\" (known: %s{group}, "
                        "{manager})", key, p, per_instance ? "{id}, " : "");
    }
    return 0;
}

static int check_exec(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    char why[128];
    if (check_exec_argv(e, cf, "provider.exec.launch", c->exec_launch, true) != 0 ||
        check_exec_argv(e, cf, "provider.exec.terminate", c->exec_terminate, true) != 0 ||
        check_exec_argv(e, cf, "provider.exec.list", c->exec_list, false) != 0)
        return -1;
    if (c->exec_manager_address[0] &&
        !valid_address(c->exec_manager_address, strlen(c->exec_manager_address), false, why, sizeof why))
        return fail(e, lookup(cf, "provider.exec.manager_address"), "provider.exec.manager_address: %s", why);
    return 0;
}

/* Whoever answers at an etcd endpoint decides who leads: plaintext only
 * on loopback, as for the monitor. Loopback is decided on the host curl
 * will connect to (url.c), never on how its name begins. */
static int check_ha(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (c->ha_prefix[0] != '/' || !charset(c->ha_prefix + 1, "/-._"))
        return fail(e, lookup(cf, "ha.prefix"), "ha.prefix must be '/' and A-Z a-z 0-9 / - . _");
    if (!charset(c->ha_id, "-._/:@"))
        return fail(e, lookup(cf, "ha.id"), "ha.id must be A-Z a-z 0-9 - . _ / : @ (no spaces)");
    if (!c->ha_tls_cert[0] != !c->ha_tls_key[0])
        return fail(e, lookup(cf, c->ha_tls_cert[0] ? "ha.tls.cert" : "ha.tls.key"),
                    "ha.tls.cert and ha.tls.key go together");
    char list[sizeof c->ha_etcd], why[300];
    copy_str(list, sizeof list, c->ha_etcd);
    for (char *save, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        struct endpoint_url u;
        if (strlen(s) > 127)
            return fail(e, lookup(cf, "ha.etcd"), "ha.etcd: '%.100s...' is longer than 127 characters", s);
        if (endpoint_url_parse(s, &u, why, sizeof why) != 0)
            return fail(e, lookup(cf, "ha.etcd"), "ha.etcd: '%s' is not http(s)://HOST:PORT: %s", s, why);
        if (!charset(u.host, ".-:[]"))
            return fail(e, lookup(cf, "ha.etcd"), "ha.etcd: '%s': a host of A-Z a-z 0-9 . - : [ ] only", s);
        if (!u.tls && !host_is_loopback(u.host))
            return fail(e, lookup(cf, "ha.etcd"),
                        "ha.etcd: '%.100s' is plaintext off loopback (%.100s is not a loopback address: "
                        "127.x.y.z, [::1] or localhost): anyone on the path could choose the leader; "
                        "use https:// with ha.tls.ca", s, u.host);
    }
    return 0;
}

static int check_tls(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (c->tls_dir[0] && (c->tls_dir[0] != '/' || strstr(c->tls_dir, "/../") || strstr(c->tls_dir, "//")))
        return fail(e, lookup(cf, "tls.dir"), "tls.dir must be an absolute path without '..' or '//'");
    const char *h = c->history_path;
    if (h[0] && (h[0] != '/' || strstr(h, "/../") || strstr(h, "//") || h[strlen(h) - 1] == '/'))
        return fail(e, lookup(cf, "history.path"),
                    "history.path must be an absolute path of a file, without '..' or '//'");
    return 0;
}

/* A listen address asg can bind: an IPv4 literal that is 0.0.0.0, in
 * 127/8, or on one of this machine's interfaces. */
static bool listen_host_ok(const char *addr, bool *loopback, char *why, size_t n)
{
    char host[64];
    size_t hl = strcspn(addr, ":");
    struct in_addr a;
    *loopback = false;
    if (hl >= sizeof host) {
        snprintf(why, n, "host too long");
        return false;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, &a) != 1) {
        snprintf(why, n, "'%s' is not an IPv4 address (a listen address is a literal)", host);
        return false;
    }
    uint32_t ip = ntohl(a.s_addr);
    *loopback = (ip >> 24) == 127;
    if (*loopback || ip == 0)
        return true;
    struct ifaddrs *ifs, *i;
    bool found = false;
    if (getifaddrs(&ifs) == 0) {
        for (i = ifs; i && !found; i = i->ifa_next)
            found = i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
                    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a.s_addr;
        freeifaddrs(ifs);
    }
    if (!found)
        snprintf(why, n, "%s is not an address of this machine", host);
    return found;
}

static int check_listeners(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    char why[128];
    bool lo;
    if (!listen_host_ok(c->monitor_listen, &lo, why, sizeof why))
        return fail(e, lookup(cf, "monitor.listen"), "monitor.listen: %s", why);
    if (!lo && c->tls_mode == TLS_PLAINTEXT)
        return fail(e, lookup(cf, "tls.mode"),
                    "tls.mode = \"plaintext\" with monitor.listen %s off loopback: anyone on the "
                    "network could register, deregister and steer instances; use tls.mode = \"auto\"",
                    c->monitor_listen);
    if (c->status_listen[0]) {
        if (!listen_host_ok(c->status_listen, &lo, why, sizeof why))
            return fail(e, lookup(cf, "status.listen"), "status.listen: %s", why);
        if (!lo && !c->status_token[0])
            return fail(e, lookup(cf, "status.listen"),
                        "status.listen %s is off loopback: set status.token so that only the "
                        "operator can read and act", c->status_listen);
    }
    return 0;
}

/* What the agent's --service-health takes; it may go into a shell script
 * (EC2 user data), so nothing a shell would read specially. */
static bool service_health_ok(const char *h)
{
    bool web = strncmp(h, "http:/", 6) == 0 || strncmp(h, "https:/", 7) == 0;
    return strcmp(h, "tcp") == 0 || strcmp(h, "none") == 0 ||
           (web && strcspn(h, " \t\r\n'\"\\$`;&|<>(){}") == strlen(h) && strlen(h) <= 128);
}

/* The group's name and bounds, and the policy's thresholds. */
static int check_sizes(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (c->group_name[0] == '\0' || !valid_instance_id(c->group_name, strlen(c->group_name)) ||
        strlen(c->group_name) > 40)
        return fail(e, lookup(cf, "group.name"),
                    "group.name must be 1..40 of A-Z a-z 0-9 . _ - starting with a letter or digit");
    /* At zero no instance reports a rate: only the balancer's count of
     * its backend shows that someone waits (policy/zero.h). */
    if (c->min_instances == 0 && (c->policy_metric != METRIC_REQUESTS || c->lb_kind != LB_HAPROXY))
        return fail(e, lookup(cf, "group.min_instances"),
                    "group.min_instances 0 (scale to zero) needs a metric that sees demand with no instance: "
                    "policy.metric \"requests\" and lb.kind \"haproxy\" (the backend's count of waiting "
                    "requests); with %s it is %s", c->policy_metric == METRIC_REQUESTS ? "lb.kind" : "policy.metric",
                    c->policy_metric == METRIC_REQUESTS ? lb_kind_name(c->lb_kind) : policy_metric_name(c->policy_metric));
    if (c->max_instances < c->min_instances)
        return fail(e, lookup(cf, "group.max_instances"),
                    "group.max_instances (%d) is below group.min_instances (%d)",
                    c->max_instances, c->min_instances);
    if (c->desired_instances < c->min_instances || c->desired_instances > c->max_instances)
        return fail(e, lookup(cf, "group.desired_instances"),
                    "group.desired_instances (%d) is outside min..max (%d..%d)",
                    c->desired_instances, c->min_instances, c->max_instances);
    if (c->scale_in_below >= c->scale_out_above)
        return fail(e, lookup(cf, "policy.scale_in_below"),
                    "policy.scale_in_below (%g) must be below policy.scale_out_above (%g)",
                    c->scale_in_below, c->scale_out_above);
    if (c->target <= 0.0)
        return fail(e, lookup(cf, "policy.target"), "policy.target must be above 0");
    if (c->utilization < 0.1)
        return fail(e, lookup(cf, "policy.utilization"),
                    "policy.utilization must be at least 0.10 (the load each instance is sized for)");
    return 0;
}

/* The operator's service on each provider: how it is checked and where
 * its request count is read. */
static int check_services(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (!service_health_ok(c->local_service_health))
        return fail(e, lookup(cf, "provider.local.service_health"),
                    "provider.local.service_health must be tcp, none, http:/PATH, https:/PATH or http(s)://NAME/PATH (no spaces)");
    if (c->local_service_ca[0] && (c->local_service_ca[0] != '/' ||
                                   strncmp(c->local_service_health, "https:", 6) != 0))
        return fail(e, lookup(cf, "provider.local.service_ca"),
                    "provider.local.service_ca is an absolute path, for an https service_health");
    const char *requests[2][2] = {{"provider.local.service_requests", c->local_service_requests},
                                  {"provider.ec2.service_requests", c->ec2_service_requests}};
    for (int k = 0; k < 2; k++)
        if (requests[k][1][0] && (strncmp(requests[k][1], "http:/", 6) != 0 || !service_health_ok(requests[k][1])))
            return fail(e, lookup(cf, requests[k][0]), "%s must be \"\" or http:/PATH (no spaces or quotes)",
                        requests[k][0]);
    if (!service_health_ok(c->ec2_service_health))
        return fail(e, lookup(cf, "provider.ec2.service_health"),
                    "provider.ec2.service_health must be tcp, none, http:/PATH, https:/PATH or http(s)://NAME/PATH (no spaces or quotes)");
    return 0;
}

/* Rollouts: surge and unavailable are "N" or "P%", and not both none (a
 * rollout could then never replace anything); a lifetime long enough to
 * boot and bake in. */
static int check_rollout(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    int surge, unavail;
    bool pct;
    if (rollout_amount_parse(c->rollout_max_surge, &surge, &pct) != 0)
        return fail(e, lookup(cf, "rollout.max_surge"), "rollout.max_surge must be \"N\" (0..100000) or \"P%%\" (0..100)");
    if (rollout_amount_parse(c->rollout_max_unavailable, &unavail, &pct) != 0)
        return fail(e, lookup(cf, "rollout.max_unavailable"),
                    "rollout.max_unavailable must be \"N\" (0..100000) or \"P%%\" (0..100)");
    if (surge == 0 && unavail == 0)
        return fail(e, lookup(cf, "rollout.max_surge"),
                    "rollout.max_surge and rollout.max_unavailable cannot both be 0: nothing could be replaced");
    if (c->max_instance_lifetime_s && c->max_instance_lifetime_s < 5)
        return fail(e, lookup(cf, "group.max_instance_lifetime_s"),
                    "group.max_instance_lifetime_s must be 0 (none) or at least 5");
    return 0;
}

/* One lifecycle hook (lifecycle.NAME): a command or a URL, not both; the
 * command's program an absolute path (run without a shell or PATH); the
 * URL http(s):// with a host, plaintext only to this machine (whoever
 * answers decides whether instances live), no credentials in it. */
static int check_hook(struct errbuf *e, const config_t *cf, const char *name,
                      const struct lifecycle_hook_config *h)
{
    char key[64], why[160];
    if (h->command[0] && h->http[0]) {
        snprintf(key, sizeof key, "lifecycle.%s.http", name);
        return fail(e, lookup(cf, key), "lifecycle.%s: command and http cannot both be set: one hook, "
                    "one way to run it", name);
    }
    if (h->command[0] && h->command[0] != '/') {
        snprintf(key, sizeof key, "lifecycle.%s.command", name);
        return fail(e, lookup(cf, key), "%s: the program must be an absolute path (it runs without a "
                    "shell or PATH)", key);
    }
    if (h->http[0] && hook_url_check(h->http, why, sizeof why) != 0) {
        snprintf(key, sizeof key, "lifecycle.%s.http", name);
        return fail(e, lookup(cf, key), "%s: %s", key, why);
    }
    return 0;
}

static int check_lifecycle(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    if (check_hook(e, cf, "launching", &c->hook_launching) != 0)
        return -1;
    return check_hook(e, cf, "terminating", &c->hook_terminating);
}

/* Rules between keys; each error points at the line of the key at fault. */
static int cross_check(struct errbuf *e, const config_t *cf, const struct asg_config *c)
{
    char why[128];
    if (check_sizes(e, cf, c) != 0)
        return -1;
    struct victim_policy term;
    if (victim_policy_parse(c->termination_policy, &term, why, sizeof why) != 0)
        return fail(e, lookup(cf, "group.termination_policy"), "group.termination_policy: %s", why);
    if (!valid_address(c->monitor_listen, strlen(c->monitor_listen), true, why, sizeof why))
        return fail(e, lookup(cf, "monitor.listen"), "monitor.listen: %s", why);
    if (check_tls(e, cf, c) != 0)
        return -1;
    if (c->status_listen[0] &&
        !valid_address(c->status_listen, strlen(c->status_listen), true, why, sizeof why))
        return fail(e, lookup(cf, "status.listen"), "status.listen: %s", why);
    if (check_listeners(e, cf, c) != 0)
        return -1;
    if (c->status_token[0] && strncmp(c->status_token, "env:", 4) != 0 &&
        strncmp(c->status_token, "file:", 5) != 0)
        return fail(e, lookup(cf, "status.token"),
                    "status.token must be \"env:VARIABLE\" or \"file:/path\": "
                    "a secret does not belong in the config file");
    if (c->shm_name[0] != '/' || strchr(c->shm_name + 1, '/') || strlen(c->shm_name) < 2)
        return fail(e, lookup(cf, "shm.name"),
                    "shm.name must be '/' followed by a name without '/'");
    if (c->max_instances > c->shm_capacity)
        return fail(e, lookup(cf, "group.max_instances"),
                    "group.max_instances (%d) exceeds shm.capacity (%d)",
                    c->max_instances, c->shm_capacity);
    if (c->restart_backoff_max_ms < c->restart_backoff_ms)
        return fail(e, lookup(cf, "supervisor.restart_backoff_max_ms"),
                    "supervisor.restart_backoff_max_ms must be at least supervisor.restart_backoff_ms");
    size_t pl = strlen(c->pidfile);
    if (c->pidfile[0] != '/' || strstr(c->pidfile, "/../") || pl < 6 || strcmp(c->pidfile + pl - 4, ".pid") != 0 ||
        c->pidfile[pl - 5] == '/')
        return fail(e, lookup(cf, "supervisor.pidfile"),
                    "supervisor.pidfile must be an absolute path to a NAME.pid file (like /run/asg/asgd.pid)");
    if (check_services(e, cf, c) != 0)
        return -1;
    if (check_lb(e, cf, c) != 0)
        return -1;
    if (check_schedule(e, cf, c) != 0)
        return -1;
    if (check_ha(e, cf, c) != 0)
        return -1;
    if (check_rollout(e, cf, c) != 0)
        return -1;
    if (c->notify_secret[0] && strncmp(c->notify_secret, "file:/", 6) != 0)
        return fail(e, lookup(cf, "notify.secret"),
                    "notify.secret must be \"file:/path\" (a key file of mode 0600): a secret does not "
                    "belong in the config file");
    if (check_lifecycle(e, cf, c) != 0)
        return -1;
    if (c->provider_kind == PROVIDER_EC2)
        return check_ec2(e, cf, c);
    if (c->provider_kind == PROVIDER_EXEC)
        return check_exec(e, cf, c);
    return 0;
}

static int load_common(config_t *cf, int parsed, const char *name,
                       struct asg_config *c, char *err, size_t errsize)
{
    struct errbuf e = {err, errsize, name};
    config_defaults(c);
    copy_str(c->source, sizeof c->source, name);
    if (!parsed) {
        if (config_error_type(cf) == CONFIG_ERR_FILE_IO)
            fail(&e, NULL, "cannot read: %s", strerror(errno ? errno : EIO));
        else
            snprintf(err, errsize, "%s:%d: %s", name, config_error_line(cf),
                     config_error_text(cf));
        return -1;
    }
    if (walk(&e, config_root_setting(cf), "", c) != 0)
        return -1;
    return cross_check(&e, cf, c);
}

/* libconfig 1.5 reads @include files with no limit of size and names the
 * top file in errors about them: asg takes its config in one file. */
/* The line of the first @include, or 0 when there is none. */
static unsigned include_line(const char *text)
{
    unsigned n = 1;
    for (const char *p = text; *p; n++) {
        p += strspn(p, " \t");
        if (strncmp(p, "@include", 8) == 0)
            return n;
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static int refuse_include(const char *text, const char *name, char *err, size_t errsize)
{
    unsigned n = include_line(text);
    if (n == 0)
        return 0;
    snprintf(err, errsize, "%s:%u: @include is not supported: keep the configuration in one file", name, n);
    return -1;
}

/* The file's text (NUL-terminated, the caller frees it), read once and
 * checked: the size checked is the size parsed. NULL with err written. */
static char *read_config_text(const char *path, char *err, size_t errsize)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errsize, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsize, "%s: not a regular file", path);
        return NULL;
    }
    if (st.st_size > 1024 * 1024) {
        snprintf(err, errsize, "%s: larger than 1 MiB, refusing", path);
        return NULL;
    }
    FILE *f = fopen(path, "r");
    char *text = f ? calloc(1, (size_t)st.st_size + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    bool ok = false;
    if (!f || !text || got != (size_t)st.st_size)
        snprintf(err, errsize, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
    else if (memchr(text, '\0', got)) {
        unsigned line = 1;
        for (const char *q = text; q < (const char *)memchr(text, '\0', got); q++)
            line += *q == '\n';
        snprintf(err, errsize, "%s:%u: a NUL byte: not a text file", path, line);
    } else
        ok = true;
    if (f)
        fclose(f);
    if (!ok) {
        free(text);
        return NULL;
    }
    return text;
}

int config_load(const char *path, struct asg_config *c, char *err, size_t errsize)
{
    char *text = read_config_text(path, err, errsize);
    int rc = text ? config_load_string(text, path, c, err, errsize) : -1;
    free(text);
    return rc;
}

/* Blanks line n (1-based) of text, keeping its newline, so that the lines
 * after it keep their numbers. False when there is no such line. */
static bool blank_line(char *text, unsigned n)
{
    char *p = text;
    for (unsigned k = 1; k < n && p; k++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p || n == 0)
        return false;
    for (; *p && *p != '\n'; p++)
        *p = ' ';
    return true;
}

/* asgctl's reading (see config.h). A line libconfig cannot parse is
 * blanked and the text parsed again, a bounded number of times: one
 * mistyped line must not hide shm.name and tls.dir on the others. */
#define LENIENT_RETRIES 32
int config_load_lenient(const char *path, struct asg_config *c, char *err, size_t errsize)
{
    char *text = read_config_text(path, err, errsize);
    if (!text)
        return -1;
    struct errbuf e = {err, errsize, path, true, 0};
    config_defaults(c);
    copy_str(c->source, sizeof c->source, path);
    config_t cf;
    config_init(&cf);
    /* @include is refused as config_load refuses it: its lines dropped. */
    unsigned at;
    while ((at = include_line(text)) != 0) {
        if (e.problems++ == 0)
            refuse_include(text, path, err, errsize);
        blank_line(text, at);
    }
    int ok = 0;
    for (int tries = 0; !(ok = config_read_string(&cf, text)) && tries < LENIENT_RETRIES; tries++) {
        int line = config_error_line(&cf);
        if (e.problems++ == 0)
            snprintf(err, errsize, "%s:%d: %s", path, line, config_error_text(&cf));
        config_destroy(&cf);
        config_init(&cf);
        if (line <= 0 || !blank_line(text, (unsigned)line))
            break;
    }
    if (ok) {
        walk(&e, config_root_setting(&cf), "", c);
        cross_check(&e, &cf, c);
    }
    config_destroy(&cf);
    free(text);
    return e.problems;
}

int config_load_string(const char *text, const char *name, struct asg_config *c,
                       char *err, size_t errsize)
{
    if (refuse_include(text, name, err, errsize) != 0)
        return -1;
    config_t cf;
    config_init(&cf);
    int ok = config_read_string(&cf, text);
    int rc = load_common(&cf, ok, name, c, err, errsize);
    config_destroy(&cf);
    return rc;
}

