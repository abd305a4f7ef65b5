#include "utf8.h"

/* The smallest code point each length may carry: a shorter form would be
 * an overlong one, which RFC 3629 forbids (it hid '/' and NUL from
 * checks that looked for the one-byte form). */
static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};

size_t utf8_sequence(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char b = s[0];
    size_t len;
    uint32_t v;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
        len = 2, v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, v = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, v = b & 0x07;
    } else {
        return 0; /* a continuation byte first, or 0xC0, 0xC1, 0xF5..0xFF */
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < least[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

bool utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_sequence(u + i, n - i, &cp);
        if (len == 0) {
            if (bad)
                *bad = i;
            return false;
        }
        i += len;
    }
    return true;
}
