#include "render.h"
#include "notify_report.h"
#include "histq.h"
#include "../common/termination.h"
#include "zero.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

static void pid_field(struct strbuf *b, const char *name, int32_t pid, bool last)
{
    if (pid > 0 && pid_alive(pid))
        sb_printf(b, "\"%s\":%d%s", name, pid, last ? "" : ",");
    else
        sb_printf(b, "\"%s\":null%s", name, last ? "" : ",");
}

/* A launch spec generation; 0 is not known (an adopted instance). */
static void launch_spec_json(struct strbuf *b, uint64_t gen)
{
    if (gen)
        sb_printf(b, ",\"launch_spec_generation\":%llu", (unsigned long long)gen);
    else
        sb_printf(b, ",\"launch_spec_generation\":null");
}

static void instance_json(struct strbuf *b, const struct table_row *r, int64_t now, bool history)
{
    sb_printf(b, "{\"id\":");
    sb_json_str(b, r->id);
    sb_printf(b, ",\"address\":");
    sb_json_str(b, r->addr);
    sb_printf(b, ",\"service_address\":");
    sb_json_str(b, r->service_addr);
    sb_printf(b, ",\"state\":\"%s\",\"reason\":", row_state_name(r->state));
    sb_json_str(b, r->reason);
    if (r->has_sample)
        sb_printf(b, ",\"load\":%.4f,\"cpu\":%.4f,\"mem\":%.4f", r->load, r->cpu, r->mem);
    else
        sb_printf(b, ",\"load\":null,\"cpu\":null,\"mem\":null");
    sb_printf(b, ",\"last_seen_ms\":%lld,\"misses\":%u,\"pid\":%d,\"age_ms\":%lld"
                 ",\"probes_ok\":%llu,\"probes_failed\":%llu",
              r->last_seen_ms ? (long long)(now - r->last_seen_ms) : -1LL, r->misses, r->pid,
              (long long)(now - r->launch_ms), (unsigned long long)r->probes_ok,
              (unsigned long long)r->probes_failed);
    sb_printf(b, ",\"balancer\":\"%s\",\"connections\":%u", lb_state_name(r->lb_state), r->lb_sessions);
    sb_printf(b, ",\"protected\":%s,\"standby\":%s", r->flags & ROW_F_PROTECTED ? "true" : "false",
              r->flags & ROW_F_STANDBY ? "true" : "false");
    /* The balancer's count of its 5xx answers (HAProxy in http mode). */
    if (r->lb_counted_ms)
        sb_printf(b, ",\"balancer_5xx\":%llu", (unsigned long long)r->lb_5xx);
    else
        sb_printf(b, ",\"balancer_5xx\":null");
    if (r->req_rate_ms)
        sb_printf(b, ",\"requests_per_s\":%.2f", r->req_rate);
    else
        sb_printf(b, ",\"requests_per_s\":null");
    if (r->svc_rate_ms)
        sb_printf(b, ",\"service_requests_per_s\":%.2f", r->svc_rate);
    else
        sb_printf(b, ",\"service_requests_per_s\":null");
    launch_spec_json(b, r->spec_gen);
    /* A lifecycle hook's time left (its deadline); null while the hook
     * waits its turn, or when no hook holds it. */
    bool held = r->state == ROW_LAUNCH_WAIT || r->state == ROW_TERM_WAIT;
    if (held && r->term_deadline_ms)
        sb_printf(b, ",\"hook_timeout_in_ms\":%lld", (long long)(r->term_deadline_ms - now));
    else
        sb_printf(b, ",\"hook_timeout_in_ms\":null");
    if (history) {
        /* Oldest first. */
        sb_printf(b, ",\"history\":[");
        uint32_t n = r->hist_len <= TABLE_HIST ? r->hist_len : 0;
        uint32_t start = (r->hist_head + TABLE_HIST - n) % TABLE_HIST;
        for (uint32_t k = 0; k < n; k++)
            sb_printf(b, "%s%.3f", k ? "," : "", r->hist[(start + k) % TABLE_HIST]);
        sb_printf(b, "]");
    }
    sb_printf(b, "}");
}

