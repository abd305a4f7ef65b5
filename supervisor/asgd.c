/* asgd, the supervisor: reads the config, creates the shared table, forks
 * the role processes (monitor, controller) before any gRPC initialisation,
 * restarts them when they die, and acts on signals. It does no network I/O
 * itself, so nothing an agent sends can stall it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/ctlsock.h"
#include "../common/identity.h"
#include "../common/pki.h"
#include "../common/util.h"
#include "../proto/rpc.h"
#include "../provider/provider.h"
#include "../shm/confseg.h"
#include "../shm/migrate.h"
#include "../shm/ops.h"
#include "../shm/table.h"
#include "../controller/controller.h"
#include "../monitor_s/monitor.h"
#include "../status/status.h"
#include "../history/history.h"
#include "notify.h"
#include "../webhook/notify.h"

#define BACKOFF_FORK_MS 250 /* a failed fork() */

enum child_state { CH_STOPPED, CH_RUNNING, CH_WAITING };

struct child {
    const char *role;        /* "monitor", "controller", "status" */
    const char *title;       /* as shown by ps */
    int (*main)(struct table *, const struct asg_config *);
    pid_t pid;
    enum child_state state;
    int64_t started_ms;
    int64_t restart_at_ms;
    int failures;            /* deaths in a row, each after a short life */
    int restarts;
    bool essential;          /* its fatal exit stops the manager */
};

/* Each role as it is before it first runs: copied into the supervisor's
 * own children (struct sup), which alone change. */
static const struct child role_table[] = {
    {"monitor", "asgd: monitor", monitor_main, 0, CH_STOPPED, 0, 0, 0, 0, true},
    {"controller", "asgd: controller", controller_main, 0, CH_STOPPED, 0, 0, 0, 0, true},
    {"status", "asgd: status", status_main, 0, CH_STOPPED, 0, 0, 0, 0, false},
    /* at TABLE_ROLE_NOTIFY; started when notify.webhooks has any */
    {"notify", "asgd: notify", notify_role_main, 0, CH_STOPPED, 0, 0, 0, 0, false},
    /* at TABLE_ROLE_HISTORY; not essential: the group is managed without its record (history/history.h) */
    {"history", "asgd: history", history_main, 0, CH_STOPPED, 0, 0, 0, 0, false},
};
#define NCHILDREN (sizeof role_table / sizeof role_table[0])
#define MONITOR (&sup->children[0])
#define CONTROLLER (&sup->children[1])
#define STATUS (&sup->children[2])
#define NOTIFIER (&sup->children[TABLE_ROLE_NOTIFY])
#define HISTORY (&sup->children[TABLE_ROLE_HISTORY])

/* The supervisor's phases, in order. One function (advance) moves them
 * forward and one (set_phase) logs every move, as PostgreSQL's postmaster
 * does with PMState. */
enum phase {
    PH_RUN,             /* roles run; a role that dies is restarted */
    PH_STOP_CONTROLLER, /* draining: the controller (it stops the local agents) and
                           the status role are told to stop; the monitor still
                           listens, so the agents can deregister */
    PH_STOP_MONITOR,    /* the controller is gone, or half the drain time passed:
                           the monitor is told too */
    PH_KILLED,          /* the drain timed out: what was left got SIGKILL */
    PH_DONE,            /* every role has stopped */
};

static const char *const phase_names[] = {"run", "stop-controller", "stop-monitor", "killed", "done"};

/* What the supervisor knows of a monitor's listener (check_monitor_listener). */
struct deaf {
    pid_t pid;          /* the monitor the samples are about */
    uint64_t accepted;  /* its relay_accepted at the last sample */
    uint64_t took;      /* its relay_grpc_took at the last sample */
    int64_t since;      /* first of the samples without progress; 0: none */
    uint64_t rounds;    /* its probe rounds at that first sample */
    int64_t next;       /* next sample */
};

/* The supervisor's whole state: made by main, passed to every function
 * that needs it (nothing of it lives in a file-level variable). */
struct sup {
    const char *cfg_path;    /* NULL: built-in defaults */
    struct asg_config cfg;
    struct table table;
    struct confseg conf;     /* the config published to the roles */
    bool table_fresh;        /* made by this start (not re-attached) */
    char state_dir[256];     /* tls.dir: the CA, the group nonce, the table's name */
    char nonce[GROUP_NONCE_HEX + 1];
    int pidfd;
    int sigfd;
    enum phase phase;
    enum phase phase_before; /* the one before the current, for the last log line */
    int64_t drain_deadline;
    int exit_code;
    int argc;
    char **argv;
    struct child children[NCHILDREN]; /* role_table's, as they run */
    struct deaf deaf;        /* the monitor's listener, sampled */
    struct notify notify;    /* what systemd is told (Type=notify) */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: asgd [-c FILE] [-f] [-t] [-k] [-h] [-V]\n"
            "  -c, --config FILE  configuration (default: the built-in defaults)\n"
            "  -f, --foreground   stay in the foreground and log to stderr\n"
            "  -t, --check        check the configuration and exit (0 when valid, else 1)\n"
            "  -k, --keys         print every configuration key (type, default, reload) and exit\n"
            "  -h, --help         print this and exit\n"
            "  -V, --version      print the version and exit\n"
            "signals: HUP reloads the config, TERM/INT drain and stop\n"
            "exit: 0 stopped on a signal (or -t: valid), 1 cannot start or a role failed,\n"
            "      2 bad arguments; see asgd(8)\n");
}

/* ---- logging of child state (one place, as every death must be) ---- */

