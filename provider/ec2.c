/* Provider `ec2`: instances are EC2 instances tagged asg:group=<name>.
 *
 * A launch is RunInstances with a ClientToken made of the row's id and the
 * table's nonce, so asking again after a timeout never starts a second
 * instance; the token is also a tag (asg:token), so reconciliation can tie
 * an instance to the row that asked for it even if the answer was lost.
 * One DescribeInstances (all pages) per refresh serves every gone() check. */
#define _GNU_SOURCE
#include "provider.h"
#include "../aws/ec2.h"
#include "../common/pki.h"
#include "../common/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_GROUP "asg:group"
#define TAG_TOKEN "asg:token"

struct ec2_priv {
    struct ec2_client client;
    char *ca_pem;                    /* tls.mode auto: goes into every user data */
    struct provider_instance *cache; /* last DescribeInstances of the group */
    size_t ncache;
    bool cache_ok;
    int64_t cache_ms;
};

static struct ec2_priv *priv(struct provider *p) { return p->priv; }

/* The operator's service after `--`, each word in single quotes (a quote
 * inside one as '\''): the shell hands the agent the words as written. With
 * an ELBv2 target group, the service listens on the targets' port. */
static bool put(char *out, size_t size, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l >= size)
        return false;
    memcpy(out + *n, s, l + 1);
    *n += l;
    return true;
}

static int append_service(const struct asg_config *cfg, char *out, size_t size, size_t n)
{
    char flags[200];
    snprintf(flags, sizeof flags, " --service-health %s", cfg->ec2_service_health);
    if (!put(out, size, &n, flags))
        return -1;
    if (cfg->lb_kind == LB_ELBV2) {
        snprintf(flags, sizeof flags, " --service-port %d", cfg->lb_elbv2_port);
        if (!put(out, size, &n, flags))
            return -1;
    }
    if (cfg->ec2_service_requests[0]) {
        snprintf(flags, sizeof flags, " --service-requests %s", cfg->ec2_service_requests);
        if (!put(out, size, &n, flags))
            return -1;
    }
    if (!put(out, size, &n, " -- '"))
        return -1;
    for (const char *p = cfg->ec2_service; *p; p++) {
        char one[2] = {*p, '\0'};
        const char *piece = *p == CONFIG_ARGV_SEP ? "' '" : *p == '\'' ? "'\\''" : one;
        if (!put(out, size, &n, piece))
            return -1;
    }
    return put(out, size, &n, "'") ? (int)n : -1;
}

/* The end of the user data: the agent's words are in "$@". Where the
 * image has the asg-agent@.service unit (the asg package), they go to
 * /etc/asg/agent-GROUP.args, each quoted for the shell that the unit
 * sources it with, and systemd runs the agent (restarts, the journal, a
 * sandbox); elsewhere the script becomes the agent, as it always did.
 * agent_path is checked to be of [A-Za-z0-9/._-] (config.c): it needs no
 * quoting. */
static int append_start(const struct asg_config *cfg, char *out, size_t size, size_t n)
{
    int m = snprintf(out + n, size - n,
        "\n"
        "agent=%s\n"
        "unit=asg-agent@%s.service\n"
        "if command -v systemctl >/dev/null 2>&1 && systemctl cat \"$unit\" >/dev/null 2>&1; then\n"
        "    q() { printf \"'%%s'\" \"$(printf '%%s' \"$1\" | sed \"s/'/'\\\\\\\\''/g\")\"; }\n"
        "    umask 077\n"
        "    mkdir -p /etc/asg\n"
        "    {\n"
        "        printf 'ASG_AGENT=%%s\\nset --' \"$agent\"\n"
        "        for a do printf ' %%s' \"$(q \"$a\")\"; done\n"
        "        printf '\\n'\n"
        "    } > /etc/asg/agent-%s.args\n"
        "    exec systemctl --no-block start \"$unit\"\n"
        "fi\n"
        "exec \"$agent\" \"$@\"\n",
        cfg->ec2_agent_path, cfg->group_name, cfg->group_name);
    return m > 0 && (size_t)m < size - n ? (int)n + m : -1;
}

