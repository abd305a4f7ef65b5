#!/usr/bin/python3
"""Integration tests: rollouts behind a real HAProxy under steady load.
The service answers its version; a reload changes it (a new launch spec
generation) and a rollout replaces every instance: no failed request,
never more than desired + surge instances, never fewer than desired -
unavailable healthy ones; a bad version is rolled back; canaries,
checkpoints and cancel; a controller or a whole manager killed mid-way;
scaling during a rollout; instances past their lifetime."""
import http.client as httpclient
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


def service(d, version, *extra):
    return ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"), "--answer", version] + list(extra)


def rollout_test(name, desired=3, health="http:/", **extra):
    """Decorator: HAProxy, then a manager (status API on) whose group of
    `desired` serves version v1 behind it; the test gets (m, hap, d)."""
    def wrap(fn):
        def inner():
            d = tempfile.mkdtemp(prefix="asg-ro-")
            hap = HAProxy()
            sec = {"group": {"min_instances": 1, "max_instances": desired + 3, "desired_instances": desired},
                   "provider": {"boot_timeout_ms": 8000,
                                "local": {"kill_timeout_ms": 2000, "service_health": health,
                                          "service": service(d, "v1")}},
                   "lb": hap.lb_section(),
                   "rollout": {"bake_s": 1, "min_requests": 10},
                   # The group's size is the test's: no scaling on load.
                   "policy": {"scale_in_below": 0.0, "scale_out_above": 1.0,
                              "scale_in_stabilization_ms": 600000},
                   "status": {"listen": "127.0.0.1:%d" % free_port()}}
            for k, v in extra.items():
                sec.setdefault(k, {}).update(v)
            m = Manager(name, **sec)
            m.url = "http://" + sec["status"]["listen"]

            def body():
                wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
                wait_for(lambda: serving(m, hap, desired), 30, "%d instances of v1 in HAProxy" % desired)
                fn(m, hap, d)
            behind_haproxy(m, hap, d, fn.__name__, body, log_tail=12000)
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def serving(m, hap, n, gen=None):
    """The status when exactly n instances run, all in HAProxy's backend
    (of generation gen, if given) and none other is there; else None."""
    s = m.status()
    if not s:
        return None
    run = [i for i in m.running(s) if i["balancer"] == "added"]
    live = [i for i in s["instances"] if i["state"] != "terminating"]
    if len(run) != n or len(live) != n or len(hap.servers()) != n:
        return None
    if gen is not None and any(i["launch_spec_generation"] != gen for i in run):
        return None
    return s


def gens(s):
    """The sorted generations of the instances not terminating."""
    return sorted(i["launch_spec_generation"] for i in s["instances"] if i["state"] != "terminating")


def answers(port, n=20):
    """The versions n requests through HAProxy answered."""
    seen = set()
    for _ in range(n):
        c = httpclient.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        seen.add((r.status, r.read().decode().strip()))
        c.close()
    return seen


def change_version(m, d, version, *extra, boot_timeout_ms=None):
    """The service's command changed (and the boot timeout, if given) and
    the config reloaded: the next launch spec generation."""
    gen = m.status()["group"]["launch_spec_generation"]
    m.cfg["provider"]["local"]["service"] = service(d, version, *extra)
    if boot_timeout_ms:
        m.cfg["provider"]["boot_timeout_ms"] = boot_timeout_ms
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["group"]["launch_spec_generation"] == gen + 1, 10, "generation %d" % (gen + 1))
    return gen + 1


def rollout(m):
    code, r = m.api("GET", "/api/v1/rollout")
    assert code == 200, (code, r)
    return r


def start(m, **settings):
    body = {"action": "start"}
    body.update(settings)
    code, r = m.api("POST", "/api/v1/rollout", body)
    assert code == 202, (code, r)


def act(m, action):
    code, r = m.api("POST", "/api/v1/rollout", {"action": action})
    assert code == 202, (code, r)


