#!/usr/bin/python3
"""Integration tests: operators' controls on instances
(docs/instance-controls.md). A protected instance survives a scale-in
and a rollout's replacement (the rollout then waits and says why), and
goes once unprotected; standby keeps a hung instance (its agent stopped
with SIGSTOP) alive and out of HAProxy, a replacement serving in its
place, and exit brings it back. Each visible in asgctl status, the API,
/metrics and the events; strangers are refused. The termination
policies themselves are Check units (tests/check_ops.c)."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")



def stranger_code(m, path, body):
    """The HTTP status another local user gets for a POST with the
    dashboard's own headers but no credential."""
    r = as_stranger(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", "POST",
                     "-H", "Origin: " + m.url, "-H", "Content-Type: application/json", "-d", json.dumps(body),
                     m.url + path])
    return int(r.stdout or 0)


def events(m):
    code, r = m.api("GET", "/api/v1/events")
    assert code == 200, (code, r)
    return [e["message"] for e in r["events"]]


def instance(s, iid):
    return next((i for i in s["instances"] if i["id"] == iid), None)



def sleeper(seconds):
    """A service that only has to run: a change of it is a new launch spec."""
    return ["/bin/sleep", str(seconds)]


@with_status("protect",
             group={"min_instances": 1, "max_instances": 4, "desired_instances": 3},
             provider={"local": {"service": sleeper(3600), "service_health": "none"}},
             rollout={"bake_s": 0},
             policy={"scale_out_above": 1.0})
def protected_instances_survive_a_scale_in_and_a_rollout(m):
    """Two of three instances protected (asgctl protect), desired lowered
    to 1: only the unprotected one goes; the group stays at 2 and says
    so. A rollout then replaces neither and waits, saying why; once
    unprotected, the scale-in and the rollout finish."""
    s = m.wait_running(3)
    keep = sorted(i["id"] for i in s["instances"])[1:]   # the newest two: the default's first choices
    for iid in keep:
        r = m.ctl("protect", iid, "on")
        assert r.returncode == 0 and "protected from scale-in" in r.stdout, (r.returncode, r.stdout, r.stderr)
    s = m.status()
    assert [i["id"] for i in s["instances"] if i["protected"]] == keep, s["instances"]
    assert s["group"]["protected"] == 2 and s["group"]["standby"] == 0, s["group"]
    r = m.ctl("status")
    assert r.stdout.count("[protected]") == 2 and "2 protected, 0 on standby" in r.stdout, r.stdout
    assert "scale-in takes first: old_spec, newest;" in r.stdout, r.stdout
    assert s["group"]["termination_policy"] == ["old_spec", "newest"], s["group"]
    code, met = http("GET", m.url + "/metrics")
    promtool_check(met)
    assert "asg_protected_instances 2" in met and "asg_instances_standby 0" in met, met
    # Bad requests are refused by name, strangers not at all.
    assert m.ctl("protect", keep[0], "maybe").returncode == 2
    code, r = m.api("POST", "/api/v1/instances/%s/protect" % keep[0], {"protect": "yes"})
    assert code == 400 and "protect" in r["error"], (code, r)
    code, r = m.api("POST", "/api/v1/instances/%s/protect" % keep[0], {"protect": True, "colour": 1})
    assert code == 400 and "colour" in r["error"], (code, r)
    code, r = m.api("POST", "/api/v1/instances/nosuch-1/protect", {"protect": False})
    assert code == 404, (code, r)
    assert stranger_code(m, "/api/v1/instances/%s/protect" % keep[0], {"protect": False}) in (401, 403)
    assert as_stranger([BIN + "/asgctl", "--shm", m.table_name(), "protect", keep[0], "off"]).returncode != 0
    assert all(i["protected"] for i in m.status()["instances"] if i["id"] in keep)

    code, r = m.api("POST", "/api/v1/desired", {"desired": 1})
    assert code == 202, (code, r)
    wait_for(lambda: any("scale in held: 1 instance(s) above the target" in e for e in events(m)), 15,
             "the held scale-in said")
    s = wait_for(lambda: (lambda s: s if sorted(i["id"] for i in m.running(s)) == keep
                          and s["group"]["size"] == 2 else None)(m.status()), 15, "the unprotected one gone")
    assert s["group"]["target"] == 1, s["group"]
    assert "1 above the target" in m.ctl("status").stdout

    # A new launch spec, and a rollout: the protected old ones stay.
    gen = s["group"]["launch_spec_generation"]
    m.cfg["provider"]["local"]["service"] = sleeper(3601)
    m.cfg["group"]["desired_instances"] = 1   # a reload puts the config's desired size in force
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["group"]["launch_spec_generation"] == gen + 1, 10, "generation %d" % (gen + 1))
    code, r = m.api("POST", "/api/v1/rollout", {"action": "start"})
    assert code == 202, (code, r)
    ro = wait_for(lambda: (lambda r: r if "protected" in r[1]["reason"] else None)(m.api("GET", "/api/v1/rollout")),
                  15, "the rollout waiting for protected instances")[1]
    assert ro["state"] == "running" and "waiting: 2 protected old instance(s)" in ro["reason"], ro
    assert sorted(i["id"] for i in m.running()) == keep
    assert any("waiting: 2 protected" in e for e in events(m))

    # Unprotected: the scale-in takes one, the rollout replaces the other.
    code, r = m.api("POST", "/api/v1/instances/%s/protect" % keep[0], {"protect": False})
    assert code == 202, (code, r)
    assert m.ctl("protect", keep[1], "off").returncode == 0
    wait_for(lambda: m.api("GET", "/api/v1/rollout")[1]["state"] == "succeeded", 20, "the rollout done")
    s = m.wait_running(1)
    assert s["instances"][0]["id"] not in keep and s["instances"][0]["launch_spec_generation"] == gen + 1


