/* A client for the EC2 Query API: form-encoded POSTs, SigV4-signed,
 * Version=2016-11-15, over libcurl. Each call has a timeout; throttling,
 * 5xx and network errors are retried with capped exponential backoff and
 * jitter (every call it makes is idempotent: RunInstances carries a
 * ClientToken). Errors come back typed. */
#ifndef ASG_EC2_H
#define ASG_EC2_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "creds.h"
#include "ec2_xml.h"

#define EC2_API_VERSION "2016-11-15"

enum ec2_error {
    EC2_OK = 0,
    EC2_E_NETWORK,      /* no answer: connection, timeout (retried) */
    EC2_E_THROTTLED,    /* RequestLimitExceeded and friends (retried) */
    EC2_E_SERVER,       /* 5xx, InternalError, Unavailable (retried) */
    EC2_E_NOT_FOUND,    /* InvalidInstanceID.NotFound */
    EC2_E_AUTH,         /* AuthFailure, UnauthorizedOperation, bad signature */
    EC2_E_CLIENT,       /* any other error the request caused */
    EC2_E_MALFORMED,    /* the answer was not an EC2 response */
    EC2_E_CREDENTIALS,  /* no credentials could be found */
    EC2_E_ABORTED,      /* the manager is stopping: no more retries */
};

const char *ec2_error_name(enum ec2_error e);

struct ec2_client {
    char service[32];           /* signing name: "ec2", "elasticloadbalancing" */
    char version[16];           /* the API's Version parameter */
    char endpoint[256];         /* URL the requests go to */
    char host[256];             /* its host[:port], as signed */
    char region[32];
    struct aws_creds creds;
    bool have_creds;
    int timeout_ms;             /* per attempt */
    int max_attempts;
    int backoff_base_ms, backoff_cap_ms;
    uint64_t rng;
    const volatile sig_atomic_t *abort_flag; /* stop retrying when it becomes set */
    uint64_t calls, attempts, retries;
};

/* endpoint NULL or "": https://ec2.REGION.amazonaws.com */
int ec2_client_init(struct ec2_client *c, const char *region, const char *endpoint,
                    int timeout_ms, char *err, size_t errsize);
/* The same Query API client for another AWS service that speaks it (the
 * Elastic Load Balancing API: "elasticloadbalancing", "2015-12-01");
 * endpoint NULL or "": https://SERVICE.REGION.amazonaws.com */
int aws_query_client_init(struct ec2_client *c, const char *service, const char *version,
                          const char *region, const char *endpoint, int timeout_ms, char *err,
                          size_t errsize);
void ec2_client_free(struct ec2_client *c);

/* Form parameters: appended as &KEY=VALUE, both percent-encoded. */
struct ec2_form {
    char buf[16384];
    size_t len;
    bool overflow;
};
void ec2_form_add(struct ec2_form *f, const char *key, const char *value);
void ec2_form_addf(struct ec2_form *f, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One action, with retries. On EC2_OK out holds the parsed response (free
 * it with ec2_response_free); on an error out->error_code may say more. */
enum ec2_error ec2_call(struct ec2_client *c, const char *action, const struct ec2_form *params,
                        struct ec2_response *out, char *err, size_t errsize);

/* Classifies an EC2 error code (also used on HTTP status alone). */
enum ec2_error ec2_classify(long http_status, const char *code);

#endif
