#!/usr/bin/python3
"""Chaos suite: a group of 50 local agents under faults.

  chaos.py --short   (inside make test)      chaos.py   (make chaos)

Phases: kill -9 a random role many times in a row; kill -9 the supervisor
and start it again with a role set to die holding the table lock mid-write;
SIGSTOP an agent (a hung host) and SIGCONT it after it was replaced; fill
the table to capacity with agents the manager did not launch. After each:
no instance lost (every row has its process), none orphaned (every agent
process of the group has its row), none duplicated (one process per id),
the size back within bounds. Prints the counts and 'N passed, N failed'."""
import os
import random
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, HOOKS, SLOW, STARTED, Manager, agent_processes, alive,  # noqa: E402
                     kill_everything_started, kill_pid, wait_for)

SHORT = "--short" in sys.argv
N = 50
KILLS = 12 if SHORT else 100
STRANGERS = 10
COUNTS = {"role kills": 0, "lock-holder kills": 0, "supervisor kills": 0, "agents stopped": 0,
          "stale agents fenced": 0, "registrations refused (table full)": 0,
          "instances lost": 0, "orphans": 0, "duplicates": 0}


def agent_ids(group):
    """id -> [pids] of the group's agents and of the strangers."""
    return {i: p for i, p in agent_processes().items()
            if i.startswith(group + "-") or i.startswith("stranger-")}


def check(m, phase, lo=N, hi=N + STRANGERS):
    """Waits for the group to settle, then checks the invariants."""
    def settled():
        s = m.status()
        if not s:
            return None
        states = {i["state"] for i in s["instances"]}
        size = len(s["instances"])
        return s if states == {"running"} and lo <= size <= hi else None
    s = wait_for(settled, 60, "group settled after " + phase)
    time.sleep(0.5)
    s = wait_for(settled, 30, "group still settled after " + phase)
    rows = sorted(i["id"] for i in s["instances"])
    procs = agent_ids(m.group)
    lost = [r for r in rows if r not in procs]
    # Strangers the full table refused are outsiders, not the group's orphans.
    orphans = [p for p in procs if p not in rows and not p.startswith("stranger-")]
    dups = [p for p, pids in procs.items() if len(pids) > 1]
    COUNTS["instances lost"] += len(lost)
    COUNTS["orphans"] += len(orphans)
    COUNTS["duplicates"] += len(dups)
    assert not lost and not orphans and not dups, (phase, lost, orphans, dups)
    print("  %-38s size %d, rows == processes" % (phase + ":", len(rows)), flush=True)
    return s


def kill_roles(m):
    for _ in range(KILLS):
        role = random.choice(["monitor", "controller", "status"])
        old = m.pid(role)
        if not old:
            continue
        kill_pid(old)
        COUNTS["role kills"] += 1
        wait_for(lambda: m.pid(role) not in (None, old), 20, role + " back")
        time.sleep(random.uniform(0.0, 0.4))
    check(m, "%d role kills" % KILLS)


def kill_supervisor_with_lock_fault(m):
    """Without test hooks (the release build), the supervisor kills alone."""
    for role, nth in (("controller", 12), ("monitor", 40)):
        kill_pid(m.proc.pid)
        m.proc.wait()
        COUNTS["supervisor kills"] += 1
        wait_for(lambda: not m.roles_up(), 10, "roles gone with the supervisor")
        m.start(env={"ASG_FAULT": "%s:lock-kill:%d" % (role, nth)} if HOOKS else None)
        if HOOKS:
            m.wait_log(r"ASG_FAULT: %s killing itself" % role, 30)
            # The supervisor reaping it, or a role finding its pid dead
            # first: either takes the lock over (compare-and-swap of the pid).
            m.wait_log(r"died holding the table lock; lock recovered|died holding it; taking it over", 10)
            COUNTS["lock-holder kills"] += 1
        check(m, "supervisor kill + %s lock kill" % role if HOOKS else "supervisor kill")


