/* POST /api/v1/instances/ID/lifecycle: an operator's word on an instance
 * a lifecycle hook holds (controller/lifecycle.h), read from its JSON body
 * into the controller's request. Pure: nothing is sent here, so that a bad
 * field is refused, by name, before anything reaches the controller
 * (which checks the instance's state again). */
#ifndef ASG_STATUS_LIFECYCLE_API_H
#define ASG_STATUS_LIFECYCLE_API_H

#include <json-c/json.h>
#include <stddef.h>

#include "../common/ctlsock.h"

/* {"action": "continue"|"abandon"|"heartbeat"} for instance id -> rq
 * (REQ_LIFECYCLE); 0, or -1 with why. */
int lifecycle_api_request(const char *id, json_object *body, struct ctl_request *rq, char *why, size_t whysize);

#endif
