#!/usr/bin/python3
"""Integration tests: the history's SQLite database (docs/history.md). A
scale-out's activities recorded, read back by asgctl history, the API and
the sqlite3 shell; the history survives kill -9 of the whole manager and
a restart, with nothing lost or recorded twice; a file that is not a
database is reported and the group is still managed; a link a stranger
planted at the path is never followed."""
import os
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

HISTORY = {"sample_interval_s": 1}


def sql(path, query):
    """What the sqlite3 shell answers, read-only, as an operator would ask."""
    r = subprocess.run(["sqlite3", "-readonly", "-separator", "|", path, query],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, (query, r.stderr)
    return [line.split("|") for line in r.stdout.splitlines()]


def db_path(m):
    return os.path.join(m.state_dir(), "history.db")


def history(m):
    s = m.status()
    return s["history"] if s else None


def activities(m):
    r = m.ctl("history", "-n", "100", "--json")
    return json.loads(r.stdout)["activities"] if r.returncode == 0 else None


def scaled_out(m):
    """The scale-out and the launch it made, both over, or None."""
    acts = activities(m) or []
    scale = [a for a in acts if a["kind"] == "scale" and a["result"] == "successful" and a["instances"]]
    for a in scale:
        launch = [b for b in acts if b["kind"] == "launch" and b["instances"] == a["instances"][:1]
                  and b["result"] == "successful" and b["end_ms"]]
        if launch:
            return a, launch[0]
    return None


def grow_to(m, n):
    def grown():
        m.load_all(90)
        return len(m.running()) >= n
    wait_for(grown, 30, "scale out to %d" % n)


def dashboard_charts_the_day(m):
    """The dashboard's last 24 hours: a line of the size and one of the
    load, drawn from the samples, and the history's state."""
    from browser import Browser
    b = Browser()
    try:
        b.login(m.login_link())
        wait_for(lambda: b.js("document.querySelectorAll('#hist-size polyline').length") == 2 and
                 b.js("document.querySelectorAll('#hist-load polyline').length") == 1, 15, "the day's charts")
        assert "samples" in b.js("document.getElementById('hist-state').textContent")
    finally:
        b.close()


@with_status("hist", group={"min_instances": 1, "max_instances": 2, "desired_instances": 1}, history=HISTORY)
def a_scale_out_is_recorded_and_survives_kill_9_of_the_whole_manager(m):
    m.wait_running(1)
    grow_to(m, 2)
    scale, launch = wait_for(lambda: scaled_out(m), 15, "the scale-out and its launch in asgctl history")
    assert launch["start_ms"] <= launch["end_ms"] and scale["cause"], (scale, launch)
    text = m.ctl("history", "--since", "1h")
    assert text.returncode == 0 and "scale" in text.stdout and launch["instances"][0] in text.stdout, text
    bad = m.ctl("history", "--since", "yesterday")
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr, bad
    # The API, as the operator; nobody else.
    code, body = m.api("GET", "/api/v1/activities?limit=50&since=2h")
    assert code == 200 and any(a["id"] == scale["id"] for a in body["activities"]), (code, body)
    code, body = wait_for(lambda: (lambda r: r if r[0] == 200 and r[1]["samples"] else None)(
        m.api("GET", "/api/v1/history/samples?since=1h")), 10, "samples")
    assert all(s["total"] >= 1 and 0 <= s["mean_load"] <= 1 for s in body["samples"]), body
    assert http("GET", m.url + "/api/v1/activities")[0] == 401
    assert m.api("GET", "/api/v1/activities?limit=0")[0] == 400
    assert m.api("GET", "/api/v1/history/samples?since=soon")[0] == 400
    h = history(m)
    assert h["ok"] and h["samples"] >= 1 and h["events_lost"] == 0 and h["error"] == "", h
    metrics = http("GET", m.url + "/metrics")[1]
    assert "\nasg_history_ok 1\n" in metrics and "asg_history_samples_total" in metrics, metrics[-2000:]
    assert "history: ok" in m.ctl("status").stdout
    for f in ("history.db", "history.db-wal", "history.db-shm"):
        mode = os.stat(os.path.join(m.state_dir(), f)).st_mode
        assert stat.S_IMODE(mode) == 0o600, (f, oct(mode))
    dashboard_charts_the_day(m)
    # kill -9 of the supervisor and every role at once: nothing drains.
    procs = m.status()["processes"]
    pids = [m.proc.pid] + [p for p in procs.values() if p and p != m.proc.pid]
    assert procs["history"], procs
    for p in pids:
        os.kill(p, signal.SIGKILL)
    m.proc.wait(timeout=10)
    wait_for(lambda: not any(alive(p) for p in pids), 10, "the manager's processes gone")
    before = sql(db_path(m), "SELECT count(*) FROM activities WHERE kind = 'scale'")[0][0]
    m.start()
    restarted = time.time() * 1000
    wait_for(lambda: (lambda h: h and h["ok"] and h["last_write_ms"] > restarted)(history(m)), 15,
             "the restarted history writing")
    m.wait_running(2)
    # The sqlite3 shell reads the documented schema: the scale-out, its
    # launch, each event once, none lost.
    rows = sql(db_path(m), "SELECT kind, result, instances, end_ms IS NOT NULL FROM activities "
                           "WHERE id IN (%d, %d)" % (scale["id"], launch["id"]))
    assert sorted(rows) == sorted([["scale", "successful", ",".join(scale["instances"]), "1"],
                                   ["launch", "successful", launch["instances"][0], "1"]]), rows
    after = sql(db_path(m), "SELECT count(*) FROM activities WHERE kind = 'scale'")[0][0]
    assert before == after == "1", (before, after)
    n, distinct = sql(db_path(m), "SELECT count(*), count(DISTINCT table_nonce || number) FROM events")[0]
    assert n == distinct, (n, distinct)
    cursor = sql(db_path(m), "SELECT last_event, lost FROM cursors")
    assert len(cursor) == 1 and cursor[0][1] == "0", cursor
    # What happens after the restart is recorded too, after the old.
    assert m.api("POST", "/api/v1/desired", {"desired": 2})[0] == 202
    wait_for(lambda: sql(db_path(m), "SELECT count(*) FROM activities WHERE kind = 'operator' AND "
                                     "id > %d" % launch["id"])[0][0] == "1", 10, "the operator's request recorded")
    assert "\nasg_history_events_lost_total 0\n" in http("GET", m.url + "/metrics")[1]
    # A clean stop: the history records the drain's terminations before the
    # table goes (it stops with the monitor, after the controller).
    ids = sorted(i["id"] for i in m.running())
    rc, _ = m.stop()
    assert rc == 0, rc
    done = sql(db_path(m), "SELECT instances FROM activities WHERE kind = 'terminate' AND result = 'successful'")
    assert sorted(r[0] for r in done) == ids, (done, ids)


@with_status("histbad", group={"min_instances": 1, "max_instances": 2, "desired_instances": 1},
             history=HISTORY, start=False)
def a_corrupt_history_is_reported_and_the_group_is_still_managed(m):
    os.makedirs(m.state_dir(), mode=0o700)
    with open(db_path(m), "w") as f:
        f.write("not a database, whatever the name says\n" * 200)
    m.start()
    m.url = "http://" + m.cfg["status"]["listen"]
    wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
    h = wait_for(lambda: (lambda h: h if h and h["state"] == "failing" and h["failures"] >= 2 else None)(
        history(m)), 15, "the history failing, twice")
    assert not h["ok"] and "not a database" in h["error"], h
    assert "\nasg_history_ok 0\n" in http("GET", m.url + "/metrics")[1]
    assert "history: FAILING" in m.ctl("status").stdout
    assert m.api("GET", "/api/v1/activities")[0] == 503
    # Reported once per change of reason, not once per try.
    assert len(re.findall(r"history: .*not a database", m.log())) == 1, m.log()[-3000:]
    # Managed all the same: it scales out.
    m.wait_running(1)
    grow_to(m, 2)
    assert open(db_path(m)).read().startswith("not a database")   # the operator's file, untouched
    # The operator moves it away: the history writes again.
    os.unlink(db_path(m))
    wait_for(lambda: (lambda h: h and h["ok"])(history(m)), 40, "the history writing again")
    assert m.ctl("history", "--json").returncode == 0


def stranger_dir(secs):
    """A directory of another user (uid 65534), with a link it planted at
    the history's path, to a file of ours."""
    d = tempfile.mkdtemp(prefix="asg-hist-stranger-")
    os.chmod(d, 0o755)
    planted = os.path.join(d, "theirs")
    os.makedirs(planted)
    os.chown(planted, 65534, 65534)
    victim = os.path.join(d, "victim")
    with open(victim, "w") as f:
        f.write("root's file\n")
    os.symlink(victim, os.path.join(planted, "history.db"))
    os.lchown(os.path.join(planted, "history.db"), 65534, 65534)
    secs.setdefault("history", {}).update(HISTORY, path=os.path.join(planted, "history.db"))
    secs["victim"] = victim
    return (victim,), lambda: shutil.rmtree(d, ignore_errors=True)


def stranger_scenario(fn):
    def before(secs):
        extra, undo = stranger_dir(secs)
        secs.pop("victim")
        return extra, undo
    return scenario("histlink", before=before, group={"min_instances": 1, "max_instances": 1,
                                                      "desired_instances": 1})(fn)


@stranger_scenario
def a_link_a_stranger_planted_at_the_path_is_never_followed(m, victim):
    h = wait_for(lambda: (lambda h: h if h and h["state"] == "failing" else None)(history(m)), 15,
                 "the history refusing the stranger's directory")
    assert "refusing" in h["error"], h
    m.wait_running(1)
    assert open(victim).read() == "root's file\n"
    assert not os.path.exists(victim + "-wal") and not os.path.exists(victim + "-shm")


if __name__ == "__main__":
    sys.exit(run_tests())
