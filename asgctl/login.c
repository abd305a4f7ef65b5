/* asgctl dashboard. The API token (tls.dir/api.token) is the manager
 * user's; whoever can read it asks the status role for a login code
 * (POST /api/v1/login, api.h) and gets a link that sets a session cookie
 * once. */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "login.h"

/* The status role's answer: its "url", or its "error". */
static int print_answer(const struct api_reply *r)
{
    json_object *o = json_tokener_parse(r->buf);
    json_object *v;
    int rc = 1;
    if (r->code == 200 && o && json_object_object_get_ex(o, "url", &v) &&
        json_object_is_type(v, json_type_string)) {
        printf("open this link in your browser (it works once, for 15 minutes):\n%s\n", json_object_get_string(v));
        rc = 0;
    } else {
        char why[300];
        api_error_text(r, why, sizeof why);
        fprintf(stderr, "asgctl: dashboard: the manager answered %ld without a link: %s\n", r->code, why);
    }
    json_object_put(o);
    return rc;
}

int asgctl_dashboard(const struct asg_config *cfg)
{
    struct api_reply r;
    int rc = api_post(cfg, "/api/v1/login", "{}", &r, "dashboard");
    return rc ? rc : print_answer(&r);
}
