#!/usr/bin/python3
"""Integration tests: the controller: scaling, replacements, pacing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


@with_manager("scale")
def scales_out_to_max_and_back_to_min(m):
    t0 = time.monotonic()
    m.wait_running(2, what="the group at min")
    figure("start to min running (s)", time.monotonic() - t0)
    sizes = []

    def pinned_size(pct, want):
        m.load_all(pct)   # pins new instances too, as they come
        s = m.status()
        sizes.append(m.size(s))
        return len(m.running(s)) == want and m.size(s) == want

    wait_for(lambda: pinned_size(90, 4), 30, "scale out to max 4")
    end = time.monotonic() + 2.5
    while time.monotonic() < end:   # stays at max under load
        pinned_size(90, 4)
        time.sleep(0.1)
    assert max(sizes) == 4, "group went beyond max: %s" % max(sizes)
    sizes.clear()
    wait_for(lambda: pinned_size(10, 2), 30, "scale in to min 2")
    assert min(sizes) >= 2, "group went below min: %s" % min(sizes)
    log = m.log()
    assert "scale out: target 2 -> 3" in log and "scale in: target" in log


@with_manager("predictive", policy={"kind": "predictive"},
              group={"min_instances": 1, "desired_instances": 1, "max_instances": 6})
def predictive_policy_runs_the_real_group(m):
    """The predictive kind in the controller: pinned at 100 % (saturated:
    demand is at least that) the group grows by half again each time, each
    decision saying its forecast. Its scale-in is left to the Check units,
    in simulated time: it holds the busiest of the last five minutes, so a
    real one takes minutes by design."""
    m.wait_running(1)

    def pinned(pct, ok):
        m.load_all(pct)
        s = m.status()
        return s if ok(s) else None
    wait_for(lambda: pinned(100, lambda s: len(m.running(s)) >= 4), 30, "the group grown to 4 or more")
    ev = m.ctl("events", "-n", "100").stdout
    out = re.findall(r"scale out: target (\d+) -> (\d+): demand [0-9.]+ instances, forecast [0-9.]+ in \d+ s "
                     r"\((level|trend|daily pattern)\), noise \d+%, at 0.90 -> \d+", ev)
    assert out and "saturated" in ev, ev
    assert any(int(b) - int(a) > 1 for a, b, _ in out), out   # 3 -> 5: not one at a time
    s = m.status()
    assert m.size(s) <= 6, s["group"]


@with_manager("sched", start=False)
def schedule_entry_sets_the_bounds(m):
    """A schedule entry in force (every minute, so always) raises desired to
    3 at once; asgctl status and the JSON say which entry and since when;
    a reload without it brings the config's bounds back."""
    m.write_config(render(m.cfg) + '\nschedule = { timezone = "UTC"; entries = ( '
                   '{ at = "0 0 1 1 *"; desired = 4; }, { at = "* * * * *"; desired = 3; } ); };\n')
    m.start()
    s = m.wait_running(3, what="the scheduled desired size")
    sch = s["schedule"]
    assert sch["active"]["entry"] == 2 and sch["active"]["desired"] == 3, sch
    assert abs(sch["active"]["since"] - time.time()) < 120 and sch["next"]["entry"] == 2, sch
    out = m.ctl("status").stdout
    assert re.search(r'schedule \(UTC\): entry 2 "\* \* \* \* \*" in force since \S+Z', out), out
    assert "schedule: entry 2 (* * * * *) in force: min 0, max 0, desired 3" in m.log()
    m.write_config()                                   # the same config, no schedule
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["schedule"]["active"] is None, 10, "no entry in force after the reload")
    assert m.status()["group"]["desired"] == 2


@with_manager("agentkill")
def killed_agent_is_replaced(m):
    s = m.wait_running(2)
    victim = s["instances"][0]
    t0 = time.monotonic()
    kill_pid(victim["pid"])

    def gone_from_running():
        return victim["id"] not in [i["id"] for i in m.running()]
    wait_for(gone_from_running, 5, "killed agent no longer running")
    figure("agent kill -9 -> out of service, child path (s)", time.monotonic() - t0)

    wait_replaced(m, victim["id"], 2)
    figure("agent kill -9 -> replacement running, child path (s)", time.monotonic() - t0)
    m.wait_log(r"instance %s .*unhealthy" % re.escape(victim["id"]))


