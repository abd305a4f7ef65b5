/* POST /api/v1/instances/ID/lifecycle read into a request (lifecycle_api.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "../common/lifecycle_msg.h"
#include "lifecycle_api.h"

int lifecycle_api_request(const char *id, json_object *body, struct ctl_request *rq, char *why, size_t whysize)
{
    memset(rq, 0, sizeof *rq);
    if (!valid_instance_id(id, strlen(id)) || strlen(id) >= sizeof rq->id) {
        snprintf(why, whysize, "not an instance id");
        return -1;
    }
    json_object_object_foreach(body, k, v) {
        (void)v;
        if (strcmp(k, "action") != 0) {
            snprintf(why, whysize, "unknown field \"%.40s\": only \"action\"", k);
            return -1;
        }
    }
    json_object *a;
    int action = 0;
    if (json_object_object_get_ex(body, "action", &a) && json_object_is_type(a, json_type_string))
        action = lifecycle_action_of(json_object_get_string(a));
    if (!action) {
        snprintf(why, whysize, "expected {\"action\": \"continue\", \"abandon\" or \"heartbeat\"}");
        return -1;
    }
    rq->magic = CTL_REQ_MAGIC;
    rq->kind = REQ_LIFECYCLE;
    rq->value = action;
    copy_str(rq->id, sizeof rq->id, id);
    return 0;
}