def standby_service(d):
    return ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info")]


def in_haproxy(hap, iid):
    return iid in hap.servers()


@test
def standby_keeps_a_hung_instance_alive_and_out_of_the_balancer():
    """asgctl standby ID enter: the instance leaves HAProxy and one is
    launched in its place; its agent stopped (SIGSTOP) it goes unhealthy
    and is kept; exit (after SIGCONT): back in HAProxy, counted again.
    With --decrement the target goes down instead of a launch, and comes
    back up on exit."""
    d = tempfile.mkdtemp(prefix="asg-ops-")
    hap = HAProxy()
    m = Manager("standby", group={"min_instances": 1, "max_instances": 4, "desired_instances": 2},
                provider={"local": {"service": standby_service(d), "service_health": "http:/"}},
                lb=hap.lb_section(drain_timeout_ms=2000),
                policy={"scale_in_below": 0.0, "scale_out_above": 1.0},
                status={"listen": "127.0.0.1:%d" % free_port()})
    m.url = "http://" + m.cfg["status"]["listen"]

    def body():
        wait_for(lambda: len([i for i in m.running() if i["balancer"] == "added"]) == 2 and len(hap.servers()) == 2,
                 30, "two instances in HAProxy")
        s = m.status()
        victim = min(s["instances"], key=lambda i: i["id"])
        iid, pid = victim["id"], victim["pid"]
        r = m.ctl("standby", iid, "enter")
        assert r.returncode == 0 and "on standby" in r.stdout, (r.returncode, r.stdout, r.stderr)
        wait_for(lambda: not in_haproxy(hap, iid), 15, "%s out of HAProxy" % iid)
        # One launched in its place, serving.
        wait_for(lambda: len([i for i in m.running() if i["balancer"] == "added" and i["id"] != iid]) == 2
                 and len(hap.servers()) == 2, 30, "a replacement in HAProxy")
        s = m.status()
        assert instance(s, iid)["standby"] and instance(s, iid)["balancer"] == "removed", instance(s, iid)
        assert s["group"]["standby"] == 1, s["group"]
        code, met = http("GET", m.url + "/metrics")
        promtool_check(met)
        assert "asg_instances_standby 1" in met, met
        assert "[standby]" in m.ctl("status").stdout

        # Hung: unhealthy, and kept.
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: instance(m.status(), iid)["state"] == "unhealthy", 15, "%s unhealthy" % iid)
            evals = m.status()["group"]["evaluations"]
            wait_for(lambda: m.status()["group"]["evaluations"] >= evals + 5, 15, "five evaluations more")
            s = m.status()
            assert instance(s, iid)["state"] == "unhealthy" and ours(pid), instance(s, iid)
            assert not in_haproxy(hap, iid)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: instance(m.status(), iid)["state"] == "running", 15, "%s answering again" % iid)
        r = m.ctl("standby", iid, "exit")
        assert r.returncode == 0 and "back from standby" in r.stdout, (r.returncode, r.stdout, r.stderr)
        wait_for(lambda: in_haproxy(hap, iid), 15, "%s back in HAProxy" % iid)
        # Three counted, target 2: the newest goes (the default policy), not the one back.
        s = wait_for(lambda: (lambda s: s if len(m.running(s)) == 2 and s["group"]["size"] == 2 else None)(m.status()),
                     20, "back at two")
        assert instance(s, iid) and not instance(s, iid)["standby"], s["instances"]
        assert any("chosen by newest" in e for e in events(m)), events(m)

        # With decrement: the target goes down, nothing launched; exit restores it.
        r = m.ctl("standby", iid, "enter", "--decrement")
        assert r.returncode == 0 and "target 2 -> 1" in r.stdout, (r.returncode, r.stdout, r.stderr)
        wait_for(lambda: not in_haproxy(hap, iid), 15, "%s out of HAProxy" % iid)
        s = m.status()
        assert s["group"]["target"] == 1 and s["group"]["size"] == 2 and s["group"]["pending"] == 0, s["group"]
        code, r = m.api("POST", "/api/v1/instances/%s/standby" % iid, {"action": "exit", "decrement": True})
        assert code == 400 and "decrement" in r["error"], (code, r)
        assert stranger_code(m, "/api/v1/instances/%s/standby" % iid, {"action": "exit"}) in (401, 403)
        code, r = m.api("POST", "/api/v1/instances/%s/standby" % iid, {"action": "exit"})
        assert code == 202, (code, r)
        wait_for(lambda: in_haproxy(hap, iid), 15, "%s back in HAProxy" % iid)
        s = m.status()
        assert s["group"]["target"] == 2 and len(m.running(s)) == 2, s["group"]
        # Terminated on standby, with --decrement: nothing replaces it and
        # the target stays (the instance was not counted).
        assert m.ctl("standby", iid, "enter").returncode == 0
        wait_for(lambda: len([i for i in m.running() if not i["standby"]]) == 2, 20, "a replacement running")
        code, r = m.api("POST", "/api/v1/instances/%s/terminate" % iid, {"decrement": True})
        assert code == 202, (code, r)
        s = wait_for(lambda: (lambda s: s if not instance(s, iid) else None)(m.status()), 15, "%s gone" % iid)
        assert s["group"]["target"] == 2 and len(m.running(s)) == 2, s["group"]
        assert any("on standby: not counted" in e for e in events(m)), events(m)
    behind_haproxy(m, hap, d, "standby_keeps_a_hung_instance_alive_and_out_of_the_balancer", body)