@with_manager("probekill")
def killed_agent_found_by_probes(m):
    """With agents not children of the controller (it restarted), only the
    probes can tell: unhealthy after 3 misses, then replaced."""
    m.wait_running(2)
    ctl = m.pid("controller")
    kill_pid(ctl)
    wait_for(lambda: m.pid("controller") not in (None, ctl), 5, "controller back")
    s = m.wait_running(2)
    victim = s["instances"][0]
    t0 = time.monotonic()
    kill_pid(victim["pid"])
    m.wait_log(r"instance %s unhealthy: missed 3 probes" % re.escape(victim["id"]), 10)
    figure("agent kill -9 -> unhealthy, probe path (s)", time.monotonic() - t0)

    wait_replaced(m, victim["id"], 2)
    figure("agent kill -9 -> replacement running, probe path (s)", time.monotonic() - t0)


@with_manager("pace", group={"min_instances": 10, "desired_instances": 10, "max_instances": 10},
              shm={"capacity": 24})
def replacements_are_paced_and_the_slow_rejoin(m):
    """Four of ten agents hang at once (what a starved manager sees): a tenth
    of the group is replaced at a time, the others stay unhealthy and are
    still probed, and those that answer again rejoin with the same process
    instead of being replaced."""
    s = m.wait_running(10)
    # Every launched agent's pid is recorded, even when it registered before
    # its launch was (ten launches in one evaluation); a pid of 0 here would
    # also make os.kill below signal our own process group.
    assert all(i["pid"] > 0 for i in s["instances"]), s["instances"]
    victims = dict(sorted((i["id"], i["pid"]) for i in s["instances"])[:4])
    for pid in victims.values():
        os.kill(pid, signal.SIGSTOP)
    most_in_flight = 0
    try:
        def all_unhealthy_or_going():
            nonlocal most_in_flight
            s = m.status()
            st = {i["id"]: i["state"] for i in s["instances"]}
            most_in_flight = max(most_in_flight, s["group"]["terminating"])
            return s if all(st.get(v) in ("unhealthy", "terminating", None) for v in victims) and \
                any(st.get(v) == "terminating" or st.get(v) is None for v in victims) else None
        s = wait_for(all_unhealthy_or_going, 15, "the four unhealthy, one being replaced", interval=0.02)
        waiting = [i["id"] for i in s["instances"] if i["id"] in victims and i["state"] == "unhealthy"]
        assert len(waiting) >= 2, s["instances"]
        # The controller says so while they still hang (their probes are
        # spread over the interval, so they may fall unhealthy one by one
        # and an evaluation may come after the test has seen them).
        m.wait_log(r"replacements paced: \d+ unhealthy instance")
    finally:
        for pid in victims.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert most_in_flight <= 1, most_in_flight   # one replacement at a time (a tenth of ten)
    s = wait_for(lambda: (lambda s: s if len(m.running(s)) == 10 and m.size(s) == 10 and
                          not s["group"]["terminating"] else None)(m.status()), 30, "ten running again")
    back = [i["id"] for i in m.running(s) if victims.get(i["id"]) == i["pid"]]
    assert back, ("no waiting instance rejoined", waiting, s["instances"])
    assert re.search(r"instance (%s) answers again before its replacement" % "|".join(back), m.log())


