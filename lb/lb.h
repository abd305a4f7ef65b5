/* A load balancer that follows the group: HAProxy through its runtime API
 * (one machine), or an AWS target group through the ELBv2 API (EC2).
 *
 * The controller owns it. Each member is one instance, named by its
 * instance id; the controller adds a member for every instance that runs
 * and has a service, drains it before the instance is terminated, and
 * removes it once it is drained, and only then terminates the instance.
 * The backend is reconciled with the table: members lost by a restarted
 * balancer are added again, members of ours without an instance are
 * removed, and members it did not add are never touched.
 *
 * Every call is idempotent (adding a member that is there, removing one
 * that is not, succeed) and bounded in time; every answer is checked and a
 * bad one is an error naming the balancer and what was wrong. */
#ifndef ASG_LB_H
#define ASG_LB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/group.h"

/* What a balancer says about one member. */
enum lb_admin { LBM_READY, LBM_DRAIN, LBM_MAINT, LBM_OTHER };

struct lb_member {
    char name[INSTANCE_ID_MAX];
    char addr[INSTANCE_ADDR_MAX]; /* host:port the balancer sends to */
    int admin;                  /* enum lb_admin */
    uint32_t sessions;          /* connections open to it now */
    uint64_t requests;          /* served since it was added (a counter); HAProxy: retried ones too */
    bool has_requests;          /* the balancer counts requests (HAProxy: http mode) */
    uint64_t errors;            /* 5xx answers it gave since it was added (a counter); HAProxy:
                                 * with the attempts it retried elsewhere (wretr) */
    bool has_errors;            /* the balancer counts them (HAProxy: http mode) */
    uint32_t weight;            /* its share of new requests against the others', 0..LB_WEIGHT_MAX */
    bool has_weight;            /* the balancer has weights (HAProxy) */
};

/* HAProxy's range of server weights, and the weight a member is added
 * with and keeps unless the controller weighs it (controller/weights.h):
 * high enough that a share of a few percent is still a whole number. */
#define LB_WEIGHT_MAX 256
#define LB_WEIGHT_BASE 100

struct lb;

struct lb_ops {
    const char *name;
    /* Every member of the backend (ours or not); *out is malloc'd. */
    int (*list)(struct lb *lb, struct lb_member **out, size_t *n, char *err, size_t errsize);
    /* Puts the member in rotation: added if missing (at addr), made ready
     * if drained. */
    int (*add)(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize);
    /* No new connections; open ones finish. */
    int (*drain)(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize);
    /* Out of the backend altogether. */
    int (*remove)(struct lb *lb, const char *name, const char *addr, char *err, size_t errsize);
    /* Optional (NULL: the balancer has no weights): the member's weight,
     * 0..LB_WEIGHT_MAX; new requests go to members in proportion. */
    int (*set_weight)(struct lb *lb, const char *name, const char *addr, uint32_t weight, char *err,
                      size_t errsize);
    /* Optional: frees priv (default: free(priv)). */
    void (*free)(struct lb *lb);
};

struct lb {
    const struct lb_ops *ops;
    const struct asg_config *cfg;
    const volatile sig_atomic_t *abort_flag; /* stop retrying when it becomes set */
    void *priv;
    /* The backend as a whole, as the last list that worked saw it (read_ms
     * 0: the balancer has no such count): the demand a group at zero sees. */
    struct lb_demand demand;
};

/* Fills lb for cfg->lb_kind (LB_NONE: lb->ops stays NULL). Returns -1
 * with a reason. */
int lb_init(struct lb *lb, const struct asg_config *cfg, char *err, size_t errsize);
void lb_free(struct lb *lb);

extern const struct lb_ops lb_haproxy_ops;
extern const struct lb_ops lb_elbv2_ops;

/* HAProxy pieces, visible for the Check units. */
/* One command over the runtime API socket; the whole answer in *out
 * (malloc'd, NUL-terminated). */
int haproxy_command(const char *socket_path, int timeout_ms, const char *cmd, char **out,
                    char *err, size_t errsize);
/* Parses `show stat` CSV for one backend's servers. */
int haproxy_parse_stat(const char *csv, const char *backend, struct lb_member **out, size_t *n,
                       char *err, size_t errsize);

/* Parses `show stat` CSV for the backend's own row (type 1, BACKEND):
 * its sessions (stot), current (scur) and queued (qcur) sessions. */
int haproxy_parse_backend(const char *csv, const char *backend, struct lb_demand *d, char *err,
                          size_t errsize);

/* Whether a member name is one the controller of this group may have
 * added: an id of the group's own form (GROUP-N) or one of the table's. */
bool lb_name_is_ours(const char *group, const char *name);

#endif