/* Probe counters and the fine round-trip histogram: [upper bound in
 * microseconds, count] for each non-empty bucket. */
static void probes_json(struct strbuf *b, const struct probe_totals *p)
{
    sb_printf(b, "\"probes\":{\"sent\":%llu,\"failed\":%llu,\"rtt_us_sum\":%llu,\"rtt_us_hist\":[",
              (unsigned long long)p->sent, (unsigned long long)p->failed,
              (unsigned long long)p->us_sum);
    bool first = true;
    for (int i = 0; i < PROBE_FINE; i++) {
        uint64_t n = p->fine[i];
        if (!n)
            continue;
        sb_printf(b, "%s[%.1f,%llu]", first ? "" : ",", probe_fine_upper_us(i), (unsigned long long)n);
        first = false;
    }
    sb_printf(b, "]},");
}

/* The scheduled entry in force and the next (Unix seconds). */
static void schedule_json(struct strbuf *b, const struct table_hdr *h, const struct asg_config *c)
{
    sb_printf(b, "\"schedule\":{\"timezone\":");
    sb_json_str(b, c->schedule_timezone);
    sb_printf(b, ",\"entries\":%d,\"active\":", c->nschedule);
    int a = h->sched_active, n = h->sched_next;
    if (a >= 0 && a < c->nschedule) {
        const struct schedule_entry *e = &c->schedule[a];
        sb_printf(b, "{\"entry\":%d,\"at\":", a + 1);
        sb_json_str(b, e->at);
        sb_printf(b, ",\"since\":%lld,\"min\":%d,\"max\":%d,\"desired\":%d}", (long long)h->sched_since,
                  e->min, e->max, e->desired);
    } else {
        sb_printf(b, "null");
    }
    sb_printf(b, ",\"next\":");
    if (n >= 0 && n < c->nschedule) {
        sb_printf(b, "{\"entry\":%d,\"at\":", n + 1);
        sb_json_str(b, c->schedule[n].at);
        sb_printf(b, ",\"when\":%lld}", (long long)h->sched_next_at);
    } else {
        sb_printf(b, "null");
    }
    sb_printf(b, "},");
}

/* The load balancer as the controller last found it. */
static void balancer_json(struct strbuf *b, const struct table_hdr *h, const struct asg_config *c)
{
    sb_printf(b, "\"balancer\":{\"kind\":\"%s\"", lb_kind_name(c->lb_kind));
    if (c->lb_kind != LB_NONE) {
        sb_printf(b, ",\"up\":%s,\"members\":%d,\"checked_ms_ago\":%lld,\"error\":",
                  h->lb_up ? "true" : "false", h->lb_members,
                  h->lb_checked_ms ? (long long)(now_ms() - h->lb_checked_ms) : -1LL);
        sb_json_str(b, h->lb_error);
        sb_printf(b, ",\"metric\":\"%s\"", policy_metric_name(c->policy_metric));
    }
    sb_printf(b, "},");
}

/* High availability (ha.etcd), as the controller last stepped it. */
static void ha_json(struct strbuf *b, const struct table_hdr *h, const struct asg_config *c)
{
    sb_printf(b, "\"ha\":{\"role\":\"%s\"", ha_role_name(c->ha_etcd[0] ? h->ha_role : HA_OFF));
    if (c->ha_etcd[0]) {
        sb_printf(b, ",\"leader\":");
        sb_json_str(b, h->ha_leader);
        sb_printf(b, ",\"leader_address\":");
        sb_json_str(b, h->ha_leader_addr);
        sb_printf(b, ",\"managers\":");
        sb_json_str(b, h->ha_managers);
        sb_printf(b, ",\"term\":%lld,\"failovers\":%llu,\"error\":", (long long)h->ha_term,
                  (unsigned long long)atomic_load(&h->ha_failovers));
        sb_json_str(b, h->ha_error);
    }
    sb_printf(b, ",\"provider_calls\":%llu},", (unsigned long long)atomic_load(&h->provider_calls));
}

