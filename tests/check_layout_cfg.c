/* shm/table.h compiled against a config with one key more (a big one):
 * common/config.h's include guard is taken here first, so that if the
 * table's header used struct asg_config (it embedded it until layout
 * version 19), it would get this one and grow with it. It does not: the
 * config is published apart (shm/confseg.h). check_layout.c compares. */
#define ASG_CONFIG_H
struct asg_config {
    char every_key_of_today[8192];
    char one_key_more[65536];
};

#include <stddef.h>

#include "../shm/table.h"
#include "check_layout.h"

struct layout_seen layout_with_bigger_config(void)
{
    struct layout_seen s = {sizeof(struct asg_config), sizeof(struct table_hdr), sizeof(struct table_row),
                            sizeof(struct table_log), offsetof(struct table_hdr, relay_grpc_waiting)};
    return s;
}
