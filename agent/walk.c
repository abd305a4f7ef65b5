#include "walk.h"

#include <math.h>

/* splitmix64: small, fast, and fully determined by the seed. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double walk_uniform(struct walk *w)
{
    return (double)(next_u64(&w->rng) >> 11) / 9007199254740992.0; /* 2^53 */
}

static double gaussian(struct walk *w)
{
    double u1 = walk_uniform(w), u2 = walk_uniform(w);
    if (u1 < 1e-12)
        u1 = 1e-12;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void walk_init(struct walk *w, uint64_t seed, double start)
{
    w->rng = seed;
    w->x = clamp(start, 0.0, 1.0);
    w->mean = 0.35;
    w->pull = 0.02;
    w->sigma = 0.015;
    w->max_step = 0.04;
}

double walk_step(struct walk *w)
{
    double step = w->pull * (w->mean - w->x) + w->sigma * gaussian(w);
    step = clamp(step, -w->max_step, w->max_step);
    double next = w->x + step;
    /* Reflect at the edges rather than stick to them. */
    if (next < 0.0)
        next = -next;
    if (next > 1.0)
        next = 2.0 - next;
    w->x = clamp(next, 0.0, 1.0);
    return w->x;
}
