/* asg-agent (MonitorC): runs on every instance. Serves the Agent service
 * (Ping, GetMetrics, SetLoad) and grpc.health.v1.Health/Check, simulates a
 * gradual load, and registers with the manager's monitor. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/identity.h"
#include "../common/pki.h"
#include "../common/util.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "asg.pb-c.h"
#include "health.pb-c.h"
#include "service.h"
#include "walk.h"

/* Agents one process may host (--swarm); each needs two descriptors. */
#define SWARM_MAX 30000
/* How often registrations fall due are checked. */
#define REG_TICK_MS 10

static void usage(FILE *f)
{
    fprintf(f,
            "usage: asg-agent --listen HOST:PORT [--id ID] [--manager HOST:PORT]\n"
            "                 [--advertise HOST:PORT] [--seed N] [--start-load F]\n"
            "                 [--swarm N]\n"
            "  --listen     where to serve (port 0 picks a free one; the bound\n"
            "               address is printed on the first line of output)\n"
            "  --id         instance id (default: agent-PORT)\n"
            "  --manager    the manager's monitor address; register there. A,B: managers of one\n"
            "               group on etcd: the next is tried when one is unreachable, a\n"
            "               standby names the leader\n"
            "  --advertise  address to register with (default: the bound one)\n"
            "  --seed       seed of the simulated load (default: from time and pid)\n"
            "  --start-load initial simulated load, 0..1 (default 0.3)\n"
            "  --load-source sim|proc  simulated random walk (default), or this\n"
            "               machine's real cpu and memory from /proc\n"
            "  --swarm N    host N agents in this process (a fleet on one machine):\n"
            "               ports PORT..PORT+N-1 (or N free ones with port 0), ids\n"
            "               agent-PORT (or ID-0..ID-N-1), seeds SEED+k; each registers,\n"
            "               answers and deregisters like a separate agent. The bound\n"
            "               addresses are printed one a line. SIGUSR1 prints counters.\n"
            "  --tls-ca FILE --tls-cert FILE --tls-key FILE  mutual TLS: serve and\n"
            "               call the manager with this certificate (all three, or none)\n"
            "  -- COMMAND ARGS...  run the operator's service as the instance: in its own\n"
            "               process group, {port} in ARGS replaced by its port, with\n"
            "               ASG_SERVICE_PORT and ASG_INSTANCE_ID set; probes fail while\n"
            "               it fails its check; SIGTERM stops it before deregistering\n"
            "  --service-port N     its port (default: a free one on the listen host)\n"
            "  --service-health tcp|http:/PATH|https:/PATH|http(s)://NAME/PATH|none  its check,\n"
            "               each second (default tcp): a connect, or GET PATH answered 2xx or 3xx\n"
            "               (redirects not followed); a wildcard listen host is checked on\n"
            "               127.0.0.1 and [::1]; NAME is sent as Host (and checked in the\n"
            "               certificate) while the check still goes to the service's port\n"
            "  --service-ca FILE    https: trust this CA alone (default: the system's)\n"
            "  --service-insecure   https: verify no certificate (only when asked)\n"
            "  --service-requests http:/PATH  where it answers its request count (a counter), read\n"
            "                           each second and reported with every probe\n"
            "  --service-stop-ms N  SIGKILL after this long (default 5000)\n"
            "  --service-cpus N     cores that make load 1.0 for --load-source service\n"
            "  --load-source service  the cpu and memory of the service's process group\n"
            "  --join DIR   mutual TLS for an EC2 instance: DIR (0700) holds ca.crt and\n"
            "               the one-time join.token from the user data; the agent makes\n"
            "               a key, the manager signs it for --id (agent.key, agent.crt\n"
            "               in DIR), and the token is removed. Later starts reuse them.\n"
            "  -h, --help    print this and exit\n"
            "  -V, --version print the version and exit\n"
            "exit: 0 stopped on SIGTERM or SIGINT (deregistered), 2 bad arguments or it\n"
            "      could not start (bind, service, join); see asg-agent(8)\n");
}

/* ---- registration with the manager ---- */

/* --manager A,B: managers of one group on etcd (ha.etcd). An agent
 * registers with one; when it cannot reach it, it tries the next, and a
 * standby's refusal names the leader to go to. One channel per manager,
 * shared by a swarm's agents. */
#define MANAGERS_MAX 4
#define CHANNELS_MAX 16
/* The list and the channels, one for the process (struct options owns
 * it), shared by every agent of a swarm (struct agent's managers). */
struct managers {
    int n;
    char addr[MANAGERS_MAX][64];
    const struct rpc_tls *tls;
    /* Channels by address, kept for the process's life: agents of a
     * swarm may still use one when the list changes. */
    struct {
        char addr[64];
        grpc_channel *ch;
    } channels[CHANNELS_MAX];
};

