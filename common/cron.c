/* Cron-style times (see cron.h). */
#include "cron.h"

#include <stdio.h>
#include <string.h>

static const char *const field_names[5] = {"minute", "hour", "day of month", "month", "day of week"};
static const int lo_of[5] = {0, 0, 1, 1, 0}, hi_of[5] = {59, 23, 31, 12, 7};

static bool number(const char **p, int *v)
{
    if (**p < '0' || **p > '9')
        return false;
    long n = 0;
    while (**p >= '0' && **p <= '9' && n < 1000)
        n = n * 10 + (*(*p)++ - '0');
    *v = (int)n;
    return true;
}

/* One field: "*", "*\/S", "A", "A-B", "A-B/S", comma-separated. */
static int field(const char *text, int f, uint64_t *bits, bool *any, char *err, size_t errsize)
{
    *bits = 0;
    *any = strcmp(text, "*") == 0;
    const char *p = text;
    for (;;) {
        int a, b, step = 1;
        if (*p == '*') {
            p++;
            a = lo_of[f];
            b = hi_of[f];
        } else if (number(&p, &a)) {
            b = a;
            if (*p == '-' && (p++, !number(&p, &b)))
                goto bad;
        } else {
            goto bad;
        }
        if (*p == '/' && (p++, !number(&p, &step) || step < 1))
            goto bad;
        if (a < lo_of[f] || b > hi_of[f] || a > b) {
            snprintf(err, errsize, "%s %d-%d is outside %d..%d", field_names[f], a, b, lo_of[f], hi_of[f]);
            return -1;
        }
        for (int v = a; v <= b; v += step)
            *bits |= 1ULL << (f == 4 && v == 7 ? 0 : v);
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            goto bad;
    }
bad:
    snprintf(err, errsize, "%s '%.20s' is not *, N, N-M or a list of them (with /STEP)", field_names[f], text);
    return -1;
}

int cron_parse(const char *spec, struct cron *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    char buf[128], *save = NULL, *part[6];
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, errsize, "longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    strcpy(buf, spec);
    int n = 0;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 6)
            part[n++] = t;
        else
            n++;
    if (n != 5) {
        snprintf(err, errsize, "'%s' has %d fields, not 5 (minute hour day-of-month month day-of-week)", spec, n);
        return -1;
    }
    uint64_t bits[5];
    bool any[5];
    for (int f = 0; f < 5; f++)
        if (field(part[f], f, &bits[f], &any[f], err, errsize) != 0)
            return -1;
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint32_t)bits[3];
    out->dow = (uint32_t)bits[4];
    out->dom_any = any[2];
    out->dow_any = any[4];
    return 0;
}

bool cron_matches(const struct cron *c, const struct tm *tm)
{
    if (!(c->minute >> tm->tm_min & 1) || !(c->hour >> tm->tm_hour & 1) || !(c->month >> (tm->tm_mon + 1) & 1))
        return false;
    bool dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;
    /* cron's rule: with both days restricted, either one will do. */
    if (!c->dom_any && !c->dow_any)
        return dom || dow;
    return dom && dow;
}

