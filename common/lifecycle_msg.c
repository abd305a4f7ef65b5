/* Lifecycle hooks' messages and answers (lifecycle_msg.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include "group.h"
#include "lifecycle_msg.h"

static const char *const kind_names[HOOK_KINDS] = {"launching", "terminating"};
const char *hook_kind_name(int kind) { return kind >= 0 && kind < HOOK_KINDS ? kind_names[kind] : "?"; }

static const char *const outcome_names[] = {"continue", "abandon", "later", "default"};
const char *hook_outcome_name(int o) { return o >= HO_CONTINUE && o <= HO_DEFAULT ? outcome_names[o] : "?"; }

void hook_json(const struct hook_facts *f, struct strbuf *b)
{
    sb_printf(b, "{\"group\":");
    sb_json_str(b, f->group);
    sb_printf(b, ",\"instance\":");
    sb_json_str(b, f->instance);
    sb_printf(b, ",\"addr\":");
    sb_json_str(b, f->addr);
    sb_printf(b, ",\"service_addr\":");
    sb_json_str(b, f->service_addr);
    sb_printf(b, ",\"spec_generation\":%llu,\"reason\":", (unsigned long long)f->spec_gen);
    sb_json_str(b, f->reason);
    sb_printf(b, ",\"transition\":\"%s\",\"timeout_s\":%d}\n", hook_kind_name(f->kind), f->timeout_s);
}

/* NAME=value into buf at *used, control characters as '?'; false when it
 * does not fit. */
static bool put_var(char *buf, size_t size, size_t *used, char **envp, int *n, size_t max, const char *name,
                    const char *value)
{
    size_t need = strlen(name) + 1 + strlen(value) + 1;
    if ((size_t)*n + 1 >= max || *used + need > size)
        return false;
    char *at = buf + *used;
    snprintf(at, need, "%s=%s", name, value);
    for (char *p = at + strlen(name) + 1; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
    envp[(*n)++] = at;
    *used += need;
    return true;
}

int hook_env(const struct hook_facts *f, char *buf, size_t bufsize, char **envp, size_t max)
{
    char gen[24], timeout[16];
    snprintf(gen, sizeof gen, "%llu", (unsigned long long)f->spec_gen);
    snprintf(timeout, sizeof timeout, "%d", f->timeout_s);
    const char *vars[][2] = {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
                             {"ASG_GROUP", f->group},
                             {"ASG_INSTANCE", f->instance},
                             {"ASG_ADDR", f->addr},
                             {"ASG_SERVICE_ADDR", f->service_addr},
                             {"ASG_SPEC_GENERATION", gen},
                             {"ASG_REASON", f->reason},
                             {"ASG_TRANSITION", hook_kind_name(f->kind)},
                             {"ASG_TIMEOUT_S", timeout}};
    size_t used = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (!put_var(buf, bufsize, &used, envp, &n, max, vars[i][0], vars[i][1]))
            return -1;
    envp[n] = NULL;
    return n;
}

int hook_exit_outcome(int wstatus)
{
    if (!WIFEXITED(wstatus))
        return HO_DEFAULT;
    int code = WEXITSTATUS(wstatus);
    if (code == 0)
        return HO_CONTINUE;
    if (code == HOOK_EXIT_LATER)
        return HO_LATER;
    if (code == 126 || code == 127)
        return HO_DEFAULT;
    return HO_ABANDON;
}

/* The "result" of a JSON object body: HO_*, -1 when there is none, -2
 * when it names no result we know. */
static int body_result(const char *body, size_t len)
{
    if (len == 0)
        return -1;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return -2;
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    json_tokener_free(tok);
    int r = -1;
    json_object *v;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "result", &v)) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        r = strcmp(s, "continue") == 0 ? HO_CONTINUE
            : strcmp(s, "abandon") == 0 ? HO_ABANDON
            : strcmp(s, "later") == 0   ? HO_LATER
                                        : -2;
    }
    json_object_put(o);
    return r;
}

int hook_http_outcome(bool transport, long code, const char *body, size_t len)
{
    if (!transport || code < 200 || code > 299)
        return HO_DEFAULT;
    int r = body_result(body, len);
    if (r == -2)
        return HO_DEFAULT;
    if (r >= 0)
        return r;
    return code == 202 ? HO_LATER : HO_CONTINUE;
}

int hook_result_of(int outcome, int def)
{
    if (outcome == HO_LATER)
        return -1;
    if (outcome == HO_DEFAULT)
        return def ? HO_ABANDON : HO_CONTINUE;
    return outcome;
}

int64_t hook_deadline(int64_t from, int timeout_s) { return from + (int64_t)timeout_s * 1000; }

bool hook_timed_out(int64_t deadline, int64_t now) { return now >= deadline; }

bool hook_line_allowed(struct hook_lines *l, int per_s, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    if (sec != l->second) {
        l->second = sec;
        l->n = 0;
    }
    if (l->n >= per_s) {
        l->dropped++;
        return false;
    }
    l->n++;
    return true;
}

void hook_line_clean(const char *in, size_t len, char *out, size_t size)
{
    while (len && (in[len - 1] == '\n' || in[len - 1] == '\r'))
        len--;
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[i] = ch < ' ' || ch == 0x7f ? '?' : (char)ch;
    }
    out[n] = '\0';
}

static const char *const action_names[LC_COUNT] = {[LC_CONTINUE] = "continue", [LC_ABANDON] = "abandon",
                                                    [LC_HEARTBEAT] = "heartbeat"};
const char *lifecycle_action_name(int a) { return a >= LC_CONTINUE && a < LC_COUNT ? action_names[a] : "?"; }

int lifecycle_action_of(const char *s)
{
    for (int a = LC_CONTINUE; a < LC_COUNT; a++)
        if (strcmp(s, action_names[a]) == 0)
            return a;
    return 0;
}

const char *lifecycle_action_refused(int action, uint32_t state, bool started)
{
    if (action < LC_CONTINUE || action >= LC_COUNT)
        return "no such action";
    if (state != ROW_LAUNCH_WAIT && state != ROW_TERM_WAIT)
        return "no lifecycle hook holds it";
    if (action == LC_HEARTBEAT && !started)
        return "its hook waits its turn: its time has not started";
    return NULL;
}