static int parse_managers(struct managers *managers, const char *list, char *why, size_t n)
{
    char buf[300], addr[MANAGERS_MAX][64];
    int count = 0;
    if (!copy_str(buf, sizeof buf, list)) {
        snprintf(why, n, "the list is too long");
        return -1;
    }
    for (char *save, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (count == MANAGERS_MAX) {
            snprintf(why, n, "more than %d managers", MANAGERS_MAX);
            return -1;
        }
        if (!valid_address(s, strlen(s), false, why, n))
            return -1;
        copy_str(addr[count++], sizeof addr[0], s);
    }
    if (count == 0) {
        snprintf(why, n, "no address");
        return -1;
    }
    memcpy(managers->addr, addr, sizeof addr);
    managers->n = count;
    return 0;
}

static grpc_channel *channel_to(struct managers *managers, const char *addr)
{
    int i = 0;
    for (; i < CHANNELS_MAX && managers->channels[i].ch; i++)
        if (strcmp(managers->channels[i].addr, addr) == 0)
            return managers->channels[i].ch;
    if (i == CHANNELS_MAX)
        return NULL;
    copy_str(managers->channels[i].addr, sizeof managers->channels[i].addr, addr);
    managers->channels[i].ch = rpc_channel_create(addr, managers->tls, RPC_MANAGER_NAME);
    return managers->channels[i].ch;
}

static void use_manager(struct agent *a, int idx)
{
    grpc_channel *ch = channel_to(a->managers, a->managers->addr[idx]);
    if (!ch)
        return; /* more managers than a group ever has: stay */
    a->mgr_idx = idx;
    a->mgr = ch;
    copy_str(a->manager, sizeof a->manager, a->managers->addr[idx]);
}

static void managers_update(struct agent *a, const char *list)
{
    char why[128];
    if (parse_managers(a->managers, list, why, sizeof why) != 0) {
        log_warn("%s: the manager sent a bad list of managers (%s): ignored", a->id, why);
        return;
    }
    /* Not in the list: the next one tried is the list's first. */
    a->mgr_idx = a->managers->n - 1;
    for (int i = 0; i < a->managers->n; i++)
        if (strcmp(a->managers->addr[i], a->manager) == 0)
            a->mgr_idx = i;
    if (!a->quiet)
        log_info("%s: the group's managers are %s", a->id, list);
}

/* After a failed or refused registration: the leader a standby named, or
 * the next manager of the list. True when it moved. */
static bool next_manager(struct agent *a, const char *leader)
{
    if (a->managers->n < 2)
        return false;
    int idx = (a->mgr_idx + 1) % a->managers->n;
    for (int i = 0; leader && leader[0] && i < a->managers->n; i++)
        if (strcmp(a->managers->addr[i], leader) == 0)
            idx = i;
    if (idx == a->mgr_idx)
        return false;
    if (!a->quiet)
        log_info("%s: registering with %s next%s", a->id, a->managers->addr[idx],
                 leader && leader[0] ? " (the leader, says the standby)" : "");
    use_manager(a, idx);
    return true;
}

static void schedule_retry(struct agent *a)
{
    /* Exponential backoff with jitter: wait between half and all of it,
     * so a fleet restarted together does not register in lockstep. */
    int wait = a->backoff_ms / 2 + (int)(walk_uniform(&a->walk) * a->backoff_ms / 2);
    a->reg = REG_WAIT;
    a->reg_next_ms = now_ms() + wait;
    a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
}

static void on_registered(void *user, grpc_status_code st, const char *details,
                          const uint8_t *data, size_t len)
{
    struct agent *a = user;
    if (st != GRPC_STATUS_OK) {
        if (!a->quiet)
            log_warn("register with %s failed: status %d %s", a->manager, (int)st, details);
        a->reg_failures++;
        next_manager(a, NULL);
        schedule_retry(a);
        return;
    }
    Asg__V1__RegisterReply *r = asg__v1__register_reply__unpack(NULL, len, data);
    if (!r) {
        log_warn("register with %s: malformed reply", a->manager);
        schedule_retry(a);
        return;
    }
    if (!r->accepted && r->retry_after_ms) {
        /* Waiting for the controller's admission: not a refusal. */
        if (!a->quiet && !a->admit_said)
            log_info("%s: waiting for admission by %s: %.200s", a->id, a->manager, r->reason);
        a->admit_said = true;
        a->reg = REG_WAIT;
        a->reg_next_ms = now_ms() + (r->retry_after_ms < ADMIT_WAIT_MAX_MS ? r->retry_after_ms : ADMIT_WAIT_MAX_MS);
        asg__v1__register_reply__free_unpacked(r, NULL);
        return;
    }
    a->admit_said = false;
    if (r->accepted) {
        uint32_t pi = r->probe_interval_ms;
        a->probe_interval_ms = pi >= 10 && pi <= 3600000 ? pi : 1000;
        a->reg = REG_DONE;
        a->backoff_ms = BACKOFF_MIN_MS;
        a->last_ping_ms = now_ms();
        if (!a->quiet)
            log_info("registered with %s as %s (%s)", a->manager, a->id, a->address);
    } else {
        if (!a->quiet)
            log_warn("registration refused by %s: %.200s", a->manager, r->reason);
        a->reg_failures++;
        /* Sent on to the leader: no reason to wait long. */
        if (next_manager(a, r->leader_address) && r->leader_address[0])
            a->backoff_ms = BACKOFF_MIN_MS;
        schedule_retry(a);
    }
    asg__v1__register_reply__free_unpacked(r, NULL);
}

