/* The manager's configuration: every key of etc/asg.cfg, its default, its
 * range, and the checks between keys. The struct is plain data (fixed-size
 * strings, no pointers) so that the supervisor can publish it in its own
 * shared memory segment on reload (shm/confseg.h). */
#ifndef ASG_CONFIG_H
#define ASG_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

/* Joins the items of a command line kept in one config string. */
#define CONFIG_ARGV_SEP '\x1f'

enum policy_kind { POLICY_THRESHOLD = 0, POLICY_TARGET = 1, POLICY_PREDICTIVE = 2 };
enum provider_kind { PROVIDER_LOCAL = 0, PROVIDER_EC2 = 1, PROVIDER_EXEC = 2, PROVIDER_KIND_COUNT };
/* auto: mutual TLS with the manager's own CA (common/pki.h); plaintext only
 * when the config says so. */
enum lb_kind { LB_NONE = 0, LB_HAPROXY = 1, LB_ELBV2 = 2 };
/* What the policy sizes the group on: the agents' load, or the request
 * rate the load balancer counts per instance. */
enum policy_metric { METRIC_LOAD = 0, METRIC_REQUESTS = 1 };
enum tls_mode { TLS_AUTO = 0, TLS_PLAINTEXT = 1 };

/* Scheduled scaling (policy/schedule.h): from `at` on, the group's bounds
 * are these (0 = leave as configured). */
#define SCHEDULE_MAX 16
struct schedule_entry {
    char at[64];                    /* cron: minute hour day-of-month month day-of-week */
    int min, max, desired;
};

/* Webhooks (webhook/notify.h): where the manager's events go, as
 * CloudEvents; each with the event kinds it wants. */
#define WEBHOOKS_MAX 8
struct webhook_cfg {
    char url[512];                  /* http:// or https:// */
    unsigned kinds;                 /* bit k: event kind k (shm/table.h) is sent */
};

struct asg_config {
    char source[256];               /* file it came from, for messages */

    char group_name[48];
    int min_instances;
    int max_instances;
    int desired_instances;

    int policy_kind;
    int policy_metric;              /* enum policy_metric */
    double utilization;             /* predictive: the load each instance is sized for */
    int boot_ms;                    /* predictive: launch to serving, the forecast's reach */
    int target_requests;            /* metric requests: requests/s per instance */
    double scale_out_above;
    double scale_in_below;
    double target;
    double target_tolerance;
    int breach_periods;
    int evaluation_interval_ms;
    int cooldown_ms;
    int scale_in_stabilization_ms;
    int warmup_ms;

    char monitor_listen[64];
    int probe_interval_ms;
    int probe_timeout_ms;
    int unhealthy_after;
    bool adopt_unknown;

    int provider_kind;
    int boot_timeout_ms;
    char local_agent_path[256];
    char local_service[1024];       /* the operator's service: argv joined by CONFIG_ARGV_SEP */
    char local_service_health[136]; /* tcp, none, http(s):/PATH or http(s)://NAME/PATH */
    char local_service_requests[136]; /* "" or http:/PATH: where the service answers its request count */
    char local_service_ca[256];     /* "" or the CA file an https service_health trusts alone */
    bool local_stop_on_exit;
    int local_kill_timeout_ms;

    char ec2_region[32];
    char ec2_endpoint[256];          /* "" = https://ec2.REGION.amazonaws.com */
    char ec2_launch_template[128];   /* name, or id (lt-...) */
    char ec2_launch_template_version[24]; /* N, $Latest or $Default; "": the template's default */
    char ec2_image_id[64];
    char ec2_instance_type[32];
    char ec2_subnet_id[64];
    char ec2_security_group_ids[256]; /* comma-joined from a list */
    char ec2_key_name[128];
    int ec2_agent_port;
    int ec2_reconcile_interval_ms;
    int ec2_terminate_timeout_ms;    /* terminating, not gone after this: TerminateInstances again */
    int ec2_call_timeout_ms;
    char ec2_manager_address[64];    /* "" = the monitor's own address */
    char ec2_agent_path[128];        /* asg-agent on the instances */
    char ec2_service[1024];          /* the operator's service on each instance (argv, CONFIG_ARGV_SEP) */
    char ec2_service_health[136];
    char ec2_service_requests[136];

    /* exec: the operator's commands (argv joined by CONFIG_ARGV_SEP) */
    char exec_launch[1024];
    char exec_terminate[1024];
    char exec_list[1024];
    int exec_terminate_timeout_ms;   /* terminating, still listed after this: terminate again, forced */
    int exec_timeout_ms;             /* each command's run, then SIGKILL to it */
    int exec_reconcile_interval_ms;
    char exec_manager_address[64];   /* "" = the monitor's own address */

    int lb_kind;                     /* enum lb_kind */
    char lb_haproxy_socket[108];     /* HAProxy's runtime API (stats socket, level admin) */
    char lb_haproxy_backend[64];
    char lb_elbv2_target_group_arn[200];
    char lb_elbv2_endpoint[256];     /* "" = https://elasticloadbalancing.REGION.amazonaws.com */
    int lb_elbv2_port;               /* the port targets serve on */
    int lb_drain_timeout_ms;
    int lb_interval_ms;              /* how often the balancer is read */
    int lb_reconcile_interval_ms;
    int lb_call_timeout_ms;

    int tls_mode;                    /* enum tls_mode */
    char tls_dir[200];               /* the manager's CA and keys; "" = /var/lib/asg/GROUP */

