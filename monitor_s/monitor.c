/* MonitorS: serves the Monitor service (agents register and deregister,
 * over gRPC) and probes every known agent each interval through the probe
 * engine (proto/h2probe.h), each agent's turn at its own point of the
 * interval, one loop for both. Writes what it learns into the table:
 * liveness, load, cpu, memory, and unhealthy after too many consecutive
 * misses. */
#define _GNU_SOURCE
#include <errno.h>
#include <grpc/grpc.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "../common/pki.h"
#include "../shm/ops.h"
#include "../common/utf8.h"
#include "../common/util.h"
#include "../proto/methods.h"
#include "../proto/rpc.h"
#include "../provider/provider.h"
#include "asg.pb-c.h"
#include "health.pb-c.h"
#include "monitor.h"

/* ---- Register / Deregister ---- */

/* An agent waiting for its admission asks again after this long (the
 * controller looks for new requests every ADMIT_LOOK_MS). */
#define ADMIT_RETRY_MS 100
/* Addresses a probe carries at most (ha: the group's managers). */
#define MANAGERS_SENT_MAX 16

/* A refusal is counted (for /metrics) and logged, at most a few lines a
 * second: a stranger's flood must not fill the disk. */
static void refused(struct monitor *m, uint32_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refused(struct monitor *m, uint32_t kind, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&m->t->hdr->refused[kind], 1);
    log_limited(&m->refused_limit, LOG_LVL_WARN, "%s", msg);
}

static bool valid_strings(const char *id, const char *addr, char *why, size_t n)
{
    if (!valid_instance_id(id, strlen(id))) {
        snprintf(why, n, "instance_id must be 1..63 of A-Z a-z 0-9 . _ -");
        return false;
    }
    return addr == NULL || valid_address(addr, strlen(addr), false, why, n);
}

/* With mutual TLS, an agent may speak only for itself: its certificate's
 * common name is its instance id, exactly (the manager signs one
 * certificate per instance). */
static bool identity_matches(const char *peer, const char *id, char *why, size_t n)
{
    if (!peer)
        return true; /* tls.mode = plaintext: nothing to check against */
    if (strcmp(peer, id) == 0)
        return true;
    snprintf(why, n, "certificate of '%.60s' cannot speak for instance %.64s", peer, id);
    return false;
}

/* The caller's IP address, from its connection (through the relay): 1;
 * 0 outside a call (a unit test or fuzzer calls the handler itself); -1
 * when the connection cannot be traced to an address, which is refused. */
static int caller_host(char *out, size_t size)
{
    char uri[160];
    out[0] = '\0';
    if (!rpc_peer_uri(uri, sizeof uri))
        return 0;
    return rpc_peer_host(out, size) ? 1 : -1;
}

/* The relay gives gRPC's peer name of a relayed connection its address. */
static bool relayed_peer(void *ctx, const char *grpc_peer, char *host, size_t size)
{
    struct monitor *m = ctx;
    return relay_peer_host(m->relay, grpc_peer, host, size);
}

/* A call on this connection reached a handler as a known identity: a
 * verified certificate, or, in plaintext where nobody is known, any
 * complete call; a caller without a certificate (Join) only once it
 * succeeded. The relay then stops counting it against the budgets of
 * unauthenticated connections. */
static void vouch(struct monitor *m, const char *peer, bool succeeded)
{
    char uri[160];
    if (peer && !peer[0] && !succeeded)
        return;
    if (rpc_peer_uri(uri, sizeof uri))
        relay_vouch(m->relay, uri);
}

/* The address an agent registers must be on the connection it registers
 * from: nobody can point the prober at a third host. */
