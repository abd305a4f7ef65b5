/* Glue shared by the role processes. */
#define _GNU_SOURCE
#include "roles.h"
#include "../common/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool role_config_refresh(struct table *t, struct asg_config *cfg, uint64_t *gen)
{
    struct table_hdr h;
    if (!table_read_hdr(t, &h) || h.config_gen == *gen || h.config_gen == 0)
        return false;
    *cfg = h.config;
    *gen = h.config_gen;
    log_set_level((enum log_level)cfg->log_level);
    return true;
}

void fault_point_locked(const char *role, struct table *t)
{
    static int armed = -1; /* -1 unknown, 0 off, N: die at the Nth call */
    static int calls;
    if (armed == 0)
        return;
    if (armed < 0) {
        const char *spec = getenv("ASG_FAULT");
        char want[48];
        snprintf(want, sizeof want, "%s:lock-kill:", role);
        armed = 0;
        if (spec && strncmp(spec, want, strlen(want)) == 0)
            armed = atoi(spec + strlen(want));
        if (armed < 0)
            armed = 0;
        if (armed == 0)
            return;
    }
    if (++calls == armed) {
        /* Die in the middle of a row write: the worst moment. */
        struct table_row *victim = NULL;
        for (uint32_t i = 0; i < t->capacity && !victim; i++)
            if (t->rows[i].state != ROW_FREE)
                victim = &t->rows[i];
        log_warn("ASG_FAULT: %s killing itself holding the table lock, mid-write of row %s",
                 role, victim ? victim->id : "(none)");
        if (victim)
            row_write_begin(victim);
        kill(getpid(), SIGKILL);
    }
}
