/* One event of the manager's log (shm/table.h struct table_event) as a
 * CloudEvents 1.0 event in structured mode (the JSON format; content type
 * application/cloudevents+json). Pure: no I/O, no clock.
 *
 *   specversion  "1.0"
 *   id           "<group nonce>-<table nonce>-<event number>": unique per
 *                event, and the same at every delivery of it (receivers
 *                drop repeats by it: delivery is at least once)
 *   source       "asg://<host>/<group>"
 *   type         "io.asg.<kind>" (io.asg.launch, io.asg.scale, ...)
 *   time         RFC 3339, UTC, milliseconds
 *   subject      the instance id, when the event is about one
 *   data         { message, kind, group, instance, number } */
#ifndef ASG_CLOUDEVENT_H
#define ASG_CLOUDEVENT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/strbuf.h"
#include "../shm/table.h"

#define CE_CONTENT_TYPE "application/cloudevents+json"

/* Who sends: the same for every event of one notifier. */
struct ce_origin {
    char source[200];            /* "asg://host/group" */
    char id_prefix[64];          /* "<digest of the group nonce>-<table nonce>" */
    char group[48];
};

/* Fills o from the host name, the group's name and nonce, and the
 * table's nonce. */
void cloudevent_origin(struct ce_origin *o, const char *host, const char *group, const char *group_nonce,
                       uint64_t table_nonce);

/* "io.asg.<kind>" into out. */
void cloudevent_type(uint32_t kind, char *out, size_t n);

/* "2026-12-03T21:11:24.123Z" into out (at least 32 bytes). */
void cloudevent_time(int64_t wall_ms, char *out, size_t n);

/* Appends the event's JSON (one object, no newline) to b. Every string
 * goes through sb_json_str: a message cut mid-character or holding
 * control bytes still makes valid JSON. */
void cloudevent_json(struct strbuf *b, const struct ce_origin *o, const struct table_event *ev);

#endif
