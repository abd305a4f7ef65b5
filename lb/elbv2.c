/* lb.kind = "elbv2": an Application or Network Load Balancer's target
 * group, through the Elastic Load Balancing API (version 2015-12-01) over
 * the SigV4 Query client the ec2 provider uses.
 *
 * A member is a target: an instance id and lb.elbv2.port. The balancer
 * drains a target itself once it is deregistered (DescribeTargetHealth
 * says "draining" for the target group's deregistration delay, then the
 * target is no longer listed), so drain and remove are both
 * DeregisterTargets, and a target still listed as draining has
 * connections left. */
#define _GNU_SOURCE
#include "lb.h"
#include "../aws/ec2.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELBV2_API_VERSION "2015-12-01"

struct elbv2 {
    struct ec2_client client;
    char arn[200];
    int port;
};

static struct elbv2 *elb(struct lb *lb) { return lb->priv; }

static int call(struct lb *lb, const char *action, const struct ec2_form *f, struct ec2_response *out,
                char *err, size_t errsize)
{
    struct elbv2 *e = elb(lb);
    e->client.abort_flag = lb->abort_flag;
    enum ec2_error rc = ec2_call(&e->client, action, f, out, err, errsize);
    if (rc == EC2_OK)
        return 0;
    if (rc == EC2_E_NOT_FOUND)
        snprintf(err + strlen(err), errsize - strlen(err), " (lb.elbv2.target_group_arn)");
    return -1;
}

static int elb_list(struct lb *lb, struct lb_member **out, size_t *n, char *err, size_t errsize)
{
    struct ec2_form f = {0};
    ec2_form_add(&f, "TargetGroupArn", elb(lb)->arn);
    struct ec2_response r;
    if (call(lb, "DescribeTargetHealth", &f, &r, err, errsize) != 0)
        return -1;
    *out = calloc(r.ntargets + 1, sizeof **out);
    if (!*out)
        abort();
    *n = 0;
    for (size_t i = 0; i < r.ntargets; i++) {
        const struct elb_target *t = &r.targets[i];
        struct lb_member *m = &(*out)[(*n)++];
        copy_str(m->name, sizeof m->name, t->id);
        snprintf(m->addr, sizeof m->addr, "%.31s:%d", t->id, t->port);
        bool draining = strcmp(t->state, "draining") == 0;
        m->admin = draining ? LBM_DRAIN : LBM_READY;
        m->sessions = draining; /* not done draining until it is no longer listed */
    }
    ec2_response_free(&r);
    return 0;
}

static int targets(struct lb *lb, const char *action, const char *name, char *err, size_t errsize)
{
    struct ec2_form f = {0};
    ec2_form_add(&f, "TargetGroupArn", elb(lb)->arn);
    ec2_form_add(&f, "Targets.member.1.Id", name);
    ec2_form_addf(&f, "Targets.member.1.Port", "%d", elb(lb)->port);
    struct ec2_response r;
    if (call(lb, action, &f, &r, err, errsize) != 0)
        return -1;
    ec2_response_free(&r);
    return 0;
}

static int elb_add(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize)
{
    (void)addr;
    return targets(lb, "RegisterTargets", name, err, errsize);
}

/* Deregistering is what drains a target; asked again, it changes nothing. */
static int elb_drain(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize)
{
    (void)addr;
    return targets(lb, "DeregisterTargets", name, err, errsize);
}

static void elb_free(struct lb *lb)
{
    struct elbv2 *e = elb(lb);
    if (e)
        ec2_client_free(&e->client);
    free(e);
}

const struct lb_ops lb_elbv2_ops = {
    .name = "elbv2",
    .list = elb_list,
    .add = elb_add,
    .drain = elb_drain,
    .remove = elb_drain,
    /* No set_weight: a target group weighs no target above another. */
    .free = elb_free,
};

int lb_elbv2_init(struct lb *lb, char *err, size_t errsize)
{
    struct elbv2 *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    const struct asg_config *cfg = lb->cfg;
    if (aws_query_client_init(&e->client, "elasticloadbalancing", ELBV2_API_VERSION, cfg->ec2_region,
                              cfg->lb_elbv2_endpoint, cfg->lb_call_timeout_ms, err, errsize) != 0) {
        free(e);
        return -1;
    }
    /* A balancer step must stay short: fewer attempts than EC2's launches. */
    e->client.max_attempts = 3;
    copy_str(e->arn, sizeof e->arn, cfg->lb_elbv2_target_group_arn);
    e->port = cfg->lb_elbv2_port;
    lb->priv = e;
    lb->ops = &lb_elbv2_ops;
    return 0;
}
