/* The notifier, asgd's role "notify": delivers every event the manager
 * records (the table's event ring, shm/table.h) to the webhooks of
 * notify.webhooks, as CloudEvents (report/cloudevent.h), each webhook
 * getting only the kinds it asked for.
 *
 * It runs apart from the controller and never takes the table lock: it
 * tails the ring lock-free and writes only its own atomics in the header
 * (struct notify_state), so a dead or slow receiver can cost nothing but
 * this process's time. Per webhook: one request at a time, in the order
 * the events happened; a bounded queue (notify.queue) that drops the
 * oldest event when full, counted; retries with exponential backoff and
 * jitter (up to notify.retry_max_s) on connection errors, timeouts, 5xx,
 * 408 and 429; no retry on another 4xx or a 3xx (logged, counted as
 * refused). With notify.secret, each request carries an HMAC-SHA256
 * signature of "<timestamp>.<body>" (headers X-Asg-Timestamp and
 * X-Asg-Signature: sha256=<hex>).
 *
 * Where it left off lives in the table, per webhook (notify_hook_state's
 * done): a restarted notifier goes on from there, so it resends at most
 * the events it had not finished delivering (at least once; the
 * CloudEvents id is the same, for receivers to drop repeats). Events the
 * ring (256) overwrote before it read them are counted as lost. */
#ifndef ASG_WEBHOOK_NOTIFY_H
#define ASG_WEBHOOK_NOTIFY_H

#include "../common/config.h"
#include "../shm/table.h"

int notify_role_main(struct table *t, const struct asg_config *cfg);

#endif