def state_is(m, *states):
    r = rollout(m)
    return r if r["state"] in states else None


class Watch:
    """Samples the group every ~100 ms on a thread: the most instances
    there at once (any state, terminating too), and the fewest running in
    HAProxy's rotation."""

    def __init__(self, m):
        self.m, self.most, self.fewest, self.samples = m, 0, None, 0
        self.ids = set()
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping.wait(0.1):
            s = self.m.status()
            if not s:
                continue
            self.samples += 1
            self.most = max(self.most, len(s["instances"]))
            rotation = len([i for i in s["instances"] if i["state"] == "running" and i["balancer"] == "added"])
            self.fewest = rotation if self.fewest is None else min(self.fewest, rotation)
            self.ids.update(i["id"] for i in s["instances"])

    def stop(self):
        self.stopping.set()
        self.t.join(10)
        assert self.samples > 10, "the group was sampled only %d times" % self.samples
        return self


@rollout_test("roll")
def a_rollout_replaces_every_instance_without_a_failed_request(m, hap, d):
    """Steady load through HAProxy; v2 reloaded, a rollout with surge 1:
    every instance ends on v2, no request fails, never more than 4
    instances, never fewer than 3 in rotation; the status says
    succeeded with the generations and counts."""
    load = Load(hap.port, threads=2, rate=100)
    try:
        wait_for(lambda: load.ok > 50, 20, "requests flowing")
        gen = change_version(m, d, "v2")
        watch = Watch(m)
        start(m, max_surge=1, bake_s=1)
        r = wait_for(lambda: state_is(m, "succeeded", "failed", "rolled_back"), 90, "the rollout over")
        wait_for(lambda: serving(m, hap, 3, gen), 30, "three instances of v2 in HAProxy")
        watch.stop()
        before = load.ok
        wait_for(lambda: load.ok > before + 50, 20, "requests still flowing")
    finally:
        ok, failed, errors = load.stop()
    assert r["state"] == "succeeded", r
    assert (r["from_generation"], r["to_generation"], r["replaced"], r["remaining"]) == (gen - 1, gen, 3, 0), r
    assert failed == 0, "%d of %d requests failed: %s" % (failed, ok + failed, errors)
    # The rollout's own launches stay within the surge: 3 and 1 more. An
    # instance that misses its probes (a busy machine) is replaced for its
    # health at once, surge or not, while the one it replaces is still
    # stopping: each such replacement may add one row for a moment.
    health = m.ctl("events", "-n", "200").stdout.count("replacing unhealthy instance")
    assert watch.most <= 4 + health, "%d instances at once (%d replaced for health)" % (watch.most, health)
    assert watch.fewest >= 3, "only %d in rotation at a moment" % watch.fewest
    assert answers(hap.port) == {(200, "v2")}
    assert len(watch.ids) == 6, watch.ids   # three old, three new: none launched twice


@rollout_test("rollbad", desired=2)
def a_version_that_does_not_start_is_rolled_back(m, hap, d):
    """v2 exits at once: its first instance never comes up; the rollout
    fails after that one, rolls back, v1 keeps serving without a failed
    request, and the reason is in the status."""
    load = Load(hap.port, threads=2, rate=50)
    try:
        wait_for(lambda: load.ok > 20, 20, "requests flowing")
        bad = change_version(m, d, "v2", "--exit", boot_timeout_ms=4000)   # its verdict sooner
        watch = Watch(m)
        start(m, max_surge=1, bake_s=1)
        r = wait_for(lambda: state_is(m, "rolled_back", "failed", "succeeded"), 60, "the rollout over")
        s = wait_for(lambda: serving(m, hap, 2, gen=None), 30, "two instances in HAProxy")
        watch.stop()
    finally:
        ok, failed, errors = load.stop()
    assert r["state"] == "rolled_back", r
    assert "did not register" in r["reason"] or "unhealthy" in r["reason"], r
    assert all(i["launch_spec_generation"] != bad for i in s["instances"]), s["instances"]
    assert answers(hap.port) == {(200, "v1")}
    assert failed == 0, "%d of %d requests failed: %s" % (failed, ok + failed, errors)
    assert watch.most <= 3, "%d instances at once: more than one bad at a time" % watch.most
    assert m.status()["group"]["launch_spec_generation"] == bad - 1   # the old spec in force again
    ev = m.ctl("events", "-n", "100").stdout
    assert "rolling back to generation %d" % (bad - 1) in ev, ev


