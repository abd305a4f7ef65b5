/* The instance controls' endpoints, read into requests (instance_api.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "instance_api.h"

bool instance_api_handles(const char *action)
{
    return strcmp(action, "protect") == 0 || strcmp(action, "standby") == 0;
}

/* Only the named keys, so that a misspelt one is not silently ignored. */
static bool only_keys(json_object *body, const char *const *keys, char *why, size_t whysize)
{
    json_object_object_foreach(body, k, v) {
        (void)v;
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known |= strcmp(k, keys[i]) == 0;
        if (!known) {
            snprintf(why, whysize, "unknown field '%.40s'", k);
            return false;
        }
    }
    return true;
}

static int protect_request(json_object *body, struct ctl_request *rq, char *what, size_t whatsize, char *why,
                           size_t whysize)
{
    static const char *const keys[] = {"protect", NULL};
    json_object *v;
    if (!only_keys(body, keys, why, whysize))
        return -1;
    if (!json_object_object_get_ex(body, "protect", &v) || !json_object_is_type(v, json_type_boolean)) {
        snprintf(why, whysize, "expected {\"protect\": true} or {\"protect\": false}");
        return -1;
    }
    rq->kind = REQ_PROTECT;
    rq->value = json_object_get_boolean(v) ? 1 : 0;
    snprintf(what, whatsize, "protect %s", rq->value ? "on" : "off");
    return 0;
}

static int standby_request(json_object *body, struct ctl_request *rq, char *what, size_t whatsize, char *why,
                           size_t whysize)
{
    static const char *const keys[] = {"action", "decrement", NULL};
    json_object *v;
    if (!only_keys(body, keys, why, whysize))
        return -1;
    bool enter;
    if (!json_object_object_get_ex(body, "action", &v) || !json_object_is_type(v, json_type_string) ||
        (!(enter = strcmp(json_object_get_string(v), "enter") == 0) && strcmp(json_object_get_string(v), "exit") != 0)) {
        snprintf(why, whysize, "action must be \"enter\" or \"exit\"");
        return -1;
    }
    bool decrement = false;
    if (json_object_object_get_ex(body, "decrement", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            snprintf(why, whysize, "decrement must be true or false");
            return -1;
        }
        decrement = json_object_get_boolean(v);
        if (decrement && !enter) {
            snprintf(why, whysize, "decrement goes with enter only (exit restores what enter took)");
            return -1;
        }
    }
    rq->kind = REQ_STANDBY;
    rq->value = !enter ? SB_EXIT : decrement ? SB_ENTER_DECREMENT : SB_ENTER;
    snprintf(what, whatsize, "standby %s%s", enter ? "enter" : "exit", decrement ? " with decrement" : "");
    return 0;
}

int instance_api_request(const char *action, const char *id, json_object *body, struct ctl_request *rq,
                         char *what, size_t whatsize, char *why, size_t whysize)
{
    memset(rq, 0, sizeof *rq);
    rq->magic = CTL_REQ_MAGIC;
    if (strlen(id) >= sizeof rq->id || !valid_instance_id(id, strlen(id))) {
        snprintf(why, whysize, "not an instance id");
        return -1;
    }
    copy_str(rq->id, sizeof rq->id, id);
    if (!json_object_is_type(body, json_type_object)) {
        snprintf(why, whysize, "the body must be a JSON object");
        return -1;
    }
    if (strcmp(action, "protect") == 0)
        return protect_request(body, rq, what, whatsize, why, whysize);
    return standby_request(body, rq, what, whatsize, why, whysize);
}