/* "N" or "P%", as the operator wrote it. */
static void amount_json(struct strbuf *b, const char *name, int32_t v, bool pct)
{
    sb_printf(b, ",\"%s\":\"%d%s\"", name, v, pct ? "%" : "");
}

void rollout_instance_counts(const struct snapshot *s, int *old, int *new_)
{
    const struct table_hdr *h = s->hdr;
    /* While one runs (or is paused) its target; else the spec in force,
     * which a reload may have moved on since the last one ended. */
    bool ongoing = h->rollout.phase == RO_RUNNING || h->rollout.phase == RO_PAUSED;
    uint64_t to = ongoing ? h->rollout.to_gen : h->spec.gen;
    *old = *new_ = 0;
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        if (r->state == ROW_FREE || r->state == ROW_TERMINATING || r->state == ROW_TERM_WAIT)
            continue;
        if (spec_gen_same(h, r->spec_gen, to))
            (*new_)++;
        else
            (*old)++;
    }
}

void render_rollout_json(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct rollout_state *ro = &h->rollout;
    const struct rollout_settings *set = &ro->set;
    int old, new_;
    rollout_instance_counts(s, &old, &new_);
    sb_printf(b, "{\"state\":\"%s\",\"reason\":", rollout_phase_name(ro->phase));
    sb_json_str(b, ro->reason);
    sb_printf(b, ",\"number\":%llu,\"from_generation\":%llu,\"to_generation\":%llu,\"replaced\":%d,"
                 "\"remaining\":%d,\"total\":%d,\"rolling_back\":%s",
              (unsigned long long)ro->number, (unsigned long long)ro->from_gen, (unsigned long long)ro->to_gen,
              ro->replaced, ro->remaining, ro->total, ro->rolling_back ? "true" : "false");
    amount_json(b, "max_surge", set->surge, set->surge_pct);
    amount_json(b, "max_unavailable", set->unavailable, set->unavailable_pct);
    sb_printf(b, ",\"canary\":%d,\"canary_weight\":%d,\"bake_s\":%d,\"rollback\":%s,\"pause_at\":[",
              set->canary, set->canary_weight, set->bake_ms / 1000, set->rollback ? "true" : "false");
    for (int i = 0; i < set->npause && i < ROLLOUT_PAUSES; i++)
        sb_printf(b, "%s%d", i ? "," : "", set->pause_at[i]);
    sb_printf(b, "],\"started_ms\":%lld,\"ended_ms\":%lld,\"old_instances\":%d,\"new_instances\":%d,"
                 "\"generation_in_force\":%llu,\"pinned\":%s,\"held_by_suspension\":%s}",
              (long long)ro->started_wall_ms, (long long)ro->ended_wall_ms, old, new_,
              (unsigned long long)h->spec.gen, h->spec_pinned ? "true" : "false",
              ro->phase == RO_RUNNING && suspend_holds_rollout(h->suspended) ? "true" : "false");
}

void render_suspended_json(struct strbuf *b, const struct table_hdr *h)
{
    suspend_json(b, h->suspended, h->suspend);
}

/* Live instances protected and on standby (docs/instance-controls.md). */
static void control_counts(const struct snapshot *s, int *prot, int *standby)
{
    *prot = *standby = 0;
    for (uint32_t i = 0; i < s->nrows; i++) {
        bool live = s->rows[i].state != ROW_FREE && s->rows[i].state != ROW_TERMINATING;
        *standby += live && (s->rows[i].flags & ROW_F_STANDBY);
        *prot += live && (s->rows[i].flags & ROW_F_PROTECTED);
    }
}

