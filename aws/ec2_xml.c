#include "ec2_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool named(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

struct ctx {
    char *err;
    size_t errsize;
    int failed;
};

/* Copies the text of n's child `name` into dst; a missing element leaves
 * dst empty, a value too long for dst is an error (never truncated: a
 * truncated id would name another instance). */
static void text_of(struct ctx *c, const xmlNode *n, const char *name, char *dst, size_t size)
{
    dst[0] = '\0';
    const xmlNode *e = child(n, name);
    if (!e)
        return;
    xmlChar *t = xmlNodeGetContent(e);
    if (!t)
        return;
    size_t len = strlen((const char *)t);
    if (len >= size) {
        if (!c->failed)
            snprintf(c->err, c->errsize, "<%s> is %zu bytes, longer than %zu", name, len, size - 1);
        c->failed = 1;
    } else {
        memcpy(dst, t, len + 1);
    }
    xmlFree(t);
}

static int state_code(struct ctx *c, const xmlNode *state, char *name, size_t nsize)
{
    char code[16];
    text_of(c, state, "code", code, sizeof code);
    text_of(c, state, "name", name, nsize);
    char *end;
    long v = strtol(code, &end, 10);
    if (!code[0] || *end || v < 0 || v > 65535) {
        if (!c->failed)
            snprintf(c->err, c->errsize, "instance state code '%s' is not a 16-bit number", code);
        c->failed = 1;
        return -1;
    }
    return (int)(v & 0xFF); /* the high byte is internal to EC2 */
}

static void parse_instance(struct ctx *c, const xmlNode *item, struct ec2_instance *in)
{
    memset(in, 0, sizeof *in);
    text_of(c, item, "instanceId", in->id, sizeof in->id);
    if (!in->id[0] && !c->failed) {
        snprintf(c->err, c->errsize, "an instance item has no <instanceId>");
        c->failed = 1;
    }
    /* Describe/Run: instanceState; Terminate: currentState. */
    const xmlNode *st = child(item, "instanceState");
    if (!st)
        st = child(item, "currentState");
    in->state_code = st ? state_code(c, st, in->state_name, sizeof in->state_name) : -1;
    text_of(c, item, "privateIpAddress", in->private_ip, sizeof in->private_ip);
    text_of(c, item, "launchTime", in->launch_time, sizeof in->launch_time);
    text_of(c, item, "clientToken", in->client_token, sizeof in->client_token);
    text_of(c, item, "imageId", in->image_id, sizeof in->image_id);
    text_of(c, item, "instanceType", in->instance_type, sizeof in->instance_type);
    for (const xmlNode *t = child(child(item, "tagSet"), "item"); t; t = t->next) {
        if (!named(t, "item") || in->ntags >= EC2_MAX_TAGS)
            continue;
        struct ec2_tag *tag = &in->tags[in->ntags++];
        text_of(c, t, "key", tag->key, sizeof tag->key);
        text_of(c, t, "value", tag->value, sizeof tag->value);
    }
}

/* DescribeTargetHealthResult/TargetHealthDescriptions/member. */
static void collect_targets(struct ctx *c, const xmlNode *set, struct ec2_response *out)
{
    for (const xmlNode *it = set ? set->children : NULL; it && !c->failed; it = it->next) {
        if (!named(it, "member"))
            continue;
        struct elb_target *grown = realloc(out->targets, (out->ntargets + 1) * sizeof *grown);
        if (!grown) {
            snprintf(c->err, c->errsize, "out of memory");
            c->failed = 1;
            return;
        }
        out->targets = grown;
        struct elb_target *t = &out->targets[out->ntargets++];
        memset(t, 0, sizeof *t);
        const xmlNode *target = child(it, "Target");
        char port[16];
        text_of(c, target, "Id", t->id, sizeof t->id);
        text_of(c, target, "Port", port, sizeof port);
        text_of(c, child(it, "TargetHealth"), "State", t->state, sizeof t->state);
        text_of(c, child(it, "TargetHealth"), "Reason", t->reason, sizeof t->reason);
        char *end;
        long v = strtol(port, &end, 10);
        if (!c->failed && (!t->id[0] || (port[0] && (*end || v < 1 || v > 65535)))) {
            snprintf(c->err, c->errsize, "a target without an <Id> or with port '%s'", port);
            c->failed = 1;
        }
        t->port = port[0] ? (int)v : 0;
    }
}