int ec2_user_data(const struct asg_config *cfg, const char *manager, const char *ca_pem,
                  const char *join_token, char *out, size_t size)
{
    /* The agent learns its id and address from the instance metadata
     * (IMDSv2) and registers with the manager. With TLS, the CA and the
     * token go to a 0700 directory first (never on a command line, which
     * every local user can read), and the agent joins with them. */
    bool tls = ca_pem && join_token;
    int n = snprintf(out, size,
        "#!/bin/sh\n"
        "# asg agent bootstrap, written by asgd for group %s\n"
        "set -e\n"
        "md=http://169.254.169.254/latest\n"
        "tok=$(curl -sf -X PUT $md/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')\n"
        "id=$(curl -sf -H \"X-aws-ec2-metadata-token: $tok\" $md/meta-data/instance-id)\n"
        "ip=$(curl -sf -H \"X-aws-ec2-metadata-token: $tok\" $md/meta-data/local-ipv4)\n",
        cfg->group_name);
    if (n > 0 && (size_t)n < size && tls)
        n += snprintf(out + n, size - (size_t)n,
            "umask 077\n"
            "mkdir -p %s\n"
            "cat > %s/ca.crt <<'ASG_CA'\n%sASG_CA\n"
            "echo %s > %s/join.token\n",
            EC2_AGENT_STATE_DIR, EC2_AGENT_STATE_DIR, ca_pem, join_token, EC2_AGENT_STATE_DIR);
    if (n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n,
            "set -- --listen 0.0.0.0:%d --advertise \"$ip:%d\" --id \"$id\" --manager %s%s%s",
            cfg->ec2_agent_port, cfg->ec2_agent_port, manager,
            tls ? " --join " : "", tls ? EC2_AGENT_STATE_DIR : "");
    if (n > 0 && (size_t)n < size && cfg->ec2_service[0])
        n = append_service(cfg, out, size, (size_t)n);
    if (n > 0 && (size_t)n < size)
        n = append_start(cfg, out, size, (size_t)n);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void fill_instance(struct provider *p, const struct ec2_instance *in,
                          struct provider_instance *out)
{
    memset(out, 0, sizeof *out);
    copy_str(out->id, sizeof out->id, in->id);
    const char *tok = ec2_tag_value(in, TAG_TOKEN);
    copy_str(out->token, sizeof out->token, tok ? tok : in->client_token);
    if (in->private_ip[0])
        snprintf(out->addr, sizeof out->addr, "%.40s:%d", in->private_ip, p->cfg->ec2_agent_port);
    out->alive = in->state_code == 0 || in->state_code == 16; /* pending, running */
    copy_str(out->state, sizeof out->state, in->state_name);
    copy_str(out->launch_time, sizeof out->launch_time, in->launch_time);
}

static void add_filters(struct ec2_form *f, const char *group)
{
    ec2_form_add(f, "Filter.1.Name", "tag:" TAG_GROUP);
    ec2_form_add(f, "Filter.1.Value.1", group);
    /* Everything not terminated: a shutting-down instance still exists. */
    const char *states[] = {"pending", "running", "shutting-down", "stopping", "stopped"};
    ec2_form_add(f, "Filter.2.Name", "instance-state-name");
    for (int i = 0; i < 5; i++) {
        char k[32];
        snprintf(k, sizeof k, "Filter.2.Value.%d", i + 1);
        ec2_form_add(f, k, states[i]);
    }
}

/* Every instance of the group, following NextToken to the end. */
static int describe_group(struct provider *p, struct provider_instance **out, size_t *n,
                          char *err, size_t errsize)
{
    *out = NULL;
    *n = 0;
    char next[2048] = "";
    for (int page = 0; page < 1000; page++) {
        struct ec2_form f = {.len = 0};
        add_filters(&f, p->cfg->group_name);
        ec2_form_add(&f, "MaxResults", "100");
        if (next[0])
            ec2_form_add(&f, "NextToken", next);
        struct ec2_response r;
        enum ec2_error e = ec2_call(&priv(p)->client, "DescribeInstances", &f, &r, err, errsize);
        if (e != EC2_OK) {
            free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
        struct provider_instance *grown = realloc(*out, (*n + r.ninstances + 1) * sizeof **out);
        if (!grown) {
            ec2_response_free(&r);
            free(*out);
            *out = NULL;
            *n = 0;
            snprintf(err, errsize, "out of memory");
            return -1;
        }
        *out = grown;
        for (size_t i = 0; i < r.ninstances; i++)
            fill_instance(p, &r.instances[i], &(*out)[(*n)++]);
        copy_str(next, sizeof next, r.next_token);
        ec2_response_free(&r);
        if (!next[0])
            return 0;
    }
    snprintf(err, errsize, "DescribeInstances: more than 1000 pages");
    return -1;
}

static void ec2_refresh(struct provider *p)
{
    struct ec2_priv *s = priv(p);
    struct provider_instance *list;
    size_t n;
    char err[512];
    if (describe_group(p, &list, &n, err, sizeof err) != 0) {
        log_warn("ec2: cannot list the group: %s", err);
        s->cache_ok = false; /* unknown: nothing is declared gone */
        return;
    }
    free(s->cache);
    s->cache = list;
    s->ncache = n;
    s->cache_ok = true;
    s->cache_ms = now_ms();
}

static const struct provider_instance *cached(struct provider *p, const struct provider_handle *h)
{
    struct ec2_priv *s = priv(p);
    char tok[PROVIDER_TOKEN_MAX];
    provider_launch_token(p, h->id, tok, sizeof tok);
    for (size_t i = 0; i < s->ncache; i++)
        if (strcmp(s->cache[i].id, h->id) == 0 || strcmp(s->cache[i].token, tok) == 0)
            return &s->cache[i];
    return NULL;
}

/* RunInstances' parameters from the config: one instance, the launch's
 * client token, the template or image, type, subnet, key and security
 * groups (the user data and tags are added by the caller). */
static void run_instances_form(const struct asg_config *c, const char *tok, struct ec2_form *form)
{
    ec2_form_add(form, "MinCount", "1");
    ec2_form_add(form, "MaxCount", "1");
    ec2_form_add(form, "ClientToken", tok);
    if (c->ec2_launch_template[0])
        ec2_form_add(form, strncmp(c->ec2_launch_template, "lt-", 3) == 0
                             ? "LaunchTemplate.LaunchTemplateId" : "LaunchTemplate.LaunchTemplateName",
                     c->ec2_launch_template);
    if (c->ec2_launch_template[0] && c->ec2_launch_template_version[0])
        ec2_form_add(form, "LaunchTemplate.Version", c->ec2_launch_template_version);
    if (c->ec2_image_id[0])
        ec2_form_add(form, "ImageId", c->ec2_image_id);
    if (c->ec2_instance_type[0] && !c->ec2_launch_template[0])
        ec2_form_add(form, "InstanceType", c->ec2_instance_type);
    if (c->ec2_subnet_id[0])
        ec2_form_add(form, "SubnetId", c->ec2_subnet_id);
    if (c->ec2_key_name[0])
        ec2_form_add(form, "KeyName", c->ec2_key_name);
    char sgs[256];
    copy_str(sgs, sizeof sgs, c->ec2_security_group_ids);
    int k = 0;
    for (char *save = NULL, *sg = strtok_r(sgs, ",", &save); sg; sg = strtok_r(NULL, ",", &save)) {
        char key[48];
        snprintf(key, sizeof key, "SecurityGroupId.%d", ++k);
        ec2_form_add(form, key, sg);
    }
}

/* EC2's answer to a template or version it does not know (or cannot
 * read) names neither in its code: the operator's words are put first,
 * where a launch event (cut short) still shows them. */
static void template_error(const struct asg_config *c, const struct ec2_response *r, char *err, size_t errsize)
{
    if (!c->ec2_launch_template[0] || strncmp(r->error_code, "InvalidLaunchTemplate", 21) != 0)
        return;
    const char *v = c->ec2_launch_template_version;
    char version[80];
    snprintf(version, sizeof version, v[0] ? "version %.40s" : "its default version", v);
    snprintf(err, errsize, "launch template %s, %s: %s: %.150s", c->ec2_launch_template, version, r->error_code,
             r->error_message);
}

static int ec2_launch(struct provider *p, const char *id, struct provider_instance *out,
                      char *err, size_t errsize)
{
    const struct asg_config *c = p->cfg;
    const char *manager = c->ec2_manager_address[0] ? c->ec2_manager_address : p->manager_addr;
    if (!manager[0]) {
        snprintf(err, errsize, "no manager address for the agents yet");
        return LAUNCH_FAILED;
    }
    char script[4096], b64[5500], tok[PROVIDER_TOKEN_MAX], join_token[PKI_JOIN_TOKEN_LEN + 1] = "";
    provider_launch_token(p, id, tok, sizeof tok);
    if (p->ca && pki_join_token(p->ca, tok, join_token) != 0) {
        snprintf(err, errsize, "cannot make the join token");
        return LAUNCH_FAILED;
    }
    int rc = ec2_user_data(c, manager, priv(p)->ca_pem, p->ca ? join_token : NULL, script, sizeof script);
    OPENSSL_cleanse(join_token, sizeof join_token);
    if (rc != 0) {
        snprintf(err, errsize, "user data too long");
        return LAUNCH_FAILED;
    }
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)script, (int)strlen(script));
    OPENSSL_cleanse(script, sizeof script);
    struct ec2_form f = {.len = 0};
    run_instances_form(c, tok, &f);
    ec2_form_add(&f, "UserData", b64);
    OPENSSL_cleanse(b64, sizeof b64);
    ec2_form_add(&f, "TagSpecification.1.ResourceType", "instance");
    ec2_form_add(&f, "TagSpecification.1.Tag.1.Key", TAG_GROUP);
    ec2_form_add(&f, "TagSpecification.1.Tag.1.Value", c->group_name);
    ec2_form_add(&f, "TagSpecification.1.Tag.2.Key", TAG_TOKEN);
    ec2_form_add(&f, "TagSpecification.1.Tag.2.Value", tok);
    ec2_form_add(&f, "TagSpecification.1.Tag.3.Key", "Name");
    ec2_form_add(&f, "TagSpecification.1.Tag.3.Value", id);
    struct ec2_response r;
    enum ec2_error e = ec2_call(&priv(p)->client, "RunInstances", &f, &r, err, errsize);
    if (e != EC2_OK) {
        if (e == EC2_E_CLIENT)
            template_error(c, &r, err, errsize);
        /* No answer, or a server error: it may have been created. */
        bool unknown = e == EC2_E_NETWORK || e == EC2_E_SERVER || e == EC2_E_THROTTLED ||
                       e == EC2_E_ABORTED || e == EC2_E_MALFORMED;
        return unknown ? LAUNCH_UNKNOWN : LAUNCH_FAILED;
    }
    if (r.ninstances != 1) {
        snprintf(err, errsize, "RunInstances answered with %zu instances, not 1", r.ninstances);
        ec2_response_free(&r);
        return LAUNCH_UNKNOWN;
    }
    fill_instance(p, &r.instances[0], out);
    copy_str(out->token, sizeof out->token, tok);
    ec2_response_free(&r);
    return LAUNCH_OK;
}

