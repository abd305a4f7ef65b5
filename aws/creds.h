/* AWS credentials, found the way AWS tools find them: the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials, profile AWS_PROFILE or "default"), then the instance
 * metadata service (IMDSv2: a session token by PUT, then the role's
 * credentials), refreshed before they expire. They are never logged and
 * never read from the config file. */
#ifndef ASG_CREDS_H
#define ASG_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aws_creds {
    char access_key[128];
    char secret_key[128];
    char token[4096];        /* "" when none */
    int64_t expires_ms;      /* Unix ms; 0 = does not expire */
    char source[32];         /* "environment", "shared file", "instance metadata" */
};

/* Walks the chain; returns 0, or -1 with what was tried in err. */
int aws_creds_load(struct aws_creds *c, char *err, size_t errsize);

/* True when c must be loaded again (expired, or expiring within 5 min). */
bool aws_creds_stale(const struct aws_creds *c, int64_t now_wall_ms);

/* Overwrites the secrets in memory. */
void aws_creds_wipe(struct aws_creds *c);

/* Parses an ISO 8601 UTC time ("2026-11-22T16:00:00Z") to Unix ms; -1 on
 * error. */
int64_t aws_parse_iso8601(const char *s);

#endif