/* Collects the items of a set (instancesSet / instanceStatusSet). */
static void collect(struct ctx *c, const xmlNode *set, struct ec2_response *out)
{
    for (const xmlNode *it = set ? set->children : NULL; it && !c->failed; it = it->next) {
        if (!named(it, "item"))
            continue;
        struct ec2_instance *grown = realloc(out->instances, (out->ninstances + 1) * sizeof *grown);
        if (!grown) {
            snprintf(c->err, c->errsize, "out of memory");
            c->failed = 1;
            return;
        }
        out->instances = grown;
        parse_instance(c, it, &out->instances[out->ninstances++]);
    }
}

static void parse_error(struct ctx *c, const xmlNode *root, struct ec2_response *out)
{
    out->kind = EC2_RESP_ERROR;
    /* EC2: <Response><Errors><Error>; some emulators: <ErrorResponse><Error>. */
    const xmlNode *e = child(child(root, "Errors"), "Error");
    if (!e)
        e = child(root, "Error");
    if (!e) {
        snprintf(c->err, c->errsize, "<%s> without an <Error>", (const char *)root->name);
        c->failed = 1;
        return;
    }
    text_of(c, e, "Code", out->error_code, sizeof out->error_code);
    text_of(c, e, "Message", out->error_message, sizeof out->error_message);
    text_of(c, root, "RequestID", out->request_id, sizeof out->request_id);
    if (!out->request_id[0])
        text_of(c, root, "RequestId", out->request_id, sizeof out->request_id);
    if (!out->error_code[0] && !c->failed) {
        snprintf(c->err, c->errsize, "<Error> without a <Code>");
        c->failed = 1;
    }
}

int ec2_parse(const char *xml, size_t len, struct ec2_response *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    struct ctx c = {err, errsize, 0};
    if (len == 0 || len > 64u * 1024 * 1024) {
        snprintf(err, errsize, "response body of %zu bytes", len);
        return -1;
    }
    /* No network access, no entity expansion, no DTD loading. */
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "ec2-response.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *xe = xmlGetLastError();
        snprintf(err, errsize, "not well-formed XML%s%s", xe && xe->message ? ": " : "",
                 xe && xe->message ? xe->message : "");
        err[strcspn(err, "\n")] = '\0';
        return -1;
    }
    const xmlNode *root = xmlDocGetRootElement(doc);
    snprintf(out->root, sizeof out->root, "%s", root ? (const char *)root->name : "");
    if (!root) {
        snprintf(err, errsize, "empty XML document");
        c.failed = 1;
    } else if (named(root, "Response") || named(root, "ErrorResponse")) {
        parse_error(&c, root, out);
    } else {
        size_t n = strlen(out->root);
        if (n < 9 || strcmp(out->root + n - 8, "Response") != 0) {
            snprintf(err, errsize, "root element <%s> is not an EC2 response", out->root);
            c.failed = 1;
        } else {
            out->kind = EC2_RESP_OK;
            text_of(&c, root, "requestId", out->request_id, sizeof out->request_id);
            text_of(&c, root, "nextToken", out->next_token, sizeof out->next_token);
            /* DescribeInstances: reservationSet/item/instancesSet; Run and
             * Terminate: instancesSet; DescribeInstanceStatus: instanceStatusSet. */
            for (const xmlNode *r = child(child(root, "reservationSet"), "item"); r; r = r->next)
                if (named(r, "item"))
                    collect(&c, child(r, "instancesSet"), out);
            collect(&c, child(root, "instancesSet"), out);
            collect(&c, child(root, "instanceStatusSet"), out);
            /* Elastic Load Balancing: ResponseMetadata/RequestId. */
            if (!out->request_id[0])
                text_of(&c, child(root, "ResponseMetadata"), "RequestId", out->request_id,
                        sizeof out->request_id);
            collect_targets(&c, child(child(root, "DescribeTargetHealthResult"), "TargetHealthDescriptions"),
                            out);
        }
    }
    xmlFreeDoc(doc);
    if (c.failed) {
        ec2_response_free(out);
        return -1;
    }
    return 0;
}

void ec2_response_free(struct ec2_response *r)
{
    free(r->targets);
    r->targets = NULL;
    r->ntargets = 0;
    free(r->instances);
    r->instances = NULL;
    r->ninstances = 0;
}

const char *ec2_tag_value(const struct ec2_instance *in, const char *key)
{
    for (int i = 0; i < in->ntags; i++)
        if (strcmp(in->tags[i].key, key) == 0)
            return in->tags[i].value;
    return NULL;
}
