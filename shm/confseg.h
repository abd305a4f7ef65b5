/* The published config: a second, small POSIX shared memory segment beside
 * the table, written by the supervisor alone and mapped read-only by the
 * roles and asgctl. The table holds instances and the group's runtime
 * state; the config lives here, so adding a config key never changes the
 * table's layout (a table survives an upgrade; this segment is made anew
 * by every supervisor start).
 *
 * Its name is the table's name, ".config-" and 16 random hex digits, made
 * fresh at each supervisor start and recorded in the table's header
 * (config_name): the table is ours (0600), so the name read there is one
 * we made, and a stranger who sees the table's name in /dev/shm cannot
 * create the config's first. Attaching checks, as the table does, that the
 * segment is ours, 0600, of this layout and of this config's size.
 *
 * A reload writes the whole config under a sequence counter (odd while
 * written) and bumps the generation: a reader takes a consistent copy of
 * one generation, never half of two. */
#ifndef ASG_CONFSEG_H
#define ASG_CONFSEG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "table.h"

#define CONFSEG_MAGIC 0x3130474643475341ULL /* "ASGCFG01" in memory order */
#define CONFSEG_VERSION 1
#define CONFSEG_NAME_MAX (TABLE_NAME_MAX + 32)

struct confseg_layout {
    uint64_t magic;
    uint32_t version;            /* CONFSEG_VERSION */
    uint32_t cfg_size;           /* sizeof(struct asg_config) of its writer */
    _Atomic uint32_t seq;        /* odd while the supervisor writes */
    uint32_t pad;
    struct confseg_pub {
        uint64_t gen;            /* 1, 2, ...: one per publication */
        struct asg_config cfg;
    } pub;                       /* written whole, under seq */
};

struct confseg {
    struct confseg_layout *seg;
    size_t size;
    bool writable;               /* the supervisor's mapping */
    char name[CONFSEG_NAME_MAX];
};

/* Supervisor: a fresh segment named after table_name holding cfg as
 * generation gen (mode 0600). 0, or -1 with a reason. */
int confseg_create(const char *table_name, const struct asg_config *cfg, uint64_t gen,
                   struct confseg *c, char *err, size_t errsize);
/* Maps the segment read-only, checking owner, mode, magic, version and
 * size. 0, or -1 with a reason naming the segment. */
int confseg_attach(const char *name, struct confseg *c, char *err, size_t errsize);
/* The segment the table's header names (its supervisor's). */
int confseg_attach_table(const struct table *t, struct confseg *c, char *err, size_t errsize);
void confseg_detach(struct confseg *c);
int confseg_unlink(const char *name);
/* Supervisor, at start: removes the config segments of shm_name's tables
 * that are gone (a killed manager's, whose table was then removed), ours
 * only. Returns how many. */
int confseg_sweep(const char *shm_name);

/* Supervisor: publishes cfg as the next generation; returns it. */
uint64_t confseg_publish(struct confseg *c, const struct asg_config *cfg);
/* A consistent copy and its generation; false when a writer kept it busy
 * (a dead supervisor). */
bool confseg_read(const struct confseg *c, struct asg_config *out, uint64_t *gen);
/* A role's start: maps its supervisor's segment (the one t names) into c
 * and takes the config from it (as confseg_refresh). -1, logged, when
 * there is none: the role exits and is restarted. */
int confseg_open_role(const struct table *t, struct confseg *c, struct asg_config *cfg, uint64_t *gen);
/* A role's view of the config: copies the published one when its
 * generation moved past *gen, applies its log level and logs "config
 * generation N applied"; true when it did. */
bool confseg_refresh(const struct confseg *c, struct asg_config *cfg, uint64_t *gen);

#endif