# ---- two managers on etcd (as tests/integration/t_ha.py makes them) ----

def ha_role(m):
    s = m.status()
    return s["ha"]["role"] if s else None


@test
def a_new_leader_keeps_protection_and_standby():
    """The leader's controls go with the group's state into etcd: after
    the leader is killed, the new one has the same instance protected and
    the same one on standby (with its decrement), and launches nothing."""
    etcd = Etcd(1)
    ms = []
    try:
        g = {"min_instances": 1, "max_instances": 4, "desired_instances": 3}
        for ident in ("mgr-a", "mgr-b"):
            m = Manager("opsha", group=dict(g), policy={"evaluation_interval_ms": 500},
                        monitor={"unhealthy_after": 10})
            if ms:
                m.group = ms[0].group
                m.cfg["group"]["name"] = ms[0].group
                m.cfg["tls"]["dir"] = ms[0].cfg["tls"]["dir"]
            m.cfg["ha"] = {"etcd": etcd.endpoints(), "lease_ttl_ms": 2000, "id": ident, "prefix": "/asg-it-ops"}
            m.cfg["status"] = {"listen": "127.0.0.1:%d" % free_port()}
            m.url = "http://" + m.cfg["status"]["listen"]
            m.write_config()
            ms.append(m)
        a, b = ms
        a.start()
        wait_for(lambda: ha_role(a) == "leader", 10, "a leads")
        a.wait_running(3)
        b.start()
        wait_for(lambda: ha_role(b) == "standby", 10, "b stands by")
        ids = sorted(i["id"] for i in a.status()["instances"])
        assert a.ctl("protect", ids[0], "on").returncode == 0
        r = a.ctl("standby", ids[1], "enter", "--decrement")
        assert r.returncode == 0 and "target 3 -> 2" in r.stdout, (r.stdout, r.stderr)
        wait_for(lambda: (lambda s: s and b.size(s) == 3)(b.status()), 20, "the standby's table holds 3")
        state = json.loads(etcd.get("/asg-it-ops/%s/state" % a.group))
        assert state["instance_flags"] == {ids[0]: 16, ids[1]: 32 | 256}, state.get("instance_flags")
        procs = [p for p in a.status()["processes"].values() if p]
        for p in procs:
            kill_pid(p, signal.SIGSTOP)
        for p in procs:
            kill_pid(p, signal.SIGKILL)
        wait_for(lambda: ha_role(b) == "leader", 15, "b leads")
        s = wait_for(lambda: (lambda s: s if s and instance(s, ids[0]) and instance(s, ids[0])["protected"]
                              and instance(s, ids[1]) and instance(s, ids[1])["standby"] else None)(b.status()),
                     10, "b has the controls")
        assert not instance(s, ids[2])["protected"] and not instance(s, ids[2])["standby"]
        assert s["group"]["target"] == 2, s["group"]
        evals = s["group"]["evaluations"]
        wait_for(lambda: b.status()["group"]["evaluations"] >= evals + 4, 15, "four evaluations by b")
        s = b.status()
        assert s["ha"]["provider_calls"] == 0 and len(s["instances"]) == 3, (s["ha"], s["instances"])
        assert "ha: %s takes the last leader's controls: protected" % ids[0] in b.log()
    except BaseException:
        for m in ms:
            sys.stderr.write("---- asgd log of %s ----\n%s\n" % (m.cfg["ha"]["id"], m.log()[-5000:]))
        raise
    finally:
        for m in ms:
            m.cleanup()
        etcd.cleanup()


if __name__ == "__main__":
    run_tests()
