/* Demand forecasting (see forecast.h). */
#include "forecast.h"

#include <math.h>
#include <string.h>

#define MINUTE_MS 60000LL
#define TREND_MINUTES 10
#define LEVEL_MINUTES 5u
#define NOISE_ALPHA 0.05f
#define ERR_ALPHA 0.1f

static int slot_of(int64_t t) { return (int)((t / FC_SLOT_MS) % FC_SLOTS); }

/* The i-th latest minute (0 = the last one closed). */
static float recent(const struct forecast *f, uint32_t i)
{
    return f->recent[(f->recent_head + FC_RECENT - 1 - i) % FC_RECENT];
}

static double mean_recent(const struct forecast *f, uint32_t n)
{
    if (n > f->recent_len)
        n = f->recent_len;
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += recent(f, i);
    return n ? s / n : 0;
}

/* How today compares with yesterday over the last half hour; 1 if unknown. */
static double day_ratio(const struct forecast *f, int64_t now)
{
    double today = mean_recent(f, 30), then = 0;
    int n = 0;
    for (int64_t t = now - 30 * MINUTE_MS; t < now; t += FC_SLOT_MS, n++)
        then += f->day[slot_of(t)];
    then /= n ? n : 1;
    if (then < 0.5 || today < 0.5)
        return 1.0;
    double r = today / then;
    return r < 0.5 ? 0.5 : r > 2.0 ? 2.0 : r;
}

static bool daily_known(const struct forecast *f)
{
    return f->slots_seen >= FC_SLOTS;
}

static void close_minute(struct forecast *f)
{
    if (f->minute_n == 0)
        return;
    float m = (float)(f->minute_sum / f->minute_n);
    if (f->recent_len) {
        float prev = recent(f, 0);
        float rel = fabsf(m - prev) / (prev > 1.0f ? prev : 1.0f);
        f->noise += NOISE_ALPHA * (rel - f->noise);
        float z = fabsf(m - prev) / sqrtf(prev > 0.1f ? prev : 0.1f);
        f->spread += NOISE_ALPHA * (z - f->spread);
    }
    f->recent[f->recent_head] = m;
    f->recent_head = (f->recent_head + 1) % FC_RECENT;
    if (f->recent_len < FC_RECENT)
        f->recent_len++;
}

static void close_slot(struct forecast *f)
{
    if (f->slot_n == 0)
        return;
    float m = (float)(f->slot_sum / f->slot_n);
    int s = slot_of(f->slot_ms);
    if (daily_known(f)) {
        float rel = fabsf(m - f->slot_pred) / (m > 1.0f ? m : 1.0f);
        f->day_err += ERR_ALPHA * (rel - f->day_err);
    }
    f->day[s] = m;
    f->slots_seen++;
}

void fc_observe(struct forecast *f, double demand, int64_t now)
{
    int64_t minute = now - now % MINUTE_MS, slot = now - now % FC_SLOT_MS;
    if (f->minute_ms == 0 || minute < f->minute_ms || slot < f->slot_ms) {
        memset(f, 0, sizeof *f);      /* first sample, or a clock that went back */
        f->minute_ms = minute;
        f->slot_ms = slot;
    }
    if (minute != f->minute_ms) {
        close_minute(f);
        f->minute_ms = minute;
        f->minute_sum = 0;
        f->minute_n = 0;
    }
    if (slot != f->slot_ms) {
        close_slot(f);
        /* A gap of more than a slot (the controller was down) leaves
         * the slots between as they were. */
        f->slot_ms = slot;
        f->slot_sum = 0;
        f->slot_n = 0;
        f->slot_pred = daily_known(f) ? (float)(f->day[slot_of(slot)] * day_ratio(f, now)) : 0;
    }
    f->minute_sum += demand;
    f->minute_n++;
    f->slot_sum += demand;
    f->slot_n++;
}

/* Least-squares slope of the last n minutes, per minute. */
static double slope(const struct forecast *f, uint32_t n)
{
    if (n > f->recent_len)
        n = f->recent_len;
    if (n < 3)
        return 0;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (uint32_t i = 0; i < n; i++) {
        double x = -(double)i, y = recent(f, i);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    double den = n * sxx - sx * sx;
    return den > 0 ? (n * sxy - sx * sy) / den : 0;
}

struct fc_outlook fc_outlook(const struct forecast *f, double demand_now, int64_t now, int64_t ahead_ms)
{
    struct fc_outlook o = {0};
    /* The level is the busiest of the last minutes: demand that came
     * back once is expected back. */
    o.level = demand_now;
    for (uint32_t i = 0; i < LEVEL_MINUTES && i < f->recent_len; i++)
        if (recent(f, i) > o.level)
            o.level = recent(f, i);
    /* Half a minute more: the last closed minute is half a minute old. */
    double minutes = (double)ahead_ms / MINUTE_MS + 0.5;
    double s = slope(f, TREND_MINUTES);
    o.trend = o.level + (s > 0 ? s : 0) * minutes;
    o.daily = -1;
    if (daily_known(f) && f->day_err < FC_DAILY_TRUST)
        o.daily = f->day[slot_of(now + ahead_ms)] * day_ratio(f, now);
    o.forecast = o.level > o.trend ? o.level : o.trend;
    if (o.daily > o.forecast)
        o.forecast = o.daily;
    o.noise = f->noise;
    o.spread = f->spread;
    return o;
}