/* ,"protected":N,"standby":N,"termination_policy":[...] */
static void controls_json(struct strbuf *b, const struct snapshot *s)
{
    int prot, standby;
    control_counts(s, &prot, &standby);
    sb_printf(b, ",\"protected\":%d,\"standby\":%d,\"termination_policy\":[", prot, standby);
    struct victim_policy term;
    char why[160];
    if (victim_policy_parse(s->cfg->termination_policy, &term, why, sizeof why) != 0)
        victim_policy_default(&term);
    for (uint32_t k = 0; k < term.n && k < VICTIM_RULES_MAX; k++)
        sb_printf(b, "%s\"%s\"", k ? "," : "", victim_rule_name(term.rule[k]));
    sb_printf(b, "]");
}

/* ,"processes":{"supervisor":PID,...} (left open: the caller closes it) */
static void processes_json(struct strbuf *b, const struct table_hdr *h)
{
    sb_printf(b, ",\"processes\":{");
    pid_field(b, "supervisor", h->pid_supervisor, false);
    pid_field(b, "history", h->pid_history, false);
    pid_field(b, "monitor", h->pid_monitor, false);
    pid_field(b, "controller", h->pid_controller, false);
    pid_field(b, "status", h->pid_status, true);
}

void render_status_json(struct strbuf *b, const struct snapshot *s, bool history)
{
    const struct table_hdr *h = s->hdr;
    const struct asg_config *c = s->cfg;
    int running = snapshot_count(s, ROW_RUNNING), pending = snapshot_count(s, ROW_PENDING);
    sb_printf(b, "{\"group\":{\"name\":");
    sb_json_str(b, c->group_name);
    sb_printf(b, ",\"min\":%d,\"max\":%d,\"desired\":%d,\"target\":%d,\"operator_desired\":%d,"
                 "\"policy\":\"%s\",\"provider\":\"%s\",\"size\":%d,\"running\":%d,\"pending\":%d,"
                 "\"unhealthy\":%d,\"terminating\":%d,\"launching_wait\":%d,\"terminating_wait\":%d,"
                 "\"monitor_address\":",
              c->min_instances, c->max_instances, c->desired_instances, snapshot_target(s),
              h->operator_desired, policy_kind_name(c->policy_kind),
              provider_kind_name(c->provider_kind), running + pending + snapshot_count(s, ROW_LAUNCH_WAIT),
              running, pending, snapshot_count(s, ROW_UNHEALTHY), snapshot_count(s, ROW_TERMINATING),
              snapshot_count(s, ROW_LAUNCH_WAIT), snapshot_count(s, ROW_TERM_WAIT));
    sb_json_str(b, h->monitor_addr);
    sb_printf(b, ",\"config_generation\":%llu,\"evaluations\":%llu,\"probe_rounds\":%llu,"
                 "\"scale_out\":%llu,\"scale_in\":%llu,\"replaced\":%llu,\"lock_recoveries\":%llu,"
                 "\"events\":%llu",
              (unsigned long long)s->cfg_gen, (unsigned long long)h->evaluations,
              (unsigned long long)h->probe_rounds, (unsigned long long)h->scale_out,
              (unsigned long long)h->scale_in, (unsigned long long)h->replaced,
              (unsigned long long)h->lock_recoveries, (unsigned long long)s->probes.events_written);
    controls_json(b, s);
    launch_spec_json(b, h->spec.gen);
    sb_printf(b, ",\"tls\":\"%s\",\"refused\":{", c->tls_mode == TLS_PLAINTEXT ? "plaintext" : "auto");
    for (uint32_t k = 0; k < REFUSED_COUNT; k++)
        sb_printf(b, "%s\"%s\":%llu", k ? "," : "", refusal_kind_name(k),
                  (unsigned long long)atomic_load(&h->refused[k]));
    sb_printf(b, "}},");
    balancer_json(b, h, c);
    render_zero_json(b, s);
    ha_json(b, h, c);
    schedule_json(b, h, c);
    probes_json(b, &s->probes);
    sb_printf(b, "\"rollout\":");
    render_rollout_json(b, s);
    sb_printf(b, ",");
    notify_render_json(b, s);
    sb_printf(b, ",\"history\":");
    histq_status_json(b, s);
    sb_printf(b, ",\"suspended\":");
    render_suspended_json(b, h);
    processes_json(b, h);
    sb_printf(b, "},\"instances\":[");
    for (uint32_t i = 0; i < s->nrows; i++) {
        if (i)
            sb_printf(b, ",");
        instance_json(b, &s->rows[i], s->now, history);
    }
    sb_printf(b, "]}\n");
}

