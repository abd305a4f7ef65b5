/* POST /api/v1/rollout read into a request (rollout_api.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../common/config.h"
#include "rollout_api.h"

static const char *const action_names[RA_COUNT] = {
    [RA_START] = "start", [RA_PAUSE] = "pause", [RA_RESUME] = "resume", [RA_ROLLBACK] = "rollback",
    [RA_CANCEL] = "cancel"};

const char *rollout_action_name(int action)
{
    return action >= RA_START && action < RA_COUNT ? action_names[action] : "?";
}

/* A whole number of json-c's within lo..hi. */
static bool whole_in(json_object *v, long lo, long hi, int *out)
{
    if (!json_object_is_type(v, json_type_int))
        return false;
    int64_t n = json_object_get_int64(v);
    if (n < lo || n > hi)
        return false;
    *out = (int)n;
    return true;
}

/* max_surge / max_unavailable: "N", "P%", or a whole number N. */
static bool amount(json_object *v, int32_t *value, uint8_t *pct)
{
    int n;
    bool p = false;
    if (json_object_is_type(v, json_type_string)) {
        if (rollout_amount_parse(json_object_get_string(v), &n, &p) != 0)
            return false;
    } else if (!whole_in(v, 0, 100000, &n)) {
        return false;
    }
    *value = n;
    *pct = p;
    return true;
}

/* canary_weight: "P%", "P" or a whole number, 0..100. */
static bool weight(json_object *v, int32_t *out)
{
    int n;
    if (json_object_is_type(v, json_type_string)) {
        if (rollout_percent_parse(json_object_get_string(v), &n) != 0)
            return false;
    } else if (!whole_in(v, 0, 100, &n)) {
        return false;
    }
    *out = n;
    return true;
}

/* pause_at: a list of at most ROLLOUT_PAUSES ascending whole 1..99. */
static bool pauses(json_object *v, struct rollout_settings *s)
{
    if (!json_object_is_type(v, json_type_array))
        return false;
    size_t n = json_object_array_length(v);
    if (n > ROLLOUT_PAUSES)
        return false;
    for (size_t i = 0; i < n; i++) {
        int p;
        if (!whole_in(json_object_array_get_idx(v, i), 1, 99, &p) || (i && p <= s->pause_at[i - 1]))
            return false;
        s->pause_at[i] = p;
    }
    s->npause = (uint8_t)n;
    return true;
}

/* One of start's settings, key k of value v, into rq; false with why. */
static bool setting(const char *k, json_object *v, struct ctl_request *rq, char *why, size_t whysize)
{
    struct rollout_settings *s = &rq->set;
    int n;
    const char *must = NULL;
    if (strcmp(k, "max_surge") == 0) {
        rq->given |= RS_SURGE;
        if (!amount(v, &s->surge, &s->surge_pct))
            must = "\"N\" (0..100000), \"P%\" (0..100) or a whole number";
    } else if (strcmp(k, "max_unavailable") == 0) {
        rq->given |= RS_UNAVAILABLE;
        if (!amount(v, &s->unavailable, &s->unavailable_pct))
            must = "\"N\" (0..100000), \"P%\" (0..100) or a whole number";
    } else if (strcmp(k, "canary") == 0) {
        rq->given |= RS_CANARY;
        if (whole_in(v, 0, 100000, &n))
            s->canary = n;
        else
            must = "a whole number of instances, 0..100000";
    } else if (strcmp(k, "canary_weight") == 0) {
        rq->given |= RS_CANARY_WEIGHT;
        if (!weight(v, &s->canary_weight))
            must = "\"P%\" or a whole number, 0..100";
    } else if (strcmp(k, "bake_s") == 0) {
        rq->given |= RS_BAKE;
        if (whole_in(v, 0, 86400, &n))
            s->bake_ms = n * 1000;
        else
            must = "whole seconds, 0..86400";
    } else if (strcmp(k, "pause_at") == 0) {
        rq->given |= RS_PAUSES;
        if (!pauses(v, s))
            must = "a list of at most 4 ascending percentages, each a whole 1..99";
    } else {
        snprintf(why, whysize, "unknown field '%.40s' (start takes max_surge, max_unavailable, canary, "
                 "canary_weight, bake_s, pause_at)", k);
        return false;
    }
    if (must)
        snprintf(why, whysize, "%s must be %s", k, must);
    return must == NULL;
}

static int action_of(json_object *body, char *why, size_t whysize)
{
    json_object *v;
    if (!json_object_object_get_ex(body, "action", &v) || !json_object_is_type(v, json_type_string)) {
        snprintf(why, whysize, "action is missing: one of start, pause, resume, rollback, cancel");
        return -1;
    }
    for (int a = RA_START; a < RA_COUNT; a++)
        if (strcmp(json_object_get_string(v), action_names[a]) == 0)
            return a;
    snprintf(why, whysize, "action must be one of start, pause, resume, rollback, cancel (not '%.40s')",
             json_object_get_string(v));
    return -1;
}

int rollout_api_request(json_object *body, struct ctl_request *rq, char *why, size_t whysize)
{
    memset(rq, 0, sizeof *rq);
    rq->magic = CTL_REQ_MAGIC;
    rq->kind = REQ_ROLLOUT;
    int a = action_of(body, why, whysize);
    if (a < 0)
        return -1;
    rq->value = a;
    json_object_object_foreach(body, k, v) {
        if (strcmp(k, "action") == 0)
            continue;
        if (a != RA_START) {
            snprintf(why, whysize, "%.40s: only start takes settings", k);
            return -1;
        }
        if (!setting(k, v, rq, why, whysize))
            return -1;
    }
    const char *bad = rollout_settings_invalid(&rq->set);
    if (bad) {
        snprintf(why, whysize, "%s", bad);
        return -1;
    }
    if ((rq->given & RS_SURGE) && (rq->given & RS_UNAVAILABLE) && rq->set.surge == 0 && rq->set.unavailable == 0) {
        snprintf(why, whysize, "max_surge and max_unavailable cannot both be 0: nothing could be replaced");
        return -1;
    }
    return 0;
}
