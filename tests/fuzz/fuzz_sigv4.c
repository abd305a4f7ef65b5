/* Fuzz target: the SigV4 canonicaliser and signer. The input is split in
 * lines: method, path, query, then "name:value" headers up to an empty
 * line, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../aws/sigv4.h"

#include "fuzz_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;
    char *lines[3] = {"", "", ""};
    struct sigv4_header h[16];
    size_t nh = 0;
    char *p = text, *body = "";
    for (int k = 0; k < 3 && p; k++) {
        lines[k] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    while (p && *p && nh < 16) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (!*p) {
            body = nl ? nl + 1 : "";
            break;
        }
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            h[nh].name = p;
            h[nh].value = colon + 1;
            nh++;
        }
        p = nl ? nl + 1 : NULL;
    }
    struct sigv4_request rq = {lines[0], lines[1], lines[2], h, nh, (const uint8_t *)body, strlen(body)};
    struct sigv4_credentials cr = {"AKID", "secret", size % 2 ? "token" : NULL};
    struct sigv4_scope sc = {"us-east-1", "ec2", "20261122T100000Z"};
    struct sigv4_result r;
    if (sigv4_sign(&rq, &cr, &sc, &r) == 0) {
        if (strlen(r.signature) != 64 || strspn(r.signature, "0123456789abcdef") != 64)
            abort();
        sigv4_result_free(&r);
    }
    free(text);
    return 0;
}
