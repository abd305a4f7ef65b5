/* asgctl: the operator's view of a running manager. Maps the shared table
 * read-only (it can never block or corrupt the manager), probes agents, and
 * pins or releases their simulated load. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/identity.h"
#include "../common/pki.h"
#include "../policy/replay.h"
#include "../report/plot.h"
#include "../provider/provider.h"
#include "../common/util.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "../shm/table.h"
#include "login.h"
#include "lifecycle.h"
#include "rollout.h"
#include "../report/notify_report.h"
#include "history.h"
#include "../report/histq.h"
#include "ops.h"
#include "instance.h"
#include "../report/render.h"
#include "../report/zero.h"
#include "asg.pb-c.h"
#include "health.pb-c.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: asgctl [-c FILE | --shm NAME] COMMAND\n"
            "       asgctl -h | --help | -V | --version\n"
            "  status [--json]          the group and one row per instance\n"
            "  probe ADDRESS [--json]   call an agent's Ping, GetMetrics and Health\n"
            "  load ID|all PERCENT|auto pin agents' simulated load, or release it\n"
            "  provider list [--json]   what the provider reports for the group\n"
            "  events [-n N] [--json]   the last N events (default 20)\n"
            "  history [-n N] [--since T] [--json]\n"
            "                           the group's activities from its history database (T: 2h, 30m, 7d\n"
            "                           or RFC 3339; default the last 20)\n"
            "  watch [-i MS] [-n COUNT] a refreshing view with load sparklines\n"
            "  replay --trace FILE --capacity RPM [--policy threshold|target|predictive] [-c FILE]\n"
            "         [--metric load|requests] [--target-requests PER_S]\n"
            "         [--timeline FILE.csv] [--plot FILE.svg] [--compare seeds|hpa|KIND|FILE ...]\n"
            "         [--min N] [--max N] [--boot-delay-s S] [--json]\n"
            "                           the policy in simulated time over a demand trace\n"
            "  rollout status [--json]  the rollout: state, reason, progress, old and new instances\n"
            "  rollout start [--max-surge N|P%%] [--max-unavailable N|P%%] [--canary N]\n"
            "         [--canary-weight P%%] [--bake-s S] [--pause-at P%%[,P%%...]]\n"
            "                           replace the instances of older launch specs\n"
            "  rollout pause|resume|rollback|cancel\n"
            "                           steer the rollout (start and these need the API token)\n"
            "  lifecycle complete ID continue|abandon\n"
            "  lifecycle heartbeat ID   an instance a lifecycle hook holds: let it go on (or\n"
            "                           not), or give its hook timeout_s more (the API token)\n"
            "  desired N                set the group's desired size (within min..max)\n"
            "  launch                   one more instance (the target up by one)\n"
            "  terminate ID [--decrement]\n"
            "                           stop an instance: replaced, or the group shrinks with it\n"
            "  suspend PROCESS...       hold launch|terminate|replace|scale|reconcile|balancer|rollout|all\n"
            "  resume [PROCESS...]      let them run again (none named: all); these five need the API token\n"
            "  protect ID on|off        scale-in protection: no scale-in or rollout stops it\n"
            "  standby ID enter [--decrement] | exit\n"
            "                           out of the balancer, not replaced, not counted; and back\n"
            "  dashboard                a one-time login link for the dashboard (needs the\n"
            "                           manager's tls.dir/api.token: run as its user)\n"
            "  cert ID DIR              issue a certificate for an agent you start by hand\n"
            "                           (DIR/ID.crt, DIR/ID.key, DIR/ca.crt; needs the manager's tls.dir)\n"
            "  version\n"
            "  -c, --config FILE  config of the manager (shm.name and tls.dir, where the\n"
            "                     manager records its table's name); default: built-in\n"
            "  --shm NAME         the table's segment name itself (as asgd logs it),\n"
            "                     overriding the config\n"
            "  -h, --help         print this and exit\n"
            "  -V, --version      print the version and exit\n"
            "exit: 0 done, 1 it failed (no table, an agent did not answer...), 2 bad arguments\n"
            "      or config; see asgctl(8)\n");
}

/* The manager the commands talk to, made by main: its table's segment,
 * and its config and TLS identity (probe and load talk to agents as the
 * manager does, with the manager's certificate from its tls.dir: from the
 * running manager's config, read from its table, when no -c is given;
 * loaded when first needed, after the arguments were checked). */
struct manager {
    const char *shm;              /* the table's segment; NULL when none was found */
    char recorded[TABLE_NAME_MAX]; /* the name its state directory records */
    char table_missing[600];      /* why none was found, said by the commands that need it */
    struct asg_config *cfg;
    bool cfg_from_file;           /* -c FILE; else the table's published config */
    struct rpc_tls tls;
    bool tls_loaded;
};

/* The table's segment: --shm NAME as given; else the name the manager
 * recorded in its state directory (tls.dir, readable by its user only)
 * for the config's shm.name: the name has a random part, so that other
 * users cannot create it first (common/identity.h). NULL when none. */
static const char *find_table(struct manager *m, const char *given, const struct asg_config *cfg)
{
    char dir[256];
    if (given)
        return given;
    pki_dir(cfg, dir, sizeof dir);
    if (table_name_recorded(dir, cfg->shm_name, m->recorded, sizeof m->recorded, m->table_missing,
                            sizeof m->table_missing) != 0)
        return NULL;
    return m->recorded;
}