    char ha_etcd[512];               /* etcd endpoints, ','-joined; "" = one manager, no HA */
    int ha_lease_ttl_ms;
    char ha_prefix[64];              /* where the group's keys live in etcd */
    char ha_id[64];                  /* this manager's name; "" = HOSTNAME/monitor.listen */
    char ha_tls_ca[200], ha_tls_cert[200], ha_tls_key[200];

    struct schedule_entry schedule[SCHEDULE_MAX];
    int nschedule;
    char schedule_timezone[64];      /* "" = the manager's local time */

    char status_listen[64];          /* "" = no status role */
    char status_token[256];          /* "" or "env:NAME" or "file:PATH" */
    char status_allowed_hosts[256];  /* Host names besides the listen address and loopback */

    char shm_name[64];
    int shm_capacity;
    char pidfile[256];
    int drain_timeout_ms;
    int restart_stable_ms;           /* up this long: next death restarts at once */
    int restart_backoff_ms;          /* first delay after a quick death */
    int restart_backoff_max_ms;
    /* rollouts (controller/rollout.h): the defaults asgctl rollout start
     * overrides; "N" or "P%" (of the target) for surge and unavailable */
    bool rollout_auto;               /* start one on every launch spec change */
    char rollout_max_surge[8];
    char rollout_max_unavailable[8];
    int rollout_bake_s;
    bool rollout_rollback;           /* roll back on a failure */
    double rollout_error_margin;     /* a new instance's 5xx share above the old ones' by this fails */
    int rollout_min_requests;        /* requests a new instance serves before its 5xx share counts */
    char termination_policy[128];    /* scale-in tie-breakers, ","-joined (controller/victim.h); "" default */
    int max_instance_lifetime_s;     /* 0 = none; older instances are replaced */
    int scale_to_zero_idle_s;        /* min_instances 0: to zero after this long without a request */
    bool lb_weight_by_load;          /* balancer weights follow each instance's load */
    /* notifications (webhook/notify.h) */
    struct webhook_cfg webhooks[WEBHOOKS_MAX];
    int nwebhooks;
    int notify_queue;                /* events kept per webhook before the oldest is dropped */
    int notify_retry_max_s;          /* the longest wait between two tries */
    int notify_timeout_ms;           /* one delivery's limit */
    char notify_secret[256];         /* "" or "file:PATH": the HMAC-SHA256 signing key */
    /* the history role (history/history.h) */
    bool history_enabled;
    char history_path[200];          /* "" = STATE_DIR/history.db (tls.dir) */
    int history_retention_days;      /* samples and activities older are pruned */
    int history_sample_interval_s;   /* one sample of the group this often */
    int log_level;                  /* enum log_level */
    int log_facility;               /* an index in config_facility_names */
    /* lifecycle hooks (controller/lifecycle.h): per transition, a command
     * (argv joined by CONFIG_ARGV_SEP) or a URL to POST to, never both;
     * neither: no hook */
    struct lifecycle_hook_config {
        char command[1024];
        char http[256];
        int timeout_s;
        int default_result;          /* enum hook_result: 0 continue, 1 abandon */
    } hook_launching, hook_terminating;
    int hook_max_concurrent;         /* hooks running at once; the rest wait their turn */
    int hook_log_lines_per_s;        /* a hook's output lines logged per second; the rest counted */
};

/* The syslog facilities supervisor.log_facility may name, NULL-terminated,
 * and the syslog(3) value of the one a config chose. */
extern const char *const config_facility_names[];
int config_log_facility(const struct asg_config *cfg);
/* A lifecycle hook's result names, "continue" and "abandon" (its index). */
extern const char *const config_hook_result_names[];

/* Fills in every default (the same values etc/asg.cfg documents). */
void config_defaults(struct asg_config *cfg);

/* Reads and validates a file on top of the defaults. On error returns -1
 * and writes "file:line: reason" (or "file: reason") into err; cfg is then
 * unspecified, so callers parse into a scratch copy. */
int config_load(const char *path, struct asg_config *cfg,
                char *err, size_t errsize);

/* asgctl's reading, for a file that may be broken (say, a reload the
 * manager refused): every key that is valid by itself is taken, one that
 * is not keeps its default, the rules between keys are not applied, and a
 * line with a syntax error is skipped. Returns how many problems it found
 * (0: the file is good; err then holds the first, "file:line: reason"),
 * or -1 when the file cannot be read at all. */
int config_load_lenient(const char *path, struct asg_config *cfg, char *err, size_t errsize);

/* Parses from a string (tests, fuzzing); name is used in messages. */
int config_load_string(const char *text, const char *name,
                       struct asg_config *cfg, char *err, size_t errsize);

/* Keys that cannot change without a restart; returns the first that
 * differs, or NULL. */
/* Every key as a Markdown table: type and range, default, whether a reload
 * applies it (asgd --keys; asg.cfg(5)'s reference is this output). */
void config_describe(FILE *f);

const char *config_restart_key_changed(const struct asg_config *a,
                                       const struct asg_config *b);

const char *policy_kind_name(int kind);
/* The kind named s, or -1. */
int policy_kind_of(const char *s);
const char *provider_kind_name(int kind);
const char *lb_kind_name(int kind);
const char *policy_metric_name(int metric);
/* Sets key (a scalar or string key, as the config keeps it: a list's
 * items joined, an enum by name) from text: for a launch spec kept in the
 * table (provider/spec.h). 0, or -1 with why. */
int config_set_text(struct asg_config *cfg, const char *key, const char *text, char *err, size_t errsize);
/* "N" or "P%" (rollout.max_surge, --max-surge): 0, or -1 when malformed
 * or out of range (0..100000, 0..100%). */
int rollout_amount_parse(const char *s, int *value, bool *pct);

#endif
