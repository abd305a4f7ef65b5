/* POST /api/v1/instances/ID/protect and /api/v1/instances/ID/standby: an
 * operator's control on one instance, read from its JSON body into the
 * controller's request (common/ctlsock.h). Pure, as rollout_api.h: every
 * bad field is refused by name before anything reaches the controller,
 * which checks the instance's state and the bounds itself. */
#ifndef ASG_STATUS_INSTANCE_API_H
#define ASG_STATUS_INSTANCE_API_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "../common/ctlsock.h"

/* Is action ("protect", "standby") one of these endpoints? */
bool instance_api_handles(const char *action);

/* protect: {"protect": true|false}; standby: {"action": "enter"|"exit",
 * optional "decrement": true|false (enter only)} -> rq for instance id;
 * 0, or -1 with why naming the field and what it must be. what gets the
 * request's name for the answer ("protect on", "standby enter", ...). */
int instance_api_request(const char *action, const char *id, json_object *body, struct ctl_request *rq,
                         char *what, size_t whatsize, char *why, size_t whysize);

#endif