static int attach(const struct manager *m, struct table *t)
{
    char err[512];
    if (!m->shm) {
        fprintf(stderr, "asgctl: %s\n", m->table_missing);
        return -1;
    }
    if (table_attach(m->shm, true, t, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: %s\n", err);
        return -1;
    }
    return 0;
}

static void json_str(const char *s)
{
    struct strbuf b = {0};
    sb_json_str(&b, s);
    fputs(b.s, stdout);
    sb_free(&b);
}

static int pid_or_zero(int32_t pid) { return pid > 0 && pid_alive(pid) ? pid : 0; }

static void fmt_pct(char *buf, size_t n, bool has, double v)
{
    if (has)
        snprintf(buf, n, "%.1f%%", v * 100.0);
    else
        snprintf(buf, n, "-");
}

/* The table and the config its supervisor published (shm/confseg.h). */
static int take(const struct manager *m, struct table *t, struct snapshot *s)
{
    if (attach(m, t) != 0)
        return -1;
    struct confseg cs;
    char err[512];
    if (confseg_attach_table(t, &cs, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: %s\n", err);
        table_detach(t);
        return -1;
    }
    int rc = snapshot_take(t, &cs, s);
    confseg_detach(&cs);
    if (rc != 0) {
        fprintf(stderr, "asgctl: shared table %s: header or config is being rewritten by a dead "
                "writer; the supervisor will repair it\n", m->shm);
        table_detach(t);
        return -1;
    }
    return 0;
}

/* A launch spec generation; 0: not known (an adopted instance). */
static void spec_gen_text(uint64_t gen, char *buf, size_t n)
{
    if (gen)
        snprintf(buf, n, "%llu", (unsigned long long)gen);
    else
        snprintf(buf, n, "unknown");
}

/* One line per instance, with the balancer's columns when there is one. */
static void print_instance_rows(const struct snapshot *s, bool lb)
{
    char gen[24];
    printf("%-20s %-21s %-11s %7s %7s %7s %9s %6s %7s", "ID", "ADDRESS", "STATE", "LOAD", "CPU",
           "MEM", "LAST SEEN", "MISSES", "SPEC");
    printf(lb ? " %-9s %7s\n" : "\n", "BALANCER", "REQ/S");
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        char l[16], cp[16], m[16], seen[24];
        fmt_pct(l, sizeof l, r->has_sample, r->load);
        fmt_pct(cp, sizeof cp, r->has_sample, r->cpu);
        fmt_pct(m, sizeof m, r->has_sample, r->mem);
        if (r->last_seen_ms)
            snprintf(seen, sizeof seen, "%.1fs ago", (double)(s->now - r->last_seen_ms) / 1000.0);
        else
            snprintf(seen, sizeof seen, "never");
        spec_gen_text(r->spec_gen, gen, sizeof gen);
        printf("%-20s %-21s %-11s %7s %7s %7s %9s %6u %7s", r->id, r->addr[0] ? r->addr : "-",
               row_state_name(r->state), l, cp, m, seen, r->misses, gen);
        if (lb) {
            char rate[24] = "-";
            if (r->req_rate_ms)
                snprintf(rate, sizeof rate, "%.1f", r->req_rate);
            printf(" %-9s %7s", lb_state_name(r->lb_state), rate);
        }
        instance_marks_print(r);
        printf("%s%s\n", r->reason[0] ? "  " : "", r->reason);
    }
}

static void print_size_line(const struct snapshot *s)
{
    const struct asg_config *c = s->cfg;
    int running = snapshot_count(s, ROW_RUNNING), pending = snapshot_count(s, ROW_PENDING);
    int held_in = snapshot_count(s, ROW_LAUNCH_WAIT), held_out = snapshot_count(s, ROW_TERM_WAIT);
    printf("size %d: running %d, pending %d, unhealthy %d, terminating %d", running + pending + held_in,
           running, pending, snapshot_count(s, ROW_UNHEALTHY), snapshot_count(s, ROW_TERMINATING));
    if (held_in || held_out || c->hook_launching.command[0] || c->hook_launching.http[0] ||
        c->hook_terminating.command[0] || c->hook_terminating.http[0])
        printf(", launching:wait %d, terminating:wait %d", held_in, held_out); /* lifecycle hooks */
    printf("\n");
}

static void print_schedule_line(const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct asg_config *c = s->cfg;
    int a = h->sched_active, n = h->sched_next;
    char since[32] = "-", next[32] = "-";
    time_t t1 = (time_t)h->sched_since, t2 = (time_t)h->sched_next_at;
    struct tm tm;
    if (a >= 0 && gmtime_r(&t1, &tm))
        strftime(since, sizeof since, "%Y-%m-%dT%H:%MZ", &tm);
    if (n >= 0 && gmtime_r(&t2, &tm))
        strftime(next, sizeof next, "%Y-%m-%dT%H:%MZ", &tm);
    if (a >= 0 && a < c->nschedule)
        printf("schedule (%s): entry %d \"%s\" in force since %s (min %d, max %d, desired %d; 0 = as configured)",
               c->schedule_timezone[0] ? c->schedule_timezone : "local time", a + 1, c->schedule[a].at, since,
               c->schedule[a].min, c->schedule[a].max, c->schedule[a].desired);
    else
        printf("schedule (%s): no entry in force", c->schedule_timezone[0] ? c->schedule_timezone : "local time");
    if (n >= 0 && n < c->nschedule)
        printf("; next: entry %d at %s\n", n + 1, next);
    else
        printf("\n");
}

static void print_ha_line(const struct table_hdr *h)
{
    if (h->ha_role == HA_LEADER)
        printf("ha: LEADER");
    else
        printf("ha: standby; the leader is %s%s", h->ha_leader[0] ? h->ha_leader : "not known",
               h->ha_leader_addr[0] ? " (register there)" : "");
    printf(", term %lld, %llu failover(s) here%s%s\n", (long long)h->ha_term,
           (unsigned long long)atomic_load(&h->ha_failovers), h->ha_error[0] ? "; etcd: " : "", h->ha_error);
}

static void print_history_line(const struct snapshot *s)
{
    char line[400];
    if (!s->cfg->history_enabled)
        return;
    histq_status_line(s, line, sizeof line);
    printf("%s (pid %d)\n", line, pid_or_zero(s->hdr->pid_history));
}

/* The group's lines, then one per instance; each part of the manager that
 * has something to say adds its line in its own function. */
static void print_status_text(const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct asg_config *c = s->cfg;
    printf("group %s  policy %s  provider %s  min %d  desired %d  max %d  target %d\n",
           c->group_name, policy_kind_name(c->policy_kind), provider_kind_name(c->provider_kind),
           c->min_instances, h->operator_desired > 0 ? h->operator_desired : c->desired_instances,
           c->max_instances, snapshot_target(s));
    print_size_line(s);
    if (h->spec.gen)
        printf("launch spec generation %llu\n", (unsigned long long)h->spec.gen);
    instance_controls_print(s);
    if (c->tls_mode == TLS_PLAINTEXT)
        printf("WARNING: tls.mode = \"plaintext\": agents and manager are not authenticated; anyone "
               "who reaches %s or an agent's port can steer this group\n", c->monitor_listen);
    printf("processes: supervisor %d, monitor %d (at %s), controller %d, status %d\n",
           pid_or_zero(h->pid_supervisor), pid_or_zero(h->pid_monitor),
           h->monitor_addr[0] ? h->monitor_addr : "-", pid_or_zero(h->pid_controller),
           pid_or_zero(h->pid_status));
    print_history_line(s);
    if (c->nschedule)
        print_schedule_line(s);
    if (c->ha_etcd[0])
        print_ha_line(h);
    bool lb = c->lb_kind != LB_NONE;
    if (lb)
        printf("balancer %s: %s, %d member(s)%s%s\n", lb_kind_name(c->lb_kind),
               !h->lb_checked_ms ? "not called yet" : h->lb_up ? "answering" : "UNREACHABLE",
               h->lb_members, h->lb_error[0] ? ": " : "", h->lb_error);
    notify_print_text(stdout, s);
    suspend_status_print(h);
    struct strbuf zb = {0};
    render_zero_text(&zb, s);
    if (zb.s)
        fputs(zb.s, stdout);
    sb_free(&zb);
    print_instance_rows(s, lb);
}

static int cmd_status(const struct manager *m, bool json)
{
    struct table t;
    struct snapshot s;
    if (take(m, &t, &s) != 0)
        return 1;
    if (json) {
        struct strbuf b = {0};
        render_status_json(&b, &s, false);
        fputs(b.s, stdout);
        sb_free(&b);
    } else {
        print_status_text(&s);
    }
    if (s.torn)
        fprintf(stderr, "asgctl: %u row(s) were mid-write by a dead writer and are not shown\n", s.torn);
    snapshot_free(&s);
    table_detach(&t);
    return 0;
}

/* ---- events and watch ---- */

static int cmd_events(const struct manager *m, bool json, uint64_t last)
{
    struct table t;
    if (attach(m, &t) != 0)
        return 1;
    if (json) {
        struct strbuf b = {0};
        render_events_json(&b, &t, 0, (size_t)last);
        fputs(b.s, stdout);
        sb_free(&b);
    } else {
        struct table_event *ev = calloc(TABLE_EVENTS, sizeof *ev);
        uint64_t w = atomic_load(&t.log->events_written);
        size_t n = ev ? table_read_events(&t, w > last ? w - last : 0, ev, TABLE_EVENTS) : 0;
        for (size_t i = 0; i < n; i++) {
            char when[32];
            time_t sec = (time_t)(ev[i].wall_ms / 1000);
            struct tm tm;
            localtime_r(&sec, &tm);
            strftime(when, sizeof when, "%H:%M:%S", &tm);
            printf("%s.%03d  %-9s %s\n", when, (int)(ev[i].wall_ms % 1000),
                   event_kind_name(ev[i].kind), ev[i].msg);
        }
        free(ev);
    }
    table_detach(&t);
    return 0;
}

/* A sparkline of the last `width` samples of a row's load history. */
static void sparkline(const struct table_row *r, int width, char *out, size_t size)
{
    static const char *const blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                         "\u2585", "\u2586", "\u2587", "\u2588"};
    out[0] = '\0';
    uint32_t n = r->hist_len <= TABLE_HIST ? r->hist_len : 0;
    uint32_t take_n = n < (uint32_t)width ? n : (uint32_t)width;
    size_t used = 0;
    for (uint32_t k = 0; k < take_n; k++) {
        float v = r->hist[(r->hist_head + TABLE_HIST - take_n + k) % TABLE_HIST];
        int b = (int)(v * 7.999f);
        b = b < 0 ? 0 : b > 7 ? 7 : b;
        size_t len = strlen(blocks[b]);
        if (used + len + 1 >= size)
            break;
        memcpy(out + used, blocks[b], len + 1);
        used += len;
    }
}

