/* asgctl's operator actions (act.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "../shm/ops.h"
#include "act.h"
#include "api.h"

/* The controller's word after event mark: 0 carried out, 1 refused, -1
 * none yet (mark moves past the events read). */
static int outcome(const struct table *t, uint64_t *mark, const struct act *a)
{
    struct table_event ev[32];
    size_t n = table_read_events(t, *mark, ev, sizeof ev / sizeof *ev);
    for (size_t i = 0; i < n; i++) {
        *mark = ev[i].number;
        if (!a->answers(&ev[i], a->ctx))
            continue;
        bool refused = strstr(ev[i].msg, "refused") != NULL;
        if (refused)
            fprintf(stderr, "asgctl: %s: %s\n", a->verb, ev[i].msg);
        else
            printf("%s\n", ev[i].msg);
        return refused ? 1 : 0;
    }
    return -1;
}

static int await(const struct table *t, uint64_t mark, const struct act *a)
{
    int64_t deadline = now_ms() + a->wait_ms;
    while (now_ms() < deadline) {
        int rc = outcome(t, &mark, a);
        if (rc >= 0)
            return rc;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("%s accepted; the controller has not acted on it yet (asgctl events)\n", a->what);
    return 0;
}

int act_run(const struct asg_config *cfg, const struct table *t, const struct act *a)
{
    /* Marked before the request: the controller's word comes after it. */
    uint64_t mark = t ? atomic_load(&t->log->events_written) : 0;
    struct api_reply r;
    int rc = api_post(cfg, a->path, a->body, &r, a->verb);
    if (rc)
        return rc;
    if (r.code != 202) {
        char why[300];
        api_error_text(&r, why, sizeof why);
        fprintf(stderr, "asgctl: %s: the manager answered %ld: %s\n", a->what, r.code, why);
        return 1;
    }
    if (!t) {
        printf("%s accepted (asgctl events says what the controller made of it)\n", a->what);
        return 0;
    }
    return await(t, mark, a);
}
