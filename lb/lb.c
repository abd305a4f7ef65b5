/* The balancer's common part: which kind, and which members are ours. */
#include "lb.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lb_haproxy_init(struct lb *lb, char *err, size_t errsize);
int lb_elbv2_init(struct lb *lb, char *err, size_t errsize);

int lb_init(struct lb *lb, const struct asg_config *cfg, char *err, size_t errsize)
{
    memset(lb, 0, sizeof *lb);
    lb->cfg = cfg;
    switch (cfg->lb_kind) {
    case LB_HAPROXY: return lb_haproxy_init(lb, err, errsize);
    case LB_ELBV2: return lb_elbv2_init(lb, err, errsize);
    default: return 0;
    }
}

void lb_free(struct lb *lb)
{
    if (lb->ops && lb->ops->free)
        lb->ops->free(lb);
    else
        free(lb->priv);
    lb->priv = NULL;
    lb->ops = NULL;
}

bool lb_name_is_ours(const char *group, const char *name)
{
    size_t g = strlen(group);
    if (strncmp(name, group, g) != 0 || name[g] != '-' || name[g + 1] == '\0')
        return false;
    for (const char *p = name + g + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}
