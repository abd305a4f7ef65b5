/* Demand forecasting for the predictive policy: pure functions over a
 * bounded history (struct forecast, kept in the table so that a restarted
 * controller remembers). Demand is in instances' worth of load (the sum of
 * the instances' loads); time is the controller's monotonic clock, so the
 * daily pattern needs no time zone: a slot is the same 5 minutes of every
 * 24 hours since the clock started.
 *
 * Three estimates of the demand `ahead` ms from now:
 *   level   the busiest of the last 5 minutes (or now, if higher): demand
 *           that came back once is expected back;
 *   trend   the level carried along the slope of the last 10 minutes;
 *   daily   the same time yesterday, scaled by how today compares with
 *           yesterday over the last half hour (as AWS predictive scaling
 *           forecasts from past days); used only once a day is recorded
 *           and while it has been right (its error under FC_DAILY_TRUST).
 * The forecast is the highest of those in use. */
#ifndef ASG_FORECAST_H
#define ASG_FORECAST_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/group.h"

#define FC_DAILY_TRUST 0.25   /* relative error above which the daily pattern is ignored */

struct fc_outlook {
    double level, trend, daily;   /* daily < 0 when not in use */
    double forecast;              /* the highest of those in use */
    double noise;                 /* minute-to-minute change, relative */
    double spread;                /* minute-to-minute change over sqrt(level) */
};

void fc_observe(struct forecast *f, double demand, int64_t now);
struct fc_outlook fc_outlook(const struct forecast *f, double demand_now, int64_t now, int64_t ahead_ms);

#endif
