#include "strbuf.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void grow(struct strbuf *b, size_t need)
{
    if (b->len + need + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p)
        abort();
    b->s = p;
    b->cap = cap;
}

void sb_add(struct strbuf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Valid UTF-8 is written as it is: JSON is UTF-8 (RFC 8259). Escaped:
 * the quote, the backslash, control characters (DEL too), and U+2028 and
 * U+2029, which JSON allows raw but JavaScript source before ES2019 does
 * not. Each byte that does not begin a valid sequence becomes U+FFFD, so
 * whatever the input, the output is valid UTF-8 and valid JSON. */
void sb_json_str(struct strbuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_sequence(u + i, n - i, &cp);
        if (len == 0) {
            sb_add(b, "\\ufffd", 6);
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\')
            sb_printf(b, "\\%c", (int)cp);
        else if (cp == '\n')
            sb_add(b, "\\n", 2);
        else if (cp == '\t')
            sb_add(b, "\\t", 2);
        else if (cp == '\r')
            sb_add(b, "\\r", 2);
        else if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029)
            sb_printf(b, "\\u%04x", (unsigned)cp);
        else
            sb_add(b, s + i, len);
        i += len;
    }
    sb_add(b, "\"", 1);
}

void sb_free(struct strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}
