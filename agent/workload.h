/* The operator's service, run by the agent as its child (asg-agent ... --
 * COMMAND ARGS...): started in its own process group with {port} in its
 * arguments replaced by the port it serves on, health-checked from a thread
 * of its own (a slow check never delays a probe's answer), sampled for the
 * cpu and memory of its whole process group, and stopped gracefully. */
#ifndef ASG_AGENT_WORKLOAD_H
#define ASG_AGENT_WORKLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum svc_check { SVC_CHECK_NONE, SVC_CHECK_TCP, SVC_CHECK_HTTP };

#define WORKLOAD_CHECK_MS 1000 /* between two health checks */

struct workload {
    char **argv;               /* the command as given (NULL-terminated) */
    int port;                  /* --service-port, or 0: a free one at start */
    char host[48];             /* the address it serves on (the agent's listen host) */
    enum svc_check check;
    bool check_given;          /* --service-health said it (else tcp) */
    bool tls;                  /* https: the check speaks TLS */
    char authority[200];       /* http(s)://NAME[:PORT]/: what Host and the TLS name say, or "" */
    char ca_file[256];         /* --service-ca: the only CA an https check trusts, or "" */
    bool insecure;             /* --service-insecure: an https check verifies nothing */
    char path[128];            /* http: the path asked for */
    char count_path[128];      /* --service-requests http:/PATH: its request counter, or "" */
    _Atomic uint64_t requests; /* the counter, as last read */
    _Atomic bool requests_known; /* the last read succeeded */
    int stop_timeout_ms;       /* SIGTERM, then SIGKILL after this */
    double cpus;               /* --service-cpus: what 100 % load means */
    pid_t pid;                 /* the service, leader of its process group; 0 once reaped */
    int exit_status;           /* as from waitpid, once it has exited */
    _Atomic bool healthy;      /* the checker's last verdict */
    _Atomic bool stopping;
    char why[200];             /* the last failed check, for the probe's error */
    pthread_mutex_t why_mu;
    pthread_t checker;
    bool checker_up;
    /* sampling of its process group */
    unsigned long long last_ticks;
    int64_t last_ms;
    double cpu, mem;
};

/* Parses "tcp", "none", "http:/PATH", "https:/PATH", or a URL
 * "http(s)://NAME[:PORT]/PATH" whose NAME (and PORT) the check sends as
 * its Host (and verifies the certificate for) while it still connects to
 * the service's own address and port. 0, or -1 with why. */
int workload_parse_check(const char *s, struct workload *w, char *why, size_t n);
/* Where the checks connect for a service on listen host `host`, as URL
 * hosts, in order: the host itself (an IPv6 literal in brackets), or for a
 * wildcard bind (0.0.0.0, ::) the loopback of each family, as a service
 * bound to either answers there. Returns how many (at most max). */
int workload_check_hosts(const char *host, char out[][48], int max);
/* Parses "http:/PATH" for --service-requests. 0, or -1 with why. */
int workload_parse_requests(const char *s, struct workload *w, char *why, size_t n);
/* Starts it; exec failures are known at once (a close-on-exec pipe).
 * ASG_SERVICE_PORT and ASG_INSTANCE_ID are in its environment. 0, or -1. */
int workload_start(struct workload *w, const char *instance_id, char *err, size_t errsize);
/* Reaps it if it has exited (and says how, once). */
void workload_reap(struct workload *w);
/* Running and passing its checks; why not otherwise. */
bool workload_ok(struct workload *w, char *why, size_t n);
/* cpu (a fraction of --service-cpus cores) and memory (of the machine's)
 * of its process group, from /proc; call about once a second. */
void workload_sample(struct workload *w);
/* SIGTERM to its process group, SIGKILL after stop_timeout_ms; waits. */
void workload_stop(struct workload *w);

#endif
