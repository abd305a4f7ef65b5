/* Where instances come from. The controller decides; a provider carries it
 * out. `local` runs asg-agent processes on this machine; `ec2` talks to
 * AWS. Every call is idempotent from the controller's point of view:
 * terminating an instance that is already gone succeeds.
 *
 * provider.c holds the registry: one entry per provider.kind, with its
 * ops, init and free, and what it can do (PROVIDER_CAP_*). The rest of
 * the manager asks the registry (provider_has) and never names a kind. */
#ifndef ASG_PROVIDER_H
#define ASG_PROVIDER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/types.h>

#include "../common/config.h"
#include "../common/identity.h"

/* The sizes of an instance's id, address and launch token, as the caller
 * keeps them (the controller checks at compile time that they are its
 * table's). */
#define PROVIDER_ID_MAX 64
#define PROVIDER_ADDR_MAX 64
#define PROVIDER_TOKEN_MAX 72

/* What a provider is told of an instance it is asked about: the caller
 * fills it from its own record of it (the controller and the supervisor
 * from a table row: controller_handle_of_row in controller/controller.h). */
struct provider_handle {
    char id[PROVIDER_ID_MAX];
    char addr[PROVIDER_ADDR_MAX];   /* "" if not known */
    char token[PROVIDER_TOKEN_MAX]; /* its launch token, "" if none (adopted) */
    char reason[64];                /* why it is being stopped, for the provider's records */
    int64_t launch_ms;              /* when it was launched or adopted (now_ms clock) */
    int32_t pid;                    /* process providers: its pid, 0 if not known */
    uint64_t pid_start;             /* and that process's start time, 0 if not known */
    uint32_t flags;                 /* PROVIDER_H_* */
};

/* It joined by registering with our certificate, not launched by us
 * (local: an agent started by hand, carrying no group nonce). */
#define PROVIDER_H_JOINED 1u
/* It is being terminated: absence from a listing is now what is awaited. */
#define PROVIDER_H_STOPPING 2u
/* Pending or running, and it has answered a probe: the caller holds it
 * alive until probes say otherwise. */
#define PROVIDER_H_ANSWERING 4u

struct provider_instance {
    char id[PROVIDER_ID_MAX];
    char addr[PROVIDER_ADDR_MAX]; /* "" when the provider does not know */
    char token[PROVIDER_TOKEN_MAX]; /* launch token (ec2: the ClientToken tag) */
    bool alive;                 /* pending or running (not stopping/stopped) */
    char state[24];             /* the provider's word: running, shutting-down, ... */
    char launch_time[40];       /* ISO 8601 UTC, "" if unknown */
    int32_t pid;
    uint64_t pid_start;
    bool no_nonce;              /* local: an agent started by hand (no group nonce) */
};

/* launch() results */
#define LAUNCH_OK 0
#define LAUNCH_FAILED (-1)   /* nothing was started */
#define LAUNCH_UNKNOWN 1     /* no answer: it may have started; ask again */

struct provider;
struct pki_ca;

struct provider_ops {
    const char *name;
    /* Starts instance id (for ec2, id is the launch token's base and out->id
     * the instance id EC2 gave); returns a LAUNCH_* result. Launching the
     * same id again must not start a second instance. */
    int (*launch)(struct provider *p, const char *id, struct provider_instance *out,
                  char *err, size_t errsize);
    /* Optional: called before a batch of gone() calls (ec2: one
     * DescribeInstances for the whole group instead of one per row). */
    void (*refresh)(struct provider *p);
    /* Asks the instance to stop; force means without grace. */
    int (*terminate)(struct provider *p, const struct provider_handle *h, bool force,
                     char *err, size_t errsize);
    /* True once the instance no longer exists. */
    bool (*gone)(struct provider *p, const struct provider_handle *h);
    /* Every instance of the group that exists; *out is malloc'd. */
    int (*list)(struct provider *p, struct provider_instance **out, size_t *n,
                char *err, size_t errsize);
};

struct provider {
    const struct provider_ops *ops;
    const struct asg_config *cfg;
    char manager_addr[256];            /* where agents register: "ADDR" or, with ha.etcd,
                                        * every manager's, ","-joined, ours first */
    char agent_path[256];
    uint64_t seed;
    uint64_t nonce;                    /* the table's: makes launch tokens unique */
    const volatile sig_atomic_t *abort_flag;    /* set when the manager stops */
    void *priv;                        /* the provider's own state */
    struct pki_ca *ca;                 /* tls.mode auto: signs each instance's certificate */
    char tls_dir[256];
    char group_nonce[GROUP_NONCE_HEX + 1]; /* local: every agent launched carries it */
};

/* What a provider can do, declared in its registry entry; the manager
 * branches on these, never on provider.kind. */
enum provider_cap {
    /* Instances are processes on this machine, marked with the group's
     * nonce: pid and pid_start mean something, they can be signalled
     * (local_signal_row), provider.local.stop_on_exit applies, and
     * listing them is reading /proc, which needs nothing init may lack. */
    PROVIDER_CAP_PROCESSES = 1u << 0,
    /* A launch carries an idempotency token (provider_launch_token):
     * asking again with the same one never starts a second instance, so a
     * launch whose answer was lost, even by a former leader, is asked again. */
    PROVIDER_CAP_LAUNCH_TOKENS = 1u << 1,
    /* Instances boot without a certificate and join for one with a
     * one-time token the manager's CA made (the monitor serves Join). */
    PROVIDER_CAP_JOIN = 1u << 2,
};

