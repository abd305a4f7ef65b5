#!/usr/bin/env python3
"""make bench: asg measured beside independent references, in one run.

Probe capacity against h2load, failure handling, footprint, table reads
and policy replay. Prints one table and writes build/bench/results.json.
Every process it starts is stopped by pid at the end (tests' harness).
"""
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as H  # noqa: E402
import lb_bench  # noqa: E402
import ha_bench  # noqa: E402
import rollout_bench  # noqa: E402

OUT_DIR = os.path.join(ROOT, "build", "bench")
TRACE = os.path.join(os.path.dirname(ROOT), "shared", "traces", "nasa-1995-requests-per-minute.txt")
SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "100,1000,10000").split(",")]
TRIALS = int(os.environ.get("BENCH_TRIALS", "20"))
WINDOW = float(os.environ.get("BENCH_WINDOW_S", "4"))
PER_SWARM = 5000
BASE_PORT = 21000
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def say(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---- /proc ----

def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE / 1048576.0


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# ---- swarms ----

class Swarm:
    """asg-agent --swarm processes (at most 5000 agents each) on BASE_PORT.."""

    def __init__(self, n, manager=None, tag="sw"):
        self.procs, self.lines, self.stats = [], [], {}
        for k in range(0, n, PER_SWARM):
            args = [H.BIN + "/asg-agent", "--swarm", str(min(PER_SWARM, n - k)),
                    "--listen", "127.0.0.1:%d" % (BASE_PORT + k), "--id", "%s%d" % (tag, k)]
            if manager:
                args += ["--manager", manager]
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            H.STARTED.add(p.pid)
            self.procs.append(p)
            # Its stdout (one address a line, then stats) must be drained.
            threading.Thread(target=self._read, args=(p,), daemon=True).start()
        H.wait_for(lambda: len(self.lines) >= n, 60, "%d agents listening" % n, interval=0.1)

    def _read(self, p):
        for line in p.stdout:
            if line.startswith("stats "):
                self.stats[p.pid] = dict(kv.split("=") for kv in line.split()[1:])
            else:
                self.lines.append(line.strip())

    def answered(self):
        """Successful answers counted by the agents themselves."""
        self.stats.clear()
        for p in self.procs:
            os.kill(p.pid, signal.SIGUSR1)
        H.wait_for(lambda: len(self.stats) == len(self.procs), 10, "swarm stats", interval=0.02)
        return sum(int(s["answered"]) for s in self.stats.values())

    def cpu(self):
        return sum(cpu_s(p.pid) for p in self.procs)

    def stop(self):
        for p in self.procs:
            H.stop_process(p, timeout=15)


# ---- probe capacity ----

def probe_counts(s):
    p = s["probes"]
    return p["sent"] - p["failed"], p["failed"], {u: c for u, c in p["rtt_us_hist"]}


def hist_pct(h0, h1, q):
    d = sorted((u, h1.get(u, 0) - h0.get(u, 0)) for u in h1)
    total = sum(c for _, c in d)
    if total == 0:
        return None
    acc = 0
    for u, c in d:
        acc += c
        if acc >= q / 100.0 * total:
            return u / 1000.0
    return d[-1][0] / 1000.0


def roles_rss(m, s):
    return {r: round(rss_mb(s["processes"][r]), 1)
            for r in ("supervisor", "monitor", "controller") if s["processes"][r]}


def capacity_manager(n):
    # Plaintext: a swarm is many ids in one process (one certificate each
    # does not fit it), and h2load beside it speaks plaintext too.
    return H.Manager("bench", tls={"mode": "plaintext"},
                     group={"min_instances": 1, "max_instances": n + 1,
                            "desired_instances": 1},
                     # The controller never scales on load here, and a slow
                     # answer at saturation is counted, not replaced.
                     policy={"scale_out_above": 1.0, "scale_in_below": 0.0,
                             "evaluation_interval_ms": 1000},
                     monitor={"adopt_unknown": True, "probe_interval_ms": 1000,
                              "probe_timeout_ms": 5000, "unhealthy_after": 1000},
                     provider={"boot_timeout_ms": 120000},
                     shm={"capacity": n + 16})


def time_status_json(m, runs=5):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        r = m.ctl("status", "--json", timeout=60)
        times.append((time.monotonic() - t0) * 1000)
        assert r.returncode == 0, r.stderr
    return statistics.median(times)


def time_snapshot(m):
    r = H.run([os.path.join(ROOT, "build", "release", "bench", "snapshot_bench"), m.table_name(), "50"],
              timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


STEADY_S = float(os.environ.get("BENCH_STEADY_S", "60"))


def steady_probing(m, n):
    """At the shipped interval (1 s) for STEADY_S seconds: probes/s, the
    worst second, p99, the monitor's CPU."""
    mpid = m.pid("monitor")
    s0, c0, w0 = m.status(), cpu_s(mpid), time.monotonic()
    ok0, f0, h0 = probe_counts(s0)
    worst, last_ok, last_t = None, ok0, w0
    while time.monotonic() - w0 < STEADY_S:
        time.sleep(5)
        ok, _, _ = probe_counts(m.status())
        t = time.monotonic()
        rate = (ok - last_ok) / (t - last_t)
        worst = rate if worst is None else min(worst, rate)
        last_ok, last_t = ok, t
    s1, c1, w1 = m.status(), cpu_s(mpid), time.monotonic()
    ok1, f1, h1 = probe_counts(s1)
    return {"seconds": round(w1 - w0), "probes_per_s": round((ok1 - ok0) / (w1 - w0)),
            "worst_5s_per_s": round(worst), "failed": f1 - f0, "p99_ms": hist_pct(h0, h1, 99),
            "monitor_cpu_pct": round(100 * (c1 - c0) / (w1 - w0))}


def monitor_capacity(n, first=True):
    m = capacity_manager(n)
    sw = None
    out = {"agents": n}
    try:
        m.start()
        mon = m.status()["group"]["monitor_address"]
        t0 = time.monotonic()
        sw = Swarm(n, manager=mon)
        H.wait_for(lambda: len(m.running()) >= n + 1, 180, "%d running" % (n + 1), interval=1)
        out["all_running_s"] = round(time.monotonic() - t0, 1)
        # Running means registered; saturate only once every agent has
        # answered a probe, so that no handshake is measured as a probe.
        H.wait_for(lambda: all(i["probes_ok"] > 0 for i in m.status()["instances"]), 120,
                   "every agent probed", interval=0.5)
        out["all_probed_s"] = round(time.monotonic() - t0, 1)
        s = m.status()
        time.sleep(2)
        out["rss_mb_at_1s_interval"] = roles_rss(m, m.status())
        if n >= 10000 and first:   # the shipped config (probe every 1 s), held for a while
            out["steady"] = steady_probing(m, n)
            s = m.status()
        # Saturate: every agent asked again as soon as it answers.
        m.cfg["monitor"]["probe_interval_ms"] = 1
        m.write_config()
        os.kill(m.proc.pid, signal.SIGHUP)
        H.wait_for(lambda: m.status()["group"]["config_generation"] > s["group"]["config_generation"],
                   10, "reload")
        time.sleep(1)
        mpid = m.pid("monitor")
        s0 = m.status()
        a0, c0, sc0, w0 = sw.answered(), cpu_s(mpid), sw.cpu(), time.monotonic()
        if os.environ.get("BENCH_PERF"):   # a profile of the monitor at saturation
            H.run(["perf", "record", "-g", "-o", os.environ["BENCH_PERF"], "-p", str(mpid), "--",
                   "sleep", str(WINDOW)], timeout=60)
        else:
            time.sleep(WINDOW)
        s1 = m.status()
        a1, c1, sc1, w1 = sw.answered(), cpu_s(mpid), sw.cpu(), time.monotonic()
        dt = w1 - w0
        ok0, f0, h0 = probe_counts(s0)
        ok1, f1, h1 = probe_counts(s1)
        out.update({
            "probes_per_s": round((ok1 - ok0) / dt),
            "failed_per_s": round((f1 - f0) / dt),
            "agent_answered_per_s": round((a1 - a0) / dt),
            "p50_ms": hist_pct(h0, h1, 50), "p99_ms": hist_pct(h0, h1, 99),
            "monitor_cpu_pct": round(100 * (c1 - c0) / dt),
            "swarm_cpu_pct": round(100 * (sc1 - sc0) / dt),
            "monitor_rss_mb": round(rss_mb(mpid), 1),
        })
        if n >= 10000 and first:
            out["status_json_ms"] = round(time_status_json(m), 1)
            out["snapshot"] = time_snapshot(m)
    finally:
        if sw:
            sw.stop()
        m.stop(timeout=30)
        m.cleanup()
    return out


def h2load_capacity(n, h2load):
    """The references, on one swarm of the same size: h2load, then the
    monitor's probe engine alone (bench/probe_load.c) dialling what h2load
    dials and then every agent, as the monitor does."""
    sw = Swarm(n, tag="h2")
    try:
        out = h2load_window(sw, n, h2load)
        out["engine_one"] = engine_window(sw, n, "one")
        out["engine_all"] = engine_window(sw, n, "all")
        return out
    finally:
        sw.stop()


PAIRS = int(os.environ.get("BENCH_PAIRS", "3"))


def capacity_pairs(n, h2load):
    """The monitor and h2load, each on a swarm of its own, PAIRS times,
    alternating which goes first (ABBA...): this machine's speed drifts by
    10-30 % from minute to minute (the same run repeated), so one pair's
    ratio says more about the minute than about the prober. The pair with
    the median ratio is the one shown in full."""
    pairs = []
    for k in range(PAIRS):
        order = ("monitor", "h2load") if k % 2 == 0 else ("h2load", "monitor")
        pair = {}
        for who in order:
            say("probe capacity at %d agents, pair %d of %d: %s" % (n, k + 1, PAIRS, who))
            pair[who] = monitor_capacity(n, first=k == 0) if who == "monitor" else h2load_capacity(n, h2load)
        pair["ratio"] = pair["monitor"]["probes_per_s"] / max(1, pair["h2load"]["requests_per_s"])
        pairs.append(pair)
    ranked = sorted(range(len(pairs)), key=lambda i: pairs[i]["ratio"])
    median = ranked[len(ranked) // 2]
    return {"agents": n, "pairs": pairs, "ratios": [round(p["ratio"], 2) for p in pairs],
            "median": median, "monitor": pairs[median]["monitor"], "h2load": pairs[median]["h2load"],
            "first_monitor": pairs[0]["monitor"]}


def engine_window(sw, n, mode):
    """probe_load for WINDOW seconds: its answers/s and CPU, and the swarm's
    CPU per answer over the whole run."""
    a0, c0 = sw.answered(), sw.cpu()
    r = H.run([os.path.join(ROOT, "build", "release", "bench", "probe_load"), str(n), str(PER_SWARM),
               str(BASE_PORT), mode, str(WINDOW)], timeout=WINDOW + 60)
    a1, c1 = sw.answered(), sw.cpu()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    out["swarm_us_per_answer"] = 1e6 * (c1 - c0) / max(1, a1 - a0)
    return out


def h2load_window(sw, n, h2load):
    """h2load against the swarm: the same request body, the same
    connections and one call in flight on each. h2load dials one
    host:port, so one h2load runs per swarm process, against its first
    agent, with as many connections as that process has agents: the server
    side is spread over the same processes as under the monitor."""
    body = tempfile.NamedTemporaryFile(prefix="asg-bench-", delete=False)
    body.write(b"\x00\x00\x00\x00\x02\x08\x07")   # gRPC frame: PingRequest{seq: 7}
    body.close()
    chunks = [(BASE_PORT + k, min(PER_SWARM, n - k)) for k in range(0, n, PER_SWARM)]
    logs = ["%s.%d.log" % (body.name, port) for port, _ in chunks]
    try:
        a0, c0 = sw.answered(), sw.cpu()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        procs = []
        for (port, conns), log in zip(chunks, logs):
            p = subprocess.Popen([h2load, "-D", str(int(WINDOW)), "-c", str(conns), "-m", "1", "-t", "1",
                                  "-d", body.name, "--log-file", log,
                                  "-H", "content-type: application/grpc", "-H", "te: trailers",
                                  "http://127.0.0.1:%d/asg.v1.Agent/Ping" % port],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            H.STARTED.add(p.pid)
            procs.append(p)
        succeeded = failed = 0
        secs = 0.0
        for p in procs:
            out, err = p.communicate(timeout=120)
            m = re.search(r"finished in ([\d.]+)s", out)
            q = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                          r"(\d+) failed", out)
            if not m or not q:
                raise AssertionError("h2load output not understood:\n%s%s" % (out, err))
            secs = max(secs, float(m.group(1)))
            succeeded += int(q.group(4))
            failed += int(q.group(5))
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)   # the h2loads, now reaped
        a1, c1 = sw.answered(), sw.cpu()
        lat = []
        for log in logs:
            with open(log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[1] == "200":
                        lat.append(int(parts[2]) / 1000.0)
        return {"agents": n, "h2load_processes": len(procs),
                "requests_per_s": round(succeeded / secs), "failed": failed,
                "agent_answered_per_s": round((a1 - a0) / secs),
                "p50_ms": round(pct(lat, 50), 2) if lat else None,
                "p99_ms": round(pct(lat, 99), 2) if lat else None,
                "swarm_cpu_pct": round(100 * (c1 - c0) / secs),
                "h2load_cpu_pct": round(100 * (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
                                        / secs)}
    finally:
        for f in [body.name] + logs:
            if os.path.exists(f):
                os.unlink(f)


# ---- failure handling ----

def poll(cond, timeout, interval=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError("timed out")


def agent_failures(stop_signal):
    """kill -9 (or SIGSTOP) one agent; time to its leaving running (it is
    marked unhealthy: a killed child is reaped at once, a hung one misses
    its probes) and to a replacement running. SIGSTOP leaves the process alive: only probes
    can tell."""
    m = H.Manager("fail", group={"min_instances": 3, "max_instances": 3, "desired_instances": 3})
    out = {"out": [], "replaced": []}
    try:
        m.start()
        m.wait_running(3)
        for _ in range(TRIALS):
            s = m.wait_running(3)
            victim = [i for i in m.running(s) if i["pid"] > 0 and H.alive(i["pid"])][0]
            t0 = time.monotonic()
            os.kill(victim["pid"], stop_signal)

            def state_of_victim():
                rows = [i for i in m.status()["instances"] if i["id"] == victim["id"]]
                return not rows or rows[0]["state"] != "running"
            out["out"].append(poll(state_of_victim, 15) - t0)

            def replaced():
                r = m.running()
                return len(r) == 3 and victim["id"] not in [i["id"] for i in r]
            out["replaced"].append(poll(replaced, 30) - t0)
            if stop_signal == signal.SIGSTOP:
                H.kill_pid(victim["pid"])
    finally:
        m.stop(timeout=30)
        m.cleanup()
    return out


def role_failures():
    # A role up over restart_stable_ms restarts at once; a role that keeps
    # dying sooner backs off. Trials 1.5 s apart measure the restart, not
    # the crash-loop backoff the default (10 s) would apply to them.
    m = H.Manager("roles", supervisor={"restart_stable_ms": 1000})
    out = {"monitor": [], "controller": []}
    try:
        m.start()
        m.wait_running(2)
        for _ in range(TRIALS):
            for role, work in (("monitor", "probe_rounds"), ("controller", "evaluations")):
                old = m.pid(role)
                before = m.status()["group"][work]
                t0 = time.monotonic()
                H.kill_pid(old)
                # New pid, and the new process has completed its own round.
                poll(lambda: m.pid(role) not in (None, old), 10)
                base = m.status()["group"][work]
                out[role].append(poll(lambda: m.status()["group"][work] > max(base, before), 10) - t0)
                time.sleep(1.5)   # up longer than restart_stable_ms
    finally:
        m.stop(timeout=30)
        m.cleanup()
    return out


def summary(values):
    return {"median_s": round(statistics.median(values), 3), "p95_s": round(pct(values, 95), 3),
            "trials": len(values)}


# ---- footprint ----

def footprint_small():
    m = H.Manager("foot", group={"min_instances": 10, "max_instances": 10, "desired_instances": 10},
                  shm={"capacity": 64})
    try:
        m.start()
        m.wait_running(10, timeout=30)
        time.sleep(2)
        return roles_rss(m, m.status())
    finally:
        m.stop(timeout=30)
        m.cleanup()


def idle_agent():
    p = subprocess.Popen([H.BIN + "/asg-agent", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    H.STARTED.add(p.pid)
    try:
        p.stdout.readline()
        time.sleep(1)
        c0, t0 = cpu_s(p.pid), time.monotonic()
        time.sleep(5)
        return {"rss_mb": round(rss_mb(p.pid), 1),
                "cpu_pct": round(100 * (cpu_s(p.pid) - c0) / (time.monotonic() - t0), 2)}
    finally:
        H.stop_process(p)


# ---- replay ----

REPLAY_CONFIGS = ["seeds", "hpa", "threshold", "target", "predictive"]
SHAPES = ["diurnal", "weekly", "flash", "ramp", "noise"]


def replay_policies():
    """Every policy over the NASA trace and over traces of other shapes from
    bench/gen_trace.py (seed 7, 14 days, peak 300 requests a minute), 20
    requests a minute per instance, 60 s boot, group 1..40."""
    traces = {"NASA 1995": TRACE}
    d = os.path.join(OUT_DIR, "traces")
    os.makedirs(d, exist_ok=True)
    for shape in SHAPES:
        path = os.path.join(d, shape + ".txt")
        with open(path, "w") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "gen_trace.py"), shape, "--seed", "7"],
                           stdout=f, check=True, timeout=300)
        traces[shape] = path
    out = {}
    for name, path in traces.items():
        args = [H.BIN + "/asgctl", "replay", "--trace", path, "--capacity", "20", "--min", "1",
                "--max", "40", "--json"]
        for c in REPLAY_CONFIGS:
            args += ["--compare", c]
        r = H.run(args, timeout=300)
        assert r.returncode == 0, r.stderr
        out[name] = {x["config"]: x for x in json.loads(r.stdout)}
    return out


def pareto(a, b):
    """'better' when a is no worse than b on cost and overload and better on one."""
    ca, oa, cb, ob = a["instance_minutes"], a["overload_minutes"], b["instance_minutes"], b["overload_minutes"]
    if ca <= cb and oa <= ob and (ca < cb or oa < ob):
        return "better"
    if ca >= cb and oa >= ob and (ca > cb or oa > ob):
        return "worse"
    return "trade-off"


# ---- the table ----

def row(cols, widths):
    return "  ".join(str(c).ljust(w) for c, w in zip(cols, widths))


def fmt_ms(v):
    return "-" if v is None else ("%.2f" % v if v < 10 else "%.0f" % v)


def per_answer_us(cpu_pct, per_s):
    """CPU time per answer: flat as N grows if the cost is per probe."""
    return cpu_pct / 100.0 / per_s * 1e6 if per_s else float("nan")


def print_haproxy(L, w):
    t = L["throughput"]
    d = t["direct"]["requests_per_s"]
    print("\nBehind HAProxy (python3 -m http.server-like service per instance; wrk -t2 -c16 %ds)" % lb_bench.WRK_S)
    print(row(["", "wrk req/s", "HAProxy counted", "ratio to direct", "failed"], w))
    print(row(["wrk straight at one instance", d, "-", "1.00", t["direct"]["failed"]], w))
    for n in ("1", "2", "4"):
        v = t[n]
        print(row(["through HAProxy, %s instance(s)" % n, v["requests_per_s"], v["haproxy_counted"],
                   "%.2f" % (v["requests_per_s"] / d), v["failed"]], w))
    r = L["reaction_s"]
    print(row(["rate doubled -> new instance serving s", "%.1f median" % statistics.median(r),
               "%.1f max" % max(r), "%d trials" % len(r)], w))
    dr = L["drains"]
    print(row(["scale-in drains under 200 req/s", "%d drains" % dr["drains"],
               "%d requests" % dr["requests"], "", "%d failed" % dr["failed"]], w))


def print_rollout(ro, w):
    print("\nRollouts behind HAProxy under %d req/s (bake %d s; floor = batches x (boot + bake), boot measured)" %
          (rollout_bench.RATE, ro[0]["bake_s"]))
    print(row(["", "seconds", "floor s", "ratio to floor", "failed"], w))
    for v in ro:
        print(row(["%d instances, surge %s (%d batches)" % (v["instances"], v["surge"], v["batches"]),
                   v["seconds"], v["floor_s"], "%.2f" % v["ratio_to_floor"],
                   "%d of %d" % (v["failed"], v["requests"])], w))


def print_table(R):
    w = [40, 13, 13, 14, 12]
    print("\nasg bench, %s, %d cores (%s)" % (R["date"], os.cpu_count(), R["command"]))
    print_capacity(R, w)
    print("\nFailure handling (fast config: probe 150 ms, timeout 100 ms, 3 misses; %d trials)" %
          min(v["trials"] for v in R["failures"].values()))
    print(row(["", "median s", "p95 s"], w))
    for k, v in R["failures"].items():
        print(row([k, v["median_s"], v["p95_s"]], w))
    print("\nFootprint (RSS MB)")
    print(row(["instances", "supervisor", "monitor", "controller"], w))
    for n, v in R["footprint"].items():
        print(row([n, v.get("supervisor", "-"), v.get("monitor", "-"), v.get("controller", "-")], w))
    ia = R["idle_agent"]
    print(row(["idle agent", "%.1f MB" % ia["rss_mb"], "%.2f%% CPU" % ia["cpu_pct"]], w))
    if "table" in R:
        t = R["table"]
        print("\nTable at %d rows while the monitor writes" % t["rows"])
        print(row(["asgctl status --json", "%.1f ms" % t["status_json_ms"]], w))
        print(row(["reader snapshot (median/p99)", "%.2f ms" % t["snapshot"]["median_ms"],
                   "%.2f ms" % t["snapshot"]["p99_ms"]], w))
    if "haproxy" in R:
        print_haproxy(R["haproxy"], w)
    if "rollout" in R:
        print_rollout(R["rollout"], w)
    if "ha" in R:
        print_ha(R["ha"], w)
    print_replay(R, w)
    print()


def print_capacity(R, w):
    print("\nProbe capacity (saturated: one call in flight per agent, all agents at once;"
          " %d pairs, the median shown)" % PAIRS)
    print(row(["", "asg monitor", "h2load", "monitor/h2load", ""], w))
    for c in R["capacity"]:
        mon, h2 = c["monitor"], c["h2load"]
        n = mon["agents"]
        ratio = mon["probes_per_s"] / h2["requests_per_s"] if h2 and h2["requests_per_s"] else None
        print(row(["N=%d  successes/s" % n, mon["probes_per_s"], h2["requests_per_s"] if h2 else "-",
                   "%.2f" % ratio if ratio else "-"], w))
        if len(c.get("ratios", [])) > 1:
            print(row(["      ratio of each pair (median above)", "", "", " ".join(
                "%.2f" % r for r in c["ratios"])], w))
        print(row(["      agent-counted answers/s", mon["agent_answered_per_s"],
                   h2["agent_answered_per_s"] if h2 else "-"], w))
        print(row(["      failed/s", mon["failed_per_s"], h2["failed"] if h2 else "-"], w))
        print(row(["      p50 / p99 ms", "%s / %s" % (fmt_ms(mon["p50_ms"]), fmt_ms(mon["p99_ms"])),
                   "%s / %s" % (fmt_ms(h2["p50_ms"]), fmt_ms(h2["p99_ms"])) if h2 else "-"], w))
        print(row(["      CPU %: prober / swarm", "%d / %d" % (mon["monitor_cpu_pct"], mon["swarm_cpu_pct"]),
                   "%d / %d" % (h2["h2load_cpu_pct"], h2["swarm_cpu_pct"]) if h2 else "-"], w))
        print(row(["      CPU us per answer: prober / swarm",
                   "%.0f / %.0f" % (per_answer_us(mon["monitor_cpu_pct"], mon["probes_per_s"]),
                                    per_answer_us(mon["swarm_cpu_pct"], mon["agent_answered_per_s"])),
                   "%.0f / %.0f" % (per_answer_us(h2["h2load_cpu_pct"], h2["requests_per_s"]),
                                    per_answer_us(h2["swarm_cpu_pct"], h2["agent_answered_per_s"]))
                   if h2 else "-"], w))
        e1, ea = (h2.get("engine_one"), h2.get("engine_all")) if h2 else (None, None)
        if e1 and ea and h2["requests_per_s"]:
            # The engine without the monitor, on h2load's swarm: first
            # dialling what h2load dials, then every agent, as the monitor.
            print(row(["      engine alone /s: h2load's / all", "%d / %d" % (
                e1["answers_per_s"], ea["answers_per_s"]), "", "%.2f / %.2f" % (
                e1["answers_per_s"] / h2["requests_per_s"], ea["answers_per_s"] / h2["requests_per_s"])], w))
            print(row(["      ... CPU us/answer: engine / swarm", "%.0f/%.0f, %.0f/%.0f" % (
                per_answer_us(e1["cpu_pct"], e1["answers_per_s"]), e1["swarm_us_per_answer"],
                per_answer_us(ea["cpu_pct"], ea["answers_per_s"]), ea["swarm_us_per_answer"])], w))
        print(row(["      monitor RSS MB, saturated / at 1 s", "%s / %s" % (
            mon["monitor_rss_mb"], mon.get("rss_mb_at_1s_interval", {}).get("monitor", "-"))], w))
        st = c.get("first_monitor", mon).get("steady")
        if st:
            print(row(["      at 1 s probing, %d s: probes/s" % st["seconds"],
                       "%d (worst 5 s: %d)" % (st["probes_per_s"], st["worst_5s_per_s"])], w))
            print(row(["      ... failed / p99 ms / monitor CPU %",
                       "%d / %s / %d" % (st["failed"], fmt_ms(st["p99_ms"]), st["monitor_cpu_pct"])], w))
        print(row(["      all registered / all probed s",
                   "%s / %s" % (mon.get("all_running_s", "-"), mon.get("all_probed_s", "-"))], w))


def print_replay(R, w):
    print("\nPolicy replay: 20 requests/min per instance, boot 60 s, group 1..40 "
          "(NASA 1995 trace; the others from bench/gen_trace.py, seed 7, 14 days)")
    print(row(["trace / policy", "inst-min", "overload min", "vs seeds", "vs HPA", "x HPA (cost, overload)"],
              w + [24]))
    for trace, res in R["replay"].items():
        hpa = res["hpa"]
        for name, v in res.items():
            cmp = ("-", "-") if name in ("seeds", "hpa") else (pareto(v, res["seeds"]), pareto(v, hpa))
            over = ("%.2f" % (v["overload_minutes"] / hpa["overload_minutes"]) if hpa["overload_minutes"]
                    else "-")
            print(row(["%s / %s" % (trace, name), "%.0f" % v["instance_minutes"], v["overload_minutes"],
                       cmp[0], cmp[1], "%.2f, %s" % (v["instance_minutes"] / hpa["instance_minutes"], over)],
                      w + [24]))
    print()


def print_ha(F, w):
    print("\nFailover on etcd (two managers; leader kill -9 -> the new leader's first evaluation)")
    print(row(["", "lease", "median", "p95", "trials"], w))
    for key, name, lease in (("asg", "asg defaults (retry = evaluation 1 s)", F["asg"]["lease_ms"]),
                             ("k8s_defaults", "Kubernetes defaults (retry 2 s)", F["k8s_defaults"]["lease_ms"])):
        v = F[key]["trials"]
        print(row([name, "%d s" % (lease // 1000), "%.2f s" % statistics.median(v), "%.2f s" % pct(v, 95),
                   str(len(v))], w))
    ratio = statistics.median(F["asg"]["trials"]) / statistics.median(F["k8s_defaults"]["trials"])
    print("asg's median failover is %.2f of the Kubernetes defaults' (same pair, same etcd, this run)" % ratio)


def main():
    R = {"date": time.strftime("%Y-%m-%d"), "command": "make bench", "cpus": os.cpu_count(),
         "capacity": [], "footprint": {}}
    if os.environ.get("BENCH_ONLY") == "replay":      # one section, for who works on it
        os.makedirs(OUT_DIR, exist_ok=True)
        R["replay"] = replay_policies()
        print_replay(R, [40, 13, 13, 14, 12])
        return
    if os.environ.get("BENCH_ONLY") == "haproxy":
        try:
            R["haproxy"] = lb_bench.run()
        finally:
            H.kill_everything_started()
        print_haproxy(R["haproxy"], [40, 13, 13, 14, 12])
        return
    if os.environ.get("BENCH_ONLY") == "rollout":
        try:
            R["rollout"] = rollout_bench.run()
        finally:
            H.kill_everything_started()
        print_rollout(R["rollout"], [40, 13, 13, 14, 12])
        return
    if os.environ.get("BENCH_ONLY") == "ha":
        try:
            R["ha"] = ha_bench.run(TRIALS)
        finally:
            H.kill_everything_started()
        print_ha(R["ha"], [40, 13, 13, 14, 12])
        return
    h2load = os.environ.get("H2LOAD", "/usr/bin/h2load")
    if not os.access(h2load, os.X_OK):
        sys.exit("bench: %s not found: scripts/install-deps.sh --bench installs nghttp2-client" % h2load)
    os.makedirs(OUT_DIR, exist_ok=True)
    if os.environ.get("BENCH_ONLY") == "probes":
        try:
            for n in SIZES:
                R["capacity"].append(capacity_pairs(n, h2load))
        finally:
            H.kill_everything_started()
        print_capacity(R, [40, 13, 13, 14, 12])
        return
    t_start = time.monotonic()
    try:
        say("footprint at 10 instances, idle agent")
        R["footprint"]["10"] = footprint_small()
        R["idle_agent"] = idle_agent()
        for n in SIZES:
            c = capacity_pairs(n, h2load)
            first = c["first_monitor"]
            R["footprint"][str(n)] = first["rss_mb_at_1s_interval"]
            if "snapshot" in first:
                R["table"] = {"rows": n + 1, "status_json_ms": first["status_json_ms"],
                              "snapshot": first["snapshot"]}
            R["capacity"].append(c)
        say("failure handling: agent kill -9")
        k = agent_failures(signal.SIGKILL)
        say("failure handling: agent SIGSTOP (hung: only probes can tell)")
        st = agent_failures(signal.SIGSTOP)
        say("failure handling: role kill -9")
        roles = role_failures()
        R["failures"] = {
            "agent kill -9 -> unhealthy": summary(k["out"]),
            "agent kill -9 -> replacement running": summary(k["replaced"]),
            "agent hung -> unhealthy": summary(st["out"]),
            "agent hung -> replacement running": summary(st["replaced"]),
            "monitor kill -9 -> probe round done": summary(roles["monitor"]),
            "controller kill -9 -> evaluation done": summary(roles["controller"]),
        }
        say("policy replay")
        R["replay"] = replay_policies()
        say("the group behind HAProxy: throughput, reaction to a load step, drains")
        R["haproxy"] = lb_bench.run()
        say("rollouts behind HAProxy: 4 and 16 instances")
        R["rollout"] = rollout_bench.run()
        say("failover of a pair of managers on etcd")
        R["ha"] = ha_bench.run(TRIALS)
    finally:
        H.kill_everything_started()
    R["wall_s"] = round(time.monotonic() - t_start)
    with open(os.path.join(OUT_DIR, "results.json"), "w") as f:
        json.dump(R, f, indent=1)
    print_table(R)
    print("written: build/bench/results.json (%d s)" % R["wall_s"])


if __name__ == "__main__":
    main()
