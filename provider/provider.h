/* Where instances come from. The controller decides; a provider carries it
 * out. `local` runs asg-agent processes on this machine; `ec2` (later)
 * talks to AWS. Every call is idempotent from the controller's point of
 * view: terminating an instance that is already gone succeeds. */
#ifndef ASG_PROVIDER_H
#define ASG_PROVIDER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/config.h"
#include "../shm/table.h"

struct provider_instance {
    char id[TABLE_ID_MAX];
    char addr[TABLE_ADDR_MAX];  /* "" when the provider does not know */
    char token[72];             /* launch token (ec2: the ClientToken tag) */
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

/* Fills p for cfg->provider_kind. Returns -1 with a reason. */
int provider_init(struct provider *p, const struct asg_config *cfg, char *err, size_t errsize);

void provider_free(struct provider *p);

/* Local provider pieces, visible for tests. */
extern const struct provider_ops provider_local_ops;
/* The ec2 provider. */
extern const struct provider_ops provider_ec2_ops;
int provider_ec2_init(struct provider *p, char *err, size_t errsize);
void provider_ec2_free(struct provider *p);
/* The exec provider (provider/exec.c): the operator's commands. */
extern const struct provider_ops provider_exec_ops;
int provider_exec_init(struct provider *p, char *err, size_t errsize);
void provider_exec_free(struct provider *p);
/* The commands' answers, visible for tests. A line is `ID` or
 * `ID HOST:PORT` (one space), at most EXEC_LINE_MAX bytes without its
 * newline; every line ends with '\n'. 0, or -1 with why. */
#define EXEC_LINE_MAX 200
int exec_parse_line(const char *line, size_t len, struct provider_instance *out, char *why, size_t n);
/* list: zero or more lines, no id twice; *out is malloc'd (also when empty). */
int exec_parse_list(const char *text, size_t len, struct provider_instance **out, size_t *n,
                    char *why, size_t wn);
/* launch: exactly one line, for instance id. */
int exec_parse_launch(const char *text, size_t len, const char *id, struct provider_instance *out,
                      char *why, size_t wn);
/* A launch's idempotency token (ec2: the ClientToken and asg:token tag):
 * the row's first id and the table's nonce. */
void provider_launch_token(const struct provider *p, const char *id, char *out, size_t size);

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
 * supervisor alike: sig goes to pid only if it is the row's agent, checked
 * now: alive, the row's start time when it has one, our uid, /proc/PID/exe
 * is asg-agent, `--id` is the row's id, and its environment carries the
 * group's nonce (or, for a row that joined by registering with our
 * certificate, no nonce at all: an agent started by hand). 1 signalled,
 * 0 not ours (nothing sent), -1 kill failed. */
int local_signal_row(const char *nonce, const struct table_row *r, pid_t pid, int sig);
/* The same checks without the signal: the pid if it is the row's agent, else 0. */
pid_t local_row_agent(const char *nonce, const struct table_row *r, pid_t pid);

#endif
