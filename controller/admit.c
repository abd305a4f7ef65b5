/* Admission: the controller's decisions on the monitor's facts (see
 * admit.h). */
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "admit.h"

void admit_decide(const struct admit_ask *asks, size_t n, const struct admit_room *room,
                  struct admit_answer *out)
{
    int target = room->target, free_rows = room->free_rows;
    for (size_t k = 0; k < n; k++) {
        struct admit_answer *a = &out[k];
        a->reason[0] = '\0';
        if (asks[k].known) {
            a->verdict = ADMIT_KNOWN;
        } else if (!room->adopt_unknown) {
            /* a reload turned adoption off while it waited */
            a->verdict = ADMIT_NO;
            snprintf(a->reason, sizeof a->reason,
                     "unknown instance: the manager did not launch it and monitor.adopt_unknown is off");
        } else if (free_rows <= 0) {
            a->verdict = ADMIT_NO_FULL;
            snprintf(a->reason, sizeof a->reason, "the instance table is full (%u rows)", room->capacity);
        } else if (target >= room->max) {
            a->verdict = ADMIT_NO;
            snprintf(a->reason, sizeof a->reason, "the group is at its maximum size (%d)", room->max);
        } else {
            /* Like attaching an instance to an AWS group: it joins, and
             * the controller raises its target for it (account_joined). */
            a->verdict = ADMIT_YES;
            target++;
            free_rows--;
        }
    }
}

/* A row whose agent deregistered leaves the group. A joined one leaves
 * like an instance detached from an AWS group with the desired capacity
 * decremented: account_joined lowers the target for it, so that a swarm
 * that leaves is not replaced. */
static void stop_deregistered(struct table *t, int64_t deadline)
{
    for (uint32_t i = 0; i < t->capacity; i++) {
        struct table_row *r = &t->rows[i];
        if (!(r->flags & ROW_F_DEREGISTERED) || r->state == ROW_FREE || r->state == ROW_TERMINATING ||
            r->state == ROW_TERM_WAIT)
            continue;
        if (table_stopping(t, r, "deregistered", deadline))
            table_note(t, EV_TERMINATE, r->id, LOG_LVL_INFO, "controller: stopping instance %s: it deregistered",
                       r->id);
    }
}

/* An entry a writer finished: strings ended, an id and an address. */
static bool entry_whole(const struct inbox_entry *e)
{
    return memchr(e->id, '\0', sizeof e->id) && memchr(e->addr, '\0', sizeof e->addr) &&
           memchr(e->service_addr, '\0', sizeof e->service_addr) && valid_instance_id(e->id, strlen(e->id)) &&
           e->addr[0];
}

/* The waiting requests, oldest first (at most TABLE_INBOX). An entry in
 * no state we know, or a request not whole, is dropped: nothing would ever
 * answer it or make room of it, and the inbox is only 16 entries. */
static size_t waiting_requests(struct table *t, struct inbox_entry **out)
{
    size_t n = 0;
    for (int i = 0; i < TABLE_INBOX; i++) {
        struct inbox_entry *e = &t->hdr->inbox[i];
        bool known = e->state == INBOX_FREE || e->state == INBOX_WAITING || e->state == INBOX_REFUSED;
        if (known && e->state != INBOX_WAITING)
            continue;
        if (!known || !entry_whole(e)) {
            log_warn("admission inbox entry %d dropped: %s", i,
                     known ? "its request is not whole (an id and an address, ended)" : "its state is unknown");
            table_inbox_drop(t, e);
            continue;
        }
        size_t k = n++;
        for (; k > 0 && out[k - 1]->seq > e->seq; k--)
            out[k] = out[k - 1];
        out[k] = e;
    }
    return n;
}

/* A refusal, logged (with its event) a few a second: each is a stranger's
 * request, and the event ring is the group's history. */
static void refuse(struct table *t, struct inbox_entry *e, const char *why, bool table_full,
                   struct log_limit *limit)
{
    table_inbox_refuse(t, e, why, table_full);
    if (log_limit_take(limit, LOG_LVL_WARN))
        table_note(t, EV_LAUNCH, e->id, LOG_LVL_WARN, "controller: admission of unknown instance %s refused: %s",
                   e->id, why);
}

static void apply_answer(struct table *t, struct inbox_entry *e, const struct admit_answer *a,
                         struct log_limit *limit, int64_t now)
{
    switch (a->verdict) {
    case ADMIT_YES:
        if (!table_inbox_admit(t, e, now)) /* admit_decide counted free rows: a bug if seen */
            refuse(t, e, "the instance table is full", true, limit);
        break;
    case ADMIT_KNOWN:
        table_inbox_drop(t, e); /* its next registration finds its row */
        break;
    case ADMIT_NO:
    case ADMIT_NO_FULL:
        refuse(t, e, a->reason, a->verdict == ADMIT_NO_FULL, limit);
        break;
    }
}

void admit_facts(struct table *t, const struct asg_config *eff, struct log_limit *limit, int64_t stop_deadline,
                 int64_t now)
{
    stop_deregistered(t, stop_deadline);
    struct inbox_entry *es[TABLE_INBOX];
    size_t n = waiting_requests(t, es);
    if (n == 0)
        return;
    struct admit_ask asks[TABLE_INBOX];
    for (size_t k = 0; k < n; k++)
        asks[k] = (struct admit_ask){es[k]->id, table_find(t, es[k]->id) != NULL};
    /* The target before the controller has set one is the desired size;
     * joined rows it has not counted yet count here. */
    int target = t->hdr->ctl.target ? t->hdr->ctl.target : eff->desired_instances;
    struct admit_room room = {eff->adopt_unknown, eff->max_instances, target + table_joined_uncounted(t),
                              table_count(t, ROW_FREE), t->capacity};
    struct admit_answer ans[TABLE_INBOX];
    admit_decide(asks, n, &room, ans);
    for (size_t k = 0; k < n; k++)
        apply_answer(t, es[k], &ans[k], limit, now);
}

bool admit_news(const struct table *t, uint64_t *seen)
{
    uint64_t facts = atomic_load(&t->hdr->facts);
    if (facts == *seen)
        return false;
    *seen = facts;
    return true;
}
