#!/usr/bin/python3
"""Integration tests: a group's identity on one machine. Two managers
that share a group name but not a state directory (tls.dir) are two
groups: the second refuses to start while the first runs, and neither
adopts or signals the other's agents; a group does not claim agents of a
longer name; a stranger cannot block the manager by creating the table's
name in /dev/shm first (issue 26, items 2 and 8)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

STRANGER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def same_name_pair(**group):
    """Managers a and b with one group name ("secdup", made unique to this
    test run so that test files run side by side do not meet) and their
    own ports, table, pidfile and tls.dir: two groups. Not started."""
    name = "secdup%d" % os.getpid()
    g = {"name": name, "min_instances": 2, "max_instances": 4, "desired_instances": 2}
    g.update(group)
    a = Manager("secdup", group=dict(g))
    b = Manager("secdup", group=dict(g))
    for m in (a, b):
        m.group = name
        m.write_config()
    assert a.cfg["tls"]["dir"] != b.cfg["tls"]["dir"] and a.shm != b.shm
    return a, b


def cleaned(*managers):
    for m in managers:
        m.cleanup()


def evaluations(m):
    s = m.status()
    return s["group"]["evaluations"] if s else 0


def watch_for(m, rounds):
    """Lets m's controller evaluate `rounds` more times (its own clock, not
    a fixed sleep: on a busy machine it waits longer)."""
    start = evaluations(m)
    wait_for(lambda: evaluations(m) >= start + rounds, 30, "%d more evaluations" % rounds)


def pids_by_id(m):
    return {i["id"]: i["pid"] for i in m.running()}


@test
def second_manager_of_the_same_name_refuses_naming_the_first():
    a, b = same_name_pair()
    try:
        a.start()
        a.wait_running(2)
        before = pids_by_id(a)
        mon = a.status()["group"]["monitor_address"]
        b.start(wait=False)
        try:
            rc = b.proc.wait(timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("the second manager of group %s started beside the first:\n%s"
                                 % (a.group, b.log()[-3000:]))
        log = b.log()
        assert rc == 1, (rc, log)
        for what in ("asgd pid %d" % a.proc.pid, a.cfg_path, mon):
            assert what in log, (what, log)
        assert not b.tables_left(), b.tables_left()
        assert not os.path.exists(b.pidfile)
        # The first runs on, its agents untouched.
        assert pids_by_id(a) == before, (pids_by_id(a), before)
        assert all(alive(p) for p in before.values())
    except BaseException:
        sys.stderr.write("---- first manager ----\n%s\n" % a.log()[-3000:])
        raise
    finally:
        cleaned(b, a)


@test
def another_group_of_the_same_name_leaves_the_agents_alone_and_their_own_manager_readopts_them():
    """a is killed (kill -9 of its supervisor: its agents run on). b, the
    same name with another tls.dir, neither adopts nor signals them, at
    start, over its boot timeout, nor at its drain; a restarted on its own
    tls.dir re-adopts them all."""
    a, b = same_name_pair()
    b.cfg["provider"]["boot_timeout_ms"] = 3000   # an adopted agent that never registers would go soon
    b.write_config()
    try:
        a.start()
        a.wait_running(2)
        theirs = pids_by_id(a)
        kill_pid(a.proc.pid)
        a.proc.wait()
        wait_for(lambda: not a.roles_up(), 10, "a's roles gone")
        assert all(alive(p) for p in theirs.values()), theirs
        b.start()
        b.wait_running(2)
        watch_for(b, int(25 / SLOW))   # past its first reconciliation and its boot timeout
        s = b.status()
        mine = {i["pid"] for i in s["instances"]}
        assert not mine & set(theirs.values()), (s["instances"], theirs)
        assert "found running without a row" not in b.log(), b.log()
        assert all(alive(p) for p in theirs.values()), theirs
        rc, _ = b.stop()
        assert rc == 0, rc
        assert all(alive(p) for p in theirs.values()), ("b's drain killed a's agents", theirs)
        a.start()
        wait_for(lambda: pids_by_id(a) == theirs, 20, "a's agents re-adopted, the same pids")
        assert a.size(a.status()) == 2
        assert "re-attaching shared table" in a.log()
    except BaseException:
        sys.stderr.write("---- a ----\n%s\n---- b ----\n%s\n" % (a.log()[-4000:], b.log()[-4000:]))
        raise
    finally:
        cleaned(b, a)


def nonce_of(m):
    """m's group nonce ("none" from binaries that make none: then the test
    shows the bug, not a missing file)."""
    try:
        return m.group_nonce()
    except FileNotFoundError:
        return "none"


@scenario("prefix", start=False, group={"min_instances": 2, "max_instances": 4, "desired_instances": 2})
def a_group_does_not_claim_agents_of_a_longer_name(m):
    """Group G and an agent G-web-1 of ours, running before the manager
    starts (our uid, the real binary, a certificate of G's CA, even G's
    nonce): ids of group G are G-N, so it is not G's to adopt or signal."""
    stray = m.group + "-web-1"
    tls = m.agent_tls(stray)       # also makes the state directory and the group's nonce
    other, _ = start_agent("--id", stray, "--manager", "127.0.0.1:1", *tls,
                           env={"ASG_GROUP_NONCE": nonce_of(m)})
    try:
        m.start()
        m.wait_running(2)
        watch_for(m, int(15 / SLOW))   # past its first reconciliation
        ids = [i["id"] for i in m.status()["instances"]]
        assert stray not in ids and len(ids) == 2, ids
        assert "adopted %s" % stray not in m.log(), m.log()
        assert other.poll() is None, "the manager signalled it"
    finally:
        stop_agent(other)