static int ec2_terminate(struct provider *p, const struct provider_handle *h, bool force,
                         char *err, size_t errsize)
{
    (void)force; /* EC2 has one way to terminate */
    char id[PROVIDER_ID_MAX];
    if (strncmp(h->id, "i-", 2) == 0) {
        copy_str(id, sizeof id, h->id);
    } else {
        /* A row whose launch was never confirmed: find it by its token. */
        ec2_refresh(p);
        const struct provider_instance *pi = priv(p)->cache_ok ? cached(p, h) : NULL;
        if (!pi)
            return priv(p)->cache_ok ? 0 : -1;
        copy_str(id, sizeof id, pi->id);
    }
    /* Best effort: say why on the instance itself, for whoever looks at it
     * in the console; a failure here does not hold up the termination. */
    struct ec2_form t = {.len = 0};
    ec2_form_add(&t, "ResourceId.1", id);
    ec2_form_add(&t, "Tag.1.Key", "asg:termination-reason");
    ec2_form_add(&t, "Tag.1.Value", h->reason[0] ? h->reason : "terminated by asg");
    struct ec2_response resp;
    if (ec2_call(&priv(p)->client, "CreateTags", &t, &resp, err, errsize) == EC2_OK)
        ec2_response_free(&resp);
    else
        log_warn("ec2: cannot tag %s before terminating it: %s", id, err);
    struct ec2_form f = {.len = 0};
    ec2_form_add(&f, "InstanceId.1", id);
    enum ec2_error e = ec2_call(&priv(p)->client, "TerminateInstances", &f, &resp, err, errsize);
    if (e == EC2_OK)
        ec2_response_free(&resp);
    return e == EC2_OK || e == EC2_E_NOT_FOUND ? 0 : -1; /* not found: already gone */
}

