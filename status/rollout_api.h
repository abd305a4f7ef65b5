/* POST /api/v1/rollout: an operator's rollout request, read from its JSON
 * body into the controller's request (common/ctlsock.h). Pure: nothing is
 * sent here, so that every bad field is refused, by name, before anything
 * reaches the controller. */
#ifndef ASG_STATUS_ROLLOUT_API_H
#define ASG_STATUS_ROLLOUT_API_H

#include <json-c/json.h>
#include <stddef.h>

#include "../common/ctlsock.h"

/* {"action": "start"|"pause"|"resume"|"rollback"|"cancel", and for start
 * optional "max_surge", "max_unavailable" ("N", "P%" or a whole number),
 * "canary" (N), "canary_weight" ("P%" or 0..100), "bake_s" (S),
 * "pause_at" ([P, ...])} -> rq (REQ_ROLLOUT); 0, or -1 with why naming
 * the field and what it must be. */
int rollout_api_request(json_object *body, struct ctl_request *rq, char *why, size_t whysize);

/* The action's name, "start" ... (rq->value), for the API's answer. */
const char *rollout_action_name(int action);

#endif