static int cmd_watch(const struct manager *m, int interval_ms, int count)
{
    for (int i = 0; count <= 0 || i < count; i++) {
        struct table t;
        struct snapshot s;
        if (take(m, &t, &s) != 0)
            return 1;
        if (isatty(STDOUT_FILENO))
            printf("\033[H\033[2J");
        print_status_text(&s);
        printf("\n%-20s %s\n", "ID", "LOAD, LAST 40 SAMPLES (OLDEST LEFT)");
        for (uint32_t k = 0; k < s.nrows; k++) {
            char line[40 * 4 + 1];
            sparkline(&s.rows[k], 40, line, sizeof line);
            printf("%-20s %s\n", s.rows[k].id, line);
        }
        printf("\nrecent events:\n");
        fflush(stdout);
        snapshot_free(&s);
        table_detach(&t);
        cmd_events(m, false, 5);
        if (count <= 0 || i + 1 < count)
            poll(NULL, 0, interval_ms);
    }
    return 0;
}

/* ---- probe ---- */

static grpc_status_code call(grpc_channel *ch, const char *method, const ProtobufCMessage *req,
                             uint8_t **reply, size_t *len, char *det, size_t detsize)
{
    size_t n;
    uint8_t *buf = rpc_pack(req, &n);
    grpc_status_code st = rpc_call_sync(ch, method, buf, n, 2000, reply, len, det, detsize);
    free(buf);
    return st;
}

static void config_from_table(const char *shm, struct asg_config *cfg);