static void log_child_exit(struct sup *sup, const struct child *c, pid_t pid, int status)
{
    int64_t up = now_ms() - c->started_ms;
    char how[96];
    int level = LOG_LVL_WARN;
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 0 && (level = LOG_LVL_INFO))
        snprintf(how, sizeof how, "exited with status 0");
    else
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    table_note(&sup->table, EV_ROLE, NULL, level, "%s (pid %d) %s after %lld ms", c->role, (int)pid, how,
               (long long)up);
}

static void set_role_pid(struct sup *sup, const struct child *c, pid_t pid)
{
    table_set_role_pid(&sup->table, (int)(c - sup->children), pid);
}

/* ---- forking roles ---- */

static void start_child(struct sup *sup, struct child *c)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork %s: %s; retrying in %d ms", c->role, strerror(errno), BACKOFF_FORK_MS);
        c->state = CH_WAITING;
        c->restart_at_ms = now_ms() + BACKOFF_FORK_MS;
        return;
    }
    if (pid == 0) {
        /* The child must not keep the supervisor's pidfile lock alive,
         * and dies with the supervisor (roles are never orphans: a new
         * supervisor starts its own). */
        close(sup->pidfd);
        notify_forget_in_child();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            _exit(0);
        signals_reset_defaults();
        signals_reset_pipe();
        signals_leave_interrupt();
#ifdef ASG_TEST_HOOKS
        if (c->restarts > 0)
            unsetenv("ASG_FAULT"); /* a test fault fires once, not in every restart */
#endif
        set_proc_title(sup->argc, sup->argv, c->title);
        log_set_role(c->role);
        confseg_detach(&sup->conf); /* roles map it read-only themselves */
        fflush(NULL);
        /* exit, not _exit: stdio is flushed and, in sanitized builds,
         * LeakSanitizer checks the role. */
        exit(c->main(&sup->table, &sup->cfg));
    }
    c->pid = pid;
    c->state = CH_RUNNING;
    c->started_ms = now_ms();
    set_role_pid(sup, c, pid);
    log_info("%s started (pid %d)%s", c->role, (int)pid,
             c->restarts ? " after a restart" : "");
}

static struct child *child_by_pid(struct sup *sup, pid_t pid)
{
    for (size_t i = 0; i < NCHILDREN; i++)
        if (sup->children[i].pid == pid && sup->children[i].state == CH_RUNNING)
            return &sup->children[i];
    return NULL;
}

static void begin_drain(struct sup *sup, int code);

/* Restart at once after a long life (supervisor.restart_stable_ms); after
 * short lives, back off: 250 ms, 500 ms, 1 s, ... up to 30 s (defaults). */
static void schedule_restart(struct sup *sup, struct child *c, int64_t now)
{
    if (now - c->started_ms >= sup->cfg.restart_stable_ms)
        c->failures = 0;
    c->failures++;
    int64_t delay = 0;
    if (c->failures > 1) {
        int shift = c->failures - 2 > 16 ? 16 : c->failures - 2;
        delay = (int64_t)sup->cfg.restart_backoff_ms << shift;
        if (delay > sup->cfg.restart_backoff_max_ms)
            delay = sup->cfg.restart_backoff_max_ms;
    }
    c->state = CH_WAITING;
    c->restart_at_ms = now + delay;
    c->restarts++;
    table_role_restarted(&sup->table, (int)(c - sup->children));
    log_info("%s will restart in %lld ms (death %d in a row)", c->role, (long long)delay,
             c->failures);
}

static void reap(struct sup *sup)
{
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) != 0) {
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD */
        }
        struct child *c = child_by_pid(sup, pid);
        if (table_recover_dead_holder(&sup->table, pid))
            log_warn("pid %d died holding the table lock; lock recovered, table checked", (int)pid);
        if (!c) {
            /* An agent orphaned by a controller restart: we are its
             * subreaper. The controller notices it through probes. */
            log_debug("reaped pid %d (not a role)", (int)pid);
            continue;
        }
        log_child_exit(sup, c, pid, status);
        c->pid = 0;
        c->state = CH_STOPPED;
        set_role_pid(sup, c, 0);
        if (sup->phase != PH_RUN)
            continue;
        if (WIFEXITED(status) && WEXITSTATUS(status) == ASG_EXIT_FATAL) {
            if (!c->essential) {
                log_error("%s exited with its fatal code %d: it cannot run with this "
                          "configuration; carrying on without it", c->role, ASG_EXIT_FATAL);
                continue;
            }
            log_error("%s exited with its fatal code %d: it cannot run with this "
                      "configuration; stopping the manager", c->role, ASG_EXIT_FATAL);
            begin_drain(sup, 1);
            continue;
        }
        schedule_restart(sup, c, now_ms());
    }
}

/* ---- reload ---- */

/* The roles take it at the SIGHUP that follows (the controller then
 * ends an operator's desired size: the file wins again). */
static void publish_config(struct sup *sup, const struct asg_config *cfg)
{
    uint64_t gen = confseg_publish(&sup->conf, cfg);
    table_config_reloaded(&sup->table);
    table_note(&sup->table, EV_CONFIG, NULL, LOG_LVL_INFO,
               "config reloaded from %.80s (generation %llu): group %d..%d desired %d, policy %s",
               sup->cfg_path, (unsigned long long)gen, cfg->min_instances,
               cfg->max_instances, cfg->desired_instances, policy_kind_name(cfg->policy_kind));
}

static void reload_failed(struct sup *sup, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reload_failed(struct sup *sup, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&sup->table.hdr->reloads_failed, 1);
    table_note(&sup->table, EV_CONFIG, NULL, LOG_LVL_ERROR, "%s", msg);
}

/* notify.secret, the webhooks' signing key, is read as a secret too (the
 * notifier reads it again at its start and at each reload): one that is
 * not readable so is refused as status.token's is, naming the key. */
