/* A group's identity on this machine, kept in its state directory (tls.dir,
 * or /var/lib/asg/GROUP: ours, 0700, beside the CA), where other users
 * cannot read it and the config, which they may read, does not say it:
 *
 * - the group nonce, 128 random bits made on the first start: every agent
 *   the local provider launches carries it in its environment
 *   (GROUP_NONCE_ENV, readable in /proc only by our uid), and a process is
 *   this group's only if it carries it, so two managers that share a group
 *   name never take each other's agents;
 * - the name of the group's shared table: the configured shm.name with a
 *   random suffix, chosen whenever a new table is made, so a stranger who
 *   reads the config cannot create the name in /dev/shm first. */
#ifndef ASG_IDENTITY_H
#define ASG_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#define GROUP_NONCE_FILE "group.nonce"
#define GROUP_NONCE_HEX 32            /* 128 bits as lower-case hex */
#define GROUP_NONCE_ENV "ASG_GROUP_NONCE"
#define TABLE_NAME_MAX 96             /* shm.name (< 64) + "." + 16 hex digits */

/* The group's nonce from dir/group.nonce into out. With create, a missing
 * one is made first (atomically: two managers sharing the directory end
 * up with the same). 0, or -1 with "path: reason" (errno ENOENT when it is
 * missing and create is false). */
int group_nonce_load(const char *dir, bool create, char out[GROUP_NONCE_HEX + 1],
                     char *err, size_t errsize);

/* The segment name recorded in dir for the configured shm_name (the file
 * dir/table-NAME). 0, or -1 (errno ENOENT: none recorded). */
int table_name_recorded(const char *dir, const char *shm_name, char *out, size_t size,
                        char *err, size_t errsize);
/* Records name as the segment of shm_name; removes the record when name is
 * NULL. */
int table_name_record(const char *dir, const char *shm_name, const char *name,
                      char *err, size_t errsize);
/* A fresh name: shm_name "." 16 random hex digits. */
int table_name_fresh(const char *shm_name, char *out, size_t size);

#endif
