/* The simulated load: a gradual, mean-reverting, bounded random walk.
 * Each step pulls the load a little toward the mean, adds a small gaussian
 * nudge, and is clipped to max_step, so the load never jumps; it always
 * stays inside 0..1. The same seed gives the same sequence. */
#ifndef ASG_WALK_H
#define ASG_WALK_H

#include <stdint.h>

struct walk {
    uint64_t rng;
    double x;        /* current load */
    double mean;     /* level the walk returns to */
    double pull;     /* fraction of the distance to the mean per step */
    double sigma;    /* size of the random nudge */
    double max_step; /* hard bound on |x(t+1) - x(t)| */
};

void walk_init(struct walk *w, uint64_t seed, double start);
double walk_step(struct walk *w);
/* Uniform in [0,1) from the walk's generator (jitter, seeds). */
double walk_uniform(struct walk *w);

#endif