/* One registry entry (provider.c): a provider.kind and how to run it. */
struct provider_def {
    int kind;                        /* enum provider_kind, the config's provider.kind */
    const struct provider_ops *ops;  /* ops->name is the kind's name in the config */
    unsigned caps;                   /* PROVIDER_CAP_* */
    /* Sets up p->ops' state (p->priv, p->ca, ...); -1 with a reason. */
    int (*init)(struct provider *p, char *err, size_t errsize);
    void (*free)(struct provider *p);
    /* How long a terminating instance has before it is asked again,
     * harder (force) where the provider has a harder way. */
    int (*kill_timeout_ms)(const struct asg_config *cfg);
    /* How often the table and the provider's listing are made to agree;
     * standby: this manager is an HA standby keeping its table warm. */
    int (*reconcile_ms)(const struct asg_config *cfg, bool standby);
};

/* The entry of a provider.kind, NULL for a kind this build lacks. */
const struct provider_def *provider_def_of(int kind);
/* The registry's i-th entry, NULL past the last (for tests and listings). */
const struct provider_def *provider_def_at(size_t i);
/* True when cfg's provider declares every capability in caps (false for
 * an unknown kind). */
bool provider_has(const struct asg_config *cfg, unsigned caps);
/* cfg's provider's grace before force, and its reconciliation interval
 * (see struct provider_def); the defaults of local for an unknown kind,
 * which provider_init refuses anyway. */
int provider_kill_timeout_ms(const struct asg_config *cfg);
int provider_reconcile_ms(const struct asg_config *cfg, bool standby);

/* Fills p for cfg->provider_kind through the registry. Returns -1 with a
 * reason (an unknown kind, or the provider's own); p->ops is set for any
 * known kind even then. */
int provider_init(struct provider *p, const struct asg_config *cfg, char *err, size_t errsize);

void provider_free(struct provider *p);

/* The exec provider's answers (provider/exec.c), visible for tests. A line
 * is `ID` or `ID HOST:PORT` (one space), at most EXEC_LINE_MAX bytes
 * without its newline; every line ends with '\n'. 0, or -1 with why. */
#define EXEC_LINE_MAX 200
int exec_parse_line(const char *line, size_t len, struct provider_instance *out, char *why, size_t n);
/* list: zero or more lines, no id twice; *out is malloc'd (also when empty). */
int exec_parse_list(const char *text, size_t len, struct provider_instance **out, size_t *n,
                    char *why, size_t wn);
/* launch: exactly one line, for instance id. */
int exec_parse_launch(const char *text, size_t len, const char *id, struct provider_instance *out,
                      char *why, size_t wn);
/* A launch's idempotency token (ec2: the ClientToken and asg:token tag):
 * the row's first id and the table's nonce. Inline: the providers use it
 * and the registry (provider.c) uses the providers, not the other way. */
static inline void provider_launch_token(const struct provider *p, const char *id, char *out,
                                         size_t size)
{
    snprintf(out, size, "%.40s-%016llx", id, (unsigned long long)p->nonce);
}

/* With tls.mode auto, opens the manager's CA for a provider whose
 * instances join (PROVIDER_CAP_JOIN): it makes their one-time join tokens,
 * and its certificate (*ca_pem, malloc'd) goes to every instance. Nothing
 * in plaintext mode. 0, or -1 with why (p->ca may be open: provider_free
 * closes it). */
int provider_join_ca(struct provider *p, char **ca_pem, char *err, size_t errsize);

/* "GROUP-N", N one or more digits: the ids this group gives (so that group
 * "asg" does not claim "asg-web-1"). Inline, as provider_launch_token. */
static inline bool provider_id_of_group(const char *id, const char *group)
{
    size_t glen = strlen(group);
    if (strncmp(id, group, glen) != 0 || id[glen] != '-' || !id[glen + 1])
        return false;
    return strspn(id + glen + 1, "0123456789") == strlen(id + glen + 1);
}

/* ---- the providers (one file each) ---- */

/* Each provider's registry entry, in its own file (local.c, ec2.c). */
extern const struct provider_def provider_local;
extern const struct provider_def provider_ec2;
extern const struct provider_def provider_exec;

/* Where the user data puts the agent's CA, join token and, once joined,
 * its key and certificate. */
#define EC2_AGENT_STATE_DIR "/var/lib/asg-agent"

/* The user data script an instance boots with. With tls.mode = "auto"
 * (ca_pem and join_token set) it hands the agent the manager's CA and the
 * one-time join token; the agent then joins for its certificate. */
int ec2_user_data(const struct asg_config *cfg, const char *manager, const char *ca_pem,
                  const char *join_token, char *out, size_t size);
/* Finds this group's agent processes: our uid, /proc/PID/exe asg-agent,
 * the group's nonce in the environment and, with group, an id GROUP-N (N
 * digits). Without group, agents of any id, and also agents carrying no
 * nonce at all (started by hand: no_nonce tells them apart). */
int local_scan_proc(const char *group, const char *nonce, struct provider_instance **out, size_t *n);

/* The one way an agent process is signalled, by the controller and by the
 * supervisor alike: sig goes to pid only if it is h's agent, checked
 * now: alive, h's start time when it has one, our uid, /proc/PID/exe
 * is asg-agent, `--id` is h's id, and its environment carries the
 * group's nonce (or, for an instance that joined by registering with our
 * certificate, no nonce at all: an agent started by hand). 1 signalled,
 * 0 not ours (nothing sent), -1 kill failed. */
int local_signal_row(const char *nonce, const struct provider_handle *h, pid_t pid, int sig);
/* The same checks without the signal: the pid if it is h's agent, else 0. */
pid_t local_row_agent(const char *nonce, const struct provider_handle *h, pid_t pid);

#endif