static int check_notify_secret(const struct asg_config *c, char *err, size_t errsize)
{
    if (!c->notify_secret[0])
        return 0;
    char why[400];
    char *key = secret_read(c->notify_secret + 5, 4096, why, sizeof why);
    if (!key) {
        snprintf(err, errsize, "notify.secret: %s", why);
        return -1;
    }
    explicit_bzero(key, strlen(key));
    free(key);
    return 0;
}

/* status.token as a file is read as a secret (no link, root's or ours,
 * mode 0600 or less): one that is not is refused at -t, at the start and
 * at a reload, not found out later by the status role. */
static int check_token_file(const struct asg_config *c, char *err, size_t errsize)
{
    if (strncmp(c->status_token, "file:", 5) != 0)
        return 0;
    char tok[256];
    int rc = secret_read_token(c->status_token, tok, sizeof tok, err, errsize);
    explicit_bzero(tok, sizeof tok);
    return rc;
}

static void reload(struct sup *sup)
{
    if (!sup->cfg_path) {
        log_warn("SIGHUP: running on built-in defaults, no file to re-read");
        return;
    }
    struct asg_config next;
    char err[512];
    if (config_load(sup->cfg_path, &next, err, sizeof err) != 0) {
        reload_failed(sup, "config file %s has errors, not reloading: %s", sup->cfg_path, err);
        return;
    }
    if (check_token_file(&next, err, sizeof err) != 0) {
        reload_failed(sup, "config file %s: status.token: %s; not reloading", sup->cfg_path, err);
        return;
    }
    if (check_notify_secret(&next, err, sizeof err) != 0) {
        reload_failed(sup, "config file %s: %s; not reloading", sup->cfg_path, err);
        return;
    }
    const char *key = config_restart_key_changed(&sup->cfg, &next);
    if (key) {
        reload_failed(sup, "config file %s: %s cannot change while running (restart asgd); not reloading",
                      sup->cfg_path, key);
        return;
    }
    sup->cfg = next;
    log_set_level((enum log_level)sup->cfg.log_level);
    log_set_facility(config_log_facility(&sup->cfg));
    publish_config(sup, &sup->cfg);
    for (size_t i = 0; i < NCHILDREN; i++)
        if (sup->children[i].state == CH_RUNNING)
            kill(sup->children[i].pid, SIGHUP);
    if (NOTIFIER->state == CH_STOPPED && sup->cfg.nwebhooks > 0)
        start_child(sup, NOTIFIER); /* the first webhooks, or a fixed notify.secret */
}

/* ---- drain ---- */

static void set_phase(struct sup *sup, enum phase p, const char *why)
{
    log_info("phase %s -> %s: %s", phase_names[sup->phase], phase_names[p], why);
    sup->phase_before = sup->phase;
    sup->phase = p;
}

static void begin_drain(struct sup *sup, int code)
{
    if (sup->phase != PH_RUN)
        return;
    sup->exit_code = code;
    sup->drain_deadline = now_ms() + sup->cfg.drain_timeout_ms;
    char why[96];
    snprintf(why, sizeof why, "draining (SIGKILL after %d ms)%s", sup->cfg.drain_timeout_ms,
             code ? ", instances kept" : "");
    set_phase(sup, PH_STOP_CONTROLLER, why);
    notify_stopping(&sup->notify, why);
    table_set_draining(&sup->table, code == 0 ? DRAIN_STOP : DRAIN_KEEP_INSTANCES);
    /* The controller first: it stops the local agents, which deregister
     * with the monitor on their way out. The monitor follows (drain_step),
     * and the history with it, so that it records the drain's own
     * terminations before the table goes. */
    for (size_t i = 0; i < NCHILDREN; i++) {
        if (sup->children[i].state != CH_RUNNING)
            sup->children[i].state = CH_STOPPED;
        else if (&sup->children[i] != MONITOR && &sup->children[i] != HISTORY)
            kill(sup->children[i].pid, SIGTERM);
    }
}

static bool all_stopped(struct sup *sup)
{
    for (size_t i = 0; i < NCHILDREN; i++)
        if (sup->children[i].state == CH_RUNNING)
            return false;
    return true;
}

static void escalate(struct sup *sup)
{
    for (size_t i = 0; i < NCHILDREN; i++)
        if (sup->children[i].state == CH_RUNNING) {
            log_warn("%s (pid %d) did not stop within %d ms: SIGKILL", sup->children[i].role,
                     (int)sup->children[i].pid, sup->cfg.drain_timeout_ms);
            kill(sup->children[i].pid, SIGKILL);
        }
}

/* The one place the drain moves forward; returns when it must be looked
 * at again. In PH_RUN it has nothing to do (begin_drain leaves it). */
static int64_t advance(struct sup *sup, int64_t now)
{
    int64_t half = sup->drain_deadline - sup->cfg.drain_timeout_ms / 2;
    if (sup->phase != PH_RUN && sup->phase != PH_DONE && all_stopped(sup)) {
        set_phase(sup, PH_DONE, "every role has stopped");
        return now;
    }
    switch (sup->phase) {
    case PH_STOP_CONTROLLER:
        if (now >= sup->drain_deadline) {
            escalate(sup);
            set_phase(sup, PH_KILLED, "drain timed out");
        } else if (CONTROLLER->state != CH_RUNNING || now >= half) {
            if (MONITOR->state == CH_RUNNING)
                kill(MONITOR->pid, SIGTERM);
            if (HISTORY->state == CH_RUNNING)
                kill(HISTORY->pid, SIGTERM);
            set_phase(sup, PH_STOP_MONITOR, CONTROLLER->state != CH_RUNNING ? "the controller has stopped"
                                                                        : "half the drain time passed");
        }
        return now >= half ? sup->drain_deadline : half;
    case PH_STOP_MONITOR:
        if (now >= sup->drain_deadline) {
            escalate(sup);
            set_phase(sup, PH_KILLED, "drain timed out");
        }
        return sup->drain_deadline;
    case PH_RUN:
    case PH_KILLED:
    case PH_DONE:
        break;
    }
    return now + 1000;
}

