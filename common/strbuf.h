/* A growable string for rendering JSON and text. Aborts on out of memory
 * (a renderer has no sensible way to carry on half-written). */
#ifndef ASG_STRBUF_H
#define ASG_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *s;
    size_t len, cap;
};

void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_add(struct strbuf *b, const char *s, size_t n);
/* A JSON string literal, quotes included: valid UTF-8 as it is, control
 * characters, quote, backslash, U+2028 and U+2029 escaped, and each byte
 * of invalid UTF-8 replaced by U+FFFD (see strbuf.c). */
void sb_json_str(struct strbuf *b, const char *s);
void sb_free(struct strbuf *b);

#endif