/* The manager's TLS identity, loaded at the first call. */
static const struct rpc_tls *manager_tls(struct manager *m)
{
    if (m->tls_loaded)
        return &m->tls;
    if (!m->cfg_from_file)
        config_from_table(m->shm, m->cfg);
    char err[512];
    if (rpc_manager_tls(m->cfg, &m->tls, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: tls: %s (tls.mode = \"auto\": run as the manager's user, with its -c FILE "
                "or --shm NAME)\n", err);
        exit(2);
    }
    m->tls_loaded = true;
    return &m->tls;
}

/* What cmd_probe's calls answered, as text or one JSON object; a NULL
 * answer is left out. */
static void print_probe(const char *addr, const char *health, const Asg__V1__PingReply *pr,
                        const Asg__V1__MetricsReply *mr, int64_t rtt, bool json)
{
    if (json) {
        printf("{\"address\":");
        json_str(addr);
        printf(",\"health\":\"%s\"", health);
        if (pr) {
            printf(",\"ping\":{\"instance_id\":");
            json_str(pr->instance_id);
            printf(",\"load\":%.4f,\"seq\":%llu,\"answered\":%llu,\"rtt_ms\":%lld", pr->load,
                   (unsigned long long)pr->seq, (unsigned long long)pr->answered, (long long)rtt);
            if (pr->requests_known)
                printf(",\"requests_total\":%llu", (unsigned long long)pr->requests_total);
            printf("}");
        }
        if (mr)
            printf(",\"metrics\":{\"load\":%.4f,\"cpu\":%.4f,\"mem\":%.4f,\"uptime_ms\":%llu,"
                   "\"sample_time_ms\":%lld,\"load_pinned\":%s}",
                   mr->load, mr->cpu, mr->mem, (unsigned long long)mr->uptime_ms,
                   (long long)mr->sample_time_ms, mr->load_pinned ? "true" : "false");
        printf("}\n");
    } else {
        printf("address   %s\nhealth    %s\n", addr, health);
        if (pr)
            printf("ping      id %s  load %.1f%%  seq %llu  answered %llu  rtt %lld ms\n",
                   pr->instance_id, pr->load * 100, (unsigned long long)pr->seq,
                   (unsigned long long)pr->answered, (long long)rtt);
        if (pr && pr->requests_known)
            printf("service   %llu requests served\n", (unsigned long long)pr->requests_total);
        if (mr)
            printf("metrics   load %.1f%%  cpu %.1f%%  mem %.1f%%  uptime %.1fs%s\n",
                   mr->load * 100, mr->cpu * 100, mr->mem * 100, (double)mr->uptime_ms / 1000,
                   mr->load_pinned ? "  (load pinned)" : "");
    }
}

/* Ping, GetMetrics and Health/Check on one agent, each answer checked
 * before it is believed, printed as text or one JSON object. */
static int cmd_probe(struct manager *m, const char *addr, bool json)
{
    char why[128];
    if (!valid_address(addr, strlen(addr), false, why, sizeof why)) {
        fprintf(stderr, "asgctl: probe: %s\n", why);
        return 2;
    }
    grpc_init();
    grpc_channel *ch = rpc_channel_create(addr, manager_tls(m), RPC_AGENT_NAME);
    char det[256], ping_det[256] = "";
    uint8_t *data;
    size_t len;
    int rc = 0;
    int64_t t0 = now_ms();

    Asg__V1__PingRequest pq = ASG__V1__PING_REQUEST__INIT;
    pq.seq = 1;
    grpc_status_code st = call(ch, M_AGENT_PING, &pq.base, &data, &len, ping_det, sizeof ping_det);
    int64_t rtt = now_ms() - t0;
    Asg__V1__PingReply *pr = st == GRPC_STATUS_OK ? asg__v1__ping_reply__unpack(NULL, len, data) : NULL;
    if (st == GRPC_STATUS_OK)
        free(data);

    Asg__V1__MetricsRequest mq = ASG__V1__METRICS_REQUEST__INIT;
    grpc_status_code mst = call(ch, M_AGENT_GET_METRICS, &mq.base, &data, &len, det, sizeof det);
    Asg__V1__MetricsReply *mr = mst == GRPC_STATUS_OK ? asg__v1__metrics_reply__unpack(NULL, len, data) : NULL;
    if (mst == GRPC_STATUS_OK)
        free(data);

    Grpc__Health__V1__HealthCheckRequest hq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    grpc_status_code hst = call(ch, M_HEALTH_CHECK, &hq.base, &data, &len, det, sizeof det);
    Grpc__Health__V1__HealthCheckResponse *hr =
        hst == GRPC_STATUS_OK ? grpc__health__v1__health_check_response__unpack(NULL, len, data) : NULL;
    if (hst == GRPC_STATUS_OK)
        free(data);
    const char *health = !hr ? "unreachable"
                         : hr->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? "SERVING"
                         : hr->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING ? "NOT_SERVING"
                         : "UNKNOWN";

    if (!pr || !mr || !hr) {
        rc = 1;
        fprintf(stderr, "asgctl: probe %s: %s (status %d)\n", addr,
                st != GRPC_STATUS_OK && ping_det[0] ? ping_det : det[0] ? det : "no valid answer", (int)(st != GRPC_STATUS_OK ? st : mst != GRPC_STATUS_OK ? mst : hst));
    }
    print_probe(addr, health, pr, mr, rtt, json);
    if (pr)
        asg__v1__ping_reply__free_unpacked(pr, NULL);
    if (mr)
        asg__v1__metrics_reply__free_unpacked(mr, NULL);
    if (hr)
        grpc__health__v1__health_check_response__free_unpacked(hr, NULL);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    return rc;
}

/* ---- load ---- */

static int parse_percent(const char *s, double *out, bool *release)
{
    if (strcmp(s, "auto") == 0) {
        *release = true;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && *end == '%')
        end++;
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 100)
        return -1;
    *release = false;
    *out = v / 100.0;
    return 0;
}

static int cmd_load(struct manager *m, const char *who, const char *pct)
{
    double load = 0;
    bool release = false;
    if (parse_percent(pct, &load, &release) != 0) {
        fprintf(stderr, "asgctl: load: '%s' is not a percentage 0..100 or 'auto'\n", pct);
        return 2;
    }
    bool all = strcmp(who, "all") == 0;
    if (!all && !valid_instance_id(who, strlen(who))) {
        fprintf(stderr, "asgctl: load: '%s' is not an instance id\n", who);
        return 2;
    }
    struct table t;
    if (attach(m, &t) != 0)
        return 1;
    grpc_init();
    int done = 0, failed = 0;
    for (uint32_t i = 0; i < t.capacity; i++) {
        struct table_row r;
        if (!table_read_row(&t, i, &r) || r.state == ROW_FREE || !r.addr[0])
            continue;
        if (!all && strcmp(r.id, who) != 0)
            continue;
        if (all && r.state != ROW_RUNNING && r.state != ROW_PENDING)
            continue;
        grpc_channel *ch = rpc_channel_create(r.addr, manager_tls(m), RPC_AGENT_NAME);
        Asg__V1__SetLoadRequest q = ASG__V1__SET_LOAD_REQUEST__INIT;
        q.release = release;
        q.load = load;
        uint8_t *data;
        size_t len;
        char det[256];
        grpc_status_code st = call(ch, M_AGENT_SET_LOAD, &q.base, &data, &len, det, sizeof det);
        if (st == GRPC_STATUS_OK) {
            free(data);
            done++;
            if (release)
                printf("%s: load released to the random walk\n", r.id);
            else
                printf("%s: load pinned at %.1f%%\n", r.id, load * 100);
        } else {
            failed++;
            fprintf(stderr, "asgctl: load: %s at %s: status %d %s\n", r.id, r.addr, (int)st, det);
        }
        grpc_channel_destroy(ch);
    }
    grpc_shutdown();
    table_detach(&t);
    if (done == 0 && failed == 0) {
        fprintf(stderr, "asgctl: load: no %s with an address in %s\n",
                all ? "running instance" : "such instance", m->shm);
        return 1;
    }
    return failed ? 1 : 0;
}

