"""make bench, high availability: failover time of a pair of managers on a
real etcd (Debian's etcd-server on 127.0.0.1). A trial kills the leader's
supervisor and roles (kill -9) and times until the standby has led and
completed its first evaluation; the killed manager is started again (it
comes back as the standby) and the next trial kills the other.

Beside asg's default lease (5 s, an evaluation a second) the same pair runs
with the Kubernetes leader-election defaults (15 s lease, 2 s retry period;
the 10 s renew deadline only concerns a live leader), fewer trials.

What a failover takes: the lease lapses TTL after the leader's last
renewal (up to a third of the TTL before the kill); etcd holds a lapsed
lease up to about a second before it revokes it (measured: the lease's TTL
reads 0 that long); the standby's next campaign (every evaluation
interval) then wins, and it evaluates at once."""
import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness as H  # noqa: E402
import t_ha  # noqa: E402


def status(m):
    try:
        return m.status()
    except Exception:  # a manager being killed answers nothing
        return None


def poll(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError("bench: timed out")


def failovers(trials, ttl_ms, eval_ms):
    etcd = H.Etcd()
    a, b = t_ha.pair(etcd, ttl_ms=ttl_ms, eval_ms=eval_ms)
    out = []
    try:
        a.start()
        poll(lambda: t_ha.role(a) == "leader", 20)
        b.start()
        poll(lambda: t_ha.role(b) == "standby", 20)
        a.wait_running(2, timeout=30)
        leader, standby = a, b
        rng = random.Random(7)
        for _ in range(trials):
            # Anywhere in the leader's renewal period, not in step with
            # the restart before.
            time.sleep(rng.uniform(0, ttl_ms / 3000.0))
            evals = standby.status()["group"]["evaluations"]
            t0 = time.monotonic()
            t_ha.stop_roles(leader, signal.SIGKILL)
            leader.proc.wait()
            t1 = poll(lambda: (lambda s: s and s["ha"]["role"] == "leader" and
                               s["group"]["evaluations"] > evals)(status(standby)), ttl_ms / 1000.0 + 30)
            out.append(t1 - t0)
            leader.start()
            poll(lambda: t_ha.role(leader) == "standby", 30)
            leader, standby = standby, leader
    finally:
        a.cleanup()
        b.cleanup()
        etcd.cleanup()
    return out


def run(trials=20):
    return {"asg": {"lease_ms": 5000, "evaluation_ms": 1000, "trials": failovers(trials, 5000, 1000)},
            "k8s_defaults": {"lease_ms": 15000, "retry_ms": 2000,
                             "trials": failovers(max(3, trials // 5), 15000, 2000)}}