static bool address_is_callers(const char *addr, char *why, size_t n)
{
    char host[64], caller[48];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    int known = caller_host(caller, sizeof caller);
    if (known == 0)
        return true; /* called from a test or fuzzer, not over a connection */
    if (known < 0) {
        snprintf(why, n, "cannot tell the caller's address");
        return false;
    }
    if (hl == 0 || hl >= sizeof host) {
        snprintf(why, n, "address '%.63s' has no host", addr);
        return false;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (strcmp(host, caller) == 0)
        return true;
    snprintf(why, n, "address %.63s is not the caller's (%.63s): an agent registers its own address",
             addr, caller);
    return false;
}

/* With ha.etcd, a standby sends agents to the leader it knows (lock
 * held): its controller launches and terminates nothing, so instances
 * belong with the leader. A standby that knows no leader (etcd down)
 * keeps them rather than send them nowhere. */
static bool standby_redirect(struct monitor *m, char *leader_addr, size_t size, char *why, size_t n)
{
    const struct table_hdr *h = m->t->hdr;
    if (h->ha_role != HA_STANDBY || !h->ha_leader_addr[0] || strcmp(h->ha_leader_addr, h->monitor_addr) == 0)
        return false;
    copy_str(leader_addr, size, h->ha_leader_addr);
    snprintf(why, n, "this manager is a standby: the leader is %.60s at %.63s", h->ha_leader, h->ha_leader_addr);
    return true;
}

/* With the lock held: an agent the table does not know asks to join. The
 * monitor records the request (a fact) and answers what the controller
 * decided (controller/admit.c): at the first try "not admitted yet"
 * (*retry: the agent asks again shortly), at a later one its refusal;
 * once admitted, the agent's row exists and its next try is an ordinary
 * registration. */
static bool ask_admission(struct monitor *m, const Asg__V1__RegisterRequest *in, grpc_status_code *code,
                          bool *retry, char *reason, size_t rsize)
{
    if (!m->cfg.adopt_unknown) {
        snprintf(reason, rsize, "unknown instance %s: the manager did not launch it "
                 "(monitor.adopt_unknown = true accepts such agents)", in->instance_id);
        return false;
    }
    struct inbox_entry *e = table_inbox_find(m->t, in->instance_id);
    if (e && e->state == INBOX_REFUSED) {
        /* within its field, ended or not: the inbox is another process's writing */
        snprintf(reason, rsize, "%.*s", (int)strnlen(e->reason, sizeof e->reason), e->reason);
        if (e->table_full)
            *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        table_inbox_told(m->t, e);
        return false;
    }
    *retry = true;
    int asked = table_inbox_ask(m->t, in->instance_id, in->address, in->service_address, now_ms());
    if (asked == INBOX_ASK_NEW && log_limit_take(&m->asks_limit, LOG_LVL_INFO))
        table_note(m->t, EV_LAUNCH, in->instance_id, LOG_LVL_INFO,
                   "unknown instance %s registered at %s: asks the controller to admit it", in->instance_id,
                   in->address);
    if (asked != INBOX_ASK_FULL) {
        snprintf(reason, rsize, "not admitted yet: the controller decides within moments; retry shortly");
    } else { /* a refusal for now, counted and said like one */
        snprintf(reason, rsize, "%d agents already wait for admission: retry shortly", TABLE_INBOX);
        refused(m, REFUSED_REGISTER, "registration of %s from %s refused: %s", in->instance_id, in->address,
                reason);
    }
    return false;
}

/* With the lock held: the registration's effect on the table. Returns true
 * when accepted; otherwise why not is in reason (and *code is set for a
 * hard error rather than a refusal; *retry when the agent should ask
 * again shortly). */
static bool apply_register(struct monitor *m, const Asg__V1__RegisterRequest *in,
                           grpc_status_code *code, bool *retry, char *reason, size_t rsize)
{
    int64_t now = now_ms();
    struct table_row *r = table_find(m->t, in->instance_id);
    if (!r)
        return ask_admission(m, in, code, retry, reason, rsize);
    if (r->state == ROW_UNHEALTHY || r->state == ROW_TERMINATING || r->state == ROW_TERM_WAIT ||
        (r->flags & ROW_F_DEREGISTERED)) {
        snprintf(reason, rsize, "instance %s is %s: it is being replaced or stopped", r->id,
                 r->flags & ROW_F_DEREGISTERED ? "deregistered" : row_state_name(r->state));
        return false;
    }
    if (m->fresh && m->nfresh < m->nslots)
        m->fresh[m->nfresh++] = (uint32_t)(r - m->t->rows);
    if (table_registered(m->t, r, in->address, in->service_address, now))
        table_note(m->t, EV_HEALTH, r->id, LOG_LVL_INFO,
                   "instance %s registered at %s: %s (%lld ms after launch)", r->id, r->addr,
                   row_state_name(r->state), (long long)(now - r->launch_ms));
    else
        log_info("instance %s registered again at %s", r->id, r->addr);
    return true;
}

void monitor_h_register(void *ctx, const uint8_t *req, size_t len, const char *peer,
                        struct rpc_reply *out)
{
    struct monitor *m = ctx;
    vouch(m, peer, false);
    Asg__V1__RegisterRequest *in = asg__v1__register_request__unpack(NULL, len, req);
    if (!in) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed RegisterRequest");
        return;
    }
    char why[200];
    if (!valid_strings(in->instance_id, in->address, why, sizeof why)) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
    } else if (strlen(in->agent_version) > 32) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "agent_version longer than 32 characters");
    } else if (!utf8_valid(in->agent_version, strlen(in->agent_version), NULL)) {
        /* proto3 strings are UTF-8; protobuf-c does not check it. */
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "agent_version is not valid UTF-8");
    } else if (in->service_address[0] &&
               !valid_address(in->service_address, strlen(in->service_address), false, why, sizeof why)) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "service_address: %s", why);
    } else if (!identity_matches(peer, in->instance_id, why, sizeof why) ||
               !address_is_callers(in->address, why, sizeof why) ||
               (in->service_address[0] && !address_is_callers(in->service_address, why, sizeof why))) {
        refused(m, REFUSED_REGISTER, "registration of %.64s refused: %s", in->instance_id, why);
        rpc_reply_error(out, GRPC_STATUS_PERMISSION_DENIED, "%s", why);
    } else if (table_lock(m->t, TABLE_LOCK_WAIT_MS) != 0) {
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "instance table busy; retry");
    } else {
        table_fault_point("monitor", m->t);
        grpc_status_code code = GRPC_STATUS_OK;
        char leader[TABLE_ADDR_MAX] = "";
        bool retry = false;
        bool redirect = standby_redirect(m, leader, sizeof leader, why, sizeof why);
        bool ok = !redirect && apply_register(m, in, &code, &retry, why, sizeof why);
        table_unlock(m->t);
        Asg__V1__RegisterReply r = ASG__V1__REGISTER_REPLY__INIT;
        r.accepted = ok;
        r.reason = ok ? (char *)"" : why;
        r.probe_interval_ms = (uint32_t)m->cfg.probe_interval_ms;
        r.leader_address = leader;
        r.retry_after_ms = retry ? ADMIT_RETRY_MS : 0;
        if (code != GRPC_STATUS_OK)
            rpc_reply_error(out, code, "%s", why);
        else
            rpc_reply_msg(out, &r.base);
        if (!ok && !redirect && !retry)
            refused(m, REFUSED_REGISTER, "registration of %s from %s refused: %s", in->instance_id,
                    in->address, why);
    }
    asg__v1__register_request__free_unpacked(in, NULL);
}

