/* Fuzz target: the config loader (any bytes as a config file). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/config.h"
#include "../../common/util.h"

#include "fuzz_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;
    struct asg_config c;
    char err[512];
    if (config_load_string(text, "fuzz.cfg", &c, err, sizeof err) == 0) {
        /* Whatever is accepted obeys the rules between keys. (A probe
         * timeout may exceed the interval: an agent never has two probes
         * out, so it only slows that agent's probes; asg.cfg(5).) */
        if (c.max_instances < c.min_instances || c.desired_instances < c.min_instances ||
            c.desired_instances > c.max_instances || c.scale_in_below >= c.scale_out_above ||
            !memchr(c.group_name, 0, sizeof c.group_name))
            abort();
    } else if (strncmp(err, "fuzz.cfg", 8) != 0) {
        abort(); /* every error names the file */
    }
    free(text);
    return 0;
}