void render_events_json(struct strbuf *b, const struct table *t, uint64_t after, size_t max)
{
    struct table_event *ev = calloc(TABLE_EVENTS, sizeof *ev);
    if (!ev)
        abort();
    if (max > TABLE_EVENTS)
        max = TABLE_EVENTS;
    uint64_t written = atomic_load(&t->log->events_written);
    /* The newest `max` after `after`. */
    if (written > max && after < written - max)
        after = written - max;
    size_t n = table_read_events(t, after, ev, max);
    uint64_t next = n ? ev[n - 1].number : after;
    sb_printf(b, "{\"next\":%llu,\"events\":[", (unsigned long long)next);
    for (size_t i = 0; i < n; i++) {
        sb_printf(b, "%s{\"number\":%llu,\"time_ms\":%lld,\"kind\":\"%s\",\"instance\":", i ? "," : "",
                  (unsigned long long)ev[i].number, (long long)ev[i].wall_ms,
                  event_kind_name(ev[i].kind));
        sb_json_str(b, ev[i].instance);
        sb_printf(b, ",\"message\":");
        sb_json_str(b, ev[i].msg);
        sb_printf(b, "}");
    }
    sb_printf(b, "]}\n");
    free(ev);
}

/* Prometheus label values: escape backslash, quote and newline. Instances
 * are labelled instance_id: Prometheus adds its own `instance` (the target)
 * to every series, and would rename ours exported_instance. */
static void label(struct strbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_add(b, v, 1);
    }
}

/* A family's HELP and TYPE lines. They name the metric as its samples are
 * named (text format 0.0.4): a counter's family is asg_x_total, or
 * Prometheus' parser takes its samples for untyped ones of another family. */
static void help(struct strbuf *b, const char *name, const char *type, const char *text)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void per_instance(struct strbuf *b, const struct snapshot *s, const char *name,
                         const char *text, size_t off)
{
    help(b, name, "gauge", text);
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        if (!r->has_sample)
            continue;
        sb_printf(b, "%s{instance_id=\"", name);
        label(b, r->id);
        sb_printf(b, "\"} %.4f\n", *(const double *)((const char *)r + off));
    }
}

static int by_gen(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Instances by the generation each was launched from ("unknown":
 * adopted), as samples of family name; only live ones (not terminating)
 * when live. Sorted, so that a table of many rows and generations costs
 * n log n. */
static void by_generation(struct strbuf *b, const struct snapshot *s, const char *name, bool live)
{
    uint64_t *gen = malloc((s->nrows + 1) * sizeof *gen);
    if (!gen)
        abort();
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nrows; i++)
        if (!live || (s->rows[i].state != ROW_FREE && s->rows[i].state != ROW_TERMINATING))
            gen[n++] = s->rows[i].spec_gen;
    qsort(gen, n, sizeof *gen, by_gen);
    for (uint32_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && gen[j] == gen[i]; j++)
            ;
        if (gen[i])
            sb_printf(b, "%s{generation=\"%llu\"} %u\n", name, (unsigned long long)gen[i], j - i);
        else
            sb_printf(b, "%s{generation=\"unknown\"} %u\n", name, j - i);
    }
    free(gen);
}

