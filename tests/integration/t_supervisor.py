#!/usr/bin/python3
"""Integration tests: the supervisor: role deaths, the lock, drain, restarts, a second manager, crash-restart."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


@with_manager("rolekill")
def killed_roles_come_back_without_losing_instances(m):
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])
    for role, work in (("monitor", "probe_rounds"), ("controller", "evaluations")):
        old = m.pid(role)
        before = m.status()["group"][work]
        t0 = time.monotonic()
        kill_pid(old)
        wait_for(lambda: m.pid(role) not in (None, old), 5, "%s restarted" % role)
        figure("%s kill -9 -> new process (s)" % role, time.monotonic() - t0)
        wait_for(lambda: m.status()["group"][work] > before + 1, 5, "%s working" % role)
        figure("%s kill -9 -> doing its work again (s)" % role, time.monotonic() - t0)
        time.sleep(1.0)
        s = m.wait_running(2)
        assert sorted(i["id"] for i in s["instances"]) == ids, \
            "instances changed after killing the %s: %s -> %s" % (role, ids, s["instances"])
    assert "launched %s-3" % m.group not in m.log(), "a duplicate was launched"


def lock_fault(role, nth):
    needs_hooks("ASG_FAULT")
    # What is checked is the lock's recovery, not the probes: on a busy
    # machine (sanitized builds, two test files and stress-ng on two
    # cores) an agent once missed three 200 ms probes in a row and was
    # rightly replaced, which this test would take for a lost instance.
    m = Manager("lock" + role, monitor={"unhealthy_after": 10})
    try:
        m.start(env={"ASG_FAULT": "%s:lock-kill:%d" % (role, nth)})
        m.wait_log(r"ASG_FAULT: %s killing itself" % role, 15)
        # The supervisor reaping it, or a role finding its pid dead first:
        # either takes the lock over (by compare-and-swap of the pid).
        m.wait_log(r"died holding the table lock; lock recovered|died holding it; taking it over", 5)
        wait_for(lambda: (m.status() or {}).get("group", {}).get("lock_recoveries", 0) >= 1, 5,
                 "lock recovery counted")
        s = m.wait_running(2)
        ids = sorted(i["id"] for i in s["instances"])
        time.sleep(1.5)
        s = m.wait_running(2)
        assert sorted(i["id"] for i in s["instances"]) == ids, "instances changed after recovery"
        assert m.pid(role), "%s not restarted" % role
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()


@test
def monitor_killed_holding_lock_recovered():
    lock_fault("monitor", 40)


@test
def controller_killed_holding_lock_recovered():
    lock_fault("controller", 15)


@with_manager("term")
def sigterm_drains_and_leaves_nothing(m):
    m.wait_running(2)
    m.status()
    pids = set(m.pids)
    rc, secs = m.stop()
    figure("SIGTERM -> asgd exited (s)", secs)
    assert rc == 0, rc
    assert secs < 5.0 * SLOW, secs
    left = [p for p in pids if alive(p)]
    assert not left, "still running after drain: %s" % left
    assert not m.tables_left(), "table left behind"
    assert not os.path.exists(m.pidfile), "pidfile left behind"
    assert "deregistered" in m.log()


@with_manager("ctrlc", start=False)
def ctrl_c_at_a_terminal_drains_as_sigterm_does(m):
    """A ^C at a terminal reaches every process of its group, the roles
    too: the supervisor alone acts on it, so the controller stops its
    agents in the drain rather than leaving them to the last sweep."""
    m.start(preexec_fn=os.setpgrp)
    m.wait_running(2)
    pids = set(m.pids)
    os.killpg(m.proc.pid, signal.SIGINT)
    assert m.proc.wait(timeout=20 * SLOW) == 0
    log = m.log()
    assert "draining: stopping the local agents" in log, log[-3000:]
    assert "still running after drain" not in log, log[-3000:]
    left = [p for p in pids if alive(p)]
    assert not left, "still running after drain: %s" % left


@with_manager("names")
def roles_are_named_in_ps(m):
    s = m.status()
    for role in ("monitor", "controller"):
        pid = s["processes"][role]
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")[0].decode()
        assert args == "asgd: " + role, (role, args)
        r = run(["ps", "-o", "args=", "-p", str(pid)])
        assert r.stdout.strip() == "asgd: " + role, r.stdout


@test
def fatal_role_exit_stops_the_manager():
    """The monitor cannot bind (the port is taken): it exits with its
    fatal code, and the supervisor stops instead of restarting it."""
    import socket as sk
    taken = sk.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    m = Manager("fatal", monitor={"listen": "127.0.0.1:%d" % taken.getsockname()[1]})
    try:
        m.start(wait=False)
        rc = m.proc.wait(timeout=15 * SLOW)
        assert rc == 1, rc
        log = m.log()
        assert "monitor exited with its fatal code 2" in log and "stopping the manager" in log, log
        assert "monitor.listen: cannot listen on" in log, log
        assert not m.tables_left() and not os.path.exists(m.pidfile)
    finally:
        taken.close()
        m.cleanup()


@test
def restarts_back_off_when_a_role_keeps_dying():
    m = Manager("backoff")
    try:
        m.start()
        for _ in range(3):
            old = m.pid("monitor")
            kill_pid(old)
            wait_for(lambda: m.pid("monitor") not in (None, old), 10, "monitor back")
        log = m.log()
        assert "monitor will restart in 0 ms (death 1 in a row)" in log, log
        assert "monitor will restart in 250 ms (death 2 in a row)" in log, log
        assert "monitor will restart in 500 ms (death 3 in a row)" in log, log
    finally:
        m.cleanup()


@with_manager("crash")
def supervisor_kill_and_immediate_restart_comes_back(m):
    """systemd's Restart=on-failure: kill -9 of asgd and a start at once,
    while the old roles still drain. The new manager waits for them, binds
    the same port, and has the same instances; none was stopped."""
    s = m.wait_running(2)
    before = {i["id"]: i["pid"] for i in s["instances"]}
    port = int(s["group"]["monitor_address"].rsplit(":", 1)[1])
    m.cfg["monitor"]["listen"] = "127.0.0.1:%d" % port
    m.write_config()
    for round_ in range(3):
        kill_pid(m.proc.pid)
        m.proc.wait()
        m.start()     # at once: the old monitor may still hold the port
        s = m.wait_running(2)
        after = {i["id"]: i["pid"] for i in s["instances"]}
        assert after == before, (round_, before, after)
        assert s["group"]["monitor_address"].endswith(":%d" % port)


@test
def manager_that_cannot_start_leaves_instances_running():
    """A start that fails (the status port is taken: a fatal role exit)
    stops the manager without stopping the instances it had adopted."""
    m = Manager("nostart")
    blocker = socket.socket()
    try:
        m.start()
        s = m.wait_running(2)
        pids = sorted(i["pid"] for i in s["instances"])
        kill_pid(m.proc.pid)
        m.proc.wait()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        m.cfg["monitor"]["listen"] = "127.0.0.1:%d" % blocker.getsockname()[1]
        m.write_config()
        m.start(wait=False)
        assert m.proc.wait(timeout=20) != 0
        assert "cannot listen" in m.log(), m.log()[-2000:]
        assert all(alive(p) for p in pids), "a failed start stopped the instances"
    finally:
        blocker.close()
        m.cleanup()


@with_manager("twice")
def second_manager_refused(m):
    r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
    assert r.returncode == 1 and "another asgd (pid %d)" % m.proc.pid in r.stderr, r
    assert m.proc.poll() is None


@with_manager("reattach")
def whole_manager_killed_and_restarted_adopts_everything(m):
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])
    kill_pid(m.proc.pid)
    m.proc.wait()
    wait_for(lambda: not any(alive(p) for p in (s["processes"]["monitor"],
                                                 s["processes"]["controller"])),
             5, "roles gone with the supervisor")
    t0 = time.monotonic()
    m.start()
    m.wait_log(r"re-attaching shared table")
    s = m.wait_running(2)
    figure("whole manager kill -9 + restart -> group running (s)", time.monotonic() - t0)
    assert sorted(i["id"] for i in s["instances"]) == ids, (ids, s["instances"])


def plant_table(m, version, pid_supervisor=0):
    """A table of layout version `version` recorded as m's, as an asgd of
    that version would leave it (magic, version, the supervisor's pid at
    the offset every layout since 18 keeps it)."""
    import struct
    plant = m.shm + ".00112233445566ff"
    os.makedirs(m.state_dir(), mode=0o700, exist_ok=True)
    record = os.path.join(m.state_dir(), "table-" + m.shm.lstrip("/"))
    with open(os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(plant + "\n")
    lead = struct.pack("<QI", 0x31304C4254475341, version)  # "ASGTBL01", the version
    body = bytearray(8192)
    body[:len(lead)] = lead
    body[112:116] = struct.pack("<i", pid_supervisor)
    with open(os.open("/dev/shm" + plant, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(bytes(body))
    return plant, bytes(body)


def layout_version():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "shm", "table.h")) as f:
        return int(re.search(r"#define TABLE_VERSION (\d+)", f.read()).group(1))


@test
def table_of_a_newer_layout_version_refused_by_name():
    """A table of a newer layout (a newer asgd's, after a downgrade) is
    refused by name, with its version and ours, by asgd and by asgctl,
    and left as it was."""
    ours = layout_version()
    m = Manager("newlayout")
    plant, body = plant_table(m, ours + 1)
    try:
        want = "shared table %s has layout version %d; this program reads version %d only" % (
            plant, ours + 1, ours)
        r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
        assert r.returncode == 1 and want in r.stderr and "a newer asgd's" in r.stderr, r
        r = run([BIN + "/asgctl", "--shm", plant, "status"])
        assert r.returncode != 0 and want in r.stderr, r
        with open("/dev/shm" + plant, "rb") as f:
            assert f.read() == body
        assert not os.path.exists(m.pidfile)
    finally:
        os.unlink("/dev/shm" + plant)


@test
def table_of_an_older_layout_is_set_aside_once_its_asgd_has_stopped():
    """An upgrade: the recorded table is an older asgd's (layout version one
    below ours). While that asgd runs (here: a real asgd's pid in the
    table), asgd refuses to start and says so; once it is gone, the table
    is set aside and a new one made, and the group runs."""
    ours = layout_version()
    running = Manager("oldrunning")
    m = Manager("oldlayout")
    plant = None
    try:
        running.start()
        wait_for(lambda: running.pid("monitor"), 20, "the other manager up")
        plant, body = plant_table(m, ours - 1, running.proc.pid)
        r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
        want = "shared table %s of layout version %d is in use by asgd pid %d" % (plant, ours - 1,
                                                                                  running.proc.pid)
        assert r.returncode == 1 and want in r.stderr, r
        with open("/dev/shm" + plant, "rb") as f:
            assert f.read() == body
        running.cleanup()
        os.unlink("/dev/shm" + plant)
        plant, body = plant_table(m, ours - 1, 0)       # its asgd gone
        m.start()
        m.wait_running(2)
        m.wait_log(r"shared table %s has layout version %d \(an older asgd's, not running\)" % (
            re.escape(plant), ours - 1))
        # An older version's lead, but not a whole table of it: not
        # migrated, and said why.
        assert re.search(r"cannot migrate it \(shared table %s: layout version %d: " % (
            re.escape(plant), ours - 1), m.log()), m.log()[-2000:]
        assert not os.path.exists("/dev/shm" + plant)
        assert m.table_name() != plant
    except BaseException:
        sys.stderr.write(m.log()[-3000:])
        raise
    finally:
        running.cleanup()
        m.cleanup()
        if plant and os.path.exists("/dev/shm" + plant):
            os.unlink("/dev/shm" + plant)


def tablefmt():
    """tests/tablefmt.c, built beside the unit tests of the build BIN is."""
    build = os.path.join(ROOT, "build", "release") if BIN == os.path.join(ROOT, "bin") else os.path.dirname(BIN)
    return os.path.join(build, "tests", "tablefmt")


def history(m):
    """What a re-attached table keeps and an adopted group starts again
    without: per instance its launch spec generation and probe count, the
    group's evaluations, the events."""
    s = m.status()
    r = m.ctl("events", "-n", "256", "--json")
    assert r.returncode == 0, r
    events = [(e["number"], e["message"]) for e in json.loads(r.stdout)["events"]]
    return ({i["id"]: (i["launch_spec_generation"], i["probes_ok"]) for i in s["instances"]},
            s["group"]["evaluations"], events)


