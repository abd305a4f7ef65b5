"""make bench, rollouts: the time to replace a group of 4 and of 16 behind
HAProxy under steady load, the requests that failed meanwhile, and that
time beside its floor, measured in the same run: batches x (boot + bake),
boot being the mean launch-to-registered time of the rollout's own new
instances."""
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness as H  # noqa: E402
import t_rollout as TR  # noqa: E402

BAKE_S = int(os.environ.get("BENCH_ROLLOUT_BAKE_S", "2"))
RATE = 200


def boots_ms(m, after_number):
    """Launch-to-registered times (ms) of instances numbered past after_number."""
    ev = m.ctl("events", "-n", "256").stdout
    out = []
    for iid, ms in re.findall(r"instance (\S+) registered at \S+: running \((\d+) ms after launch\)", ev):
        if int(iid.rsplit("-", 1)[1]) > after_number:
            out.append(int(ms))
    return out


def one(n, surge):
    """A group of n, rolled from v1 to v2 with max_surge surge: its figures."""
    d = tempfile.mkdtemp(prefix="asg-bench-ro-")
    hap = H.HAProxy()
    sec = {"group": {"min_instances": 1, "max_instances": n * 2, "desired_instances": n},
           "provider": {"boot_timeout_ms": 30000,
                        "local": {"kill_timeout_ms": 2000, "service_health": "http:/",
                                  "service": TR.service(d, "v1")}},
           "lb": hap.lb_section(),
           "rollout": {"bake_s": BAKE_S},
           "policy": {"scale_in_below": 0.0, "scale_out_above": 1.0, "scale_in_stabilization_ms": 600000},
           "shm": {"capacity": max(64, n * 3)},
           "status": {"listen": "127.0.0.1:%d" % H.free_port()}}
    m = H.Manager("bench-ro", **sec)
    m.url = "http://" + sec["status"]["listen"]
    load = None
    try:
        m.start()
        H.wait_for(lambda: TR.serving(m, hap, n), 60, "%d instances of v1 in HAProxy" % n)
        load = H.Load(hap.port, threads=4, rate=RATE)
        H.wait_for(lambda: load.ok > RATE, 20, "requests flowing")
        TR.change_version(m, d, "v2")
        t0 = time.monotonic()
        TR.start(m, max_surge=surge, bake_s=BAKE_S)
        r = H.wait_for(lambda: TR.state_is(m, "succeeded", "failed", "rolled_back"), 600, "the rollout over")
        took = time.monotonic() - t0
        ok, failed, _ = load.stop()
        load = None
        assert r["state"] == "succeeded", r
        boots = boots_ms(m, n)
        boot_s = sum(boots) / len(boots) / 1000.0 if boots else float("nan")
        per_batch = -(-n * int(surge[:-1]) // 100) if isinstance(surge, str) else surge
        batches = -(-n // per_batch)
        floor = batches * (boot_s + BAKE_S)
        return {"instances": n, "surge": surge, "seconds": round(took, 1), "requests": ok + failed,
                "failed": failed, "batches": batches, "boot_s": round(boot_s, 2), "bake_s": BAKE_S,
                "floor_s": round(floor, 1), "ratio_to_floor": round(took / floor, 2)}
    finally:
        if load:
            load.stop()
        m.cleanup()
        hap.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def run():
    return [one(4, 1), one(16, "25%")]
