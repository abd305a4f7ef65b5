/* Fuzz target: the EC2 response parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../aws/ec2_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ec2_response r;
    char err[256];
    if (ec2_parse((const char *)data, size, &r, err, sizeof err) == 0) {
        for (size_t i = 0; i < r.ninstances; i++)
            if (r.instances[i].state_code > 255 || !r.instances[i].id[0] ||
                !memchr(r.instances[i].id, 0, sizeof r.instances[i].id))
                abort();
        if (r.kind == EC2_RESP_ERROR && !r.error_code[0])
            abort();
        ec2_response_free(&r);
    }
    return 0;
}
