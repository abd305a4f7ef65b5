/* The official AWS SigV4 test suite (../shared/testdata/aws/sigv4-testsuite):
 * every case's canonical request, string to sign and Authorization. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../aws/sigv4.h"
#include "check_suites.h"

#define MAX_CASES 64
static char cases[MAX_CASES][512];
static int ncases;

static const char *suite_dir(void)
{
    const char *d = getenv("ASG_TESTDATA");
    static char path[512];
    snprintf(path, sizeof path, "%s/aws/sigv4-testsuite", d ? d : "../shared/testdata");
    return path;
}

/* A case is a folder holding NAME/NAME.req; folders nest (normalize-path/). */
static void find_cases(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && ncases < MAX_CASES) {
        if (e->d_name[0] == '.')
            continue;
        char sub[512], req[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(req, sizeof req, "%s/%s.req", sub, e->d_name);
        if (access(req, R_OK) == 0)
            snprintf(cases[ncases++], sizeof cases[0], "%s", sub);
        find_cases(sub);
    }
    closedir(d);
}

static char *slurp(const char *dir, const char *ext)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s", dir, strrchr(dir, '/') + 1, ext);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

struct parsed {
    char method[16];
    char *path, *query;
    struct sigv4_header h[32];
    char *values[32];
    size_t nh;
    const char *body;
};

/* Request line "METHOD TARGET HTTP/1.1" (the target may hold spaces),
 * header lines (a line starting with white space continues the previous
 * one), a blank line, the body. */
static void parse_req(char *text, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    char *line_end = strchr(text, '\n');
    if (line_end)
        *line_end = '\0';
    char *sp1 = strchr(text, ' '), *sp2 = strrchr(text, ' ');
    ck_assert(sp1 && sp2 && sp2 > sp1);
    snprintf(p->method, sizeof p->method, "%.*s", (int)(sp1 - text), text);
    *sp2 = '\0';
    p->path = sp1 + 1;
    char *q = strchr(p->path, '?');
    if (q) {
        *q = '\0';
        p->query = q + 1;
    }
    char *cur = line_end ? line_end + 1 : NULL;
    p->body = "";
    while (cur && *cur) {
        char *nl = strchr(cur, '\n');
        if (nl)
            *nl = '\0';
        if (*cur == '\0') { /* blank line: the body follows */
            p->body = nl ? nl + 1 : "";
            break;
        }
        if ((*cur == ' ' || *cur == '\t') && p->nh) {
            char *prev = p->values[p->nh - 1];
            size_t need = strlen(prev) + strlen(cur) + 2;
            char *joined = malloc(need);
            snprintf(joined, need, "%s %s", prev, cur);
            free(prev);
            p->values[p->nh - 1] = joined;
            p->h[p->nh - 1].value = joined;
        } else {
            char *colon = strchr(cur, ':');
            ck_assert(colon && p->nh < 32);
            *colon = '\0';
            p->h[p->nh].name = cur;
            p->values[p->nh] = strdup(colon + 1);
            p->h[p->nh].value = p->values[p->nh];
            p->nh++;
        }
        cur = nl ? nl + 1 : NULL;
    }
}

START_TEST(test_suite_case)
{
    const char *dir = cases[_i];
    char *req = slurp(dir, "req"), *creq = slurp(dir, "creq");
    char *sts = slurp(dir, "sts"), *authz = slurp(dir, "authz");
    struct parsed p;
    parse_req(req, &p);
    /* The token of get-vanilla-with-session-token appears only in .creq. */
    char token[512] = "";
    int has_token_header = 0;
    for (size_t i = 0; i < p.nh; i++)
        has_token_header |= strcasecmp(p.h[i].name, "x-amz-security-token") == 0;
    const char *t = strstr(creq, "\nx-amz-security-token:");
    if (t && !has_token_header)
        sscanf(t + 22, "%511[^\n]", token);
    struct sigv4_request rq = {p.method, p.path, p.query, p.h, p.nh,
                               (const uint8_t *)p.body, strlen(p.body)};
    struct sigv4_credentials cr = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                   token[0] ? token : NULL};
    struct sigv4_scope sc = {"us-east-1", "service", "20150830T123600Z"};
    struct sigv4_result r;
    ck_assert_int_eq(sigv4_sign(&rq, &cr, &sc, &r), 0);
    ck_assert_msg(strcmp(r.canonical_request, creq) == 0, "%s: canonical request\n--- got\n%s\n--- want\n%s",
                  dir, r.canonical_request, creq);
    ck_assert_msg(strcmp(r.string_to_sign, sts) == 0, "%s: string to sign\n%s\n--- want\n%s", dir,
                  r.string_to_sign, sts);
    ck_assert_msg(strcmp(r.authorization, authz) == 0, "%s: authorization\n%s\n--- want\n%s", dir,
                  r.authorization, authz);
    sigv4_result_free(&r);
    for (size_t i = 0; i < p.nh; i++)
        free(p.values[i]);
    free(req);
    free(creq);
    free(sts);
    free(authz);
}
END_TEST

START_TEST(test_suite_present)
{
    ck_assert_msg(ncases == 34, "found %d SigV4 cases under %s, expected 34", ncases, suite_dir());
}
END_TEST

START_TEST(test_amz_date_and_encoding)
{
    char d[17];
    sigv4_amz_date(1440938160LL, d);
    ck_assert_str_eq(d, "20150830T123600Z");
    char *e = sigv4_uri_encode("a b/c~ሴ", strlen("a b/c~ሴ"), 0);
    ck_assert_str_eq(e, "a%20b%2Fc~%E1%88%B4");
    free(e);
}
END_TEST

Suite *sigv4_suite(void)
{
    find_cases(suite_dir());
    Suite *s = suite_create("sigv4");
    TCase *tc = tcase_create("aws-suite");
    tcase_add_test(tc, test_suite_present);
    tcase_add_test(tc, test_amz_date_and_encoding);
    if (ncases)
        tcase_add_loop_test(tc, test_suite_case, 0, ncases);
    suite_add_tcase(s, tc);
    return s;
}