static void start_register(struct agent *a)
{
    Asg__V1__RegisterRequest q = ASG__V1__REGISTER_REQUEST__INIT;
    q.instance_id = a->id;
    q.address = a->address;
    q.agent_version = (char *)ASG_VERSION;
    q.service_address = a->service_address;
    size_t len;
    uint8_t *buf = rpc_pack(&q.base, &len);
    if (rpc_call_start(a->mgr, a->cq, M_MONITOR_REGISTER, buf, len, 2000, on_registered, a) == 0)
        a->reg = REG_IN_FLIGHT;
    else
        schedule_retry(a);
    free(buf);
}

/* Registers when due, and again when the manager has stopped probing us:
 * a restarted manager may have lost us, and registering is how it learns. */
static void registration_tick(struct agent *a, int64_t now)
{
    char why[128];
    if (!a->mgr || a->draining)
        return;
    if (a->managers_news[0]) {
        managers_update(a, a->managers_news);
        a->managers_news[0] = '\0';
    }
    /* An instance is its service: it joins the group once the service
     * passes its check, not while it is still starting (its probes would
     * fail and count as misses). */
    if (a->svc && a->reg != REG_DONE && !workload_ok(a->svc, why, sizeof why))
        return;
    if (a->reg == REG_NONE || (a->reg == REG_WAIT && now >= a->reg_next_ms)) {
        start_register(a);
    } else if (a->reg == REG_DONE) {
        int64_t quiet = 3 * (int64_t)a->probe_interval_ms;
        if (quiet < 2000)
            quiet = 2000;
        if (now - a->last_ping_ms > quiet) {
            if (!a->quiet)
                log_warn("no probe from the manager for %lld ms; registering again",
                         (long long)(now - a->last_ping_ms));
            start_register(a);
        }
    }
}

static void on_deregistered(void *user, grpc_status_code st, const char *details,
                            const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct agent *a = user;
    a->dereg_done = true;
    if (st != GRPC_STATUS_OK)
        log_warn("%s: deregister failed: status %d %s", a->id, (int)st, details);
    else if (!a->quiet)
        log_info("deregistered from %s", a->manager);
}

static void start_deregister(struct agent *a)
{
    a->dereg_done = true;
    if (!a->mgr)
        return;
    Asg__V1__DeregisterRequest q = ASG__V1__DEREGISTER_REQUEST__INIT;
    q.instance_id = a->id;
    size_t len;
    uint8_t *buf = rpc_pack(&q.base, &len);
    /* Three seconds: a manager busy with a whole swarm leaving at once is
     * slow, and an agent that fails to say goodbye is only found by its
     * missed probes. */
    a->dereg_done = rpc_call_start(a->mgr, a->cq, M_MONITOR_DEREGISTER, buf, len, 3000,
                                   on_deregistered, a) != 0;
    free(buf);
}

/* Every agent says goodbye at once; each call has its own deadline. */
static void deregister_all(struct agent *ag, int n)
{
    for (int k = 0; k < n; k++)
        start_deregister(&ag[k]);
    for (int k = 0; k < n; k++)
        while (!ag[k].dereg_done)
            if (rpc_cq_step(ag[k].cq, 100) < 0)
                return;
}

/* ---- main ---- */

/* What the command line sets; a swarm copies tmpl into each agent. */
struct options {
    struct agent tmpl;      /* id, manager, advertise, load source, tls */
    char listen[64];
    const char *join_dir;   /* --join */
    struct workload svc;    /* -- COMMAND, when svc.argv is set */
    int swarm;              /* agents in this process */
    uint64_t seed;
    double start;
    struct managers managers; /* --manager's list, and the channels to them */
};

static int parse_number(const char *opt, const char *arg, long lo, long hi, long *out)
{
    if (parse_whole(arg, lo, hi, out))
        return 0;
    fprintf(stderr, "asg-agent: %s '%s' is not a whole number in %ld..%ld\n", opt, arg, lo, hi);
    return -1;
}