/* Last sweep after the roles are gone: local agents still listed in the
 * table (a controller killed mid-drain) are stopped too, so that nothing
 * this manager started outlives it when it was asked to stop them. */
static void stop_leftover_agents(struct sup *sup)
{
    if (!provider_has(&sup->cfg, PROVIDER_CAP_PROCESSES) || !sup->cfg.local_stop_on_exit ||
        sup->exit_code != 0)
        return; /* a manager that failed leaves its instances to the next one */
    for (uint32_t i = 0; i < sup->table.capacity; i++) {
        struct table_row r;
        if (!table_read_row(&sup->table, i, &r) || r.state == ROW_FREE || r.pid <= 0)
            continue;
        /* Every check the controller makes (provider/local.c): a row is
         * only a claim, never a licence to signal its pid. */
        struct provider_handle h;
        controller_handle_of_row(&r, &h);
        if (local_signal_row(sup->nonce, &h, r.pid, SIGKILL) > 0)
            log_warn("agent %s (pid %d) still running after drain: SIGKILL", r.id, r.pid);
    }
}

/* ---- a deaf monitor (its listener's progress) ---- */

/* The monitor accepts its port's connections itself and relays them to
 * its gRPC server on a private Unix socket (monitor_s/relay.h); it
 * publishes how many it took from the kernel (relay_accepted), how many
 * of those gRPC began to read (relay_grpc_took), and how many gRPC has
 * left unread (relay_grpc_waiting). A busy monitor, however flooded,
 * keeps those counters moving; a deaf one does not: its listener has
 * connections waiting in the kernel's accept queue and takes none, or
 * its gRPC server (which, in 1.51, never accepts again after EMFILE)
 * leaves relayed connections unread and reads no new one. Either for
 * DEAF_AFTER_MS, while the monitor keeps completing probe rounds (its
 * loop runs), and only a new monitor process gets a new listener. A
 * monitor starved of CPU on a busy machine completes no rounds either: it
 * is left alone, as killing it would only add a restart to the load. */
#define DEAF_SAMPLE_MS 1000
#define DEAF_AFTER_MS 5000
#define DEAF_MIN_ROUNDS 3

static int monitor_port(struct sup *sup, struct table_hdr *h)
{
    if (!table_read_hdr(&sup->table, h) || h->pid_monitor != MONITOR->pid)
        return -1;
    h->monitor_addr[sizeof h->monitor_addr - 1] = '\0';
    const char *colon = strrchr(h->monitor_addr, ':');
    long port;
    if (!colon || !parse_whole(colon + 1, 1, 65535, &port))
        return -1;
    return (int)port;
}

static void check_monitor_listener(struct sup *sup, int64_t now)
{
    if (now < sup->deaf.next)
        return;
    sup->deaf.next = now + DEAF_SAMPLE_MS;
    if (MONITOR->state != CH_RUNNING)
        return;
    struct table_hdr h;
    int port = monitor_port(sup, &h);
    if (port <= 0)
        return;
    long queued = tcp_accept_queue(port);
    uint64_t accepted = atomic_load(&h.relay_accepted), took = atomic_load(&h.relay_grpc_took);
    uint32_t waiting = atomic_load(&h.relay_grpc_waiting);
    bool listener_stuck = sup->deaf.pid == MONITOR->pid && queued > 0 && accepted == sup->deaf.accepted;
    bool grpc_stuck = sup->deaf.pid == MONITOR->pid && waiting > 0 && took == sup->deaf.took;
    sup->deaf.accepted = accepted;
    sup->deaf.took = took;
    if (!listener_stuck && !grpc_stuck) {
        sup->deaf.pid = MONITOR->pid;
        sup->deaf.since = 0;
        return;
    }
    if (!sup->deaf.since) {
        sup->deaf.since = now;
        sup->deaf.rounds = h.probe_rounds;
        return;
    }
    if (now - sup->deaf.since < DEAF_AFTER_MS || h.probe_rounds < sup->deaf.rounds + DEAF_MIN_ROUNDS)
        return;
    if (listener_stuck)
        table_note(&sup->table, EV_ROLE, NULL, LOG_LVL_ERROR,
                   "monitor (pid %d) is deaf: its listener on port %d has left %ld connections "
                   "unaccepted for %lld ms; killing it to restart it", (int)MONITOR->pid, port,
                   queued, (long long)(now - sup->deaf.since));
    else
        table_note(&sup->table, EV_ROLE, NULL, LOG_LVL_ERROR,
                   "monitor (pid %d) is deaf: its gRPC server has left %u relayed connections "
                   "unread for %lld ms; killing it to restart it", (int)MONITOR->pid, waiting,
                   (long long)(now - sup->deaf.since));
    kill(MONITOR->pid, SIGKILL);
    sup->deaf.since = 0;
}

/* ---- start-up ---- */

/* The pidfile's directory (/run/asg by default), made when missing: under
 * systemd, RuntimeDirectory= makes it for the asg user; started otherwise
 * (the init script, by hand), asgd makes it for itself, one level only. */
static void make_pidfile_dir(const char *pidfile)
{
    char dir[sizeof ((struct asg_config *)0)->pidfile];
    copy_str(dir, sizeof dir, pidfile);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0755) == 0)
        fprintf(stderr, "asgd: made %s for the pidfile\n", dir);
}