@rollout_test("roll500", desired=2, health="tcp")
def a_version_answering_500_is_rolled_back_on_its_error_rate(m, hap, d):
    """v2 passes TCP checks but answers 500: HAProxy retries its requests
    on the old instances (no client sees a failure) and counts them
    against it; its error share over the bake window is worse than the old
    ones': rolled back."""
    load = Load(hap.port, threads=2, rate=100)
    try:
        wait_for(lambda: load.ok > 20, 20, "requests flowing")
        change_version(m, d, "v2", "--status", "500")
        start(m, max_surge=1, bake_s=3)
        r = wait_for(lambda: state_is(m, "rolled_back", "failed", "succeeded"), 60, "the rollout over")
        wait_for(lambda: serving(m, hap, 2), 30, "two instances in HAProxy")
    finally:
        ok, failed, errors = load.stop()
    assert r["state"] == "rolled_back", r
    assert "5xx" in r["reason"], r
    assert answers(hap.port) == {(200, "v1")}
    assert failed == 0, "%d of %d requests failed: %s" % (failed, ok + failed, errors)


@rollout_test("rollcanary", desired=3)
def canary_and_checkpoints_pause_until_resumed(m, hap, d):
    """--canary 1 replaces one and pauses (the reason says so); resume;
    --pause-at 60 pauses again at two of three; resume; it succeeds."""
    gen = change_version(m, d, "v2")
    start(m, canary=1, pause_at=[60], bake_s=1)
    r = wait_for(lambda: state_is(m, "paused"), 60, "paused on the canary")
    assert "canary" in r["reason"] and r["replaced"] == 1, r
    s = serving(m, hap, 3) or wait_for(lambda: serving(m, hap, 3), 20, "three in HAProxy")
    assert gens(s) == [gen - 1, gen - 1, gen], s["instances"]
    act(m, "resume")
    r = wait_for(lambda: (lambda r: r if r["replaced"] >= 2 and r["state"] != "running" else None)(rollout(m)), 60,
                 "the checkpoint")
    assert "checkpoint 60%" in r["reason"] and r["replaced"] == 2, r
    act(m, "resume")
    r = wait_for(lambda: state_is(m, "succeeded"), 60, "succeeded")
    wait_for(lambda: serving(m, hap, 3, gen), 30, "three of the new generation")


@rollout_test("rollcancel", desired=2)
def cancel_leaves_a_mixed_group_that_scaling_keeps_whole(m, hap, d):
    """Paused at 50% and cancelled: one old, one new; the group scales out
    with the new spec and replaces a dead instance, mixed as it is; a
    scale-in then takes the old one first."""
    gen = change_version(m, d, "v2")
    start(m, pause_at=[50], bake_s=1)
    wait_for(lambda: state_is(m, "paused"), 60, "paused at 50%")
    act(m, "cancel")
    r = wait_for(lambda: state_is(m, "cancelled"), 10, "cancelled")
    s = wait_for(lambda: serving(m, hap, 2), 20, "two in HAProxy")
    assert gens(s) == [gen - 1, gen], s["instances"]
    code, _ = m.api("POST", "/api/v1/desired", {"desired": 3})
    assert code == 202
    s = wait_for(lambda: serving(m, hap, 3), 30, "scaled out to three")
    assert gens(s) == [gen - 1, gen, gen], s["instances"]
    code, _ = m.api("POST", "/api/v1/desired", {"desired": 2})
    assert code == 202
    s = wait_for(lambda: serving(m, hap, 2), 30, "scaled in to two")
    assert gens(s) == [gen, gen], s["instances"]
    assert rollout(m)["state"] == "cancelled", r