/* EC2 is eventually consistent: DescribeInstances may not list an
 * instance for a while after RunInstances returned it. Absence from the
 * listing says nothing of a younger instance (unless it is being
 * terminated, when absence is what we wait for): forgetting it would
 * launch another. */
#define EC2_LISTING_LAG_MS 60000

static bool ec2_gone(struct provider *p, const struct provider_handle *h)
{
    struct ec2_priv *s = priv(p);
    if (!(h->flags & PROVIDER_H_STOPPING) && now_ms() - h->launch_ms < EC2_LISTING_LAG_MS)
        return false;
    if (!s->cache_ok || now_ms() - s->cache_ms > 5000)
        ec2_refresh(p);
    if (!s->cache_ok)
        return false; /* do not forget what we cannot see */
    return cached(p, h) == NULL;
}

static int ec2_list(struct provider *p, struct provider_instance **out, size_t *n,
                    char *err, size_t errsize)
{
    if (describe_group(p, out, n, err, errsize) != 0)
        return -1;
    struct ec2_priv *s = priv(p);
    free(s->cache);
    s->cache = malloc((*n ? *n : 1) * sizeof *s->cache);
    if (s->cache)
        memcpy(s->cache, *out, *n * sizeof **out);
    s->ncache = s->cache ? *n : 0;
    s->cache_ok = s->cache != NULL;
    s->cache_ms = now_ms();
    return 0;
}