@with_manager("upgrade", start=False, provider={"local": {"stop_on_exit": False}})
def an_upgrade_over_an_older_layouts_table_keeps_every_instance(m):
    """The whole manager killed (as an upgrade stops it) and its table
    rewritten in the previous layout (version 19's, as an asgd of that
    version leaves it: tests/tablefmt.c), then a start: the table is
    migrated field by field and re-attached, every instance kept, the same
    processes, none stopped or replaced, with its history (its launch spec
    generation and probe counts, the group's evaluations and events): not
    adopted afresh."""
    import struct
    m.cfg.setdefault("monitor", {})["listen"] = "127.0.0.1:%d" % free_port()  # where they register again
    m.write_config()
    m.start()
    s = m.wait_running(2)
    wait_for(lambda: all(i["probes_ok"] >= 3 for i in m.running()), 20, "probes counted")
    before = sorted((i["id"], i["pid"]) for i in m.status()["instances"])
    rows, evaluations, events = history(m)
    assert all(gen for gen, _ in rows.values()) and evaluations > 0 and events, (rows, evaluations, events)
    kill_pid(m.proc.pid)
    m.proc.wait()
    wait_for(lambda: not any(alive(p) for p in s["processes"].values() if p), 5, "roles gone with the supervisor")
    name = m.table_name()
    r = run([tablefmt(), "--to", "19", name])
    assert r.returncode == 0, r
    with open(m.table_path(), "rb") as f:
        assert struct.unpack("<QI", f.read(12))[1] == 19
    m.start()
    line = m.wait_log(r"migrated shared table %s from layout version 19 to %d: 2 instance\(s\), (\d+) event\(s\) kept"
                      % (re.escape(name), layout_version()))
    assert int(line.group(1)) >= len(events), (line.group(0), events)
    wait_for(lambda: sorted((i["id"], i["pid"]) for i in m.running()) == before, 20,
             "the same instances running")
    assert all(alive(pid) for _, pid in before)
    assert m.table_name() == name and "setting it aside" not in m.log()
    after, evaluations_after, events_after = history(m)
    for i, (gen, probes) in rows.items():
        assert after[i][0] == gen and after[i][1] >= probes, (i, rows, after)
    assert evaluations_after >= evaluations, (evaluations, evaluations_after)
    assert events_after[:len(events)] == events, (events, events_after)


if __name__ == "__main__":
    sys.exit(run_tests())