/* The launch spec in force, and the group's instances by generation. */
static void launch_spec_metrics(struct strbuf *b, const struct snapshot *s)
{
    help(b, "asg_launch_spec_generation", "gauge", "The launch spec generation new instances are launched from.");
    sb_printf(b, "asg_launch_spec_generation %llu\n", (unsigned long long)s->hdr->spec.gen);
    help(b, "asg_instances_launch_spec", "gauge", "Instances by the launch spec generation they were launched from.");
    by_generation(b, s, "asg_instances_launch_spec", false);
}

/* The rollout: its state as one gauge per state (1 for the current), its
 * progress, and the live instances by generation (not terminating, unlike
 * asg_instances_launch_spec: what the rollout still has to replace). */
static void rollout_metrics(struct strbuf *b, const struct snapshot *s)
{
    const struct rollout_state *ro = &s->hdr->rollout;
    help(b, "asg_rollout_state", "gauge", "1 for the state the group's last rollout is in (none: never one).");
    for (uint32_t p = 0; p < RO_PHASE_COUNT; p++)
        sb_printf(b, "asg_rollout_state{state=\"%s\"} %d\n", rollout_phase_name(p), ro->phase == p);
    help(b, "asg_rollout_replaced", "gauge", "Old instances the rollout has stopped so far.");
    sb_printf(b, "asg_rollout_replaced %d\n", ro->replaced);
    help(b, "asg_rollout_remaining", "gauge", "Instances the rollout still has to replace.");
    sb_printf(b, "asg_rollout_remaining %d\n", ro->remaining);
    help(b, "asg_instances_by_generation", "gauge",
         "Live instances (not terminating) by the launch spec generation they were launched from.");
    by_generation(b, s, "asg_instances_by_generation", true);
}

static void balancer_metrics(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    if (s->cfg->lb_kind == LB_NONE)
        return;
    help(b, "asg_lb_up", "gauge", "1 when the load balancer's last call succeeded.");
    sb_printf(b, "asg_lb_up %u\n", h->lb_up ? 1u : 0u);
    help(b, "asg_lb_errors_total", "counter", "Load balancer steps that failed (asgctl status says why).");
    sb_printf(b, "asg_lb_errors_total %llu\n", (unsigned long long)atomic_load(&h->lb_errors));
    help(b, "asg_lb_members", "gauge", "Members of the balancer's backend, last listed.");
    sb_printf(b, "asg_lb_members %d\n", h->lb_members);
    help(b, "asg_instances_balancer", "gauge", "Instances by their state in the load balancer.");
    for (uint32_t st = 0; st < LBS_COUNT; st++) {
        int n = 0;
        for (uint32_t i = 0; i < s->nrows; i++)
            n += s->rows[i].lb_state == st;
        sb_printf(b, "asg_instances_balancer{state=\"%s\"} %d\n", lb_state_name(st), n);
    }
    help(b, "asg_instance_requests_per_second", "gauge",
         "Requests per second the balancer sent the instance, over its last interval.");
    for (uint32_t i = 0; i < s->nrows; i++) {
        const struct table_row *r = &s->rows[i];
        if (!r->req_rate_ms)
            continue;
        sb_printf(b, "asg_instance_requests_per_second{instance_id=\"");
        label(b, r->id);
        sb_printf(b, "\"} %.3f\n", r->req_rate);
    }
}

/* asg_suspended: one series per process, 1 while an operator holds it. */
static void suspended_metrics(struct strbuf *b, const struct snapshot *s)
{
    help(b, "asg_suspended", "gauge", "1 while the process is suspended by an operator (asgctl suspend).");
    for (uint32_t p = 0; p < SUSP_COUNT; p++)
        sb_printf(b, "asg_suspended{process=\"%s\"} %d\n", suspend_process_name(p),
                  suspend_holds(s->hdr->suspended, p));
}

