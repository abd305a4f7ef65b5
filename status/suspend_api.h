/* POST /api/v1/suspend: an operator's suspend or resume of the group's
 * processes (common/suspend.h), read from its JSON body into the
 * controller's request. Pure: every bad field is refused, by name, before
 * anything reaches the controller (which checks the request again). */
#ifndef ASG_STATUS_SUSPEND_API_H
#define ASG_STATUS_SUSPEND_API_H

#include <json-c/json.h>
#include <stddef.h>

#include "../common/ctlsock.h"
#include "../common/suspend.h"

/* {"action": "suspend"|"resume", "processes": ["launch", ...]}: suspend
 * needs at least one name ("all" is every process); resume without
 * processes (or with "all") resumes every one. by: who asks
 * (suspend_api_caller). -> rq (REQ_SUSPEND); 0, or -1 with why. */
int suspend_api_request(json_object *body, const char *by, struct ctl_request *rq, char *why,
                        size_t whysize);

/* Who asks, for the record: the client's own word for itself (the
 * X-ASG-Client header: asgctl sends "asgctl uid N"), kept only when it is
 * short and plain (letters, digits, space, . _ = -), then the credential
 * the API checked ("api-token", "status-token" or "dashboard"). */
void suspend_api_caller(const char *client, const char *credential, char *out, size_t size);

#endif
