/* What check_layout_cfg.c saw of the table's layout, compiled against a
 * bigger struct asg_config than the real one. */
#ifndef ASG_CHECK_LAYOUT_H
#define ASG_CHECK_LAYOUT_H

#include <stddef.h>

struct layout_seen {
    size_t config_size;          /* its struct asg_config */
    size_t hdr_size, row_size, log_size;
    size_t last_hdr_field;       /* offset of the header's last field */
};

struct layout_seen layout_with_bigger_config(void);

#endif
