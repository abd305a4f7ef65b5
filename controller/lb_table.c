/* The balancer step's table side (see lb_table.h). */
#include "lb_table.h"
#include "../common/util.h"
#include "../shm/ops.h"

#include <stdlib.h>
#include <string.h>

static void counted(void *ctx, const struct lb_instance *in, uint64_t requests, uint32_t sessions,
                    int64_t now)
{
    struct table *t = ctx;
    struct table_row *r = table_row_at(t, in->slot, in->incarnation);
    if (r)
        table_lb_counted(t, r, requests, sessions, now);
}

static bool state(void *ctx, uint32_t slot, uint64_t incarnation, uint32_t lb_state, int64_t now)
{
    struct table *t = ctx;
    struct table_row *r = table_row_at(t, slot, incarnation);
    if (r)
        table_lb_state(t, r, lb_state, now);
    return r != NULL;
}

static void note(void *ctx, const char *instance, int level, const char *msg)
{
    table_note(ctx, EV_BALANCER, instance, level, "%s", msg);
}

static struct lb_recorder recorder(struct table *t)
{
    return (struct lb_recorder){t, counted, state, note};
}

static void view(const struct table *t, uint32_t slot, struct lb_instance *out)
{
    const struct table_row *r = &t->rows[slot];
    memset(out, 0, sizeof *out);
    out->slot = slot;
    out->incarnation = r->incarnation;
    out->state = r->state;
    copy_str(out->id, sizeof out->id, r->id);
    copy_str(out->addr, sizeof out->addr, r->addr);
    copy_str(out->service_addr, sizeof out->service_addr, r->service_addr);
    out->lb_state = r->lb_state;
    out->lb_since_ms = r->lb_since_ms;
}

void lb_table_plan(struct table *t, const struct asg_config *cfg, const struct lb_member *m, size_t nm,
                   bool strays, bool drain_over, int64_t now, struct lb_plan *p)
{
    struct lb_instance *in = calloc(t->capacity ? t->capacity : 1, sizeof *in);
    if (!in)
        abort();
    size_t n = 0;
    for (uint32_t i = 0; i < t->capacity; i++)
        if (t->rows[i].state != ROW_FREE)
            view(t, i, &in[n++]);
    struct lb_recorder rec = recorder(t);
    lb_plan_step(cfg, in, n, m, nm, strays, drain_over, now, &rec, p);
    free(in);
}

void lb_table_record(struct table *t, struct lb_plan *p, int64_t now)
{
    struct lb_recorder rec = recorder(t);
    lb_record(p, &rec, now);
}
