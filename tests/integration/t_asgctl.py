#!/usr/bin/python3
"""Integration tests: asgctl: errors, watch and events."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


@test
def asgctl_errors_are_clear():
    r = run([BIN + "/asgctl", "--shm", "/asg-it-none", "status"])
    assert r.returncode != 0 and "no shared table /asg-it-none" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "-c", plain_cfg(), "probe", "127.0.0.1:1"])
    assert r.returncode == 1 and "probe 127.0.0.1:1" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "probe", "not-an-address"])
    assert r.returncode == 2 and "not host:port" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "frobnicate"])
    assert r.returncode == 2 and "bad command" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "--shm", "/asg-it-none", "load", "all", "150"])
    assert r.returncode == 2 and "percentage" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "-c", "/nonexistent.cfg", "status"])
    assert r.returncode == 2 and "/nonexistent.cfg: cannot read" in r.stderr, r.stderr


@with_manager("watch")
def asgctl_watch_and_events(m):
    m.wait_running(2)
    time.sleep(0.6)
    r = m.ctl("watch", "-n", "2", "-i", "100")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("LOAD, LAST 40 SAMPLES") == 2 and "\u2581" <= max(r.stdout), r.stdout
    assert re.search(r"%s-1\s+[\u2581-\u2588]+" % m.group, r.stdout), r.stdout
    r = m.ctl("events", "-n", "3")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, r.stdout
    r = m.ctl("events", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["events"], r.stdout
    r = m.ctl("events", "-n", "0")
    assert r.returncode == 2, r


if __name__ == "__main__":
    sys.exit(run_tests())
