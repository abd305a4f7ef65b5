/* EC2 Query API responses, parsed with libxml2. Elements are matched by
 * local name (the namespace varies between API versions and emulators) and
 * by position in the tree, never by searching the text. */
#ifndef ASG_EC2_XML_H
#define ASG_EC2_XML_H

#include <stdbool.h>
#include <stddef.h>

#define EC2_MAX_TAGS 16

struct ec2_tag {
    char key[128];
    char value[256];
};

struct ec2_instance {
    char id[32];
    int state_code;          /* code & 0xFF: 0 pending, 16 running, 32 shutting-down, 48 terminated, 64 stopping, 80 stopped */
    char state_name[24];
    char private_ip[48];
    char launch_time[40];
    char client_token[72];
    char image_id[32];
    char instance_type[32];
    struct ec2_tag tags[EC2_MAX_TAGS];
    int ntags;
};

/* An ELBv2 target's health (DescribeTargetHealth). */
struct elb_target {
    char id[32];
    int port;                /* 0 when absent */
    char state[24];          /* initial, healthy, unhealthy, unused, draining, unavailable */
    char reason[64];
};

enum ec2_kind { EC2_RESP_OK, EC2_RESP_ERROR };

struct ec2_response {
    enum ec2_kind kind;
    char root[64];           /* "DescribeInstancesResponse", "Response", ... */
    char request_id[96];
    char error_code[96];
    char error_message[256];
    struct ec2_instance *instances; /* malloc'd */
    size_t ninstances;
    char next_token[2048];   /* "" when absent or empty */
    struct elb_target *targets; /* malloc'd: DescribeTargetHealth */
    size_t ntargets;
};

/* The EC2 API's responses, and those of the Elastic Load Balancing API
 * (version 2015-12-01: ActionResponse/ActionResult, ResponseMetadata) that
 * the balancer uses. Returns 0, or -1 with a reason in err when the
 * document is not such a response (not XML, unknown shape, a value too long for its field). */
int ec2_parse(const char *xml, size_t len, struct ec2_response *out,
              char *err, size_t errsize);
void ec2_response_free(struct ec2_response *r);

/* The value of tag key on an instance, or NULL. */
const char *ec2_tag_value(const struct ec2_instance *in, const char *key);

#endif
