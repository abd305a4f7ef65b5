/* asgctl's requests to the running manager's status API (POST
 * /api/v1/...), made with the manager user's API token (tls.dir/api.token)
 * as the status role's own clients: asgctl dashboard, asgctl rollout. */
#ifndef ASG_ASGCTL_API_H
#define ASG_ASGCTL_API_H

#include <stddef.h>

#include "../common/config.h"

#define API_REPLY_MAX 4096

struct api_reply {
    long code;                 /* the HTTP status */
    char buf[API_REPLY_MAX];   /* the body, NUL-terminated (cut short if longer) */
    size_t len;
};

/* POSTs body (JSON) to path on the manager cfg names; who names the
 * command in messages. 0 when the manager answered (r), else an exit
 * code with the reason on stderr: 1 no answer (is it running?), 2 no
 * token to read or no status.listen to use. */
int api_post(const struct asg_config *cfg, const char *path, const char *body, struct api_reply *r,
             const char *who);

/* The answer's "error" (or what it lacked) into out, for messages. */
void api_error_text(const struct api_reply *r, char *out, size_t size);

#endif