enum { OPT_SERVICE_CA = 1000, OPT_SERVICE_INSECURE }; /* long options only */

/* The operator's service options (-- COMMAND's), each value checked as it
 * is read. 1 when c is not one of them. */
static int parse_service_option(int c, const char *arg, struct options *o)
{
    char why[128];
    long n;
    switch (c) {
    case 'P':
        if (parse_number("--service-port", arg, 1, 65535, &n) != 0)
            return -1;
        o->svc.port = (int)n;
        break;
    case 'H':
        if (workload_parse_check(arg, &o->svc, why, sizeof why) != 0) {
            fprintf(stderr, "asg-agent: --service-health %s\n", why);
            return -1;
        }
        break;
    case 'R':
        if (workload_parse_requests(arg, &o->svc, why, sizeof why) != 0) {
            fprintf(stderr, "asg-agent: --service-requests %s\n", why);
            return -1;
        }
        break;
    case OPT_SERVICE_CA:
        if (strlen(arg) >= sizeof o->svc.ca_file || access(arg, R_OK) != 0) {
            fprintf(stderr, "asg-agent: --service-ca %.200s: %s\n", arg,
                    strlen(arg) >= sizeof o->svc.ca_file ? "path too long" : strerror(errno));
            return -1;
        }
        copy_str(o->svc.ca_file, sizeof o->svc.ca_file, arg);
        break;
    case OPT_SERVICE_INSECURE: o->svc.insecure = true; break;
    case 'T':
        if (parse_number("--service-stop-ms", arg, 0, 600000, &n) != 0)
            return -1;
        o->svc.stop_timeout_ms = (int)n;
        break;
    case 'U':
        if (parse_number("--service-cpus", arg, 1, 4096, &n) != 0)
            return -1;
        o->svc.cpus = (double)n;
        break;
    default: return 1;
    }
    return 0;
}

/* One option of the agent's own, each value checked as it is read;
 * tls collects --tls-ca, --tls-cert and --tls-key. Long because each
 * option is one case, in the usage text's order. */
static int parse_option(int c, const char *arg, struct options *o, const char *tls[3])
{
    struct agent *a = &o->tmpl;
    char why[128];
    long n;
    switch (c) {
    case 'l':
        if (!valid_address(arg, strlen(arg), true, why, sizeof why)) {
            fprintf(stderr, "asg-agent: --listen: %s\n", why);
            return -1;
        }
        copy_str(o->listen, sizeof o->listen, arg);
        break;
    case 'i':
        if (!valid_instance_id(arg, strlen(arg))) {
            fprintf(stderr, "asg-agent: --id '%s': use 1..63 of A-Z a-z 0-9 . _ -\n", arg);
            return -1;
        }
        copy_str(a->id, sizeof a->id, arg);
        break;
    case 'm':
        if (parse_managers(&o->managers, arg, why, sizeof why) != 0) {
            fprintf(stderr, "asg-agent: --manager '%.100s': %s\n", arg, why);
            return -1;
        }
        copy_str(a->manager, sizeof a->manager, o->managers.addr[0]);
        break;
    case 'a':
        if (!valid_address(arg, strlen(arg), false, why, sizeof why)) {
            fprintf(stderr, "asg-agent: --advertise: %s\n", why);
            return -1;
        }
        copy_str(a->address, sizeof a->address, arg);
        break;
    case 's': {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || *end || arg[0] == '-' || !arg[0]) {
            fprintf(stderr, "asg-agent: --seed '%s' is not a whole number\n", arg);
            return -1;
        }
        o->seed = v;
        break;
    }
    case 'L': {
        char *end;
        double v = strtod(arg, &end);
        if (*end || !arg[0] || !isfinite(v) || v < 0 || v > 1) {
            fprintf(stderr, "asg-agent: --start-load '%s' is not a number in 0..1\n", arg);
            return -1;
        }
        o->start = v;
        break;
    }
    case 'S':
        if (strcmp(arg, "sim") != 0 && strcmp(arg, "proc") != 0 &&
            strcmp(arg, "service") != 0) {
            fprintf(stderr, "asg-agent: --load-source '%s': use sim, proc or service\n", arg);
            return -1;
        }
        a->from_proc = strcmp(arg, "proc") == 0;
        a->from_service = strcmp(arg, "service") == 0;
        break;
    case 'N':
        if (parse_number("--swarm", arg, 1, SWARM_MAX, &n) != 0)
            return -1;
        o->swarm = (int)n;
        break;
    case 'A': tls[0] = arg; break;
    case 'C': tls[1] = arg; break;
    case 'K': tls[2] = arg; break;
    case 'J': o->join_dir = arg; break;
    case 'h': usage(stdout); exit(0);
    case 'V': printf("asg-agent %s\n", ASG_VERSION); exit(0);
    default: {
    int rc = parse_service_option(c, arg, o);
    if (rc > 0)
        usage(stderr);
    return rc == 0 ? 0 : -1;
    }
    }
    return 0;
}

