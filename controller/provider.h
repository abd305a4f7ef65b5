/* Where instances come from. The controller decides; a provider carries it
 * out. `local` runs asg-agent processes on this machine; `ec2` (later)
 * talks to AWS. Every call is idempotent from the controller's point of
 * view: terminating an instance that is already gone succeeds. */
#ifndef ASG_PROVIDER_H
#define ASG_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/config.h"
#include "../shm/table.h"

struct provider_instance {
    char id[TABLE_ID_MAX];
    char addr[TABLE_ADDR_MAX];  /* "" when the provider does not know */
    int32_t pid;
    uint64_t pid_start;
};

struct provider;

struct provider_ops {
    const char *name;
    /* Starts instance id; fills what the provider knows about it. */
    int (*launch)(struct provider *p, const char *id, struct provider_instance *out,
                  char *err, size_t errsize);
    /* Asks the instance to stop; force means without grace. */
    int (*terminate)(struct provider *p, const struct table_row *r, bool force,
                     char *err, size_t errsize);
    /* True once the instance no longer exists. */
    bool (*gone)(struct provider *p, const struct table_row *r);
    /* Every instance of the group that exists; *out is malloc'd. */
    int (*list)(struct provider *p, struct provider_instance **out, size_t *n,
                char *err, size_t errsize);
};

struct provider {
    const struct provider_ops *ops;
    const struct asg_config *cfg;
    char manager_addr[TABLE_ADDR_MAX]; /* where agents register */
    char agent_path[256];
    uint64_t seed;
};

/* Fills p for cfg->provider_kind. Returns -1 with a reason. */
int provider_init(struct provider *p, const struct asg_config *cfg, char *err, size_t errsize);

/* Local provider pieces, visible for tests. */
extern const struct provider_ops provider_local_ops;
/* Finds asg-agent processes whose --id starts with "<group>-" (every
 * asg-agent process when group is NULL). */
int local_scan_proc(const char *group, struct provider_instance **out, size_t *n);

#endif