/* Operators' controls (docs/instance-controls.md): instances on standby
 * (counted in asg_instances by state too) and protected ones. */
static void instance_control_metrics(struct strbuf *b, const struct snapshot *s)
{
    int standby, protected_;
    control_counts(s, &protected_, &standby);
    help(b, "asg_instances_standby", "gauge", "Instances on standby: out of the balancer, not replaced, not counted.");
    sb_printf(b, "asg_instances_standby %d\n", standby);
    help(b, "asg_protected_instances", "gauge", "Instances protected from scale-in and rollouts.");
    sb_printf(b, "asg_protected_instances %d\n", protected_);
}

/* Every metric family in the order /metrics shows them, each with its
 * HELP and TYPE: long because the list is, and kept in one place so that
 * docs/monitoring.md's list of metrics can be checked against it by eye. */
void render_metrics(struct strbuf *b, const struct snapshot *s)
{
    const struct table_hdr *h = s->hdr;
    const struct asg_config *c = s->cfg;
    help(b, "asg_build_info", "gauge", "Always 1: the manager's version and its table's layout in labels.");
    sb_printf(b, "asg_build_info{version=\"%s\",table_layout=\"%d\"} 1\n", ASG_VERSION, TABLE_VERSION);
    help(b, "asg_instances", "gauge", "Instances in the group by state.");
    for (uint32_t st = ROW_PENDING; st < ROW_STATE_COUNT; st++)
        sb_printf(b, "asg_instances{state=\"%s\"} %d\n", row_state_name(st), snapshot_count(s, st));
    instance_control_metrics(b, s);
    help(b, "asg_group_min_instances", "gauge", "group.min_instances.");
    sb_printf(b, "asg_group_min_instances %d\n", c->min_instances);
    help(b, "asg_group_max_instances", "gauge", "group.max_instances.");
    sb_printf(b, "asg_group_max_instances %d\n", c->max_instances);
    help(b, "asg_group_desired_instances", "gauge", "Desired size (config, or operator's).");
    sb_printf(b, "asg_group_desired_instances %d\n",
              h->operator_desired > 0 ? h->operator_desired : c->desired_instances);
    help(b, "asg_group_target_instances", "gauge", "The size the controller converges to.");
    sb_printf(b, "asg_group_target_instances %d\n", snapshot_target(s));
    per_instance(b, s, "asg_instance_load_ratio", "Load reported by the instance's agent, 0..1.",
                 offsetof(struct table_row, load));
    per_instance(b, s, "asg_instance_cpu_ratio", "CPU use reported by the instance's agent, 0..1.",
                 offsetof(struct table_row, cpu));
    per_instance(b, s, "asg_instance_mem_ratio", "Memory use reported by the instance's agent, 0..1.",
                 offsetof(struct table_row, mem));
    launch_spec_metrics(b, s);
    rollout_metrics(b, s);
    notify_render_metrics(b, s);
    histq_metrics(b, s);
    suspended_metrics(b, s);
    balancer_metrics(b, s);
    render_zero_metrics(b, s);
    help(b, "asg_provider_calls_total", "counter", "Launches and terminations asked of the provider.");
    sb_printf(b, "asg_provider_calls_total %llu\n", (unsigned long long)atomic_load(&h->provider_calls));
    if (c->ha_etcd[0]) {
        help(b, "asg_ha_leader", "gauge", "1 while this manager leads the group (ha.etcd).");
        sb_printf(b, "asg_ha_leader %d\n", h->ha_role == HA_LEADER);
        help(b, "asg_ha_failovers_total", "counter", "Times this manager became the group's leader.");
        sb_printf(b, "asg_ha_failovers_total %llu\n", (unsigned long long)atomic_load(&h->ha_failovers));
        help(b, "asg_ha_term", "gauge", "The leader key's create revision in etcd: grows with every new leader.");
        sb_printf(b, "asg_ha_term %lld\n", (long long)h->ha_term);
    }
    help(b, "asg_probes_total", "counter", "Probes sent to agents.");
    sb_printf(b, "asg_probes_total %llu\n", (unsigned long long)s->probes.sent);
    help(b, "asg_probes_failed_total", "counter", "Probes that failed (no answer, error, wrong answer).");
    sb_printf(b, "asg_probes_failed_total %llu\n", (unsigned long long)s->probes.failed);
    help(b, "asg_probe_duration_seconds", "histogram", "Round trip of answered probes.");
    uint64_t cum = 0;
    for (int k = 0; k < PROBE_BUCKETS; k++) {
        cum += s->probes.hist[k];
        if (k < PROBE_BUCKETS - 1)
            sb_printf(b, "asg_probe_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      probe_bucket_ms[k] / 1000.0, (unsigned long long)cum);
        else
            sb_printf(b, "asg_probe_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sb_printf(b, "asg_probe_duration_seconds_sum %.6f\n", (double)s->probes.us_sum / 1e6);
    sb_printf(b, "asg_probe_duration_seconds_count %llu\n", (unsigned long long)cum);
    help(b, "asg_scaling_actions_total", "counter", "Changes of the group's target size.");
    for (int d = 0; d < 2; d++)
        for (uint32_t k = 0; k < CAUSE_COUNT; k++)
            sb_printf(b, "asg_scaling_actions_total{direction=\"%s\",reason=\"%s\"} %llu\n",
                      d ? "in" : "out", action_cause_name(k),
                      (unsigned long long)atomic_load(&h->actions[d][k]));
    help(b, "asg_instances_replaced_total", "counter", "Unhealthy instances terminated and replaced.");
    sb_printf(b, "asg_instances_replaced_total %llu\n", (unsigned long long)h->replaced);
    help(b, "asg_role_restarts_total", "counter", "Restarts of the manager's role processes.");
    const char *roles[] = {"monitor", "controller", "status"};
    for (int k = 0; k < 3; k++)
        sb_printf(b, "asg_role_restarts_total{role=\"%s\"} %llu\n", roles[k],
                  (unsigned long long)h->role_restarts[k]);
    help(b, "asg_config_reloads_total", "counter", "SIGHUP reloads by result.");
    sb_printf(b, "asg_config_reloads_total{result=\"ok\"} %llu\n",
              (unsigned long long)atomic_load(&h->reloads_ok));
    sb_printf(b, "asg_config_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)atomic_load(&h->reloads_failed));
    help(b, "asg_table_lock_recoveries_total", "counter", "Table locks taken over from a dead holder.");
    sb_printf(b, "asg_table_lock_recoveries_total %llu\n", (unsigned long long)h->lock_recoveries);
    help(b, "asg_refused_total", "counter", "Requests refused from unauthenticated or misbehaving peers.");
    for (uint32_t k = 0; k < REFUSED_COUNT; k++)
        sb_printf(b, "asg_refused_total{what=\"%s\"} %llu\n", refusal_kind_name(k),
                  (unsigned long long)atomic_load(&h->refused[k]));
    help(b, "asg_illegal_transitions_total", "counter",
         "Row events the state machine refused (a bug if ever above 0).");
    sb_printf(b, "asg_illegal_transitions_total %llu\n",
              (unsigned long long)atomic_load(&h->illegal_transitions));
    help(b, "asg_plaintext", "gauge", "1 when tls.mode is plaintext: nothing is authenticated.");
    sb_printf(b, "asg_plaintext %d\n", c->tls_mode == TLS_PLAINTEXT);
    help(b, "asg_evaluations_total", "counter", "Controller evaluations.");
    sb_printf(b, "asg_evaluations_total %llu\n", (unsigned long long)h->evaluations);
    help(b, "asg_probe_rounds_total", "counter", "Completed probe rounds.");
    sb_printf(b, "asg_probe_rounds_total %llu\n", (unsigned long long)h->probe_rounds);
}
