/* Fuzz target: every Agent and Health request decoder and handler. The
 * first byte picks the method, the rest is the request message. */
#include <grpc/status.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/service.h"
#include "../../common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct agent a;
    static int ready;
    if (!ready) {
        log_set_level(LOG_LVL_ERROR);
        copy_str(a.id, sizeof a.id, "fuzz-1");
        walk_init(&a.walk, 1, 0.3);
        ready = 1;
    }
    if (size == 0)
        return 0;
    rpc_handler handlers[] = {agent_h_ping, agent_h_metrics, agent_h_set_load, agent_h_health};
    struct rpc_reply r;
    memset(&r, 0, sizeof r);
    handlers[data[0] % 4](&a, data + 1, size - 1, NULL, &r);
    if (r.status == GRPC_STATUS_OK && !r.data)
        abort();
    if (a.walk.x < 0 || a.walk.x > 1 || a.walk.x != a.walk.x)
        abort(); /* no request may put the load outside 0..1 */
    free(r.data);
    return 0;
}