@with_manager("execfail", start=False)
def failed_exec_is_known_at_once(m):
    """An agent binary that cannot be executed (here: no program at all)
    fails its launch at once with exec's own reason, learnt through the
    child's close-on-exec pipe, not at reap; the child leaves no zombie."""
    bad = os.path.join(m.dir, "not-a-program")
    with open(bad, "w") as f:
        f.write("this is not an executable\n")
    os.chmod(bad, 0o755)
    m.cfg["provider"]["local"]["agent_path"] = bad
    m.write_config()
    m.start()
    m.wait_log(r"launch %s-\d+ failed: exec %s: Exec format error" % (m.group, re.escape(bad)))
    controller = str(m.pid("controller"))

    def zombie_child(pid):
        try:
            with open("/proc/%s/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[:2] == ["Z", controller]
        except OSError:
            return False
    zombies = [d for d in os.listdir("/proc") if d.isdigit() and zombie_child(d)]
    assert not zombies, zombies


def events(m):
    return json.loads(m.ctl("events", "-n", "256", "--json").stdout)["events"]


def evaluations_pass(m, n):
    """Waits until the controller has evaluated n more times: what it would
    have done by then, it has done."""
    start = m.status()["group"]["evaluations"]
    wait_for(lambda: m.status()["group"]["evaluations"] >= start + n, 10, "%d more evaluations" % n)


@with_status("decrement", group={"min_instances": 2, "desired_instances": 3, "max_instances": 4})
def terminate_with_decrement_shrinks_the_group(m):
    """A group of 3 at desired 3: terminate with decrement leaves 2, and
    desired 2 (AWS's ShouldDecrementDesiredCapacity), with no replacement
    launched; at min 2 the same request is refused with its reason in the
    events and the instance stays."""
    s = m.wait_running(3)
    ids = sorted(i["id"] for i in s["instances"])
    victim = ids[0]
    before = events(m)[-1]["number"]
    code, r = m.api("POST", "/api/v1/instances/%s/terminate" % victim, {"decrement": True})
    assert code == 202, (code, r)

    def shrunk():
        s = m.status()
        g = s["group"]
        gone = victim not in [i["id"] for i in s["instances"]]
        return s if gone and m.size(s) == 2 and g["target"] == 2 and g["operator_desired"] == 2 else None
    wait_for(shrunk, 15, "the victim gone, target and desired 2")
    evaluations_pass(m, 5)
    s = m.status()
    assert victim not in [i["id"] for i in s["instances"]] and m.size(s) == 2, s["instances"]
    assert (s["group"]["target"], s["group"]["operator_desired"]) == (2, 2), s["group"]
    # What the bug did: launch a replacement to bring the group back to 3.
    # (A replacement of an instance gone unhealthy on a busy machine would
    # say "target 2".)
    assert not [e for e in events(m) if e["number"] > before and e["kind"] == "launch" and
                "target 3" in e["message"]], events(m)
    assert "desired 2" in m.ctl("status").stdout

    # At min: refused, the reason in the events, nothing changes.
    code, r = m.api("POST", "/api/v1/instances/%s/terminate" % ids[1], {"decrement": True})
    assert code == 202, (code, r)
    wait_for(lambda: [e for e in events(m) if "with decrement refused" in e["message"]], 10,
             "the refusal in the events")
    evaluations_pass(m, 5)
    s = m.status()
    assert [i["state"] for i in s["instances"] if i["id"] == ids[1]] == ["running"], s["instances"]
    assert m.size(s) == 2 and s["group"]["target"] == 2 and s["group"]["operator_desired"] == 2, s["group"]
    msg = [e["message"] for e in events(m) if "with decrement refused" in e["message"]][0]
    assert "at its minimum 2" in msg and ids[1] in msg, msg


@test
def a_joining_agent_is_admitted_within_the_scheduled_maximum():
    """An agent started by hand (no group nonce) joins by registering; the
    controller admits it against the bounds in force, which it works out
    (config, schedule, operator) in one place: a schedule entry
    raising the maximum from 2 to 4 lets it join a group of 2 (the
    config's maximum alone refused it: "at its maximum size (2)")."""
    port = free_port()
    m = Manager("schedjoin", group={"min_instances": 1, "max_instances": 2, "desired_instances": 2},
                monitor={"listen": "127.0.0.1:%d" % port, "adopt_unknown": True})
    m.write_config(render(m.cfg) + '\nschedule = { timezone = "UTC"; entries = ( '
                   '{ at = "* * * * *"; max = 4; } ); };\n')
    lone = m.group + "-900"
    agent = None
    try:
        m.start()
        m.wait_running(2)
        wait_for(lambda: (m.status()["schedule"]["active"] or {}).get("max") == 4, 10, "the entry in force")
        tls = m.agent_tls(lone)
        agent, _ = start_agent("--id", lone, "--manager", "127.0.0.1:%d" % port, *tls)
        wait_for(lambda: [i for i in m.running() if i["id"] == lone], 20, "the joining agent running")
        assert "at its maximum size" not in m.log()
        wait_for(lambda: m.size(m.status()) == 3, 10, "a group of three")
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        if agent and agent.poll() is None:
            kill_pid(agent.pid)
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
