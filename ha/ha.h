/* High availability: two (or more) managers of one group, one leader, on
 * etcd (ha.etcd). Run inside the controller role, which is the one that
 * acts.
 *
 * Election: each manager holds a lease (ha.lease_ttl_ms, renewed at a
 * third of it) and tries to create the group's leader key
 * PREFIX/GROUP/leader = "ID MONITOR_ADDR" under it, in one transaction
 * that succeeds only if the key does not exist. The creator leads; its
 * term is the key's create revision, which only grows. The others stand
 * by and try again every evaluation interval (at most every third of the
 * TTL), so a leader's lease that expires (it died, or was cut off) is
 * taken over within one evaluation interval.
 *
 * Fencing: a leader acts only until its renewal deadline, the send time
 * of its last successful renewal plus the TTL minus a fifth of it: it
 * stops before etcd can let the lease go, so two leaders never act at
 * once. And every batch of provider calls is preceded by a transaction
 * that writes the group's state only if the leader key still has our
 * term: a leader paused past its lease (SIGSTOP, a stalled VM) finds on
 * waking that the key was re-created, and makes no call.
 *
 * Launch tokens (EC2's ClientToken) are the instance id and a nonce: with
 * HA the nonce is the group's (PREFIX/GROUP/nonce, set once by the first
 * manager), and the guard's state names the launches in flight and the
 * next instance number, so a new leader asks again for a half-done launch
 * with the very same token and never reuses an id. */
#ifndef ASG_HA_H
#define ASG_HA_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"
#include "../common/group.h"
#include "../common/identity.h"
#include "etcd.h"


struct ha {
    bool on;                    /* ha.etcd is set */
    struct etcd etcd;
    char id[64];                /* this manager (ha.id) */
    char self_addr[64];         /* its monitor's address */
    char key_leader[160], key_state[160], key_member[200], members_prefix[160], key_nonce[160];
    char key_identity[160];
    /* local provider: a digest of our group nonce (common/identity.h),
     * which must be the group's (PREFIX/GROUP/identity, set by the first
     * manager): a manager whose tls.dir lacks the group's nonce could not
     * adopt or stop the agents it would lead. "" = not checked (ec2). */
    char identity[GROUP_NONCE_HEX + 1];
    bool identity_ok;
    uint64_t nonce;             /* the group's: launch tokens are the same whoever leads */
    uint64_t table_nonce;       /* ours, offered if the group has none yet */
    int64_t lease;              /* 0 = none */
    int ttl_ms;                 /* as etcd granted it */
    int64_t renewed_ms;         /* when the last successful grant or renewal was sent */
    bool member_put;            /* our member key is written under this lease */
    enum ha_role role;          /* as etcd last said; leading also needs the deadline */
    int64_t term;               /* the leader key's create revision */
    char leader[64], leader_addr[64];
    char managers[256];         /* every manager's monitor address, ours first */
    int64_t next_step_ms;
    int standby_every_ms;       /* how often a standby campaigns */
    bool etcd_up;
    char err[200];              /* the last failure, "" after a success */
};

/* Nothing to do (h->on false) when ha.etcd is empty. saved_lease: the
 * lease a previous run of this controller held (kept in the table), tried
 * first so that a restarted controller keeps its leadership. group_nonce:
 * ours (local provider), checked against the group's before we campaign;
 * NULL for none. */
int ha_open(struct ha *h, const struct asg_config *cfg, int64_t saved_lease, uint64_t table_nonce,
            const char *group_nonce, char *err, size_t errsize);
/* Renews, campaigns, reads the members; at h->next_step_ms. */
void ha_step(struct ha *h, const char *self_addr, int64_t now);
/* This manager may make provider calls now. */
bool ha_may_act(const struct ha *h, int64_t now);
/* The role as operators see it: leader only while it may act. */
enum ha_role ha_role_now(const struct ha *h, int64_t now);
/* Writes state (JSON) under the group's state key if we still lead: the
 * guard in front of every batch of provider calls. */
bool ha_guard(struct ha *h, const char *state, int64_t now);
/* The state the last leader wrote, or "" (for a new leader). */
void ha_read_state(struct ha *h, char *out, size_t size);
/* Leaving: a leader's lease is revoked, so a standby leads at once. */
void ha_close(struct ha *h);

#endif