static void ec2_free(struct provider *p);

static int ec2_init(struct provider *p, char *err, size_t errsize)
{
    struct ec2_priv *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    if (ec2_client_init(&s->client, p->cfg->ec2_region, p->cfg->ec2_endpoint,
                        p->cfg->ec2_call_timeout_ms, err, errsize) != 0) {
        free(s);
        return -1;
    }
    s->client.abort_flag = p->abort_flag;
    p->priv = s;
    if (provider_join_ca(p, &s->ca_pem, err, errsize) != 0) {
        ec2_free(p);
        return -1;
    }
    return 0;
}

static void ec2_free(struct provider *p)
{
    struct ec2_priv *s = priv(p);
    if (!s)
        return;
    ec2_client_free(&s->client);
    free(s->cache);
    free(s->ca_pem);
    free(s);
    p->priv = NULL;
}

/* A terminating instance not gone after this is sent TerminateInstances
 * again: EC2 has no harder way to stop one. */
static int ec2_kill_timeout_ms(const struct asg_config *cfg) { return cfg->ec2_terminate_timeout_ms; }

/* EC2 is asked on the operator's interval, leader or standby alike: its
 * calls cost, and are throttled by the account. */
static int ec2_reconcile_ms(const struct asg_config *cfg, bool standby)
{
    (void)standby;
    return cfg->ec2_reconcile_interval_ms;
}

static const struct provider_ops ec2_ops = {
    .name = "ec2",
    .launch = ec2_launch,
    .terminate = ec2_terminate,
    .gone = ec2_gone,
    .list = ec2_list,
    .refresh = ec2_refresh,
};

const struct provider_def provider_ec2 = {
    .kind = PROVIDER_EC2,
    .ops = &ec2_ops,
    .caps = PROVIDER_CAP_LAUNCH_TOKENS | PROVIDER_CAP_JOIN,
    .init = ec2_init,
    .free = ec2_free,
    .kill_timeout_ms = ec2_kill_timeout_ms,
    .reconcile_ms = ec2_reconcile_ms,
};
