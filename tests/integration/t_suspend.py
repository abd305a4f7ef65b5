#!/usr/bin/python3
"""Integration tests: suspended processes (docs/suspend.md) and asgctl's
operator verbs. Each suspended process really stops and starts again on
resume, end to end: launch (a raised desired size launches nothing, even
across a controller restart), terminate (a lowered one stops nothing),
replace (a hung agent stays unhealthy, not replaced), scale (high load
does not move the target); asgctl desired, launch, terminate [--decrement]
do what the API does, with its checks; who suspended what is in asgctl
status, the JSON API, the events and /metrics; a stranger (uid 65534)
can neither suspend nor resume. The other processes (reconcile, balancer,
rollout) and each gate's logic are Check units (tests/check_suspend.c)."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

GROUP = {"min_instances": 1, "desired_instances": 1, "max_instances": 3}



def stranger_post(m, path, body):
    """The HTTP status another local user gets for a POST with the headers
    the dashboard would send but no credential."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", "POST",
            "-H", "Origin: " + m.url, "-H", "Content-Type: application/json", "-d", json.dumps(body),
            m.url + path]
    return int(as_stranger(args).stdout or 0)


def ok(m, *args):
    r = m.ctl(*args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def evaluations_pass(m, k):
    """Waits until the controller has evaluated k more times: what it would
    have done by then, it has done."""
    e0 = m.status()["group"]["evaluations"]
    wait_for(lambda: (m.status() or {"group": {"evaluations": 0}})["group"]["evaluations"] >= e0 + k, 10,
             "%d evaluations" % k)
    return m.status()


def suspended(m):
    return {e["process"]: e for e in m.api("GET", "/api/v1/suspend")[1]["suspended"]}



def resume_on_the_dashboard(m):
    """The dashboard shows the suspended process with who and when, and
    its Resume button resumes it, recorded as the dashboard's."""
    from browser import Browser
    b = Browser()
    try:
        b.login(m.login_link())
        wait_for(lambda: "suspended: launch" in b.js("document.getElementById('suspended').textContent"), 10,
                 "the suspended badge")
        title = b.js("document.querySelector('#suspended .badge').title")
        assert title.startswith("by asgctl uid %d via api-token at " % os.getuid()), title
        b.js("document.querySelector('.susp-resume[data-process=\"launch\"]').click()")
        wait_for(lambda: suspended(m) == {}, 10, "the page's resume")
        wait_for(lambda: b.js("document.getElementById('suspended').textContent") == "", 10, "the badge gone")
    finally:
        b.close()
    evs = [e["message"] for e in m.api("GET", "/api/v1/events?limit=256")[1]["events"] if e["kind"] == "suspend"]
    assert "operator dashboard: resumed launch" in evs, evs


@with_status("susp", group=GROUP)
def launch_and_terminate_wait_while_suspended(m):
    """A stranger is refused; suspend launch: desired 2 launches nothing,
    across a controller restart too; the suspension is shown with who and
    when in status, JSON, events and metrics; no rollout starts; resume
    (on the dashboard) launches. Then
    suspend terminate: desired 1 stops nothing until resume."""
    m.wait_running(1)
    assert stranger_post(m, "/api/v1/suspend", {"action": "suspend", "processes": ["launch"]}) in (401, 403)
    r = as_stranger([BIN + "/asgctl", "--shm", m.table_name(), "suspend", "launch"])
    assert r.returncode != 0, r
    assert suspended(m) == {}
    out = ok(m, "suspend", "launch")
    assert "suspended launch" in out, out
    who = "asgctl uid %d via api-token" % os.getuid()
    s = suspended(m)
    assert set(s) == {"launch"} and s["launch"]["by"] == who and s["launch"]["since_ms"] > 0, s
    text = ok(m, "status")
    assert "suspended: launch (by %s at " % who in text, text
    st = m.status()
    assert [e["process"] for e in st["suspended"]] == ["launch"], st["suspended"]
    code, body = http("GET", m.url + "/metrics")
    promtool_check(body)
    mx = metrics(m)
    assert mx[("asg_suspended", (("process", "launch"),))] == 1
    assert mx[("asg_suspended", (("process", "scale"),))] == 0
    evs = [e for e in m.api("GET", "/api/v1/events?limit=256")[1]["events"] if e["kind"] == "suspend"]
    assert evs and who in evs[-1]["message"] and "suspended launch" in evs[-1]["message"], evs

    # No rollout starts while launch is suspended (it could not replace).
    r = m.ctl("rollout", "start")
    assert r.returncode == 1 and "suspended" in r.stderr, (r.returncode, r.stderr)
    assert m.api("GET", "/api/v1/rollout")[1]["number"] == 0
    assert "desired 2" in ok(m, "desired", "2")
    s = evaluations_pass(m, 5)
    assert s["group"]["target"] == 2 and m.size(s) == 1, s["group"]
    # The mask is in the table: a restarted controller still holds launches.
    old = m.pid("controller")
    kill_pid(old)
    wait_for(lambda: m.pid("controller") not in (0, old), 10, "a new controller")
    s = evaluations_pass(m, 5)
    assert m.size(s) == 1 and [e["process"] for e in s["suspended"]] == ["launch"], s["group"]
    resume_on_the_dashboard(m)
    m.wait_running(2)
    assert suspended(m) == {}

    ok(m, "suspend", "terminate")
    assert "desired 1" in ok(m, "desired", "1")
    s = evaluations_pass(m, 5)
    assert s["group"]["target"] == 1 and m.size(s) == 2 and s["group"]["terminating"] == 0, s["group"]
    assert "resumed terminate" in ok(m, "resume")  # none named: all
    m.wait_running(1)


@with_status("suspr", group=GROUP)
def replace_and_scale_wait_and_the_operator_verbs_work(m):
    """Suspend replace: a hung agent falls unhealthy and stays so, not
    replaced, until resume. Suspend scale: load at 90 % moves no target
    until resume. asgctl launch, terminate --decrement and terminate
    (replaced), each checked as the API checks them."""
    s = m.wait_running(1)
    for args in (["desired", "9"], ["desired", "x"], ["terminate", "no/such"], ["suspend"],
                 ["suspend", "lunch"], ["resume", "all", "nap"], ["launch", "2"]):
        r = m.ctl(*args)
        assert r.returncode == 2 and "usage" in r.stderr, (args, r.returncode, r.stderr)
    for body, word in (({"action": "suspend", "processes": ["nap"]}, "'nap'"), ({"action": "suspend"}, "needs"),
                       ({"action": "hold", "processes": ["launch"]}, "action"),
                       ({"action": "resume", "who": "me"}, "'who'")):
        code, r = m.api("POST", "/api/v1/suspend", body)
        assert code == 400 and word in r["error"], (body, code, r)
    code, r = m.api("POST", "/api/v1/suspend", {"action": "suspend", "processes": ["launch"]},
                    headers={"Origin": "http://evil.example"})
    assert code == 403, (code, r)
    assert http("GET", m.url + "/api/v1/suspend")[0] == 401
    assert suspended(m) == {}
    r = m.ctl("terminate", "nosuch-1")
    assert r.returncode == 1 and "no instance" in r.stderr, (r.returncode, r.stderr)

    ok(m, "suspend", "replace")
    victim = s["instances"][0]
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        wait_for(lambda: any(i["id"] == victim["id"] and i["state"] == "unhealthy"
                             for i in m.status()["instances"]), 10, "the hung agent unhealthy")
        s = evaluations_pass(m, 5)
        states = {i["id"]: i["state"] for i in s["instances"]}
        assert states == {victim["id"]: "unhealthy"}, states
        ok(m, "resume", "replace")
        wait_for(lambda: (lambda s: s if len(m.running(s)) == 1 and victim["id"] not in
                          [i["id"] for i in s["instances"]] else None)(m.status()), 15, "the hung one replaced")
    finally:
        if alive(victim["pid"]):
            kill_pid(victim["pid"], signal.SIGCONT)

    ok(m, "suspend", "scale")
    ok(m, "load", "all", "90")
    s = evaluations_pass(m, 6)
    assert s["group"]["target"] == 1 and m.size(s) == 1, s["group"]
    ok(m, "resume", "scale")
    wait_for(lambda: m.status()["group"]["target"] >= 2, 10, "scale-out once resumed")
    ok(m, "load", "all", "auto")
    s = m.wait_running(2)

    # The operator's verbs: one more, then one less with --decrement, then
    # one replaced.
    assert "launch one" in ok(m, "launch")
    s = m.wait_running(3)
    gone = s["instances"][0]["id"]
    assert "decrement" in ok(m, "terminate", gone, "--decrement")
    s = wait_for(lambda: (lambda s: s if m.size(s) == 2 and gone not in [i["id"] for i in s["instances"]]
                          else None)(m.status()), 10, "the group one smaller")
    assert s["group"]["target"] == 2, s["group"]
    other = m.running(s)[0]["id"]
    assert "replaced" in ok(m, "terminate", other)
    wait_for(lambda: (lambda s: s if len(m.running(s)) == 2 and other not in [i["id"] for i in s["instances"]]
                      else None)(m.status()), 15, "the terminated one replaced")


@test
def a_suspension_follows_the_leader():
    """Two managers on etcd: the leader's suspension is written with the
    group's state; the standby refuses one of its own (ask the leader);
    after a kill -9 of the leader, the new leader holds the same processes,
    with the same who and when."""
    etcd = Etcd(1)
    group = dict(GROUP)
    a = Manager("susha", group=group, policy={"evaluation_interval_ms": 300})
    b = Manager("susha", group=group, policy={"evaluation_interval_ms": 300})
    b.group = a.group
    b.cfg["group"]["name"] = a.group
    b.cfg["tls"]["dir"] = a.cfg["tls"]["dir"]
    for m, ident in ((a, "mgr-a"), (b, "mgr-b")):
        m.cfg["ha"] = {"etcd": etcd.endpoints(), "lease_ttl_ms": 2000, "id": ident, "prefix": "/asg-it"}
        m.cfg["status"] = {"listen": "127.0.0.1:%d" % free_port()}
        m.url = "http://" + m.cfg["status"]["listen"]
        m.write_config()
    try:
        a.start()
        wait_for(lambda: (a.status() or {}).get("ha", {}).get("role") == "leader", 10, "a leads")
        a.wait_running(1)
        b.start()
        wait_for(lambda: (b.status() or {}).get("ha", {}).get("role") == "standby", 10, "b stands by")
        ok(a, "suspend", "launch", "scale")
        before = suspended(a)
        r = b.ctl("suspend", "terminate")
        assert r.returncode == 1 and "standby" in r.stderr, (r.returncode, r.stderr)
        procs = [p for p in a.status()["processes"].values() if p]
        for p in procs:
            kill_pid(p, signal.SIGSTOP)
        for p in procs:
            kill_pid(p)
        wait_for(lambda: (b.status() or {}).get("ha", {}).get("role") == "leader", 10, "b leads")
        after = wait_for(lambda: (lambda s: s if set(s) == {"launch", "scale"} else None)(suspended(b)), 10,
                         "b holding a's suspension")
        assert after == before, (before, after)
        evs = [e["message"] for e in b.api("GET", "/api/v1/events?limit=256")[1]["events"] if e["kind"] == "suspend"]
        assert "ha: the last leader's suspended processes taken over: launch, scale" in evs, evs
    except BaseException:
        for m in (a, b):
            sys.stderr.write("---- asgd log of %s ----\n%s\n" % (m.cfg["ha"]["id"], m.log()[-4000:]))
        raise
    finally:
        a.cleanup()
        b.cleanup()
        etcd.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