void monitor_h_deregister(void *ctx, const uint8_t *req, size_t len, const char *peer,
                          struct rpc_reply *out)
{
    struct monitor *m = ctx;
    vouch(m, peer, false);
    Asg__V1__DeregisterRequest *in = asg__v1__deregister_request__unpack(NULL, len, req);
    if (!in) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed DeregisterRequest");
        return;
    }
    char why[200];
    if (!valid_strings(in->instance_id, NULL, why, sizeof why)) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
        asg__v1__deregister_request__free_unpacked(in, NULL);
        return;
    }
    if (!identity_matches(peer, in->instance_id, why, sizeof why)) {
        refused(m, REFUSED_DEREGISTER, "deregistration of %.64s refused: %s", in->instance_id, why);
        rpc_reply_error(out, GRPC_STATUS_PERMISSION_DENIED, "%s", why);
        asg__v1__deregister_request__free_unpacked(in, NULL);
        return;
    }
    if (table_lock(m->t, TABLE_LOCK_WAIT_MS) != 0) {
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "instance table busy; retry");
        asg__v1__deregister_request__free_unpacked(in, NULL);
        return;
    }
    Asg__V1__DeregisterReply r = ASG__V1__DEREGISTER_REPLY__INIT;
    struct table_row *row = table_find(m->t, in->instance_id);
    /* A fact: the controller stops the row (controller/admit.c). */
    if (row && row->state != ROW_TERMINATING && row->state != ROW_TERM_WAIT && table_deregistered(m->t, row))
        r.removed = true;
    table_unlock(m->t);
    rpc_reply_msg(out, &r.base);
    asg__v1__deregister_request__free_unpacked(in, NULL);
}

/* ---- Join: an EC2 instance's first call ---- */

/* With the lock held: may the caller spend instance id's join token? The
 * instance must be one this manager launched (its row has the launch token
 * the join token was made from), still booting, never joined, and calling
 * from its own address. GRPC_STATUS_OK, or why not. */
