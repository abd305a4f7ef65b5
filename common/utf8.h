/* UTF-8: what is valid (RFC 3629), for text that enters the manager
 * (config strings, agents' RPC strings, API bodies) and for the JSON it
 * writes. */
#ifndef ASG_UTF8_H
#define ASG_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1..4) of the valid UTF-8 sequence at s, of at most n bytes,
 * with its code point in *cp; 0 when the bytes there are not one: a stray
 * continuation byte, a sequence cut short, an overlong form, a surrogate
 * (U+D800..U+DFFF), anything above U+10FFFF, or the bytes 0xC0, 0xC1 and
 * 0xF5..0xFF, which never occur. */
size_t utf8_sequence(const unsigned char *s, size_t n, uint32_t *cp);

/* True when all of s[0..n) is valid UTF-8; otherwise false, with the
 * offset of the first byte that is not in *bad (when bad is not NULL). */
bool utf8_valid(const char *s, size_t n, size_t *bad);

#endif