static int open_pidfile(struct sup *sup)
{
    /* Never through a link (root would write to its target), never a file
     * of another uid, and 0600: nobody else can open it, so nobody else
     * can flock it to keep asgd from starting. */
    int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    int fd = open(sup->cfg.pidfile, flags, 0600);
    if (fd < 0 && errno == ENOENT) {
        make_pidfile_dir(sup->cfg.pidfile);
        fd = open(sup->cfg.pidfile, flags, 0600);
    }
    if (fd < 0) {
        fprintf(stderr, "asgd: pidfile %s: %s\n", sup->cfg.pidfile,
                errno == ELOOP ? "is a symbolic link; refusing it" : strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_nlink != 1) || fchmod(fd, 0600) != 0) {
        fprintf(stderr, "asgd: pidfile %s: not a regular file of ours (uid %u) with one link; "
                "refusing it\n", sup->cfg.pidfile, (unsigned)geteuid());
        close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        fprintf(stderr, "asgd: another asgd (pid %s) holds %s; not starting\n",
                buf[0] ? buf : "?", sup->cfg.pidfile);
        close(fd);
        return -1;
    }
    return fd;
}

static int write_pidfile(struct sup *sup)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(sup->pidfd, 0) != 0 || pwrite(sup->pidfd, buf, (size_t)n, 0) != n) {
        log_error("pidfile %s: %s", sup->cfg.pidfile, strerror(errno));
        return -1;
    }
    return 0;
}

/* True when pid runs this very program as our uid: a role of a previous
 * asgd, not some process that reuses its pid. */
static bool our_role(pid_t pid)
{
    char self[512], other[512];
    return pid_exe_if_ours(getpid(), self, sizeof self) && pid_exe_if_ours(pid, other, sizeof other) &&
           strcmp(self, other) == 0;
}

/* The roles of a manager killed a moment ago are still draining (they got
 * SIGTERM from its death): a restart (systemd's Restart=on-failure) waits
 * for them, up to the drain timeout, then kills them, so that the new
 * monitor can bind its port. Pids that are not our program are left
 * alone. */
static int wait_previous_roles(struct sup *sup, const struct table_hdr *h)
{
    const int32_t pids[] = {h->pid_monitor, h->pid_controller, h->pid_status, h->pid_history};
    int64_t deadline = now_ms() + sup->cfg.drain_timeout_ms;
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
        pid_t pid = pids[i];
        if (pid <= 0 || pid == getpid() || !pid_alive(pid) || !our_role(pid))
            continue;
        log_warn("role pid %d of the previous manager still runs; waiting for it to stop", (int)pid);
        while (pid_alive(pid) && now_ms() < deadline)
            sleep_ms(20);
        if (pid_alive(pid) && our_role(pid)) {
            log_warn("role pid %d of the previous manager did not stop: SIGKILL", (int)pid);
            kill(pid, SIGKILL);
            for (int k = 0; k < 100 && pid_alive(pid); k++)
                sleep_ms(20);
        }
        if (pid_alive(pid)) {
            log_error("role pid %d of the previous manager cannot be stopped; not starting", (int)pid);
            return -1;
        }
    }
    return 0;
}

/* A new table under a fresh random name (common/identity.h), recorded
 * first: a crash in between leaves a record of nothing, never a table
 * nobody can find. */
static int create_table(struct sup *sup)
{
    char err[512], name[TABLE_NAME_MAX];
    for (int tries = 0; tries < 3; tries++) {
        if (table_name_fresh(sup->cfg.shm_name, name, sizeof name) != 0) {
            log_error("shm.name %s: cannot make a table name: %s", sup->cfg.shm_name, strerror(errno));
            return -1;
        }
        if (table_name_record(sup->state_dir, sup->cfg.shm_name, name, err, sizeof err) != 0) {
            log_error("%s", err);
            return -1;
        }
        if (table_create(name, (uint32_t)sup->cfg.shm_capacity, &sup->table, err, sizeof err) == 0) {
            sup->table_fresh = true;
            return 0;
        }
        if (errno != EEXIST && !strstr(err, "File exists")) {
            log_error("%s", err);
            table_name_record(sup->state_dir, sup->cfg.shm_name, NULL, err, sizeof err);
            return -1;
        }
        log_warn("%s; choosing another name", err);
    }
    log_error("shm.name %s: three random names were all taken; not starting", sup->cfg.shm_name);
    return -1;
}

/* The checks on a table left by an earlier manager of this group. */
static int reattach_checks(struct sup *sup)
{
    struct table_hdr *h = sup->table.hdr;
    if (h->pid_supervisor > 0 && h->pid_supervisor != getpid() && pid_alive(h->pid_supervisor)) {
        log_error("shared table %s is in use by asgd pid %d; not starting", sup->table.name,
                  h->pid_supervisor);
        return -1;
    }
    h->group_nonce[sizeof h->group_nonce - 1] = '\0';
    if (h->group_nonce[0] && strcmp(h->group_nonce, sup->nonce) != 0) {
        log_error("shared table %s was made by another group (its nonce is not the one in %s); "
                  "not starting", sup->table.name, sup->state_dir);
        return -1;
    }
    if (wait_previous_roles(sup, h) != 0)
        return -1;
    int rows = 0;
    for (uint32_t i = 0; i < sup->table.capacity; i++)
        rows += sup->table.rows[i].state != ROW_FREE;
    /* Whatever the last writer left: half-written rows, an impossible
     * state, an event count that lost its log. */
    if (table_lock(&sup->table, TABLE_LOCK_WAIT_MS) == 0) {
        int fixed = table_repair(&sup->table);
        table_unlock(&sup->table);
        if (fixed)
            log_warn("shared table %s: %d thing(s) corrected on re-attach", sup->table.name, fixed);
    }
    log_warn("re-attaching shared table %s left by asgd pid %d: %d instance(s) kept",
             sup->table.name, h->pid_supervisor, rows);
    if (sup->table.capacity != (uint32_t)sup->cfg.shm_capacity)
        log_warn("shm.capacity %d differs from the existing table's %u; using %u",
                 sup->cfg.shm_capacity, sup->table.capacity, sup->table.capacity);
    return 0;
}

