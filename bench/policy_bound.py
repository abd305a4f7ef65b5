#!/usr/bin/python3
"""How cheap can any policy be at a given number of overloaded minutes on
a trace? A lower bound for one class of policies, and an honest estimate
for a wider one, in the accounting of `asgctl replay` (capacity RPM per
instance, boot = one minute, overloaded = demand above 0.9 x capacity of
the instances ready that minute).

In the replay the policy sees minute m's demand at its start, and an
instance launched then serves from minute m+1: the size serving minute
m+1 is fixed with what was known at the end of minute m, and every minute
costs the size asked for in it (booting instances are paid for too).

1. Size for minute m+1 = f(peak of minutes m-W+1..m), any function f.
   Grouping the minutes by that peak and choosing, per group, the size
   that minimises instances + lam x overloaded minutes gives the best f
   for that lam knowing the future (in-sample). Over several lam, the
   lower convex hull of those points bounds every f of that peak: no
   such policy, whatever it learns, is below it.
2. Size = f(peak of the last W minutes, peak of the last W2): the same
   fit on one half of the trace, judged on the other (and the other way
   round), estimates what a learner could reach; fitted in-sample it
   overfits (thousands of groups) and is shown only as such.

Usage: policy_bound.py TRACE [--capacity RPM] [--overload N]"""
import argparse
import bisect
import collections
import math


def peaks(d, w):
    """peak[m] = max(d[m-w+1 .. m])."""
    out, q = [0] * len(d), collections.deque()
    for i, x in enumerate(d):
        while q and d[q[-1]] <= x:
            q.pop()
        q.append(i)
        if q[0] <= i - w:
            q.popleft()
        out[i] = d[q[0]]
    return out


def fit(groups, lam):
    """Per group (a sorted list of the next minute's needed sizes): the
    size minimising size x count + lam x (minutes needing more)."""
    table, cost, over = {}, 0, 0
    for key, need in groups.items():
        best = None
        for size in sorted(set(need)):
            size = max(1, size)
            o = len(need) - bisect.bisect_right(need, size)
            v = size * len(need) + lam * o
            if best is None or v < best[0]:
                best = (v, size, o)
        table[key] = best[1]
        cost += best[1] * len(need)
        over += best[2]
    return table, cost, over


def grouped(keys, need, idx):
    g = collections.defaultdict(list)
    for m in idx:
        g[keys[m]].append(need[m + 1])
    for v in g.values():
        v.sort()
    return g


def judge(table, keys, need, idx, fallback):
    cost = over = 0
    for m in idx:
        size = table.get(keys[m], fallback[m])
        cost += size
        over += need[m + 1] > size
    return cost, over


def hull_at(points, bar):
    """The lower convex hull of (cost, overloaded) points, read at
    overloaded = bar: no point of the class is cheaper there."""
    pts = sorted(points, key=lambda p: p[1])
    best = None
    for (c1, o1) in pts:
        for (c2, o2) in pts:
            if o1 <= bar <= o2 and o1 < o2:
                c = c1 + (c2 - c1) * (bar - o1) / (o2 - o1)
                best = c if best is None else min(best, c)
    return best


LAMS = (10, 20, 30, 40, 60, 80, 120, 160, 240)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--capacity", type=float, default=20.0)
    ap.add_argument("--overload", type=int, default=426, help="the overloaded minutes to read the bound at")
    a = ap.parse_args()
    with open(a.trace) as f:
        d = [int(x) for x in f]
    per = 0.9 * a.capacity
    need = [math.ceil(x / per) if x > 0 else 0 for x in d]
    n = len(d)
    print("%s: %d minutes; knowing every minute in advance: %d instance-minutes, 0 overloaded"
          % (a.trace, n, sum(max(1, k) for k in need)))
    print("\n1. size = f(peak of the last W minutes), the best f for each lam, in-sample (a bound)")
    print("%4s %6s %14s %10s" % ("W", "lam", "instance-min", "overloaded"))
    for w in (1, 5, 30):
        keys = peaks(d, w)
        g = grouped(keys, need, range(n - 1))
        pts = []
        for lam in LAMS:
            _, cost, over = fit(g, lam)
            cost += 1                      # the first minute, at one instance
            pts.append((cost, over))
            print("%4d %6d %14d %10d" % (w, lam, cost, over))
        at = hull_at(pts, a.overload)
        print("     no f of the %d-minute peak costs less than %s at %d overloaded minutes"
              % (w, "%.0f" % at if at else "(outside the points)", a.overload))
    print("\n2. size = f(peak of the last 5, peak of the last 30), fitted on one half, judged on the other")
    print("%6s %16s %12s %16s %12s" % ("lam", "cross-fit inst", "overloaded", "in-sample inst", "overloaded"))
    k5, k30 = peaks(d, 5), peaks(d, 30)
    keys = [(x // 6, y // 12) for x, y in zip(k5, k30)]
    fallback = [max(1, math.ceil(1.3 * x / per)) for x in k5]   # a group the other half never saw
    A, B = range(0, n // 2 - 1), range(n // 2 - 1, n - 1)
    gA, gB, gAll = grouped(keys, need, A), grouped(keys, need, B), grouped(keys, need, range(n - 1))
    for lam in LAMS:
        tA, _, _ = fit(gA, lam)
        tB, _, _ = fit(gB, lam)
        c1, o1 = judge(tA, keys, need, B, fallback)
        c2, o2 = judge(tB, keys, need, A, fallback)
        _, ci, oi = fit(gAll, lam)
        print("%6d %16d %12d %16d %12d" % (lam, c1 + c2 + 1, o1 + o2, ci + 1, oi))


if __name__ == "__main__":
    main()
