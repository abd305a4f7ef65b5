"""make bench, the group behind HAProxy: requests per second through HAProxy
at 1, 2 and 4 instances (beside wrk straight at one instance, and HAProxy's
own count of what it forwarded), the reaction to a load step on the
request-rate policy, and failed requests across scale-in drains."""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness as H  # noqa: E402
import t_balancer as TB  # noqa: E402

WRK_S = float(os.environ.get("BENCH_WRK_S", "5"))
DRAINS = int(os.environ.get("BENCH_DRAINS", "20"))
STEPS = int(os.environ.get("BENCH_STEPS", "5"))


def wrk(url, seconds=WRK_S, conns=16):
    """Requests/s and failures (non-2xx/3xx and socket errors) as wrk counts them."""
    r = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, url],
                       capture_output=True, text=True, timeout=seconds + 30)
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", r.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", r.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
    failed = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"requests_per_s": round(rps), "requests": total, "failed": failed}


def frontend_requests(hap):
    """HAProxy's own count of requests its frontend took."""
    lines = hap.cmd("show stat fe 1 -1").splitlines()
    head = lines[0][2:].split(",")
    f = dict(zip(head, lines[1].split(",")))
    return int(f["req_tot"])


def group(d, hap, n, **policy):
    sec = TB.service_sections(d, hap, min_instances=1, max_instances=max(n, 4), desired_instances=n)
    sec["status"] = {"listen": "127.0.0.1:%d" % H.free_port()}
    sec["policy"].update(policy)
    # The shipped timings, not the tests' fast ones.
    sec["monitor"] = {"listen": "127.0.0.1:0", "probe_interval_ms": 1000, "probe_timeout_ms": 500}
    sec["lb"].update({"interval_ms": 1000, "reconcile_interval_ms": 5000})
    m = H.Manager("bench-lb", **sec)
    m.url = "http://" + m.cfg["status"]["listen"]
    return m


def stop(m, hap):
    """A graceful stop drains and removes the group's servers: checked."""
    try:
        if m.proc and m.proc.poll() is None:
            m.stop(timeout=30)
        H.wait_for(lambda: not hap.servers(), 10, "the backend empty after the manager's stop")
    finally:
        m.cleanup()


def in_haproxy(m, hap, n):
    r = TB.balancer_matches(m, hap)
    return r if r and len(r) == n else None


def throughput(d):
    """wrk through HAProxy at 1, 2, 4 instances; wrk straight at one."""
    hap = H.HAProxy()
    out = {}
    try:
        for n in (1, 2, 4):
            m = group(d, hap, n, scale_out_above=1.0, scale_in_below=0.0)
            try:
                m.start()
                run = H.wait_for(lambda: in_haproxy(m, hap, n), 60, "%d instances in HAProxy" % n)
                if n == 1:
                    out["direct"] = wrk("http://%s/" % list(run.values())[0])
                before = frontend_requests(hap)
                w = wrk("http://127.0.0.1:%d/" % hap.port)
                w["haproxy_counted"] = frontend_requests(hap) - before
                out[str(n)] = w
            finally:
                stop(m, hap)
    finally:
        hap.cleanup()
    return out


def reaction(d):
    """policy.metric requests, 1 instance at 70 % of its target rate; the rate
    doubled: seconds until a new instance has served requests through HAProxy."""
    hap = H.HAProxy()
    target = 40
    out = []
    try:
        for _ in range(STEPS):
            m = group(d, hap, 1, kind="target", metric="requests", target_requests=target,
                      target_tolerance=0.1, cooldown_ms=5000, warmup_ms=2000,
                      scale_in_stabilization_ms=600000)
            load = None
            try:
                m.start()
                first = H.wait_for(lambda: in_haproxy(m, hap, 1), 60, "one instance in HAProxy")
                load = TB.Load(hap.port, threads=8, rate=0.7 * target)
                H.wait_for(lambda: all(i["requests_per_s"] for i in m.running()), 20, "a rate counted")
                time.sleep(3)   # steady at 70 % before the step (a measurement, not a wait)
                t0 = time.monotonic()
                load.set_rate(1.4 * target)

                def new_serving():
                    """HAProxy's own word: a new server has sessions served."""
                    lines = hap.cmd("show stat web 4 -1").splitlines()
                    head = lines[0][2:].split(",")
                    for ln in lines[1:]:
                        f = dict(zip(head, ln.split(",")))
                        if f.get("svname") not in first and int(f.get("stot") or 0) > 0:
                            return True
                    return None
                H.wait_for(new_serving, 60, "a second instance serving", interval=0.05)
                out.append(time.monotonic() - t0)
            finally:
                if load:
                    load.stop()
                stop(m, hap)
    finally:
        hap.cleanup()
    return out


def drains(d):
    """A steady load; the group moved 3 -> 2 DRAINS times (each a scale-in
    that drains an instance); every failed request counted."""
    hap = H.HAProxy()
    m = group(d, hap, 2, scale_out_above=1.0, scale_in_below=0.0)
    load = None
    try:
        m.start()
        H.wait_for(lambda: in_haproxy(m, hap, 2), 60, "two instances in HAProxy")
        load = TB.Load(hap.port, threads=8, rate=200)
        for _ in range(DRAINS):
            H.http("POST", m.url + "/api/v1/desired", {"desired": 3})
            H.wait_for(lambda: in_haproxy(m, hap, 3), 60, "three in HAProxy")
            H.http("POST", m.url + "/api/v1/desired", {"desired": 2})
            H.wait_for(lambda: in_haproxy(m, hap, 2) and m.status()["group"]["terminating"] == 0, 60,
                       "back to two, the third stopped")
        ok, failed, _ = load.stop()
        load = None
        removed = len(re.findall(r"balancer: removed ", m.log()))
        return {"drains": DRAINS, "removed": removed, "requests": ok + failed, "failed": failed}
    finally:
        if load:
            load.stop()
        m.cleanup()
        hap.cleanup()


def run():
    import tempfile
    d = tempfile.mkdtemp(prefix="asg-bench-lb-")
    try:
        return {"throughput": throughput(d), "reaction_s": reaction(d), "drains": drains(d)}
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    try:
        print(json.dumps(run(), indent=1))
    finally:
        H.kill_everything_started()