/* The rules between options, once all are read. */
static int check_option_rules(const struct options *o, const char *tls[3])
{
    const struct agent *a = &o->tmpl;
    if ((o->svc.ca_file[0] || o->svc.insecure) && !o->svc.tls) {
        fprintf(stderr, "asg-agent: --service-ca and --service-insecure are for an https check "
                "(--service-health https:/PATH)\n");
        return -1;
    }
    if (o->svc.ca_file[0] && o->svc.insecure) {
        fprintf(stderr, "asg-agent: --service-ca or --service-insecure, not both\n");
        return -1;
    }
    if ((a->from_service || o->svc.port || o->svc.cpus || o->svc.count_path[0]) && !o->svc.argv) {
        fprintf(stderr, "asg-agent: --load-source service and --service-* need a service: -- COMMAND\n");
        return -1;
    }
    if (o->svc.argv && o->swarm > 1) {
        fprintf(stderr, "asg-agent: a swarm runs no service (-- COMMAND is for one agent)\n");
        return -1;
    }
    if ((tls[0] || tls[1] || tls[2]) && !(tls[0] && tls[1] && tls[2])) {
        fprintf(stderr, "asg-agent: --tls-ca, --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (o->join_dir && (tls[0] || o->swarm > 1 || !a->id[0] || !a->manager[0] ||
                        o->join_dir[0] != '/')) {
        fprintf(stderr, "asg-agent: --join needs an absolute DIR, --id and --manager, and goes "
                        "with neither --tls-* nor --swarm\n");
        return -1;
    }
    if (!o->listen[0]) {
        fprintf(stderr, "asg-agent: --listen HOST:PORT is required\n");
        usage(stderr);
        return -1;
    }
    if (o->swarm > 1 && a->address[0]) {
        fprintf(stderr, "asg-agent: --advertise is for one agent; a swarm's agents advertise "
                        "the addresses they bind\n");
        return -1;
    }
    if (o->swarm > 1 && a->id[0] && strlen(a->id) + 6 > sizeof a->id - 1) {
        fprintf(stderr, "asg-agent: --id '%s' is too long for a swarm (ids are ID-0..ID-%d, "
                        "at most 63 characters)\n", a->id, o->swarm - 1);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"id", required_argument, NULL, 'i'},
        {"manager", required_argument, NULL, 'm'}, {"advertise", required_argument, NULL, 'a'},
        {"seed", required_argument, NULL, 's'}, {"start-load", required_argument, NULL, 'L'},
        {"load-source", required_argument, NULL, 'S'}, {"swarm", required_argument, NULL, 'N'},
        {"tls-ca", required_argument, NULL, 'A'}, {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'}, {"join", required_argument, NULL, 'J'},
        {"service-port", required_argument, NULL, 'P'}, {"service-health", required_argument, NULL, 'H'},
        {"service-stop-ms", required_argument, NULL, 'T'}, {"service-cpus", required_argument, NULL, 'U'},
        {"service-requests", required_argument, NULL, 'R'},
        {"service-ca", required_argument, NULL, OPT_SERVICE_CA},
        {"service-insecure", no_argument, NULL, OPT_SERVICE_INSECURE},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *tls[3] = {NULL, NULL, NULL};
    int c;
    while ((c = getopt_long(argc, argv, "+l:i:m:a:s:L:S:N:A:C:K:J:P:H:T:U:R:hV", opts, NULL)) != -1)
        if (parse_option(c, optarg, o, tls) != 0)
            return -1;
    if (optind < argc && strcmp(argv[optind - 1], "--") != 0) {
        fprintf(stderr, "asg-agent: unexpected argument '%s' (a service's command goes after --)\n",
                argv[optind]);
        return -1;
    }
    if (optind < argc)
        o->svc.argv = &argv[optind];
    if (check_option_rules(o, tls) != 0)
        return -1;
    char err[256];
    if (tls[0] && rpc_tls_load(&o->tmpl.tls, tls[0], tls[1], tls[2], err, sizeof err) != 0) {
        fprintf(stderr, "asg-agent: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- joining: an EC2 instance gets its certificate ---- */

#define JOIN_TIMEOUT_MS 5000
#define JOIN_BACKOFF_MAX_MS 5000

static void join_path(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* One Join call: 0 with *cert_pem (malloc'd), or -1 with the status. */
static int join_once(grpc_channel *ch, const char *id, const char *token, const char *csr,
                     char **cert_pem, char *err, size_t errsize)
{
    Asg__V1__JoinRequest q = ASG__V1__JOIN_REQUEST__INIT;
    q.instance_id = (char *)id;
    q.join_token = (char *)token;
    q.csr_pem = (char *)csr;
    size_t len, rlen = 0;
    uint8_t *buf = rpc_pack(&q.base, &len), *reply = NULL;
    char details[160] = "";
    grpc_status_code st = rpc_call_sync(ch, M_MONITOR_JOIN, buf, len, JOIN_TIMEOUT_MS, &reply, &rlen,
                                        details, sizeof details);
    free(buf);
    if (st != GRPC_STATUS_OK) {
        snprintf(err, errsize, "status %d %s", (int)st, details);
        return -1;
    }
    Asg__V1__JoinReply *r = asg__v1__join_reply__unpack(NULL, rlen, reply);
    free(reply);
    if (!r || !r->certificate_pem[0] || strlen(r->certificate_pem) > 8192) {
        snprintf(err, errsize, "malformed JoinReply");
        if (r)
            asg__v1__join_reply__free_unpacked(r, NULL);
        return -1;
    }
    *cert_pem = strdup(r->certificate_pem);
    asg__v1__join_reply__free_unpacked(r, NULL);
    return *cert_pem ? 0 : -1;
}

/* Asks until the manager signs (it may not have recorded the launch yet,
 * or be restarting) or SIGTERM; the key never leaves this machine. */
static int join_manager(struct options *o, char *err, size_t errsize)
{
    char ca[300], tokp[300], crt[300], key[300];
    join_path(ca, sizeof ca, o->join_dir, "ca.crt");
    join_path(tokp, sizeof tokp, o->join_dir, "join.token");
    join_path(crt, sizeof crt, o->join_dir, "agent.crt");
    join_path(key, sizeof key, o->join_dir, "agent.key");
    if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
        return rpc_tls_load(&o->tmpl.tls, ca, crt, key, err, errsize);
    struct rpc_tls server_only = {0};
    char *token = secret_read(tokp, 256, err, errsize);
    if (!token || !(server_only.ca = secret_read(ca, 65536, err, errsize))) {
        free(token);
        return -1;
    }
    token[strcspn(token, "\r\n")] = '\0';
    char *key_pem = NULL, *csr = NULL, *cert = NULL;
    int rc = pki_make_request(o->tmpl.id, &key_pem, &csr, err, errsize);
    grpc_channel *ch = rc == 0 ? rpc_channel_create(o->tmpl.manager, &server_only, RPC_MANAGER_NAME) : NULL;
    int backoff = BACKOFF_MIN_MS;
    while (ch && !g_sig.term && join_once(ch, o->tmpl.id, token, csr, &cert, err, errsize) != 0) {
        log_warn("join with %s as %s failed: %s; asking again in %d ms", o->tmpl.manager, o->tmpl.id,
                 err, backoff);
        for (int waited = 0; waited < backoff && !g_sig.term; waited += 50)
            sleep_ms(50);
        backoff = backoff * 2 > JOIN_BACKOFF_MAX_MS ? JOIN_BACKOFF_MAX_MS : backoff * 2;
    }
    if (!cert) {
        rc = -1;
        if (ch)
            snprintf(err, errsize, "stopped before the manager signed a certificate");
    } else if (secret_write(key, key_pem, strlen(key_pem), err, errsize) != 0 ||
               secret_write(crt, cert, strlen(cert), err, errsize) != 0) {
        rc = -1;
    } else {
        unlink(tokp); /* spent: useless to anyone who reads it later */
        log_info("joined %s as %s: certificate in %s", o->tmpl.manager, o->tmpl.id, crt);
        rc = rpc_tls_load(&o->tmpl.tls, ca, crt, key, err, errsize);
    }
    if (ch)
        grpc_channel_destroy(ch);
    if (key_pem)
        memset(key_pem, 0, strlen(key_pem));
    memset(token, 0, strlen(token));
    free(key_pem);
    free(csr);
    free(cert);
    free(token);
    rpc_tls_free(&server_only);
    return rc;
}

/* The operator's service, on the listen host; its address goes to the
 * manager with the registration. */
static int start_service(struct options *o)
{
    struct workload *w = &o->svc;
    const char *colon = strrchr(o->listen, ':');
    snprintf(w->host, sizeof w->host, "%.*s", (int)(colon - o->listen), o->listen);
    if (!w->stop_timeout_ms)
        w->stop_timeout_ms = 5000;
    if (!w->cpus)
        w->cpus = 1;
    if (!w->check_given)
        w->check = SVC_CHECK_TCP;
    char err[256];
    if (workload_start(w, o->tmpl.id[0] ? o->tmpl.id : "agent", err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    o->tmpl.svc = w;
    /* Advertised like the agent: the host it is reached at. */
    const char *adv = o->tmpl.address[0] ? o->tmpl.address : o->listen;
    const char *c = strrchr(adv, ':');
    snprintf(o->tmpl.service_address, sizeof o->tmpl.service_address, "%.*s:%d", (int)(c - adv), adv,
             w->port);
    return 0;
}

/* Each agent holds a listening socket and the manager's connection to it;
 * a swarm of thousands needs the soft descriptor limit raised. */
static int ensure_fd_limit(int agents)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)agents * 2 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        log_error("--swarm %d needs about %llu file descriptors; the hard limit is %llu "
                  "(ulimit -Hn), so run fewer agents per process",
                  agents, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_error("cannot raise the descriptor limit to %llu: %s", (unsigned long long)rl.rlim_cur,
                  strerror(errno));
        return -1;
    }
    return 0;
}

/* Agent k of the swarm serves on BASEPORT+k (or a free port when the base
 * is 0), with its own id, seed and walk. */
static int start_agent(struct options *o, int k, struct agent *a, grpc_completion_queue *cq,
                       struct rpc_server **srv)
{
    *a = o->tmpl;
    a->managers = &o->managers;
    a->cq = cq;
    a->quiet = o->swarm > 1;
    a->started_ms = now_ms();
    a->backoff_ms = BACKOFF_MIN_MS;
    a->probe_interval_ms = 1000;
    walk_init(&a->walk, o->seed + (uint64_t)k * 0x9E3779B97F4A7C15ULL, o->start);
    const char *colon = strrchr(o->listen, ':');
    int host_len = (int)(colon - o->listen);
    int base = atoi(colon + 1);
    char addr[80];
    if (base + k > 65535) {
        log_error("agent %d of the swarm would listen on port %d: past 65535", k, base + k);
        return -1;
    }
    snprintf(addr, sizeof addr, "%.*s:%d", host_len, o->listen, base ? base + k : 0);
    struct rpc_method methods[] = {
        {M_AGENT_PING, agent_h_ping, a}, {M_AGENT_GET_METRICS, agent_h_metrics, a},
        {M_AGENT_SET_LOAD, agent_h_set_load, a}, {M_HEALTH_CHECK, agent_h_health, a}};
    char err[256];
    int port = 0;
    *srv = rpc_server_start(addr, methods, 4, cq, &a->tls, &port, err, sizeof err);
    if (!*srv) {
        log_error("%s", err);
        return -1;
    }
    char bound[64];
    snprintf(bound, sizeof bound, "%.*s:%d", host_len, o->listen, port);
    if (!a->address[0])
        copy_str(a->address, sizeof a->address, bound);
    if (!a->id[0])
        snprintf(a->id, sizeof a->id, "agent-%d", port);
    else if (o->swarm > 1)
        snprintf(a->id, sizeof a->id, "%.56s-%d", o->tmpl.id, k % 100000);
    if (a->manager[0]) {
        /* One connection to each manager serves the whole swarm. */
        o->managers.tls = &a[-k].tls;
        use_manager(a, 0);
        if (o->swarm > 1) {
            /* Spread the first registrations (N/5 ms, at most 2 s) so that
             * thousands of agents do not arrive in the same instant. */
            int spread = o->swarm / 5 > 2000 ? 2000 : o->swarm / 5;
            a->reg = REG_WAIT;
            a->reg_next_ms = now_ms() + (int64_t)k * spread / o->swarm;
        }
    }
    printf("%s\n", bound);
    return 0;
}

static volatile sig_atomic_t want_stats;
static void on_usr1(int sig) { (void)sig; want_stats = 1; }

struct swarm_counts {
    int registered;
    uint64_t answered, bad_requests, reg_failures;
};

static struct swarm_counts count_swarm(const struct agent *ag, int n)
{
    struct swarm_counts c = {0, 0, 0, 0};
    for (int k = 0; k < n; k++) {
        c.registered += ag[k].reg == REG_DONE;
        c.answered += ag[k].answered;
        c.bad_requests += ag[k].bad_requests;
        c.reg_failures += ag[k].reg_failures;
    }
    return c;
}

/* SIGUSR1: one line of counters on stdout, for benchmarks that count the
 * agents' side of a load test. */
static void print_stats(const struct agent *ag, int n)
{
    struct swarm_counts c = count_swarm(ag, n);
    printf("stats agents=%d registered=%d answered=%llu bad_requests=%llu reg_failures=%llu\n", n,
           c.registered, (unsigned long long)c.answered, (unsigned long long)c.bad_requests,
           (unsigned long long)c.reg_failures);
    fflush(stdout);
}

/* A swarm logs how registration goes once a second, not per agent. */
static void swarm_summary(const struct agent *ag, int n, struct swarm_counts *last)
{
    struct swarm_counts c = count_swarm(ag, n);
    if (c.registered != last->registered || c.reg_failures != last->reg_failures)
        log_info("swarm: %d of %d agents registered with %s; %llu failed attempt(s) so far",
                 c.registered, n, ag[0].manager, (unsigned long long)c.reg_failures);
    *last = c;
}

static void run(struct agent *ag, int n, grpc_completion_queue *cq)
{
    int64_t next_load = now_ms() + TICK_MS, next_reg = now_ms(), next_summary = now_ms() + 1000;
    struct swarm_counts last = {0, 0, 0, 0};
    while (!g_sig.term) {
        int64_t now = now_ms();
        if (now >= next_load) {
            for (int k = 0; k < n; k++)
                agent_load_tick(&ag[k], now);
            next_load += TICK_MS;
            if (next_load < now)
                next_load = now + TICK_MS;
        }
        if (now >= next_reg) {
            for (int k = 0; k < n; k++)
                registration_tick(&ag[k], now);
            next_reg = now + REG_TICK_MS;
        }
        if (n > 1 && ag[0].mgr && now >= next_summary) {
            swarm_summary(ag, n, &last);
            next_summary = now + 1000;
        }
        if (want_stats) {
            want_stats = 0;
            print_stats(ag, n);
        }
        /* Short waits so that SIGTERM (a flag) is seen promptly. */
        int64_t due = next_load < next_reg ? next_load : next_reg;
        int wait = (int)(due - now_ms());
        rpc_cq_step(cq, wait < 0 ? 0 : wait > 50 ? 50 : wait);
    }
}


/* The agent's life in order: options, its service, its certificate (an
 * EC2 join), its servers, the loop, and the way out (service stopped, then
 * deregistered). Long because each step needs the ones before it and the
 * way out must undo exactly what was done: one sequence shows both. */
int main(int argc, char **argv)
{
    struct options o = {0};
    rpc_process_init();
    /* The group's mark stays where the manager reads it (/proc/PID/environ
     * keeps the environment we were started with); the operator's service,
     * which we start, needs no part of the group's identity. */
    unsetenv(GROUP_NONCE_ENV);
    o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    o.start = 0.3;
    o.swarm = 1;
    if (parse_args(argc, argv, &o) != 0)
        return ASG_EXIT_FATAL;
    log_set_role(o.swarm > 1 ? "swarm" : "agent");
    signals_install(false);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    if (ensure_fd_limit(o.swarm) != 0)
        return ASG_EXIT_FATAL;
    if (o.svc.argv && start_service(&o) != 0)
        return ASG_EXIT_FATAL;
    struct agent *ag = calloc((size_t)o.swarm, sizeof *ag);
    struct rpc_server **srv = calloc((size_t)o.swarm, sizeof *srv);
    if (!ag || !srv)
        abort();

    grpc_init();
    if (o.swarm > 1)
        rpc_set_armed_per_method(1);
    char err[300];
    if (o.join_dir && join_manager(&o, err, sizeof err) != 0) {
        log_error("--join %s: %s", o.join_dir, err);
        grpc_shutdown();
        free(srv);
        free(ag);
        return ASG_EXIT_FATAL;
    }
    grpc_completion_queue *cq = rpc_cq_create();
    int started = 0;
    while (started < o.swarm && start_agent(&o, started, &ag[started], cq, &srv[started]) == 0)
        started++;
    fflush(stdout);
    int rc = 0;
    if (started < o.swarm) {
        rc = ASG_EXIT_FATAL;
    } else {
        log_info("serving %d agent(s) from %s, first %s%s%s", o.swarm, ag[0].address, ag[0].id,
                 ag[0].manager[0] ? ", manager " : "", ag[0].manager);
        run(ag, o.swarm, cq);
        for (int k = 0; k < o.swarm; k++)
            ag[k].draining = true;
        if (o.svc.argv) {
            log_info("SIGTERM: stopping the service, then deregistering");
            workload_stop(&o.svc);
        } else {
            log_info("SIGTERM: deregistering and stopping");
        }
        deregister_all(ag, o.swarm);
    }
    /* Every channel made: an agent that turned to another manager (a
     * failover, a late probe) holds one to each it talked to. */
    for (int i = 0; i < CHANNELS_MAX && o.managers.channels[i].ch; i++)
        grpc_channel_destroy(o.managers.channels[i].ch);
    rpc_shutdown_servers(srv, (size_t)started, cq);
    grpc_shutdown();
    rpc_tls_free(&o.tmpl.tls);
    free(srv);
    free(ag);
    return rc;
}
