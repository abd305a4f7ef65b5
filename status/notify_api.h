/* GET /api/v1/notify: the notifier's counters alone (report/notify_report.h),
 * as "notify" in /api/v1/group has them. Read-only: the notifications
 * have no action of their own (their config is the file's). */
#ifndef ASG_STATUS_NOTIFY_API_H
#define ASG_STATUS_NOTIFY_API_H

#include "../common/strbuf.h"
#include "../shm/snapshot.h"

/* {"notify":{...}} and a newline. */
void notify_api_json(struct strbuf *b, const struct snapshot *s);

#endif
