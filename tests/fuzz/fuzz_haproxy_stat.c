/* Fuzz target: HAProxy's `show stat` CSV, as the balancer reads it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lb/lb.h"
#include "fuzz_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size), err[256];
    struct lb_member *m;
    size_t n;
    if (text && haproxy_parse_stat(text, "web", &m, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (!memchr(m[i].name, 0, sizeof m[i].name) || !memchr(m[i].addr, 0, sizeof m[i].addr) ||
                m[i].admin < LBM_READY || m[i].admin > LBM_OTHER)
                abort();
        free(m);
    }
    /* The backend's own row (scale to zero's demand) from the same answer. */
    struct lb_demand d;
    if (text && haproxy_parse_backend(text, "web", &d, err, sizeof err) == 0 && d.read_ms != 0)
        abort();
    free(text);
    return 0;
}
