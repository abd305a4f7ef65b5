/* A replay drawn as an SVG picture (asgctl replay --plot): demand against
 * the capacity of the ready instances, and the instances ready and
 * booting, minute by minute (thinned to at most PLOT_COLUMNS columns:
 * each column shows the highest demand and the lowest capacity in it, so
 * no overload is hidden by the thinning). */
#ifndef ASG_PLOT_H
#define ASG_PLOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PLOT_COLUMNS 1200

int plot_replay_svg(FILE *out, const char *title, const uint32_t *demand, const float *ready,
                    const float *booting, size_t n, uint32_t capacity_rpm);

#endif
