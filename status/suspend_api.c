/* POST /api/v1/suspend read into a request (suspend_api.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "suspend_api.h"

#define CLIENT_MAX 28

static bool plain_client(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CLIENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(" ._=-", s[i]))
            return false;
    return true;
}

void suspend_api_caller(const char *client, const char *credential, char *out, size_t size)
{
    if (plain_client(client))
        snprintf(out, size, "%s via %s", client, credential);
    else
        snprintf(out, size, "%s", credential);
}

/* The processes list into a mask; false with why. */
static bool processes_of(json_object *v, uint32_t *mask, char *why, size_t whysize)
{
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 2 * SUSP_COUNT) {
        snprintf(why, whysize, "processes must be a list of at most %d names", 2 * SUSP_COUNT);
        return false;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *name = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
        uint32_t bit = strcmp(name, "all") == 0 ? SUSP_ALL : suspend_bit_of(name);
        if (!bit) {
            snprintf(why, whysize, "processes: '%.40s' is not one of launch, terminate, replace, scale, "
                     "reconcile, balancer, rollout, all", name);
            return false;
        }
        *mask |= bit;
    }
    return true;
}

int suspend_api_request(json_object *body, const char *by, struct ctl_request *rq, char *why,
                        size_t whysize)
{
    memset(rq, 0, sizeof *rq);
    rq->magic = CTL_REQ_MAGIC;
    rq->kind = REQ_SUSPEND;
    json_object *a = NULL, *procs = NULL;
    json_object_object_foreach(body, k, v) {
        if (strcmp(k, "action") == 0)
            a = v;
        else if (strcmp(k, "processes") == 0)
            procs = v;
        else {
            snprintf(why, whysize, "unknown field '%.40s' (suspend takes action and processes)", k);
            return -1;
        }
    }
    const char *action = a && json_object_is_type(a, json_type_string) ? json_object_get_string(a) : "";
    if (strcmp(action, "suspend") != 0 && strcmp(action, "resume") != 0) {
        snprintf(why, whysize, "action must be suspend or resume");
        return -1;
    }
    rq->value = strcmp(action, "suspend") == 0;
    uint32_t mask = 0;
    if (procs && !processes_of(procs, &mask, why, whysize))
        return -1;
    if (mask == 0 && rq->value == 1) {
        snprintf(why, whysize, "suspend needs processes: a list of launch, terminate, replace, scale, "
                 "reconcile, balancer, rollout, or all");
        return -1;
    }
    rq->given = mask ? mask : SUSP_ALL;
    if (!copy_str(rq->id, sizeof rq->id, by) || !suspend_by_valid(rq->id, strlen(rq->id))) {
        snprintf(why, whysize, "the caller cannot be named");
        return -1;
    }
    return 0;
}