static grpc_status_code may_join(struct monitor *m, const Asg__V1__JoinRequest *in,
                                 struct table_row **row, char *why, size_t n)
{
    struct table_row *r = table_find(m->t, in->instance_id);
    char caller[48], host[TABLE_ADDR_MAX];
    if (!r) {
        /* Also an instance whose launch the controller has not recorded
         * yet: the agent asks again. */
        snprintf(why, n, "instance %s is not in the group", in->instance_id);
        return GRPC_STATUS_NOT_FOUND;
    }
    if (r->flags & ROW_F_JOINED) {
        snprintf(why, n, "instance %s was not launched by this manager", r->id);
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    if (r->cert_issued_ms) {
        snprintf(why, n, "instance %s has already spent its join token", r->id);
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    if (r->state != ROW_PENDING) {
        snprintf(why, n, "instance %s is %s, not booting", r->id, row_state_name(r->state));
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    if (!r->launch_token[0] || !pki_join_token_matches(m->ca, r->launch_token, in->join_token)) {
        snprintf(why, n, "wrong join token for instance %s", r->id);
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    copy_str(host, sizeof host, r->addr);
    host[strcspn(host, ":")] = '\0';
    if (host[0] && caller_host(caller, sizeof caller) != 0 && strcmp(host, caller) != 0) {
        snprintf(why, n, "instance %.64s is at %.47s, the join came from %.47s", r->id, host, caller);
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    *row = r;
    return GRPC_STATUS_OK;
}

static bool join_request_valid(const Asg__V1__JoinRequest *in, char *why, size_t n)
{
    if (!valid_instance_id(in->instance_id, strlen(in->instance_id))) {
        snprintf(why, n, "instance_id must be 1..63 of A-Z a-z 0-9 . _ -");
        return false;
    }
    if (strlen(in->join_token) != PKI_JOIN_TOKEN_LEN ||
        strspn(in->join_token, "0123456789abcdef") != PKI_JOIN_TOKEN_LEN) {
        snprintf(why, n, "join_token must be %d lowercase hex digits", PKI_JOIN_TOKEN_LEN);
        return false;
    }
    size_t csr = strlen(in->csr_pem);
    if (csr == 0 || csr > 4096) {
        snprintf(why, n, "csr_pem must be 1..4096 bytes");
        return false;
    }
    return true;
}

void monitor_h_health(void *ctx, const uint8_t *req, size_t len, const char *peer,
                      struct rpc_reply *out)
{
    struct monitor *m = ctx;
    (void)peer; /* anyone who reaches the port: it tells only whether we serve */
    Grpc__Health__V1__HealthCheckRequest *in = grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!in) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        return;
    }
    if (in->service[0] && strcmp(in->service, "asg.v1.Monitor") != 0) {
        rpc_reply_error(out, GRPC_STATUS_NOT_FOUND, "unknown service '%.64s'", in->service);
    } else {
        /* Draining (the supervisor's SIGTERM): a balancer in front of the
         * managers sends agents elsewhere before the port closes. */
        bool down = g_sig.term || atomic_load(&m->t->hdr->draining) != DRAIN_NONE;
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = down ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        rpc_reply_msg(out, &r.base);
    }
    grpc__health__v1__health_check_request__free_unpacked(in, NULL);
}

void monitor_h_join(void *ctx, const uint8_t *req, size_t len, const char *peer,
                    struct rpc_reply *out)
{
    struct monitor *m = ctx; /* a joining instance has no certificate yet (peer "") */
    Asg__V1__JoinRequest *in = asg__v1__join_request__unpack(NULL, len, req);
    char why[200];
    if (!in) {
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "malformed JoinRequest");
        return;
    }
    if (!m->ca) {
        rpc_reply_error(out, GRPC_STATUS_UNIMPLEMENTED, "this manager has no EC2 instances to join");
    } else if (!join_request_valid(in, why, sizeof why)) {
        refused(m, REFUSED_JOIN, "join refused: %s", why);
        rpc_reply_error(out, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
    } else if (table_lock(m->t, TABLE_LOCK_WAIT_MS) != 0) {
        rpc_reply_error(out, GRPC_STATUS_UNAVAILABLE, "instance table busy; retry");
    } else {
        struct table_row *r = NULL;
        char *cert = NULL;
        grpc_status_code st = may_join(m, in, &r, why, sizeof why);
        if (st == GRPC_STATUS_OK &&
            pki_sign_request(m->ca, in->csr_pem, strlen(in->csr_pem), r->id, &cert, why, sizeof why) != 0)
            st = GRPC_STATUS_INVALID_ARGUMENT;
        if (st == GRPC_STATUS_OK) {
            table_join_spent(m->t, r, now_ms());
            table_note(m->t, EV_LAUNCH, r->id, LOG_LVL_INFO,
                       "instance %s joined: join token spent, certificate issued", r->id);
        }
        table_unlock(m->t);
        if (st == GRPC_STATUS_OK) {
            Asg__V1__JoinReply rep = ASG__V1__JOIN_REPLY__INIT;
            rep.certificate_pem = cert;
            rpc_reply_msg(out, &rep.base);
            vouch(m, peer, true);
        } else {
            refused(m, REFUSED_JOIN, "join of %.64s refused: %s", in->instance_id, why);
            rpc_reply_error(out, st, "%s", why);
        }
        free(cert);
    }
    asg__v1__join_request__free_unpacked(in, NULL);
}

/* ---- probes ---- */

/* The longest the loop waits on probes before it serves the Monitor
 * service's queue: a registration waits at most this long. */
#define SERVE_EVERY_MS 10
/* Turns are taken this much at a time: at 10,000 agents probed every
 * second, ten probes a wake-up. */
#define TURN_US 1000
/* How often freed heap is given back to the system (see run). */
#define TRIM_EVERY_US 1000000LL

static void round_done(struct monitor *m)
{
    if (table_lock(m->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    table_probe_round_done(m->t, now_ms());
    table_unlock(m->t);
}

static uint32_t slot_count(const struct monitor *m)
{
    return m->t->capacity < m->nslots ? m->t->capacity : m->nslots;
}

/* The round is done once every slot has had its turn and every probe
 * is back (counted once). */
static void round_maybe_done(struct monitor *m)
{
    if (!m->round_counted && m->scan >= slot_count(m) && m->outstanding == 0 && !m->deferred) {
        m->round_counted = true;
        round_done(m);
    }
}

static void record_probe(struct monitor *m, struct probe *p, const Asg__V1__PingReply *rep,
                         const char *failure)
{
    struct table_row *r = &m->t->rows[p->slot];
    if (r->incarnation != p->incarnation ||
        (r->state != ROW_RUNNING && r->state != ROW_PENDING && r->state != ROW_UNHEALTHY &&
         r->state != ROW_LAUNCH_WAIT))
        return; /* the row moved on while the probe was out */
    int64_t now = now_ms();
    if (!failure && r->misses)
        log_info("instance %s answers again after %u missed probe(s)", r->id, r->misses);
    struct probe_sample s = {failure ? 0 : rep->load, failure ? 0 : rep->cpu, failure ? 0 : rep->mem,
                             !failure && rep->requests_known, failure ? 0 : rep->requests_total};
    switch (table_probe_result(m->t, r, failure ? NULL : &s, failure, (uint32_t)m->cfg.unhealthy_after,
                               now)) {
    case PROBE_NOW_RUNNING:
        table_note(m->t, EV_HEALTH, r->id, LOG_LVL_INFO, "instance %s answers probes: %s", r->id,
                   row_state_name(r->state));
        break;
    case PROBE_REJOINED:
        /* Its replacement was still waiting its turn (see the controller's
         * pacing): it was slow, not dead. */
        table_note(m->t, EV_HEALTH, r->id, LOG_LVL_INFO,
                   "instance %s answers again before its replacement: %s", r->id, row_state_name(r->state));
        break;
    case PROBE_NOW_UNHEALTHY:
        table_note(m->t, EV_HEALTH, r->id, LOG_LVL_WARN, "instance %s unhealthy: %s (last seen %lld ms ago)",
                   r->id, r->reason, r->last_seen_ms ? (long long)(now - r->last_seen_ms) : -1LL);
        break;
    case PROBE_NOTED:
        break;
    }
}

/* Checks a reply from another process before believing it. */
static const char *check_reply(const Asg__V1__PingReply *rep, const struct probe *p,
                               const char *expect_id)
{
    if (!rep)
        return "malformed PingReply";
    if (strcmp(rep->instance_id, expect_id) != 0)
        return "another instance answered at this address";
    if (rep->seq != p->seq)
        return "reply to another probe";
    if (!isfinite(rep->load) || rep->load < 0 || rep->load > 1 || !isfinite(rep->cpu) ||
        rep->cpu < 0 || rep->cpu > 1 || !isfinite(rep->mem) || rep->mem < 0 || rep->mem > 1)
        return "load, cpu or mem outside 0..1";
    return NULL;
}

static void probe_slot(struct monitor *m, uint32_t i);

static void on_probe(void *user, grpc_status_code st, const char *details,
                     const uint8_t *data, size_t len)
{
    struct probe *p = user;
    struct monitor *m = p->m;
    m->in_flight[p->slot] = false;
    if (p->first) {
        m->first_contacts--;
        if (m->slots[p->slot].incarnation == p->incarnation)
            m->slots[p->slot].contacted = true;
    }
    Asg__V1__PingReply *rep = NULL;
    const char *failure = NULL;
    char fail_buf[64];
    if (st != GRPC_STATUS_OK) {
        snprintf(fail_buf, sizeof fail_buf, "status %d %.40s", (int)st, details);
        failure = fail_buf;
    } else {
        rep = asg__v1__ping_reply__unpack(NULL, len, data);
    }
    int64_t rtt_us = (now_us() - p->sent_us);
    if (table_lock(m->t, TABLE_LOCK_WAIT_MS) == 0) {
        table_fault_point("monitor", m->t);
        if (!failure) {
            char id[TABLE_ID_MAX];
            copy_str(id, sizeof id, m->t->rows[p->slot].id);
            failure = check_reply(rep, p, id);
        }
        record_probe(m, p, rep, failure);
        if (!failure && p->managers_gen && m->slots[p->slot].incarnation == p->incarnation)
            m->slots[p->slot].managers_gen = p->managers_gen;
        table_probe_observed(m->t, failure == NULL, rtt_us);
        table_unlock(m->t);
    }
    if (rep)
        asg__v1__ping_reply__free_unpacked(rep, NULL);
    uint32_t slot = p->slot;
    free(p);
    if (m->outstanding && --m->outstanding == 0)
        round_maybe_done(m);
    /* Its interval passed while it was out (a new round began): ask it
     * again now rather than at the next round's scan. */
    if (!g_sig.term && m->slots[slot].round != m->round)
        probe_slot(m, slot);
}

/* Closes a slot's connection. No probe is out on it (probe_slot returns
 * before this while one is); were one out, its record is freed with it. */
static void drop_conn(struct slot *s)
{
    free(h2p_conn_free(s->conn));
    s->conn = NULL;
}

/* Keeps one connection per slot, remade when the slot's agent changes. */
static struct h2p_conn *slot_conn(struct monitor *m, uint32_t i, const struct table_row *r)
{
    struct slot *s = &m->slots[i];
    if (s->conn && (s->incarnation != r->incarnation || strcmp(s->addr, r->addr) != 0))
        drop_conn(s);
    if (!s->conn) {
        s->conn = h2p_conn_new(m->probes, r->addr);
        s->contacted = false;
        s->managers_gen = 0;
        s->incarnation = r->incarnation;
        copy_str(s->addr, sizeof s->addr, r->addr);
    }
    return s->conn;
}

/* The table keeps the managers' addresses ","-joined (ha.c makes the
 * list); on the wire each is an item of PingRequest.managers. Copies
 * joined into list (as big as struct monitor's managers) and splits it
 * there into at most MANAGERS_SENT_MAX items (an agent takes no more than
 * four; it would drop the rest anyway). */
static size_t split_managers(const char *joined, char *list, char **items)
{
    size_t n = 0;
    copy_str(list, sizeof ((struct monitor *)0)->managers, joined);
    for (char *save, *a = strtok_r(list, ",", &save); a && n < MANAGERS_SENT_MAX; a = strtok_r(NULL, ",", &save))
        items[n++] = a;
    return n;
}

/* Whose health is asked: unhealthy ones too (one whose replacement
 * waits may yet answer), and one waiting for its launching hook (the hook
 * may take minutes; a dead one is replaced meanwhile); not one that
 * deregistered (leaving: the controller stops it). */
static bool probe_wanted(const struct table_row *r)
{
    return (r->state == ROW_RUNNING || r->state == ROW_PENDING || r->state == ROW_UNHEALTHY ||
            r->state == ROW_LAUNCH_WAIT) && r->addr[0] && !(r->flags & ROW_F_DEREGISTERED);
}

/* Probes slot i for the current round if it is due: not probed in this
 * round, no probe out, an agent to ask, and (for a first contact) a turn
 * in the budget of handshakes. */
static void probe_slot(struct monitor *m, uint32_t i)
{
    /* seq, and the managers list now and then: its 255 bytes of
     * addresses and two bytes of framing for each (MANAGERS_SENT_MAX) */
    uint8_t buf[320 + 2 * MANAGERS_SENT_MAX];
    char list[sizeof m->managers];
    char *items[MANAGERS_SENT_MAX];
    /* An agent never has two probes out: a slow one is asked again when
     * its answer or its timeout arrives. Checked before the row is
     * copied, so that a short interval costs little per slot. */
    if (m->in_flight[i] || m->slots[i].round == m->round)
        return;
    struct table_row r;
    if (!table_read_row(m->t, i, &r))
        return;
    if (!probe_wanted(&r)) {
        drop_conn(&m->slots[i]);
        return;
    }
    const struct slot *s = &m->slots[i];
    bool first = !s->conn || !s->contacted || s->incarnation != r.incarnation || strcmp(s->addr, r.addr) != 0;
    if (first && m->first_contacts >= FIRST_CONTACTS_MAX) {
        m->deferred = true; /* its turn comes when handshakes finish */
        return;
    }
    struct probe *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->m = m;
    p->first = first;
    p->slot = i;
    p->incarnation = r.incarnation;
    p->seq = ++m->seq;
    p->sent_us = now_us();
    Asg__V1__PingRequest q = ASG__V1__PING_REQUEST__INIT;
    q.seq = p->seq;
    if (m->managers[0] && s->managers_gen != m->managers_gen) {
        q.n_managers = split_managers(m->managers, list, items);
        q.managers = items;
        p->managers_gen = m->managers_gen;
    }
    size_t len = asg__v1__ping_request__pack(&q, buf);
    struct h2p_conn *conn = slot_conn(m, i, &r);
    /* A first contact carries the connection's handshakes (TLS costs both
     * sides milliseconds of CPU each, and a restarted monitor has every
     * agent to dial at once): it gets the connect budget on top of the
     * probe's, so a busy machine is not taken for dead agents. */
    int deadline = m->cfg.probe_timeout_ms + (first ? RPC_CONNECT_MS : 0);
    if (h2p_call(conn, buf, len, deadline, p) != 0) {
        free(p);
        return;
    }
    m->in_flight[i] = true;
    m->slots[i].round = m->round;
    m->outstanding++;
    m->first_contacts += first;
}

/* Probes the slots whose turn in this round has come: slot i at i/N of
 * the interval. Sending all N at the start of each interval queued them
 * at the agents' side at once: at 10,000 agents probed every second the
 * last answers came 185 ms late (p99) although each took 32 us of work. */
static void probe_due(struct monitor *m, int64_t now)
{
    uint32_t n = slot_count(m);
    /* the turns that come before the loop's next wake (TURN_US) too */
    int64_t interval = (int64_t)m->cfg.probe_interval_ms * 1000, ahead = now - m->round_start + TURN_US;
    uint32_t upto = ahead >= interval ? n : (uint32_t)((uint64_t)n * (uint64_t)ahead / (uint64_t)interval);
    while (m->scan < upto && m->scan < n)
        probe_slot(m, m->scan++);
    round_maybe_done(m);
}

/* When the next slot's turn comes (microseconds, monotonic). */
static int64_t next_turn(const struct monitor *m)
{
    uint32_t n = slot_count(m);
    if (m->scan >= n)
        return INT64_MAX;
    return m->round_start + (int64_t)m->cfg.probe_interval_ms * 1000 * m->scan / n;
}

/* ha: the managers' addresses, as the controller published them; agents
 * are told when they change (in their next probe), so that an agent
 * launched before a manager joined finds it when the one it knows dies. */
static void follow_managers(struct monitor *m)
{
    struct table_hdr h;
    if (!m->cfg.ha_etcd[0] || !table_read_hdr(m->t, &h) || strcmp(h.ha_managers, m->managers) == 0)
        return;
    copy_str(m->managers, sizeof m->managers, h.ha_managers);
    m->managers_gen++;
}

static void probe_round(struct monitor *m, int64_t now)
{
    /* the last round's stragglers first: every slot gets one turn a round */
    probe_due(m, m->round_start + (int64_t)m->cfg.probe_interval_ms * 1000);
    m->round++;
    m->round_start = now;
    m->scan = 0;
    m->deferred = false;
    m->round_counted = false;
    follow_managers(m);
    probe_due(m, now);
}

/* Agents that just registered are asked at once, not at their turn: a
 * new instance is known to answer within moments of registering. Those
 * beyond the first-contact budget wait in the queue for free turns. */
static void probe_fresh(struct monitor *m)
{
    uint32_t k = 0;
    while (k < m->nfresh && m->first_contacts < FIRST_CONTACTS_MAX)
        probe_slot(m, m->fresh[k++]);
    memmove(m->fresh, m->fresh + k, (m->nfresh - k) * sizeof *m->fresh);
    m->nfresh -= k;
}

/* Slots left out for lack of a first-contact turn are probed in the same
 * round once half the turns are free: a batch, not a scan per answer. */
static void probe_deferred(struct monitor *m)
{
    probe_fresh(m);
    if (!m->deferred || m->first_contacts > FIRST_CONTACTS_MAX / 2)
        return;
    m->deferred = false;
    for (uint32_t i = 0; i < m->scan; i++)
        probe_slot(m, i);
    round_maybe_done(m);
}

/* ---- main ---- */

/* How many connections the relay may hold, from the descriptors the
 * process has: each relayed connection costs three (the client's TCP, the
 * relay's Unix end and gRPC's), and the probes, gRPC's own and the table
 * keep theirs. Within that, unauthenticated ones have a budget in all and
 * per address: enough for a fleet of agents on one host to register at
 * once, too few for one stranger to take the lot. */
#define RELAY_UNAUTH_MAX 1024
#define RELAY_PER_HOST_MAX 256
#define RELAY_HANDSHAKE_MS 5000

static struct relay_limits relay_budget(const struct monitor *m)
{
    struct rlimit rl;
    uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 65536;
    uint64_t reserve = (uint64_t)m->t->capacity + 128;
    uint64_t total = fds > reserve + 48 ? (fds - reserve) / 3 : 16;
    uint64_t most = (uint64_t)m->t->capacity * 2 + 2048; /* an agent keeps one; room for strangers */
    struct relay_limits lim;
    lim.total = (uint32_t)(total < most ? total : most);
    lim.unauth = lim.total < RELAY_UNAUTH_MAX ? lim.total : RELAY_UNAUTH_MAX;
    lim.per_host = lim.unauth / 4 < 4 ? 4 : lim.unauth / 4 > RELAY_PER_HOST_MAX ? RELAY_PER_HOST_MAX
                                                                                : lim.unauth / 4;
    lim.handshake_ms = RELAY_HANDSHAKE_MS;
    lim.tls = rpc_tls_on(&m->tls);
    return lim;
}

/* The directories of monitors that were killed are removed, so that /tmp
 * does not fill with them: /tmp/asg-monitor-PID-XXXXXX, taken as dead
 * only when PID is (a live monitor's directory stays empty for a moment
 * between mkdtemp and its socket's bind: emptiness says nothing). Only
 * directories of ours, never through a link. */
static void clean_tmp_dirs(void)
{
    DIR *d = opendir("/tmp");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], tail[16];
        struct stat st;
        int pid;
        if (sscanf(e->d_name, "asg-monitor-%d-%15s", &pid, tail) != 2 || pid <= 0 || pid == (int)getpid() ||
            kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "/tmp/%s", e->d_name);
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
            continue;
        relay_clean_dir(path);
        rmdir(path);
    }
    closedir(d);
}

/* A fresh 0700 directory of ours in /tmp, in every TLS mode: not the
 * state directory, which operators copy to an HA partner (a socket there
 * breaks the copy) and which may not exist for a non-root user in
 * plaintext. mkdtemp makes it ours and 0700, so no other user reaches the
 * socket inside; the pid in its name tells a later monitor whether it
 * may be removed. */
static int private_dir(struct monitor *m, char *dir, size_t size)
{
    clean_tmp_dirs();
    char tmpl[64];
    snprintf(tmpl, sizeof tmpl, "/tmp/asg-monitor-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(tmpl)) {
        log_error("monitor: cannot make a private directory in /tmp: %s", strerror(errno));
        return -1;
    }
    copy_str(m->tmpdir, sizeof m->tmpdir, tmpl);
    return copy_str(dir, size, tmpl) ? 0 : -1;
}

/* The gRPC server, on a Unix socket in a private directory: only the
 * relay reaches it. */
static struct rpc_server *serve_inside(struct monitor *m, struct rpc_method *methods)
{
    char dir[256], err[256], addr[140];
    if (private_dir(m, dir, sizeof dir) != 0)
        return NULL;
    if (!relay_inner_path(dir, (int)getpid(), m->inner, sizeof m->inner)) {
        log_error("monitor: %s is too long for a Unix socket path (at most %zu characters)", dir,
                  sizeof m->inner - 24);
        return NULL;
    }
    unlink(m->inner);
    snprintf(addr, sizeof addr, "unix:%s", m->inner);
    struct rpc_server *srv = rpc_server_start(addr, methods, m->ca ? 4 : 3, m->cq, &m->tls, NULL, err, sizeof err);
    if (!srv) {
        log_error("monitor: %s", err);
        m->inner[0] = '\0';
        return NULL;
    }
    rpc_server_set_peer_map(srv, relayed_peer, m);
    return srv;
}

/* Binds monitor.listen for the relay; with port 0, first tries the port
 * this manager published before, so agents of a restarted monitor find
 * it again. */
static int listen_monitor(struct monitor *m, char *bound, size_t bsize)
{
    char err[256], addr[TABLE_ADDR_MAX];
    struct table_hdr h;
    copy_str(addr, sizeof addr, m->cfg.monitor_listen);
    const char *colon = strrchr(addr, ':');
    bool port0 = colon && strcmp(colon, ":0") == 0;
    int fd = -1;
    /* The address the agents know (a port 0 config keeps the one it got).
     * The monitor of a manager killed a moment ago may still hold it while
     * it drains: keep trying for as long as a drain may take. */
    const char *want = port0 && table_read_hdr(m->t, &h) && h.monitor_addr[0] ? h.monitor_addr : addr;
    int64_t deadline = now_ms() + m->cfg.drain_timeout_ms;
    while (fd < 0 && !g_sig.term) {
        fd = relay_listen(want, bound, bsize, err, sizeof err);
        if (fd >= 0 || now_ms() >= deadline)
            break;
        sleep_ms(50);
    }
    if (fd < 0 && want != addr)
        fd = relay_listen(addr, bound, bsize, err, sizeof err);
    if (fd < 0)
        log_error("monitor.listen: %s", err);
    return fd;
}

/* The gRPC server inside, the relay in front of it. */
static struct rpc_server *start_serving(struct monitor *m, struct rpc_method *methods, char *bound, size_t bsize)
{
    struct rpc_server *srv = serve_inside(m, methods);
    int fd = srv ? listen_monitor(m, bound, bsize) : -1;
    if (fd < 0)
        return srv;
    char err[256];
    struct relay_limits lim = relay_budget(m);
    struct table_hdr *h = m->t->hdr;
    struct relay_counters cnt = {&h->relay_accepted, &h->relay_grpc_took, &h->relay_grpc_waiting,
                                 &h->refused[REFUSED_CONNECTION]};
    m->poller = rpc_poller_start();
    if (!(m->relay = relay_start(fd, m->inner, &lim, &cnt, err, sizeof err)))
        log_error("monitor: %s", err);
    else
        log_info("monitor: relaying %s to %s: at most %u connections, %u unauthenticated (%u per address) "
                 "for at most %d ms", bound, m->inner, lim.total, lim.unauth, lim.per_host, lim.handshake_ms);
    return srv;
}

static void publish_address(struct monitor *m, const char *bound)
{
    if (table_lock(m->t, TABLE_LOCK_WAIT_MS) != 0)
        return;
    table_set_monitor_addr(m->t, bound);
    table_unlock(m->t);
}

/* Each agent costs the monitor descriptors, and strangers can open more:
 * the soft limit of 1,024 descriptors ran out at 1,100 idle connections.
 * Take what the group needs with room to spare, up to the hard limit; the
 * relay's budgets are sized from what this leaves (relay_budget). */
static void raise_file_limit(uint32_t rows)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)rows * 4 + 4096; /* its probe, and three for its relayed connection */
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (want <= rl.rlim_cur)
        return;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open-file limit to %llu: %s", (unsigned long long)want, strerror(errno));
}

/* Identity: the manager's certificate (or plaintext, said loudly), and for
 * an EC2 group the CA that signs joining instances. */
static int load_identity(struct monitor *m)
{
    char err[512];
    if (rpc_manager_tls(&m->cfg, &m->tls, err, sizeof err) != 0) {
        log_error("tls: %s", err);
        return -1;
    }
    if (!rpc_tls_on(&m->tls))
        log_warn("tls.mode = \"plaintext\": agents and manager are NOT authenticated; anyone who "
                 "reaches %s can register, deregister and re-address instances", m->cfg.monitor_listen);
    /* A joining provider's instances (EC2's, exec's) boot with no
     * certificate: they join for one. */
    if (provider_has(&m->cfg, PROVIDER_CAP_JOIN) && rpc_tls_on(&m->tls)) {
        char dir[256];
        pki_dir(&m->cfg, dir, sizeof dir);
        if (!(m->ca = pki_ca_open(dir, err, sizeof err))) {
            log_error("tls: %s", err);
            return -1;
        }
    }
    return 0;
}

/* The Monitor service's queue, at most every other millisecond: asking
 * gRPC costs a few microseconds even when nothing waits, and a saturated
 * loop turns thousands of times a second. */
static void serve_monitor(struct monitor *m)
{
    int64_t now = now_ms();
    if (now - m->served_ms < 2)
        return;
    m->served_ms = now;
    for (int k = 0; k < 64 && rpc_cq_step(m->cq, 0) == 1; k++)
        ;
}

/* Probe rounds on schedule, completions as they come, until SIGTERM. */
static void run(struct monitor *m)
{
    int64_t next_round = now_us(), next_trim = 0;
    while (!g_sig.term) {
        if (g_sig.hup) {
            g_sig.hup = 0;
            confseg_refresh(&m->conf, &m->cfg, &m->cfg_gen);
        }
        int64_t now = now_us(), interval = (int64_t)m->cfg.probe_interval_ms * 1000;
        if (now >= next_round) {
            probe_round(m, now);
            next_round += interval;
            if (next_round <= now)
                next_round = now + interval;
        } else {
            probe_due(m, now);
        }
        /* The wait is short so that a signal flag is seen even when no
         * event arrives, and so that registrations are served: gRPC's
         * queue has no descriptor to wait on beside the probes'. Turns
         * are taken a millisecond's worth at a time. */
        int64_t wake = next_turn(m);
        if (wake < now + TURN_US)
            wake = now + TURN_US;
        if (wake > next_round)
            wake = next_round;
        int64_t wait = wake - now_us();
        h2p_poll(m->probes, wait > SERVE_EVERY_MS * 1000 ? SERVE_EVERY_MS * 1000 : wait);
        serve_monitor(m);
        probe_deferred(m);
        /* Bursts (a thousand agents registering and first dialled at
         * once) leave freed heap that glibc keeps: measured at 1,000
         * agents, 2.5 MB of the monitor's 5.4 MB heap was free, and
         * giving it back took its RSS from 17.8 to 15.6 MB. The walk
         * took 23-188 us at 10,000 agents (timed in place). */
        if (now >= next_trim) {
            malloc_trim(0);
            next_trim = now + TRIM_EVERY_US;
        }
    }
}

static void release(struct monitor *m, struct rpc_server *srv)
{
    relay_stop(m->relay); /* gRPC sees its relayed connections close */
    m->relay = NULL;
    rpc_poller_stop(m->poller);
    m->poller = NULL;
    if (srv)
        rpc_shutdown(srv, m->cq);
    else
        grpc_completion_queue_destroy(m->cq);
    if (m->inner[0])
        unlink(m->inner);
    if (m->tmpdir[0])
        rmdir(m->tmpdir);
    for (uint32_t i = 0; i < m->nslots; i++)
        free(h2p_conn_free(m->slots[i].conn)); /* a probe still out */
    h2p_free(m->probes);
    free(m->slots);
    free(m->in_flight);
    free(m->fresh);
    grpc_shutdown();
    rpc_tls_free(&m->tls);
    pki_ca_close(m->ca);
}

/* The role on its state m: opens what it works with, serves and probes
 * until asked to stop. */
static int monitor_run(struct monitor *m, struct table *t, const struct asg_config *cfg0)
{
    m->t = t;
    m->cfg = *cfg0;
    if (confseg_open_role(t, &m->conf, &m->cfg, &m->cfg_gen) != 0)
        return 1; /* restarted: the supervisor publishes it before any role starts */
    signals_install(false);
    if (load_identity(m) != 0)
        return ASG_EXIT_FATAL;
    raise_file_limit(m->t->capacity);
    char err[256];
    if (!(m->probes = h2p_new(M_AGENT_PING, &m->tls, RPC_AGENT_NAME, on_probe, err, sizeof err))) {
        log_error("probes: %s", err);
        rpc_tls_free(&m->tls);
        pki_ca_close(m->ca);
        return ASG_EXIT_FATAL;
    }
    grpc_init();
    m->cq = rpc_cq_create();
    m->nslots = t->capacity;
    m->slots = calloc(m->nslots, sizeof *m->slots);
    m->in_flight = calloc(m->nslots, sizeof *m->in_flight);
    m->fresh = calloc(m->nslots, sizeof *m->fresh);
    if (!m->slots || !m->in_flight || !m->fresh)
        abort();
    /* Join last: served only with the certificate authority (serve_inside). */
    struct rpc_method methods[] = {{M_MONITOR_REGISTER, monitor_h_register, m, false},
                                   {M_MONITOR_DEREGISTER, monitor_h_deregister, m, false},
                                   {M_HEALTH_CHECK, monitor_h_health, m, true},
                                   {M_MONITOR_JOIN, monitor_h_join, m, true}};
    char bound[TABLE_ADDR_MAX];
    struct rpc_server *srv = start_serving(m, methods, bound, sizeof bound);
    if (!m->relay) {
        release(m, srv);
        return ASG_EXIT_FATAL;
    }
    publish_address(m, bound);
    log_info("monitor up on %s: probing every %d ms (timeout %d ms, unhealthy after %d misses)",
             bound, m->cfg.probe_interval_ms, m->cfg.probe_timeout_ms, m->cfg.unhealthy_after);
    run(m);
    log_info("stopping: %zu probe(s) in flight are cancelled", h2p_in_flight(m->probes));
    release(m, srv);
    return 0;
}

int monitor_main(struct table *t, const struct asg_config *cfg0)
{
    struct monitor *m = calloc(1, sizeof *m); /* the role's state, passed to each of its steps */
    if (!m)
        abort();
    int rc = monitor_run(m, t, cfg0);
    free(m);
    return rc;
}