def stop_an_agent(m):
    victim = random.choice(m.running())
    pid = victim["pid"]
    os.kill(pid, signal.SIGSTOP)
    COUNTS["agents stopped"] += 1
    wait_for(lambda: victim["id"] not in [i["id"] for i in m.status()["instances"]], 30,
             "the hung agent replaced")
    os.kill(pid, signal.SIGCONT) if alive(pid) else None
    time.sleep(1.5)
    s = check(m, "SIGSTOP + SIGCONT of an agent")
    assert victim["id"] not in [i["id"] for i in s["instances"]], "the stale agent came back"
    assert not alive(pid), "the stale agent still runs"
    COUNTS["stale agents fenced"] += 1


def fill_the_table(m):
    addr = m.status()["group"]["monitor_address"]
    procs = []
    for k in range(STRANGERS + 4):
        p = subprocess.Popen([BIN + "/asg-agent", "--listen", "127.0.0.1:0", "--id",
                              "stranger-%d" % k, "--manager", addr] + m.agent_tls("stranger-%d" % k),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        STARTED.add(p.pid)
        procs.append(p)
    wait_for(lambda: len(m.status()["instances"]) == N + STRANGERS, 30, "table full")
    try:
        # The four left over ask again on their own backoff (up to 10 s a
        # try, each bounded by 2 s): on a busy machine that takes a while.
        m.wait_log(r"refused: the instance table is full", 40)
    except AssertionError:
        for p in procs[STRANGERS:]:
            p.kill()
            sys.stderr.write("stranger (pid %d) said:\n%s\n" % (p.pid, p.communicate()[1][-1500:]))
        raise
    COUNTS["registrations refused (table full)"] = m.log().count("the instance table is full")
    s = check(m, "table filled to capacity")
    inside = [i["id"] for i in s["instances"] if i["id"].startswith("stranger-")]
    assert len(s["instances"]) == N + STRANGERS and len(inside) == STRANGERS, s["group"]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=20)
    # They joined on their own and deregistered: they leave as they came,
    # taking the target back to N, and nothing is launched in their place.
    s = check(m, "strangers gone", hi=N)
    assert s["group"]["target"] == N, s["group"]
    assert not [i for i in s["instances"] if i["id"].startswith("stranger-")], s["instances"]


def main():
    random.seed(int(os.environ.get("ASG_CHAOS_SEED", "1")))
    m = Manager("chaos",
                group={"min_instances": N, "desired_instances": N, "max_instances": N + STRANGERS},
                policy={"evaluation_interval_ms": 200, "scale_in_below": 0.0, "scale_out_above": 1.0,
                        "cooldown_ms": 1000},
                monitor={"probe_interval_ms": int(200 * SLOW), "probe_timeout_ms": int(150 * SLOW),
                         "adopt_unknown": True},
                provider={"boot_timeout_ms": 20000, "local": {"kill_timeout_ms": 1000}},
                shm={"capacity": N + STRANGERS},
                status={"listen": "127.0.0.1:0"},
                supervisor={"restart_stable_ms": 1000, "restart_backoff_ms": 100,
                            "restart_backoff_max_ms": 1000})
    passed = failed = 0
    t0 = time.monotonic()
    try:
        m.start()
        check(m, "start: %d agents" % N)
        for phase in (kill_roles, kill_supervisor_with_lock_fault, stop_an_agent, fill_the_table):
            t = time.monotonic()
            try:
                phase(m)
                passed += 1
                print("ok    %-40s %5.1fs" % (phase.__name__, time.monotonic() - t), flush=True)
            except BaseException:
                failed += 1
                print("FAIL  %-40s %5.1fs" % (phase.__name__, time.monotonic() - t), flush=True)
                traceback.print_exc()
                sys.stderr.write(m.log()[-4000:])
                break
    finally:
        m.cleanup()
        kill_everything_started()
    print("chaos (%s, %.0fs): %s" % ("short" if SHORT else "full", time.monotonic() - t0,
                                     ", ".join("%s %d" % kv for kv in COUNTS.items())))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