/* What the provider itself reports, to compare with `status`. */
static int cmd_provider_list(const struct asg_config *cfg, bool json)
{
    struct provider p;
    char err[512];
    /* A process provider lists from /proc: what its init could not set
     * up (the agent binary, the CA) is not needed for that. */
    if (provider_init(&p, cfg, err, sizeof err) != 0 &&
        (!p.ops || !provider_has(cfg, PROVIDER_CAP_PROCESSES))) {
        fprintf(stderr, "asgctl: provider %s: %s\n", provider_kind_name(cfg->provider_kind), err);
        provider_free(&p);
        return 1;
    }
    struct provider_instance *list = NULL;
    size_t n = 0;
    if (p.ops->list(&p, &list, &n, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: provider %s: %s\n", p.ops->name, err);
        provider_free(&p);
        return 1;
    }
    if (json) {
        printf("{\"provider\":\"%s\",\"group\":", p.ops->name);
        json_str(cfg->group_name);
        printf(",\"instances\":[");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"id\":", i ? "," : "");
            json_str(list[i].id);
            printf(",\"address\":");
            json_str(list[i].addr);
            printf(",\"state\":");
            json_str(list[i].state);
            printf(",\"launch_time\":");
            json_str(list[i].launch_time);
            printf(",\"alive\":%s,\"pid\":%d}", list[i].alive ? "true" : "false", list[i].pid);
        }
        printf("]}\n");
    } else {
        printf("provider %s, group %s: %zu instance(s)\n", p.ops->name, cfg->group_name, n);
        printf("%-24s %-21s %-14s %-21s %s\n", "ID", "ADDRESS", "STATE", "LAUNCHED", "PID");
        for (size_t i = 0; i < n; i++)
            printf("%-24s %-21s %-14s %-21s %d\n", list[i].id, list[i].addr[0] ? list[i].addr : "-",
                   list[i].state, list[i].launch_time[0] ? list[i].launch_time : "-", list[i].pid);
    }
    free(list);
    provider_free(&p);
    return 0;
}

/* ---- replay ---- */

#define REPLAY_COMPARE_MAX 16

struct replay_args {
    const char *trace, *cfgfile, *timeline, *plot;
    const char *compare[REPLAY_COMPARE_MAX];
    int ncompare;
    long capacity, min, max, boot_s, target_requests;
    int policy; /* -1: as configured */
    int metric; /* -1: as configured */
    bool json;
};

static bool number_arg(const char *opt, const char *v, long lo, long hi, long *out)
{
    if (parse_whole(v, lo, hi, out))
        return true;
    fprintf(stderr, "asgctl: replay: %s takes a whole number %ld..%ld, not '%s'\n", opt, lo, hi, v);
    return false;
}

/* asgctl replay's options, each value checked as it is read. Long because
 * each option is one branch, in the usage text's order. */
static int parse_replay(int argc, char **argv, struct replay_args *a)
{
    memset(a, 0, sizeof *a);
    a->min = a->max = -1;
    a->boot_s = 60;
    a->policy = a->metric = -1;
    for (int k = 0; k < argc; k++) {
        const char *o = argv[k];
        if (strcmp(o, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (k + 1 >= argc) {
            fprintf(stderr, "asgctl: replay: %s needs a value (or is unknown)\n", o);
            return -1;
        }
        const char *v = argv[++k];
        bool ok = true;
        if (strcmp(o, "--trace") == 0)
            a->trace = v;
        else if (strcmp(o, "--timeline") == 0)
            a->timeline = v;
        else if (strcmp(o, "--plot") == 0)
            a->plot = v;
        else if (strcmp(o, "--compare") == 0 && a->ncompare < REPLAY_COMPARE_MAX)
            a->compare[a->ncompare++] = v;
        else if (strcmp(o, "-c") == 0)
            a->cfgfile = v;
        else if (strcmp(o, "--capacity") == 0)
            ok = number_arg(o, v, 1, REPLAY_MAX_RPM, &a->capacity);
        else if (strcmp(o, "--min") == 0)
            ok = number_arg(o, v, 1, 100000, &a->min);
        else if (strcmp(o, "--max") == 0)
            ok = number_arg(o, v, 1, 100000, &a->max);
        else if (strcmp(o, "--boot-delay-s") == 0)
            ok = number_arg(o, v, 0, 86400, &a->boot_s);
        else if (strcmp(o, "--policy") == 0 && policy_kind_of(v) >= 0)
            a->policy = policy_kind_of(v);
        else if (strcmp(o, "--policy") == 0) {
            fprintf(stderr, "asgctl: replay: --policy is threshold, target or predictive, not '%s'\n", v);
            return -1;
        } else if (strcmp(o, "--metric") == 0 && (strcmp(v, "load") == 0 || strcmp(v, "requests") == 0)) {
            a->metric = strcmp(v, "requests") == 0 ? METRIC_REQUESTS : METRIC_LOAD;
        } else if (strcmp(o, "--metric") == 0) {
            fprintf(stderr, "asgctl: replay: --metric is load or requests, not '%s'\n", v);
            return -1;
        } else if (strcmp(o, "--target-requests") == 0) {
            ok = number_arg(o, v, 1, 10000000, &a->target_requests);
        } else {
            fprintf(stderr, "asgctl: replay: unknown option '%s'\n", o);
            return -1;
        }
        if (!ok)
            return -1;
    }
    if (!a->trace || !a->capacity) {
        fprintf(stderr, "asgctl: replay: --trace FILE and --capacity RPM are required\n");
        return -1;
    }
    return 0;
}

/* The config to replay: -c FILE or the base one, then the options. */
static int replay_config(const struct replay_args *a, struct asg_config *cfg)
{
    if (a->cfgfile) {
        char err[512];
        config_defaults(cfg);
        if (config_load(a->cfgfile, cfg, err, sizeof err) != 0) {
            fprintf(stderr, "asgctl: replay: %s\n", err);
            return -1;
        }
    }
    if (a->policy >= 0)
        cfg->policy_kind = a->policy;
    if (a->metric >= 0)
        cfg->policy_metric = a->metric;
    cfg->boot_ms = (int)(a->boot_s * 1000); /* the operator knows the boot time: say it */
    if (a->target_requests > 0)
        cfg->target_requests = (int)a->target_requests;
    if (a->min > 0)
        cfg->min_instances = (int)a->min;
    if (a->max > 0)
        cfg->max_instances = (int)a->max;
    if (cfg->max_instances < cfg->min_instances) {
        fprintf(stderr, "asgctl: replay: the maximum (%d) is below the minimum (%d)\n",
                cfg->max_instances, cfg->min_instances);
        return -1;
    }
    return 0;
}

/* The config the manager runs with, as published in its table (asgctl
 * maps the table read-only and checks it is the manager's: see
 * table_attach). Left alone when there is no table. */
static void config_from_table(const char *shm, struct asg_config *cfg)
{
    struct table t;
    struct confseg cs;
    char err[512];
    uint64_t gen;
    if (!shm || table_attach(shm, true, &t, err, sizeof err) != 0)
        return;
    if (confseg_attach_table(&t, &cs, err, sizeof err) == 0) {
        struct asg_config *copy = malloc(sizeof *copy);
        if (copy && confseg_read(&cs, copy, &gen))
            *cfg = *copy;
        free(copy);
        confseg_detach(&cs);
    }
    table_detach(&t);
}

/* asgctl rollout: status read from the table as asgctl status does; the
 * actions through the status API (rollout.h), the outcome awaited in the
 * table when there is one. */
static int cmd_rollout(const struct manager *m, int argc, char **argv)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc >= 1 && strcmp(argv[0], "status") == 0) {
        if (argc != (json ? 2 : 1)) {
            fprintf(stderr, "asgctl: usage: rollout status [--json]\n");
            return 2;
        }
        struct table t;
        struct snapshot s;
        if (take(m, &t, &s) != 0)
            return 1;
        rollout_status_print(&s, json);
        snapshot_free(&s);
        table_detach(&t);
        return 0;
    }
    if (argc < 1) {
        fprintf(stderr, "asgctl: usage: rollout status|start|pause|resume|rollback|cancel\n");
        return 2;
    }
    struct table t;
    char err[512];
    bool have = m->shm && table_attach(m->shm, true, &t, err, sizeof err) == 0;
    int rc = rollout_command(m->cfg, have ? &t : NULL, argc, argv);
    if (have)
        table_detach(&t);
    return rc;
}

