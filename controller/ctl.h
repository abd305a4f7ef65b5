/* The controller's state, one struct per group's controller, passed to
 * every step (controller.c owns it: controller_open / controller_main):
 * shared by the files of controller/, each one concern of the role
 * (evaluate, reconcile, balancer, takeover, requests, calls, rows). */
#ifndef ASG_CTL_H
#define ASG_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/util.h"
#include "../ha/ha.h"
#include "../lb/follow.h"
#include "../lb/lb.h"
#include "../policy/schedule.h"
#include "../provider/provider.h"
#include "../provider/spec.h"
#include "../shm/confseg.h"
#include "../shm/table.h"
#include "lifecycle.h"

enum op_kind { OP_LAUNCH, OP_TERMINATE, OP_CHECK_GONE };

/* A provider call decided under the lock, made without it. */
struct op {
    enum op_kind kind;
    uint32_t slot;
    uint64_t incarnation;
    struct table_row row;          /* copy at decision time */
    int result;                    /* LAUNCH_* / 0 / gone */
    bool killed;                   /* OP_CHECK_GONE escalated */
    struct provider_instance inst; /* OP_LAUNCH */
    char err[256];
};

/* An instance the last leader launched, and our generation of its spec. */
struct ctl_ha_gen {
    char id[INSTANCE_ID_MAX];
    uint64_t gen;
};

/* An instance the last leader protected or put on standby: its bits. */
struct ctl_ha_flag {
    char id[INSTANCE_ID_MAX];
    uint32_t flags;            /* ROW_F_PROTECTED, ROW_F_STANDBY, ROW_F_STANDBY_DECREMENTED */
};

struct ctl {
    struct table *t;
    struct asg_config cfg;
    uint64_t cfg_gen;
    struct asg_config launch_cfg; /* what launches are made with (rollout.h): the provider's cfg */
    struct confseg conf;       /* the published config, read-only */
    struct provider prov;
    int launch_failures;
    bool failed_this_round;    /* one backoff step per evaluation, however many fail */
    bool replacements_paced;   /* said once per spell of waiting replacements */
    int held_protected;        /* instances a scale-in could not stop for protection, as last said */
    int64_t last_failure_ms;
    int64_t failing_since_ms;  /* the first of launch_failures (a rollout judges the spell) */
    int64_t launch_not_before;
    int64_t last_reconcile;
    bool eval_now;
    struct op *ops;
    size_t nops, capops;
    int reqfd;                 /* operator requests (status API), or -1 */
    struct lb lb;              /* lb.kind; lb.ops NULL when none */
    struct lb_plan plan;
    bool lb_up;                /* the balancer's last listing succeeded */
    bool lb_counts_5xx;        /* and it counted each member's 5xx answers */
    bool lb_now;               /* an instance waits for the balancer: step at once */
    int64_t last_lb, last_lb_reconcile;
    int64_t last_lb_weights;   /* when weights were last decided (controller/weights.h) */
    int64_t lb_wait_until;     /* stopping: when draining instances count as drained; 0 otherwise */
    struct sched_state sched;  /* the scheduled entry in force */
    int64_t sched_minute;      /* the wall minute it was worked out for */
    uint64_t sched_gen;        /* and the config generation */
    struct ha ha;              /* ha.etcd: leader election; ha.on false without it */
    enum ha_role ha_shown;     /* the role last published and logged */
    int64_t ha_led_term;       /* the last term this manager led */
    int64_t ha_shown_term;
    char ha_shown_leader[64];
    /* The last leader's instances and the generation of ours each was
     * launched from (controller/ha_rollout.h), kept from the takeover for
     * those adopted after it; malloc'd, ha_ngens of them. */
    struct ctl_ha_gen *ha_gens;
    size_t ha_ngens;
    /* The last leader's protected and standby instances (instance_ops.h),
     * for those adopted after the takeover; malloc'd, ha_nflags of them. */
    struct ctl_ha_flag *ha_flags;
    size_t ha_nflags;
    struct log_limit ha_state_limit; /* instances left out of the group's state in etcd */
    struct launch_spec spec;   /* the launch spec this controller last recorded; n 0: none yet */
    uint64_t spec_cfg_gen;     /* the config generation it was worked out from */
    struct log_limit adopt_limit; /* a listing can name more instances than the table holds */
    uint64_t facts_seen;       /* the monitor's facts decided so far (admit.h) */
    struct log_limit admit_limit; /* refused admissions: a few a second (anybody can ask) */
    struct lifecycle hooks;    /* lifecycle hooks running (lifecycle.h) */
    void (*between)(void *);   /* tests only: called between an evaluation's decision and its applying */
    void *between_arg;
};

#endif