/* The table an older asgd left, migrated to our layout: re-attached as
 * any table left by an earlier manager. */
static int reattach_migrated(struct sup *sup, const char *name)
{
    char err[512];
    if (table_attach(name, false, &sup->table, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (reattach_checks(sup) != 0) {
        table_detach(&sup->table);
        return -1;
    }
    return 0;
}

/* A table of an older layout version (an older asgd's): while that asgd
 * runs, we do not start; once it is gone, the table is migrated to our
 * layout, field by field (shm/migrate.h), and re-attached with its rows
 * and their history. One we cannot read (no directory, not version 19, or
 * a damaged one) is set aside (removed: ours) and a new one made, and the
 * group's instances are adopted from the provider, as after a lost table.
 * One we can read but cannot write anew (no room in /dev/shm, say) is kept
 * as it is and we do not start: its instances' history is not given up
 * for a passing fault. A newer layout's table is a newer asgd's: never
 * touched. */
static int set_aside_older(struct sup *sup, const char *name, const char *refusal)
{
    uint32_t version;
    int32_t pid;
    char err[512], exe[PATH_MAX];
    if (table_peek_other(name, &version, &pid, err, sizeof err) != 0 || version > TABLE_VERSION) {
        log_error("%s", refusal);
        return -1;
    }
    const char *base = pid > 0 && pid != getpid() && pid_exe_if_ours(pid, exe, sizeof exe) ? strrchr(exe, '/') : NULL;
    if (base && strcmp(base, "/asgd") == 0) {
        log_error("shared table %s of layout version %u is in use by asgd pid %d (an older asgd): stop "
                  "it first; its instances are then adopted by this one", name, version, pid);
        return -1;
    }
    struct migrate_report rep;
    int rc = table_migrate(name, &table_layout_current, &rep, err, sizeof err);
    if (rc == 0)
        return reattach_migrated(sup, name);
    if (rc == -2) { /* readable, with its instances and history: not given up */
        log_error("%s; the table is left as it was: not starting", err);
        return -1;
    }
    log_warn("shared table %s has layout version %u (an older asgd's, not running); this one reads "
             "version %u and cannot migrate it (%s): setting it aside for a new table; the group's "
             "instances are adopted from the provider", name, version, TABLE_VERSION, err);
    table_unlink(name);
    return create_table(sup);
}

/* The table recorded in the state directory is re-attached, rows and all,
 * when it is still there (a manager that died left it: its instances are
 * still out there); else a new one is made. A segment of another owner
 * under the recorded name is left alone: nobody can make us use it, and
 * nobody can keep us from starting with it. */
static int open_table(struct sup *sup)
{
    char err[512], name[TABLE_NAME_MAX];
    if (table_name_recorded(sup->state_dir, sup->cfg.shm_name, name, sizeof name, err, sizeof err) != 0) {
        if (errno != ENOENT) {
            log_error("%s", err);
            return -1;
        }
        return create_table(sup);
    }
    if (table_attach(name, false, &sup->table, err, sizeof err) != 0) {
        if (errno == ENOENT)
            return create_table(sup);
        if (errno == EPERM) {
            log_warn("%s; leaving it there and making a new table", err);
            return create_table(sup);
        }
        if (errno == EPROTO)
            return set_aside_older(sup, name, err);
        log_error("%s", err);
        return -1;
    }
    if (reattach_checks(sup) != 0) {
        table_detach(&sup->table);
        return -1;
    }
    return 0;
}

/* The config segment a re-attached table names (its last supervisor's). */
static bool previous_config_name(struct sup *sup, char *out, size_t size)
{
    const char *n = sup->table.hdr->config_name;
    size_t len = strnlen(n, sizeof sup->table.hdr->config_name), base = strlen(sup->table.name);
    /* Only a name of the form we make: nothing else is ever unlinked. */
    if (sup->table_fresh || len >= size || strncmp(n, sup->table.name, base) != 0 ||
        strncmp(n + base, ".config-", 8) != 0)
        return false;
    memcpy(out, n, len);
    out[len] = '\0';
    return true;
}

/* The config goes to the roles in a segment of its own (shm/confseg.h),
 * made fresh at every start. Its generations go on from those of the
 * previous manager's segment, which is then removed. */
static int publish_first_config(struct sup *sup)
{
    char err[512], old[sizeof sup->table.hdr->config_name];
    uint64_t gen = 0;
    confseg_sweep(sup->cfg.shm_name);
    if (previous_config_name(sup, old, sizeof old)) {
        struct confseg prev;
        struct asg_config *cfg = malloc(sizeof *cfg);
        if (cfg && confseg_attach(old, &prev, err, sizeof err) == 0) {
            if (!confseg_read(&prev, cfg, &gen))
                gen = 0;
            confseg_detach(&prev);
            confseg_unlink(old); /* ours: attached, as our own */
        } else if (cfg && errno != ENOENT) {
            log_warn("%s; left where it is", err); /* not ours: never removed */
        }
        free(cfg);
    }
    if (confseg_create(sup->table.name, &sup->cfg, gen + 1, &sup->conf, err, sizeof err) != 0) {
        log_error("cannot publish the config: %s", err);
        return -1;
    }
    return 0;
}

static void drop_config_segment(struct sup *sup)
{
    confseg_detach(&sup->conf);
    confseg_unlink(sup->conf.name);
}

static int init_table_header(struct sup *sup)
{
    if (publish_first_config(sup) != 0)
        return -1;
    if (table_lock(&sup->table, TABLE_LOCK_WAIT_MS) != 0)
        log_warn("table lock still busy at start; carrying on");
    table_supervisor_started(&sup->table, sup->cfg.group_name, sup->nonce, sup->cfg_path, sup->conf.name);
    table_unlock(&sup->table);
    return 0;
}

/* A table's header, read (not mapped) from /dev/shm: only a regular file
 * of ours, 0600, of this layout. */
static bool read_header_at(int dirfd, const char *file, struct table_hdr *h)
{
    int fd = openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
              !(st.st_mode & 077) && (size_t)st.st_size >= sizeof *h &&
              pread(fd, h, sizeof *h, 0) == (ssize_t)sizeof *h;
    close(fd);
    if (!ok || h->magic != TABLE_MAGIC || h->version != TABLE_VERSION || h->hdr_size != sizeof *h)
        return false;
    h->group_name[sizeof h->group_name - 1] = '\0';
    h->group_nonce[sizeof h->group_nonce - 1] = '\0';
    h->config_path[sizeof h->config_path - 1] = '\0';
    h->monitor_addr[sizeof h->monitor_addr - 1] = '\0';
    return true;
}

/* Two groups of one name on one machine would take each other's agents
 * for their own by name alone, and an operator would confuse them: the
 * one whose supervisor started last refuses, naming the other. The
 * managers of this uid are found through their tables (every running
 * manager has one, and each says who runs it): a segment of another uid
 * is never read, so no stranger can block a start, and a table whose
 * supervisor is dead (or whose pid now runs something else) is stale and
 * ignored. Both headers are published before either looks, so two
 * managers started at once see each other and exactly one gives way. */
static int refuse_same_name(struct sup *sup)
{
    DIR *d = opendir("/dev/shm");
    struct table_hdr *h = malloc(sizeof *h);
    uint64_t mine = pid_start_time(getpid());
    int rc = 0;
    struct dirent *e;
    while (d && h && rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, sup->table.name + 1) == 0 ||
            !read_header_at(dirfd(d), e->d_name, h))
            continue;
        pid_t pid = h->pid_supervisor;
        if (strcmp(h->group_name, sup->cfg.group_name) != 0 || strcmp(h->group_nonce, sup->nonce) == 0 ||
            pid <= 0 || pid == getpid() || !pid_alive(pid))
            continue; /* another name, our own group (an HA pair), or stale */
        uint64_t start = pid_start_time(pid);
        if (!start || start != h->supervisor_start || start > mine || (start == mine && pid > getpid()))
            continue; /* a reused pid, or a manager that came after us: it gives way */
        log_error("group %s already has a manager on this machine, of another group (another "
                  "nonce, another tls.dir): asgd pid %d, config %s, monitor %s, table /%s. Give this "
                  "one another group.name (or, for an HA pair, the same tls.dir); not starting",
                  sup->cfg.group_name, (int)pid, h->config_path[0] ? h->config_path : "(built-in defaults)",
                  h->monitor_addr[0] ? h->monitor_addr : "(not listening yet)", e->d_name);
        rc = -1;
    }
    free(h);
    if (d)
        closedir(d);
    return rc;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    umask(022);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

static int parse_args(struct sup *sup, int argc, char **argv, bool *foreground, bool *check)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"check", no_argument, NULL, 't'},         {"keys", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:fthkV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': sup->cfg_path = optarg; break;
        case 'k': config_describe(stdout); exit(0);
        case 'f': *foreground = true; break;
        case 't': *check = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("asgd %s\n", ASG_VERSION); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asgd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* READY=1 once the roles are up (notify.h says when), looked at every
 * READY_LOOK_MS until then; returns when to look again. */
#define READY_LOOK_MS 100

static int64_t tell_ready(struct sup *sup, int64_t now)
{
    struct table_hdr h;
    if (sup->notify.ready || !sup->notify.on)
        return INT64_MAX;
    if (!table_read_hdr(&sup->table, &h) ||
        !notify_roles_up(&h, MONITOR->pid, CONTROLLER->pid, sup->cfg.ha_etcd[0] != '\0', sup->notify.since_ms))
        return now + READY_LOOK_MS;
    char status[TABLE_ADDR_MAX + sizeof sup->table.name + 48];
    snprintf(status, sizeof status, "running: monitor on %s, table %s", h.monitor_addr, sup->table.name);
    notify_ready(&sup->notify, status);
    return INT64_MAX;
}

static void main_loop(struct sup *sup)
{
    while (sup->phase != PH_DONE) {
        if (g_sig.term && sup->phase == PH_RUN) {
            log_info("SIGTERM/SIGINT received");
            begin_drain(sup, 0);
        }
        if (g_sig.hup) {
            g_sig.hup = 0;
            if (sup->phase == PH_RUN)
                reload(sup);
        }
        g_sig.chld = 0;
        reap(sup);
        int64_t now = now_ms();
        int64_t next = now + 1000;
        if (sup->phase == PH_RUN) {
            for (size_t i = 0; i < NCHILDREN; i++) {
                struct child *c = &sup->children[i];
                if (c->state == CH_WAITING && now >= c->restart_at_ms)
                    start_child(sup, c);
                if (c->state == CH_WAITING && c->restart_at_ms < next)
                    next = c->restart_at_ms;
            }
            check_monitor_listener(sup, now);
            if (sup->deaf.next < next)
                next = sup->deaf.next;
            int64_t ready = tell_ready(sup, now);
            if (ready < next)
                next = ready;
        } else {
            int64_t again = advance(sup, now);
            if (again < next)
                next = again;
            if (sup->phase == PH_DONE)
                break;
        }
        int64_t watchdog = notify_watchdog(&sup->notify, now);
        if (watchdog < next)
            next = watchdog;
        struct pollfd p = {sup->sigfd, POLLIN, 0};
        int wait = (int)(next - now_ms());
        if (g_sig.chld || g_sig.term || g_sig.hup)
            wait = 0;
        if (poll(&p, 1, wait < 0 ? 0 : wait) > 0)
            signals_drain_pipe();
    }
}

/* Before anything is started: the config, the check mode, the pidfile
 * and the keys. 0 to go on, else the exit code. */
static int prepare(struct sup *sup, int argc, char **argv, bool *foreground)
{
    bool check = false;
    if (parse_args(sup, argc, argv, foreground, &check) != 0)
        return 2;
    char err[512];
    config_defaults(&sup->cfg);
    if (sup->cfg_path && config_load(sup->cfg_path, &sup->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: %s\n", err);
        return 1;
    }
    if (check_token_file(&sup->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: status.token: %s\n", err);
        return 1;
    }
    if (check_notify_secret(&sup->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: %s\n", err);
        return 1;
    }
    if (check) {
        /* The extra lines let scripts (the init script) learn the paths. */
        printf("%s: configuration OK\npidfile=%s\nshm=%s\n",
               sup->cfg_path ? sup->cfg_path : "(built-in defaults)", sup->cfg.pidfile, sup->cfg.shm_name);
        exit(0);
    }
    if (sup->cfg_path && sup->cfg_path[0] != '/') {
        /* Reloads happen after chdir("/") when daemonized. */
        char *abs = realpath(sup->cfg_path, NULL);
        if (abs)
            sup->cfg_path = abs;
    }
    sup->pidfd = open_pidfile(sup);
    if (sup->pidfd < 0)
        return 1;
    /* The state directory, whatever the TLS mode: the group's nonce and
     * its table's name live there (common/identity.h). */
    pki_dir(&sup->cfg, sup->state_dir, sizeof sup->state_dir);
    if (secret_own_dir(sup->state_dir, err, sizeof err) != 0 ||
        group_nonce_load(sup->state_dir, true, sup->nonce, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: state directory (tls.dir): %s\n", err);
        return 1;
    }
    if (sup->cfg.tls_mode == TLS_AUTO && pki_prepare(sup->state_dir, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: tls: %s\n", err);
        return 1;
    }
    /* The status API serves nobody without this credential (docs/monitoring.md,
     * "Watching it"), so it exists before the status role starts. */
    if (sup->cfg.status_listen[0] && pki_api_token_prepare(sup->state_dir, err, sizeof err) != 0) {
        fprintf(stderr, "asgd: status API token: %s\n", err);
        return 1;
    }
    return 0;
}

/* The pidfile written, the table made or re-attached, the request pair
 * made. 0, or -1 (logged; the table stays, it may hold instances). */
static int take_place(struct sup *sup)
{
    if (write_pidfile(sup) != 0 || open_table(sup) != 0) {
        unlink(sup->cfg.pidfile);
        return -1;
    }
    if (init_table_header(sup) != 0) {
        table_detach(&sup->table); /* kept: it may hold instances */
        unlink(sup->cfg.pidfile);
        return -1;
    }
    if (refuse_same_name(sup) != 0) {
        char err[256];
        drop_config_segment(sup);
        table_detach(&sup->table);
        if (sup->table_fresh) { /* ours alone, and empty: nothing to keep */
            table_unlink(sup->table.name);
            table_name_record(sup->state_dir, sup->cfg.shm_name, NULL, err, sizeof err);
        }
        unlink(sup->cfg.pidfile);
        return -1;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sup->sigfd = signals_install(true);
    if (ctlsock_pair_open() != 0) {
        log_error("cannot make the socket pair for operator requests: %s", strerror(errno));
        drop_config_segment(sup);
        table_detach(&sup->table);
        unlink(sup->cfg.pidfile);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool foreground = false;
    /* On main's stack: it lives as long as the supervisor, and in every
     * role forked from it (they get its table and config). */
    struct sup state = {0};
    struct sup *sup = &state;
    memcpy(sup->children, role_table, sizeof role_table);
    rpc_process_init();
    sup->argc = argc;
    sup->argv = argv;
    sup->pidfd = -1;
    int rc = prepare(sup, argc, argv, &foreground);
    if (rc != 0)
        return rc;
    log_set_facility(config_log_facility(&sup->cfg));
    if (!foreground) {
        log_use_syslog(true);
        if (daemonize() != 0) {
            fprintf(stderr, "asgd: cannot daemonize: %s\n", strerror(errno));
            return 1;
        }
    }
    log_set_role("asgd");
    log_set_level((enum log_level)sup->cfg.log_level);
    if (take_place(sup) != 0)
        return 1;
    log_info("asgd %s starting: config %s, table %s (%u rows), pid %d", ASG_VERSION,
             sup->cfg_path ? sup->cfg_path : "(built-in defaults)", sup->table.name,
             sup->table.capacity, (int)getpid());
    notify_init(&sup->notify, now_ms());
    for (size_t i = 0; i < NCHILDREN; i++)
        if ((&sup->children[i] != STATUS || sup->cfg.status_listen[0]) &&
            (&sup->children[i] != NOTIFIER || sup->cfg.nwebhooks > 0) &&
            (&sup->children[i] != HISTORY || sup->cfg.history_enabled))
            start_child(sup, &sup->children[i]);
    main_loop(sup);
    stop_leftover_agents(sup);
    reap(sup);
    drop_config_segment(sup);
    table_detach(&sup->table);
    table_unlink(sup->table.name);
    char err[256];
    if (table_name_record(sup->state_dir, sup->cfg.shm_name, NULL, err, sizeof err) != 0)
        log_warn("%s", err);
    unlink(sup->cfg.pidfile);
    log_info("stopped%s; table %s and pidfile removed",
             sup->phase_before == PH_KILLED ? " (after SIGKILL)" : "", sup->table.name);
    return sup->exit_code;
}