/* asgctl lifecycle: through the status API (lifecycle.h), the outcome
 * awaited in the table when there is one. */
static int cmd_lifecycle(const struct manager *m, int argc, char **argv)
{
    struct table t;
    char err[512];
    bool have = m->shm && table_attach(m->shm, true, &t, err, sizeof err) == 0;
    int rc = lifecycle_command(m->cfg, have ? &t : NULL, argc, argv);
    if (have)
        table_detach(&t);
    return rc;
}

/* asgctl desired|launch|terminate|suspend|resume (ops.h): through the
 * status API, the outcome awaited in the table when there is one. */
static int cmd_ops(const struct manager *m, const char *verb, int argc, char **argv)
{
    struct table t;
    char err[512];
    bool have = m->shm && table_attach(m->shm, true, &t, err, sizeof err) == 0;
    int rc = ops_command(m->cfg, have ? &t : NULL, verb, argc, argv);
    if (have)
        table_detach(&t);
    return rc;
}

static int cmd_cert(const struct asg_config *cfg, const char *id, const char *outdir)
{
    char err[512], dir[256], cert[300], key[300], ca_path[300];
    if (cfg->tls_mode == TLS_PLAINTEXT) {
        fprintf(stderr, "asgctl: cert: the manager runs with tls.mode = \"plaintext\"\n");
        return 2;
    }
    if (!valid_instance_id(id, strlen(id))) {
        fprintf(stderr, "asgctl: cert: '%s' is not an instance id (1..63 of A-Z a-z 0-9 . _ -)\n", id);
        return 2;
    }
    pki_dir(cfg, dir, sizeof dir);
    /* Before the manager's first start too: the CA is made then. */
    struct pki_ca *ca = pki_prepare(dir, err, sizeof err) == 0 ? pki_ca_open(dir, err, sizeof err) : NULL;
    if (!ca) {
        fprintf(stderr, "asgctl: cert: %s\n", err);
        return 1;
    }
    snprintf(cert, sizeof cert, "%s/%s.crt", outdir, id);
    snprintf(key, sizeof key, "%s/%s.key", outdir, id);
    snprintf(ca_path, sizeof ca_path, "%s/ca.crt", outdir);
    char *pem = pki_ca_pem(ca);
    int rc = pki_issue(ca, id, cert, key, err, sizeof err);
    pki_ca_close(ca);
    if (rc == 0)
        rc = pem ? secret_write(ca_path, pem, strlen(pem), err, sizeof err) : -1;
    free(pem);
    if (rc != 0) {
        fprintf(stderr, "asgctl: cert: %s\n", err);
        return 1;
    }
    printf("%s\n%s\n%s\n", cert, key, ca_path);
    return 0;
}

/* A config to compare: a preset or a file. The presets are the two
 * references every policy here is measured against: the seeds' rule
 * (threshold 0.60 / 0.30, one breach, no cooldown) and the Kubernetes
 * HPA's defaults (target 0.60, 10 % tolerance, 15 s loop, 300 s scale-in
 * window); a policy kind alone is asg's defaults with that kind. */