def wait_replaced(m, n):
    return wait_for(lambda: (lambda r: r if r["replaced"] >= n and r["state"] == "running" else None)(rollout(m)),
                    60, "%d replaced" % n)


@rollout_test("rollkill", desired=3, monitor={"listen": "127.0.0.1:%d" % free_port()})
def a_rollout_survives_its_controller_and_its_manager_killed(m, hap, d):
    """kill -9 of the controller after the first replacement, then of the
    whole manager after the second: the supervisor's new controller, then a
    new manager adopting the instances, go on where it was; it succeeds
    with every instance new, none launched twice and none left behind."""
    old = agent_pids(m)
    gen = change_version(m, d, "v2")
    watch = Watch(m)
    start(m, max_surge=1, bake_s=2)
    wait_replaced(m, 1)
    pid = m.status()["processes"]["controller"]
    kill_pid(pid)
    wait_for(lambda: (m.status() or {}).get("processes", {}).get("controller") not in (None, 0, pid), 20,
             "a new controller")
    wait_replaced(m, 2)
    roles = [p for p in m.status()["processes"].values() if p]
    kill_pid(m.proc.pid)                             # the supervisor: its roles go with it
    m.proc.wait()
    wait_for(lambda: not any(alive(p) for p in roles), 10, "the roles gone with the supervisor")
    m.start()
    r = wait_for(lambda: state_is(m, "succeeded", "failed", "rolled_back"), 90, "the rollout over")
    s = wait_for(lambda: serving(m, hap, 3, gen), 30, "three of the new generation")
    watch.stop()
    assert r["state"] == "succeeded", r
    assert len(watch.ids) == 6, watch.ids           # three old, three new
    assert watch.most <= 4, watch.most
    assert not [p for p in old if alive(p)], (old, s["instances"])   # none of the old ones left behind
    assert all(alive(p) for p in agent_pids(m)), s["instances"]


def agent_pids(m):
    return [i["pid"] for i in m.status()["instances"] if i["pid"] > 0]


@rollout_test("rollscale", desired=2)
def a_scale_out_during_a_rollout_launches_the_new_spec(m, hap, d):
    """Mid-rollout the operator asks for 4: the group grows with the new
    spec, the rollout goes on and ends with four of it."""
    gen = change_version(m, d, "v2")
    start(m, max_surge=1, bake_s=2)
    wait_replaced(m, 1)
    code, _ = m.api("POST", "/api/v1/desired", {"desired": 4})
    assert code == 202
    r = wait_for(lambda: state_is(m, "succeeded", "failed", "rolled_back"), 90, "the rollout over")
    assert r["state"] == "succeeded", r
    wait_for(lambda: serving(m, hap, 4, gen), 30, "four of the new generation")


@rollout_test("rolllife", desired=2, group={"max_instance_lifetime_s": 5})
def instances_past_their_lifetime_are_replaced_under_the_health_gate(m, hap, d):
    """group.max_instance_lifetime_s = 5: each instance is replaced once
    it is older than that, one at a time, never fewer than 2 in rotation."""
    first = {i["id"] for i in m.status()["instances"]}
    watch = Watch(m)
    wait_for(lambda: (lambda s: s if s and not first & {i["id"] for i in s["instances"]} else None)(
        serving(m, hap, 2)), 60, "both first instances replaced")
    watch.stop()
    assert watch.fewest >= 2, watch.fewest
    assert watch.most <= 3, watch.most
    ev = m.ctl("events", "-n", "200").stdout
    assert "past its lifetime (5 s)" in ev, ev


if __name__ == "__main__":
    sys.exit(run_tests())
