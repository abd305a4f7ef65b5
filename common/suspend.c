/* The processes' names (suspend.h). */
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "suspend.h"
#include "util.h"

static const char *const names[SUSP_COUNT] = {
    [SUSP_LAUNCH] = "launch",       [SUSP_TERMINATE] = "terminate", [SUSP_REPLACE] = "replace",
    [SUSP_SCALE] = "scale",         [SUSP_RECONCILE] = "reconcile", [SUSP_BALANCER] = "balancer",
    [SUSP_ROLLOUT] = "rollout"};

const char *suspend_process_name(uint32_t p) { return p < SUSP_COUNT ? names[p] : "?"; }

uint32_t suspend_bit_of(const char *name)
{
    for (uint32_t p = 0; p < SUSP_COUNT; p++)
        if (strcmp(name, names[p]) == 0)
            return SUSP_BIT(p);
    return 0;
}

void suspend_mask_text(uint32_t mask, char *out, size_t size)
{
    size_t used = 0;
    if (size)
        out[0] = '\0';
    for (uint32_t p = 0; p < SUSP_COUNT && used < size; p++)
        if (mask & SUSP_BIT(p)) {
            int k = snprintf(out + used, size - used, "%s%s", used ? ", " : "", names[p]);
            if (k < 0)
                break;
            used += (size_t)k;
        }
}

bool suspend_by_valid(const char *by, size_t len)
{
    if (len == 0 || len >= SUSPEND_BY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (by[i] < 0x20 || by[i] > 0x7e || by[i] == '"' || by[i] == '\\')
            return false;
    return true;
}

void suspend_json(struct strbuf *b, uint32_t mask, const struct suspend_mark marks[])
{
    sb_printf(b, "[");
    bool first = true;
    for (uint32_t p = 0; p < SUSP_COUNT; p++) {
        if (!suspend_holds(mask, p))
            continue;
        char by[SUSPEND_BY_MAX];
        copy_str(by, sizeof by, marks[p].by); /* the table's copy may lack its NUL */
        sb_printf(b, "%s{\"process\":\"%s\",\"by\":", first ? "" : ",", suspend_process_name(p));
        sb_json_str(b, by);
        sb_printf(b, ",\"since_ms\":%lld}", (long long)marks[p].since_wall_ms);
        first = false;
    }
    sb_printf(b, "]");
}
