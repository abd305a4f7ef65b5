#!/usr/bin/python3
"""Demand traces of other shapes than the NASA one, for `make bench` and
anyone comparing policies: requests per minute, one integer a line, as
`asgctl replay --trace` reads them. Seeded: the same seed gives the same
trace. Nothing here was tuned on; the policy is measured on what this
prints.

Usage: gen_trace.py SHAPE [--seed N] [--days D] [--peak RPM] > FILE
Shapes:
  diurnal  a daily wave (quiet nights, a busy afternoon)
  weekly   the daily wave, with weekends at 40 %
  flash    a quiet daily wave hit by flash crowds: 5-20x in two minutes,
           decaying over half an hour, a few times a day at random
  ramp     slow growth: the daily wave rising tenfold over the days
  noise    a random walk with heavy-tailed bursts, no period at all
Counts are Poisson draws around the shape's rate, so small rates are as
noisy as real ones."""
import argparse
import math
import random
import sys

SHAPES = ("diurnal", "weekly", "flash", "ramp", "noise")


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 500:                      # the normal approximation is exact enough
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def daily(minute, peak):
    """Night floor at 8 % of the peak, the top at 15:00."""
    h = (minute % 1440) / 60.0
    wave = 0.5 - 0.5 * math.cos(2 * math.pi * (h - 3) / 24)
    return peak * (0.08 + 0.92 * wave ** 1.5)


def rates(shape, n, peak, rng):
    if shape == "diurnal":
        return [daily(m, peak) for m in range(n)]
    if shape == "weekly":
        return [daily(m, peak) * (0.4 if (m // 1440) % 7 in (5, 6) else 1.0) for m in range(n)]
    if shape == "ramp":
        return [daily(m, peak) * (0.1 + 0.9 * m / n) for m in range(n)]
    if shape == "flash":
        base = [daily(m, peak * 0.15) for m in range(n)]
        m = 0
        while True:
            m += int(rng.expovariate(1 / 360.0)) + 60      # about four a day
            if m >= n:
                break
            size = rng.uniform(5, 20) * base[m]
            for k in range(m, min(n, m + 60)):
                t = k - m
                rise = min(1.0, (t + 1) / 2.0)
                base[k] += size * rise * math.exp(-t / 30.0)
        return [min(b, peak * 1.2) for b in base]
    if shape == "noise":
        out, level = [], peak * 0.3
        for _ in range(n):
            level *= math.exp(rng.gauss(0, 0.03))
            level = min(max(level, peak * 0.02), peak)
            burst = rng.paretovariate(3.0) if rng.random() < 0.02 else 1.0
            out.append(min(level * burst, peak * 1.2))
        return out
    raise SystemExit("gen_trace: unknown shape %r (%s)" % (shape, ", ".join(SHAPES)))


def main():
    ap = argparse.ArgumentParser(description="seeded demand traces")
    ap.add_argument("shape", choices=SHAPES)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--peak", type=float, default=300.0, help="requests a minute at the top")
    a = ap.parse_args()
    rng = random.Random("%s-%d" % (a.shape, a.seed))
    out = sys.stdout
    for r in rates(a.shape, a.days * 1440, a.peak, rng):
        out.write("%d\n" % poisson(rng, r))


if __name__ == "__main__":
    main()
