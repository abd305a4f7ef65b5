/* notify.webhooks in the config file, read into struct webhook_cfg
 * (common/config.h). Two forms, mixable in one list:
 *   webhooks = ["https://chat.example/hook", ...];            every event
 *   webhooks = ( { url = "http://..."; events = ["launch", "terminate"]; } );
 * A URL is http:// or https:// with a host, and no user or password in it
 * (a credential does not belong in the config: notify.secret signs). */
#ifndef ASG_WEBHOOK_CFG_H
#define ASG_WEBHOOK_CFG_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"

/* Every event kind (all bits of webhook_cfg.kinds a filter can set). */
unsigned webhook_all_kinds(void);

/* The bit (0..31) of the event kind named name (shm/table.h's
 * event_kind_name), or -1 for a name that is not one. */
int webhook_kind_of(const char *name);
/* The name of bit i, or NULL past the last. */
const char *webhook_kind_name(int i);

/* Checks one webhook URL: 0, or -1 with why. */
int webhook_url_check(const char *url, char *why, size_t n);

/* A URL's hash, never 0: which URL a webhook's counters in the table are
 * about (struct notify_hook_state). */
uint64_t webhook_url_hash(const char *url);

/* "scheme://host:port" of a URL, what logs, status and metrics name a
 * webhook by: its path and query may hold a receiver's secret (a chat
 * service's hook URL), so they are never shown. */
void webhook_target(const char *url, char *out, size_t n);

/* Reads the list s into out (WEBHOOKS_MAX of them) and *n. 0, or -1 with
 * why and *at the setting at fault (for its line). */
int webhooks_parse(const config_setting_t *s, struct webhook_cfg *out, int *n, char *why, size_t whysize,
                   const config_setting_t **at);

#endif
