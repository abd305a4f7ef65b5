#include "notify_api.h"

#include "../report/notify_report.h"

void notify_api_json(struct strbuf *b, const struct snapshot *s)
{
    sb_printf(b, "{");
    notify_render_json(b, s);
    sb_printf(b, "}\n");
}
