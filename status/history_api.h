/* GET /api/v1/activities?limit=N&since=T and
 * GET /api/v1/history/samples?since=T: the history's database
 * (report/histq.h), opened read-only for each request (the history role
 * is its one writer). Authenticated as every read endpoint (status.c). */
#ifndef ASG_STATUS_HISTORY_API_H
#define ASG_STATUS_HISTORY_API_H

#include <stddef.h>

#include "../common/config.h"
#include "../common/strbuf.h"

/* The query's values as given (NULL: absent). The HTTP status: 200 with
 * the JSON in b, 400 (a bad parameter) or 503 (the database cannot be
 * read) with why in err. */
unsigned history_api_activities(const struct asg_config *cfg, const char *limit, const char *since,
                                struct strbuf *b, char *err, size_t errsize);
unsigned history_api_samples(const struct asg_config *cfg, const char *since, struct strbuf *b, char *err,
                             size_t errsize);

#endif
