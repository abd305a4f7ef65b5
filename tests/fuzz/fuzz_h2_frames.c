/* Fuzz target: the probe engine reading an agent's HTTP/2 frames (a
 * hostile agent writes whatever it likes). The first byte picks how the
 * bytes arrive: in chunks of 1..256 bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "../../proto/h2probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t reply[H2P_REPLY_MAX];
    size_t len = sizeof reply;
    int st = h2p_feed_for_test(data + 1, size - 1, (size_t)data[0] + 1, reply, &len, NULL, NULL);
    /* an outcome is a gRPC status, or the call still open */
    if (st < -1 || st > 16 || (st == 0 && len > H2P_REPLY_MAX))
        abort();
    return 0;
}