static int compare_config(const char *what, const struct asg_config *base, struct asg_config *cfg)
{
    *cfg = *base;
    if (strcmp(what, "seeds") == 0) {
        cfg->policy_kind = POLICY_THRESHOLD;
        cfg->scale_out_above = 0.60;
        cfg->scale_in_below = 0.30;
        cfg->breach_periods = 1;
        cfg->cooldown_ms = cfg->warmup_ms = 0;
        cfg->evaluation_interval_ms = 1000;
    } else if (strcmp(what, "hpa") == 0) {
        cfg->policy_kind = POLICY_TARGET;
        cfg->target = 0.60;
        cfg->target_tolerance = 0.10;
        cfg->scale_in_stabilization_ms = 300000;
        cfg->evaluation_interval_ms = 15000;
        cfg->cooldown_ms = cfg->warmup_ms = 0;
    } else if (strcmp(what, "threshold") == 0 || strcmp(what, "target") == 0 ||
               strcmp(what, "predictive") == 0) {
        config_defaults(cfg);
        cfg->policy_kind = policy_kind_of(what);
    } else {
        char err[512];
        if (config_load(what, cfg, err, sizeof err) != 0) {
            fprintf(stderr, "asgctl: replay: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static void replay_json(const char *name, const struct replay_result *r)
{
    printf("{");
    if (name) {
        printf("\"config\":");
        json_str(name);
        printf(",");
    }
    printf("\"instance_minutes\":%.1f,\"overload_minutes\":%llu,\"unserved_requests\":%.0f,"
           "\"scaling_actions\":%llu,\"peak_instances\":%d}",
           r->instance_minutes, (unsigned long long)r->overload_minutes, r->unserved_requests,
           (unsigned long long)r->scaling_actions, r->peak_instances);
}

/* Every config over one trace, side by side. */
static int replay_compare(const struct replay_args *a, const struct asg_config *base,
                          const uint32_t *demand, size_t n, const struct replay_opts *o)
{
    struct replay_result r[REPLAY_COMPARE_MAX];
    char err[512];
    for (int k = 0; k < a->ncompare; k++) {
        struct asg_config cfg;
        if (compare_config(a->compare[k], base, &cfg) != 0 || replay_config(a, &cfg) != 0)
            return 2;
        if (replay_run(&cfg, demand, n, o, &r[k], err, sizeof err) != 0) {
            fprintf(stderr, "asgctl: replay: %s: %s\n", a->compare[k], err);
            return 2;
        }
    }
    if (a->json) {
        printf("[");
        for (int k = 0; k < a->ncompare; k++) {
            printf(k ? "," : "");
            replay_json(a->compare[k], &r[k]);
        }
        printf("]\n");
        return 0;
    }
    printf("replay of %s: %zu minutes, %ld requests/min per instance, boot %ld s\n", a->trace, n,
           a->capacity, a->boot_s);
    printf("%-28s %16s %14s %18s %10s %6s\n", "config", "instance-min", "overload min",
           "unserved requests", "actions", "peak");
    for (int k = 0; k < a->ncompare; k++)
        printf("%-28.28s %16.1f %14llu %18.0f %10llu %6d\n", a->compare[k], r[k].instance_minutes,
               (unsigned long long)r[k].overload_minutes, r[k].unserved_requests,
               (unsigned long long)r[k].scaling_actions, r[k].peak_instances);
    return 0;
}

/* The replay's plot as SVG in a->plot; 0, or -1 with why in err. */
static int write_plot(const struct replay_args *a, const struct asg_config *cfg, const uint32_t *demand,
                      size_t n, const struct replay_opts *o, char *err, size_t errsize)
{
    char title[300];
    snprintf(title, sizeof title, "asgctl replay: %.120s, %s policy, %ld requests/min per instance, boot %ld s",
             a->trace, policy_kind_name(cfg->policy_kind), a->capacity, a->boot_s);
    FILE *svg = fopen(a->plot, "w");
    int prc = svg ? plot_replay_svg(svg, title, demand, o->ready, o->booting, n, o->capacity_rpm) : -1;
    if (svg && fclose(svg) != 0)
        prc = -1;
    if (prc != 0) {
        snprintf(err, errsize, "%s: %s", a->plot, strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

static void print_replay(const struct replay_args *a, const struct asg_config *cfg,
                         const struct replay_result *r)
{
    printf("replay of %s: %llu minutes, %s policy, group %d..%d, %ld requests/min per instance, "
           "boot %ld s, evaluation every %d ms\n",
           a->trace, (unsigned long long)r->minutes, policy_kind_name(cfg->policy_kind),
           cfg->min_instances, cfg->max_instances, a->capacity, a->boot_s, cfg->evaluation_interval_ms);
    printf("instance-minutes   %.1f (mean %.2f instances, peak %d)\n", r->instance_minutes,
           r->instance_minutes / (double)r->minutes, r->peak_instances);
    printf("overload minutes   %llu (demand above 0.9 x ready capacity, or none ready)\n",
           (unsigned long long)r->overload_minutes);
    printf("unserved requests  %.0f\n", r->unserved_requests);
    printf("scaling actions    %llu\n", (unsigned long long)r->scaling_actions);
}

static int cmd_replay(int argc, char **argv, const struct asg_config *base)
{
    struct replay_args a;
    struct asg_config cfg = *base;
    if (parse_replay(argc, argv, &a) != 0 || replay_config(&a, &cfg) != 0)
        return 2;
    char err[512];
    uint32_t *demand;
    size_t n;
    if (replay_load_trace(a.trace, &demand, &n, err, sizeof err) != 0) {
        fprintf(stderr, "asgctl: replay: %s\n", err);
        return 2;
    }
    struct replay_opts o = {(uint32_t)a.capacity, a.boot_s * 1000LL, NULL};
    if (a.ncompare) {
        int rc = replay_compare(&a, base, demand, n, &o);
        free(demand);
        return rc;
    }
    if (a.timeline && !(o.timeline = fopen(a.timeline, "w"))) {
        fprintf(stderr, "asgctl: replay: %s: %s\n", a.timeline, strerror(errno));
        free(demand);
        return 2;
    }
    if (a.plot && (!(o.ready = calloc(n, sizeof *o.ready)) || !(o.booting = calloc(n, sizeof *o.booting))))
        abort();
    struct replay_result r;
    int rc = replay_run(&cfg, demand, n, &o, &r, err, sizeof err);
    if (rc == 0 && a.plot)
        rc = write_plot(&a, &cfg, demand, n, &o, err, sizeof err);
    free(o.ready);
    free(o.booting);
    free(demand);
    if (o.timeline && fclose(o.timeline) != 0 && rc == 0) {
        fprintf(stderr, "asgctl: replay: %s: %s\n", a.timeline, strerror(errno));
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "asgctl: replay: %s\n", err);
        return 2;
    }
    if (a.json) {
        replay_json(NULL, &r);
        printf("\n");
        return 0;
    }
    print_replay(&a, &cfg, &r);
    return 0;
}

/* The manager's config file. asgctl needs little of it (shm.name,
 * tls.dir): the group it shows is the one in the table, which the manager
 * runs. So a broken file (a reload the manager refused, a half-made edit)
 * is read leniently, with a warning, when the operator most needs to look;
 * only replay, which simulates the file's policy, wants it whole. */
static int read_config(const char *path, bool lenient, struct asg_config *cfg)
{
    char err[512];
    if (!lenient) {
        if (config_load(path, cfg, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "asgctl: %s\n", err);
        return -1;
    }
    int problems = config_load_lenient(path, cfg, err, sizeof err);
    if (problems < 0) {
        fprintf(stderr, "asgctl: %s\n", err);
        return -1;
    }
    if (problems > 0)
        fprintf(stderr, "asgctl: warning: %s has %d error%s, the first: %s\n"
                "asgctl: warning: read leniently (keys in error are left at their defaults); "
                "what the manager runs is its last good config, as shown\n",
                path, problems, problems == 1 ? "" : "s", err);
    return 0;
}

static void print_version(void)
{
    printf("asgctl %s (table layout %d)\n", ASG_VERSION, TABLE_VERSION);
}

/* The options before the command: the index of the command, or -(exit
 * code + 1) when the run ends here (help, version: 0; a bad option: 2).
 * "+" stops at the command, whose own options (-n, --json) are its own. */
static int parse_options(int argc, char **argv, const char **cfgfile, const char **shm)
{
    enum { OPT_SHM = 256 };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"shm", required_argument, NULL, OPT_SHM},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': *cfgfile = optarg; break;
        case OPT_SHM: *shm = optarg; break;
        case 'h': usage(stdout); return -1;
        case 'V': print_version(); return -1;
        default: usage(stderr); return -3;
        }
    }
    return optind;
}

/* Options, then one branch per command, in the order the usage lists
 * them: a dispatcher is long because the command list is. */
int main(int argc, char **argv)
{
    const char *cfgfile = NULL, *shm = NULL;
    rpc_process_init();
    int i = parse_options(argc, argv, &cfgfile, &shm);
    if (i < 0)
        return -i - 1;
    log_set_level(LOG_LVL_ERROR);
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    struct asg_config cfg;
    config_defaults(&cfg);
    if (cfgfile && read_config(cfgfile, strcmp(cmd, "replay") != 0, &cfg) != 0)
        return 2;
    struct manager mgr = {.cfg = &cfg, .cfg_from_file = cfgfile != NULL};
    shm = mgr.shm = find_table(&mgr, shm, &cfg);
    if ((strcmp(cmd, "cert") == 0 || strcmp(cmd, "dashboard") == 0 || strcmp(cmd, "rollout") == 0 ||
         strcmp(cmd, "lifecycle") == 0 || strcmp(cmd, "history") == 0 ||
         ops_verb(cmd) || strcmp(cmd, "protect") == 0 || strcmp(cmd, "standby") == 0) && !cfgfile)
        config_from_table(shm, &cfg);
    if (strcmp(cmd, "dashboard") == 0 && argc - i == 0)
        return asgctl_dashboard(&cfg);
    int rest = argc - i;
    if (strcmp(cmd, "cert") == 0 && rest == 2)
        return cmd_cert(&cfg, argv[i], argv[i + 1]);
    bool json = rest >= 1 && strcmp(argv[argc - 1], "--json") == 0;
    if (strcmp(cmd, "status") == 0 && rest == (json ? 1 : 0))
        return cmd_status(&mgr, json);
    if (strcmp(cmd, "probe") == 0 && rest == (json ? 2 : 1))
    {
        int rc = cmd_probe(&mgr, argv[i], json);
        rpc_tls_free(&mgr.tls);
        return rc;
    }
    if (strcmp(cmd, "load") == 0 && rest == 2)
    {
        int rc = cmd_load(&mgr, argv[i], argv[i + 1]);
        rpc_tls_free(&mgr.tls);
        return rc;
    }
    if (strcmp(cmd, "events") == 0) {
        uint64_t n = 20;
        int want = json ? 1 : 0;
        if (rest == want + 2 && strcmp(argv[i], "-n") == 0) {
            char *end;
            n = strtoull(argv[i + 1], &end, 10);
            if (*end || n == 0 || n > TABLE_EVENTS || argv[i + 1][0] == '-') {
                fprintf(stderr, "asgctl: events: -n takes 1..%d\n", TABLE_EVENTS);
                return 2;
            }
        } else if (rest != want) {
            fprintf(stderr, "asgctl: usage: events [-n N] [--json]\n");
            return 2;
        }
        return cmd_events(&mgr, json, n);
    }
    if (strcmp(cmd, "watch") == 0) {
        long interval = 1000, count = 0;
        for (int k = i; k < argc; k += 2) {
            char *end = NULL;
            long v = k + 1 < argc ? strtol(argv[k + 1], &end, 10) : -1;
            bool ok = end && !*end && v > 0;
            if (strcmp(argv[k], "-i") == 0 && ok && v >= 50)
                interval = v;
            else if (strcmp(argv[k], "-n") == 0 && ok)
                count = v;
            else {
                fprintf(stderr, "asgctl: usage: watch [-i MS (>= 50)] [-n COUNT]\n");
                return 2;
            }
        }
        return cmd_watch(&mgr, (int)interval, (int)count);
    }
    if (strcmp(cmd, "provider") == 0 && rest == (json ? 2 : 1) && strcmp(argv[i], "list") == 0)
        return cmd_provider_list(&cfg, json);
    if (strcmp(cmd, "replay") == 0)
        return cmd_replay(rest, argv + i, &cfg);
    if (strcmp(cmd, "rollout") == 0)
        return cmd_rollout(&mgr, rest, argv + i);
    if (strcmp(cmd, "lifecycle") == 0)
        return cmd_lifecycle(&mgr, rest, argv + i);
    if (strcmp(cmd, "history") == 0)
        return history_command(&cfg, shm, rest, argv + i);
    if (ops_verb(cmd))
        return cmd_ops(&mgr, cmd, rest, argv + i);
    if (strcmp(cmd, "protect") == 0 || strcmp(cmd, "standby") == 0)
        return instance_command(&cfg, mgr.shm, cmd, rest, argv + i);
    if (strcmp(cmd, "version") == 0 && rest == 0) {
        print_version();
        return 0;
    }
    fprintf(stderr, "asgctl: bad command or arguments: '%s'\n", cmd);
    usage(stderr);
    return 2;
}