@test
def ha_partner_without_the_groups_nonce_never_leads():
    """An HA pair shares tls.dir: the CA and the group's nonce. b has a
    copy of a's CA and keys but a nonce of its own (a copy of the keys
    alone): it could neither adopt nor stop a's agents, so with a gone it
    must not lead, and says why; a's agents run on untouched."""
    etcd = Etcd()
    name = "hanonce%d" % os.getpid()
    g = {"name": name, "min_instances": 2, "max_instances": 4, "desired_instances": 2}
    a = Manager("hanonce", group=dict(g))
    b = Manager("hanonce", group=dict(g))
    for m, ident in ((a, "mgr-a"), (b, "mgr-b")):
        m.group = name
        m.cfg["ha"] = {"etcd": etcd.endpoints(), "lease_ttl_ms": 2000, "id": ident,
                       "prefix": "/asg-it-%d" % os.getpid()}
        m.write_config()
    try:
        a.start()
        wait_for(lambda: (a.status() or {}).get("ha", {}).get("role") == "leader", 10, "a leads")
        a.wait_running(2)
        theirs = pids_by_id(a)
        shutil.copytree(a.state_dir(), b.state_dir(),
                        ignore=lambda d, names: [n for n in names if n == "group.nonce" or n.startswith("table-")])
        # a's whole manager gone (-9, frozen first so its lease is not handed over).
        procs = [p for p in a.status()["processes"].values() if p]
        for p in procs:
            kill_pid(p, signal.SIGSTOP)
        for p in procs:
            kill_pid(p)
        a.proc.wait()
        b.start()
        wait_for(lambda: "not the group's" in ((b.status() or {}).get("ha", {}).get("error") or ""), 15,
                 "b saying its nonce is not the group's")
        key = "/asg-it-%d/%s/leader" % (os.getpid(), name)
        wait_for(lambda: etcd.get(key) is None, 15, "a's lease gone with its leader key")
        # b campaigns every 200 ms: give it some forty probe rounds (150 ms each) to try.
        rounds = b.status()["group"]["probe_rounds"]
        wait_for(lambda: b.status()["group"]["probe_rounds"] >= rounds + int(40 / SLOW), 30, "40 probe rounds")
        s = b.status()
        assert s["ha"]["role"] != "leader" and s["ha"]["provider_calls"] == 0, s["ha"]
        assert all(alive(p) for p in theirs.values()), theirs
    except BaseException:
        sys.stderr.write("---- a ----\n%s\n---- b ----\n%s\n" % (a.log()[-3000:], b.log()[-3000:]))
        raise
    finally:
        cleaned(b, a)
        etcd.cleanup()


def plant(path):
    """uid 65534 creates path in /dev/shm (0644, a page of zeros): what any
    local user can do with a name it can guess."""
    r = run(STRANGER + ["/usr/bin/python3", "-c",
                        "import os,sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644);"
                        " os.write(fd, bytes(4096))", path])
    assert r.returncode == 0, r.stderr
    assert os.stat(path).st_uid == 65534


@test
def a_stranger_cannot_block_the_manager_through_dev_shm():
    """While the manager is down, uid 65534 creates in /dev/shm every name
    it can predict from the config (the config is world-readable here): the
    configured shm.name, and, after watching a run, the very name the
    manager used then. The manager starts each time, under a name of its
    own, and asgctl (-c FILE, as its user) finds the table."""
    m = Manager("shmplant")
    planted = []
    try:
        os.chmod(m.dir, 0o755)
        os.chmod(m.cfg_path, 0o644)
        r = run(STRANGER + ["cat", m.cfg_path])
        assert r.returncode == 0 and m.shm in r.stdout, r     # the stranger reads the name
        for name in (m.shm, m.shm + ".0000000000000000"):
            planted.append("/dev/shm" + name)
            plant(planted[-1])
        m.start()
        m.wait_running(2)
        seen = m.table_name()
        assert "/dev/shm" + seen not in planted, seen
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "status"])
        assert r.returncode == 0 and m.group in r.stdout, r
        # A stranger who saw the name while it ran plants it once it is gone.
        rc, _ = m.stop()
        assert rc == 0
        assert not os.path.exists("/dev/shm" + seen)
        planted.append("/dev/shm" + seen)
        plant(planted[-1])
        m.start()
        m.wait_running(2)
        assert m.table_name() != seen
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "status"])
        assert r.returncode == 0 and m.group in r.stdout, r
        # Each planted segment is left to its owner, never attached.
        for p in planted:
            assert os.stat(p).st_uid == 65534, p
        # And the stranger cannot read the name of the table in use.
        r = run(STRANGER + ["ls", m.state_dir()])
        assert r.returncode != 0, r
    except BaseException:
        sys.stderr.write(m.log()[-4000:])
        raise
    finally:
        for p in planted:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
