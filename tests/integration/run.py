#!/usr/bin/python3
"""Integration tests: the real asgd, asg-agent and asgctl on 127.0.0.1.
Prints one line per test, the measured figures, and 'N passed, N failed'."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, EC2_ENV, FIGURES, ROOT, SLOW, STARTED, FakeEC2, Manager,  # noqa: E402
                     alive, ec2_sections, figure, http, kill_everything_started, kill_pid, run,
                     stop_process, wait_for)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def scenario(name, env=None, before=None, after_start=None, start=True, **sections):
    """Decorator: the test gets a Manager (started unless start=False) and
    whatever `before(sections)` returns; its log is shown when the test
    fails, and every process is cleaned up, the manager's and before's."""
    def wrap(fn):
        def inner():
            extra, undo = before(sections) if before else ((), None)
            m = Manager(name, **sections)
            try:
                if start:
                    m.start(env=env)
                    if after_start:
                        after_start(m)
                fn(m, *extra)
            except BaseException:
                sys.stderr.write("---- asgd log of %s ----\n%s\n" % (fn.__name__, m.log()[-6000:]))
                raise
            finally:
                m.cleanup()
                if undo:
                    undo()
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def with_manager(name, **sections):
    return scenario(name, **sections)


def free_port():
    """A bindable port below the kernel's ephemeral range, so that no
    agent binding port 0 can be handed it while a test relies on it."""
    import random
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(200):
        port = random.randint(max(1024, lo - 12000), lo - 1)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port below %d" % lo)


ARTIFACTS = os.path.join(ROOT, os.environ.get("ASG_ARTIFACTS", "build"))


def plain_cfg():
    """A config for asgctl to talk to agents started by hand without TLS."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "plaintext-asgctl.cfg")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write('tls = { mode = "plaintext"; };\n')
    return path


def start_agent(*args):
    p = subprocess.Popen([BIN + "/asg-agent", "--listen", "127.0.0.1:0"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.add(p.pid)
    line = p.stdout.readline().strip()
    return p, line


def stop_agent(p):
    """SIGTERM (the agent deregisters), then SIGKILL if it hangs; its exit code."""
    return stop_process(p)


# ---- agent, asgctl, config (issue 2) ----

@test
def agent_prints_bound_address_and_rejects_bad_args():
    p, line = start_agent("--id", "solo-1")
    try:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", line), line
        r = run([BIN + "/asgctl", "-c", plain_cfg(), "probe", line, "--json"])
        assert r.returncode == 0, r.stderr
        assert '"health":"SERVING"' in r.stdout and '"instance_id":"solo-1"' in r.stdout, r.stdout
    finally:
        assert stop_agent(p) == 0
    bad = [(["--listen", "nowhere"], "not host:port"),
           (["--listen", "127.0.0.1:0", "--id", "bad id"], "--id"),
           (["--listen", "127.0.0.1:0", "--seed", "x1"], "--seed"),
           (["--listen", "127.0.0.1:0", "--start-load", "2"], "--start-load"),
           ([], "--listen HOST:PORT is required")]
    for args, why in bad:
        r = run([BIN + "/asg-agent"] + args, timeout=10)
        assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)


@with_manager("swarm", group={"min_instances": 1, "max_instances": 30, "desired_instances": 1},
              monitor={"adopt_unknown": True}, tls={"mode": "plaintext"},
              policy={"scale_in_below": 0.0})   # a scale-in must not take a swarm agent first
def swarm_hosts_many_agents_that_register_answer_and_leave(m):
    """--swarm N: N agents in one process, each its own port, id and walk,
    registering, answering probes and deregistering like N processes."""
    m.wait_running(1)
    mon = m.status()["group"]["monitor_address"]
    p = subprocess.Popen([BIN + "/asg-agent", "--swarm", "20", "--listen", "127.0.0.1:0",
                          "--manager", mon, "--id", "sw"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.add(p.pid)
    try:
        addrs = [p.stdout.readline().strip() for _ in range(20)]
        assert all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addrs), addrs
        assert len(set(addrs)) == 20, addrs
        wait_for(lambda: len([i for i in m.running() if i["id"].startswith("sw-")]) == 20, 20,
                 "20 swarm agents running")
        ids = {i["id"]: i["address"] for i in m.running() if i["id"].startswith("sw-")}
        assert sorted(ids) == sorted("sw-%d" % k for k in range(20)), ids
        assert ids["sw-7"] == addrs[7], (ids["sw-7"], addrs[7])
        r = m.ctl("probe", addrs[7], "--json")
        assert r.returncode == 0 and '"instance_id":"sw-7"' in r.stdout, r.stdout + r.stderr
        # Every agent has its own walk: sampled over a window, since all
        # start from the same load and a first probe may come before a step.
        wait_for(lambda: len({i["load"] for i in m.running() if i["id"].startswith("sw-")}) > 1,
                 10, "swarm agents walking apart")
        def stats():
            p.send_signal(signal.SIGUSR1)
            line = p.stdout.readline().split()
            assert line[0] == "stats", line
            return dict(x.split("=") for x in line[1:])
        # Every agent answers probes: counted by the agents themselves, so
        # sampled until the count is there (a busy machine probes slower).
        kv = wait_for(lambda: (lambda k: k if int(k["answered"]) >= 20 else None)(stats()), 20,
                      "20 answers counted by the swarm")
        assert kv["agents"] == "20" and kv["registered"] == "20", kv
        assert kv["bad_requests"] == "0", kv
    finally:
        rc = stop_agent(p)
        err = p.stderr.read()
        assert rc == 0, err
    wait_for(lambda: not [i for i in m.status()["instances"]
                          if i["id"].startswith("sw-") and i["state"] == "running"], 10,
             "swarm agents deregistered")
    logged = lambda: set(re.findall(r"instance (sw-\d+) deregistered", m.log()))  # noqa: E731
    end = time.monotonic() + 10
    while len(logged()) < 20 and time.monotonic() < end:
        time.sleep(0.1)
    missing = sorted({"sw-%d" % k for k in range(20)} - logged())
    assert not missing, (missing, [l for l in err.splitlines() if "deregister" in l],
                         [l for l in m.log().splitlines() if any(x + " " in l for x in missing)])
    # They joined on their own and left on their own: the target falls back
    # to the group's one launched instance, and nothing replaces them.
    wait_for(lambda: m.status()["group"]["target"] == 1, 10, "target back to 1")
    # Several evaluations later, still one instance: nothing replaced them.
    evals = m.status()["group"]["evaluations"]
    wait_for(lambda: m.status()["group"]["evaluations"] >= evals + 5, 10, "five more evaluations")
    s = m.status()
    assert s["group"]["running"] + s["group"]["pending"] == 1, s["group"]
    assert len(re.findall(r"info: launched ", m.log())) == 1, m.log()[-2000:]
    bad = [(["--swarm", "0"], "--swarm"), (["--swarm", "30001"], "--swarm"),
           (["--swarm", "2", "--advertise", "10.0.0.1:7302"], "--advertise")]
    for args, why in bad:
        r = run([BIN + "/asg-agent", "--listen", "127.0.0.1:0"] + args, timeout=10)
        assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)


STUBS_DIR = []


def python_stubs():
    """Python stubs generated now from our protos and the official
    health.proto (copied to a flat path: as grpc/health/v1/ its module
    would hide the installed grpc package; names on the wire unchanged)."""
    import shutil
    import tempfile
    out = tempfile.mkdtemp(prefix="asg-py-")
    shutil.copy("/usr/share/grpc-proto/grpc/health/v1/health.proto", out + "/official_health.proto")
    r = run(["protoc", "-I", ROOT + "/proto", "-I", out,
             "--python_out=" + out, "--grpc_python_out=" + out,
             "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
             "asg.proto", "asg_service.proto", "official_health.proto"])
    assert r.returncode == 0, r.stderr
    os.chmod(out, 0o755)          # readable by the stranger uid of some tests
    STUBS_DIR[:] = [out]
    sys.path.insert(0, out)
    import grpc
    import asg_pb2
    import asg_service_pb2_grpc
    import official_health_pb2
    import official_health_pb2_grpc
    return grpc, asg_pb2, asg_service_pb2_grpc, official_health_pb2, official_health_pb2_grpc


@test
def interop_python_grpcio_client():
    """Debian's python3-grpcio, with stubs generated now from our protos and
    the official health.proto, talks to the agent."""
    import tempfile
    grpc, asg_pb2, asg_service_pb2_grpc, health_pb2, health_pb2_grpc = python_stubs()
    p, addr = start_agent("--id", "py-1", "--seed", "3")
    try:
        with grpc.insecure_channel(addr) as ch:
            h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert h.status == health_pb2.HealthCheckResponse.SERVING, h
            agent = asg_service_pb2_grpc.AgentStub(ch)
            pong = agent.Ping(asg_pb2.PingRequest(seq=9), timeout=5)
            assert pong.instance_id == "py-1" and pong.seq == 9 and 0 <= pong.load <= 1, pong
            agent.SetLoad(asg_pb2.SetLoadRequest(load=0.5), timeout=5)
            m = agent.GetMetrics(asg_pb2.MetricsRequest(), timeout=5)
            assert abs(m.load - 0.5) < 1e-9 and m.load_pinned, m
            try:
                agent.SetLoad(asg_pb2.SetLoadRequest(load=3.0), timeout=5)
                raise AssertionError("load 3.0 accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    finally:
        assert stop_agent(p) == 0


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


@test
def asgd_checks_config():
    r = run([BIN + "/asgd", "-t", "-c", ROOT + "/etc/asg.cfg"])
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    m = Manager("cfg")
    try:
        m.write_config("group = {\n  min_instances = 3;\n  max_instances = 2;\n};\n")
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode == 1, r
        assert m.cfg_path + ":3: group.max_instances (2) is below" in r.stderr, r.stderr
    finally:
        m.cleanup()


# ---- the manager (issue 3) ----

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


def wait_replaced(m, victim, size):
    """Waits until the group is back at size without the victim."""
    def replaced():
        r = m.running()
        return len(r) == size and victim not in [i["id"] for i in r]
    wait_for(replaced, 15, "a replacement for %s running" % victim)


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
    m = Manager("lock" + role)
    try:
        m.start(env={"ASG_FAULT": "%s:lock-kill:%d" % (role, nth)})
        m.wait_log(r"ASG_FAULT: %s killing itself" % role, 15)
        m.wait_log(r"died holding the table lock; lock recovered", 5)
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


@with_manager("hup", group={"min_instances": 2, "max_instances": 2, "desired_instances": 2})
def sighup_applies_new_max_and_refuses_broken_config(m):
    m.wait_running(2)
    gen = m.status()["group"]["config_generation"]
    m.cfg["group"]["max_instances"] = 3
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"config reloaded from")
    wait_for(lambda: m.status()["group"]["max"] == 3, 5, "max 3 published")

    def grown():
        m.load_all(90)
        s = m.status()
        return len(m.running(s)) == 3
    wait_for(grown, 30, "scale out to the new max 3")
    gen2 = m.status()["group"]["config_generation"]
    assert gen2 == gen + 1, (gen, gen2)
    # A broken file: the exact line is logged and nothing changes.
    text = open(m.cfg_path).read().replace("max_instances = 3;", 'max_instances = "lots";')
    line = text[:text.index("lots")].count("\n") + 1
    m.write_config(text)
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"has errors, not reloading: %s:%d: group.max_instances must be an integer"
               % (re.escape(m.cfg_path), line))
    time.sleep(0.5)
    s = m.status()
    assert s["group"]["config_generation"] == gen2 and s["group"]["max"] == 3, s["group"]
    assert m.proc.poll() is None


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
    assert not os.path.exists("/dev/shm" + m.shm), "table left behind"
    assert not os.path.exists(m.pidfile), "pidfile left behind"
    assert "deregistered" in m.log()


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
        assert not os.path.exists("/dev/shm" + m.shm) and not os.path.exists(m.pidfile)
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


BAD_CONFIGS = [
    # (name, text or special, line or None, reason)
    ("int as string", 'group = {\n  min_instances = "two";\n};\n', 2, "must be an integer"),
    ("fraction as string", 'policy = {\n  target = "half";\n};\n', 2, "must be a number"),
    ("bool as int", 'monitor = {\n  adopt_unknown = 1;\n};\n', 2, "must be true or false"),
    ("int as bool", 'monitor = {\n\n  unhealthy_after = true;\n};\n', 3, "must be an integer"),
    ("zero minimum", 'group = {\n  min_instances = 0;\n};\n', 2, "out of range"),
    ("negative interval", 'policy = {\n  evaluation_interval_ms = -5;\n};\n', 2, "out of range"),
    ("fraction above 1", 'policy = {\n  scale_out_above = 1.5;\n};\n', 2, "out of range 0..1"),
    ("min above max", 'group = {\n  min_instances = 4;\n  max_instances = 3;\n  desired_instances = 3;\n};\n',
     3, "is below group.min_instances"),
    ("desired outside", 'group = {\n  desired_instances = 9;\n};\n', 2, "outside min..max"),
    ("thresholds crossed", 'policy = {\n  scale_out_above = 0.3;\n  scale_in_below = 0.4;\n};\n', 3,
     "must be below policy.scale_out_above"),
    ("interval of zero", 'monitor = {\n  probe_timeout_ms = 300;\n  probe_interval_ms = 0;\n};\n',
     3, "out of range 1..3600000"),
    ("unknown key", 'group = {\n  name = "x";\n  colour = "blue";\n};\n', 3, "unknown key 'group.colour'"),
    ("unknown group", '\nwhatever = { a = 1; };\n', 2, "unknown group 'whatever'"),
    ("bad enum", 'policy = {\n  kind = "magic";\n};\n', 2, "is not one of"),
    ("huge string", 'group = {\n  name = "%s";\n};\n' % ("x" * 20000), 2, "is longer than"),
    ("syntax error", 'group = {\n  min_instances = = 2;\n};\n', 2, "syntax error"),
    ("overflowing number", 'group = {\n  max_instances = 99999999999999999999999;\n};\n', 2, ""),
    ("secret in the file", 'status = {\n  token = "hunter2";\n};\n', 2, "a secret does not belong"),
    ("ec2 without region", 'provider = {\n  kind = "ec2";\n};\n', 2, "provider.ec2.region must be set"),
    ("binary garbage", b"\x7fELF\x02\x01\x00\x00\xff\xfe{{;;\n\x00\x01", None, ""),
    ("huge file", "# padding\n" * 120000, None, "larger than 1 MiB"),
    ("missing file", "MISSING", None, "cannot read: No such file or directory"),
    ("a directory", "DIRECTORY", None, "not a regular file"),
    ("a fifo", "FIFO", None, "not a regular file"),
]


def place_config(m, case):
    """Puts a bad config at m.cfg_path; returns how to undo it."""
    text = case[1]
    if os.path.lexists(m.cfg_path):
        if os.path.isdir(m.cfg_path):
            os.rmdir(m.cfg_path)
        else:
            os.unlink(m.cfg_path)
    if text == "MISSING":
        return
    if text == "DIRECTORY":
        os.mkdir(m.cfg_path)
    elif text == "FIFO":
        os.mkfifo(m.cfg_path)
    else:
        with open(m.cfg_path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())


@with_manager("badcfg")
def bad_configs_refused_by_check_and_by_reload(m):
    assert len(BAD_CONFIGS) >= 20
    m.wait_running(2)
    good = open(m.cfg_path).read()
    gen = m.status()["group"]["config_generation"]
    for n, case in enumerate(BAD_CONFIGS, 1):
        name, _, line, why = case
        place_config(m, case)
        where = "%s:%d: " % (m.cfg_path, line) if line else m.cfg_path + ":"
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path], timeout=10)
        assert r.returncode == 1, (name, r)
        assert where in r.stderr and why in r.stderr, (name, where, why, r.stderr)
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: m.log().count("has errors, not reloading") == n, 5, "reload refused: " + name)
        refusal = [l for l in m.log().splitlines() if "has errors, not reloading" in l][-1]
        assert where in refusal and why in refusal, (name, refusal)
    s = m.status()
    assert s["group"]["config_generation"] == gen, "a bad config was applied"
    assert (s["group"]["min"], s["group"]["max"]) == (2, 4) and m.proc.poll() is None
    m.wait_running(2)
    place_config(m, ("good", good, None, ""))
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["group"]["config_generation"] == gen + 1, 5, "good config reloaded")


def mon_register_at_max(grpc, asg_pb2, stubs, s, maximum):
    """Fills the group to its maximum with adopted ids; the next one must be
    refused. Returns the last reply."""
    r = None
    with grpc.insecure_channel(s["group"]["monitor_address"]) as ch:
        mon = stubs.MonitorStub(ch)
        for k in range(maximum + 1):
            r = mon.Register(asg_pb2.RegisterRequest(instance_id="extra-%d" % k,
                                                      address="127.0.0.1:9"), timeout=5)
            if not r.accepted:
                assert "maximum size" in r.reason, r
                return r
    return r


class JunkServer:
    """A TCP server on 127.0.0.1 that answers every connection with junk
    bytes, or with nothing at all (a hung peer)."""

    def __init__(self, silent):
        import socket as sk
        import threading
        self.sock = sk.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.silent = silent
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if not self.silent:
                try:
                    c.sendall(os.urandom(4096))
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@with_manager("hostile", monitor={"adopt_unknown": True}, policy={"scale_in_below": 0.0},
              group={"min_instances": 2, "desired_instances": 2, "max_instances": 6},
              tls={"mode": "plaintext"})
def garbage_stalls_and_floods_do_not_hurt_the_manager(m):
    grpc, asg_pb2, asg_service_pb2_grpc, _, _ = python_stubs()
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])
    pids = (s["processes"]["monitor"], s["processes"]["controller"])
    junk, silent = JunkServer(False), JunkServer(True)
    try:
        with grpc.insecure_channel(s["group"]["monitor_address"]) as ch:
            mon = asg_service_pb2_grpc.MonitorStub(ch)
            for name, srv in (("junk-1", junk), ("silent-1", silent)):
                r = mon.Register(asg_pb2.RegisterRequest(instance_id=name,
                                                          address="127.0.0.1:%d" % srv.port), timeout=5)
                assert r.accepted, r
            # Both go unhealthy through probe misses (junk: protocol errors;
            # silent: every probe hits its deadline) and leave the group.
            for name in ("junk-1", "silent-1"):
                m.wait_log(r"instance %s unhealthy: missed 3 probes" % name, 10)
            # A flood of malformed registrations: each refused, nothing breaks.
            bad = 0
            for k in range(300):
                ids_ = ["", "bad id %d" % k, "x" * (64 + k % 30), "-lead%d" % k, "ok%d" % k]
                addrs = ["nowhere", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:5", "h:5:6"]
                try:
                    mon.Register(asg_pb2.RegisterRequest(instance_id=ids_[k % 5],
                                                          address=addrs[k % 5]), timeout=5)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (k, e)
                    bad += 1
            assert bad == 300, bad
            # A message beyond the 64 KiB limit is refused by the transport.
            try:
                mon.Register(asg_pb2.RegisterRequest(instance_id="big", agent_version="v" * 100000),
                             timeout=5)
                raise AssertionError("a 100 KB message was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        rounds = m.status()["group"]["probe_rounds"]
        wait_for(lambda: m.status()["group"]["probe_rounds"] > rounds + 3, 5, "probes go on")
        # The two hostile ones had joined the group (raising its target to 4);
        # unhealthy, they leave as they came: the target falls back to 2 and
        # nothing is launched for them. The original instances and roles live on.
        wait_for(lambda: m.status()["group"]["target"] == 2 and len(m.running()) == 2, 15,
                 "hostile instances gone, target back to 2")
        assert "info: launched " not in m.log().split("junk-1", 1)[1], "a stranger was replaced"
        s = m.status()
        assert set(ids) <= {i["id"] for i in m.running(s)}, (ids, s["instances"])
        assert not {"junk-1", "silent-1"} & {i["id"] for i in s["instances"]}
        assert (s["processes"]["monitor"], s["processes"]["controller"]) == pids, "a role died"
        r = mon_register_at_max(grpc, asg_pb2, asg_service_pb2_grpc, s, 6)
        assert r is None or not r.accepted
    finally:
        junk.close()
        silent.close()


def open_files(pid, first=0):
    """The files, pipes and sockets (with their inodes) a process holds."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        if int(fd) < first:
            continue
        try:
            out.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


@with_manager("fds")
def launched_agents_inherit_no_descriptors(m):
    """Everything the manager opens is close-on-exec: an agent it launches
    shares nothing with it beyond stdin/stdout/stderr."""
    s = m.wait_running(2)
    manager = set()
    for role in ("supervisor", "monitor", "controller"):
        manager |= open_files(s["processes"][role])
    # Only what has an identity can be compared: paths, pipe:[n], socket:[n]
    # (an anon_inode's name is the same for every epoll or eventfd).
    manager = {f for f in manager if f != "/dev/null" and not f.startswith("anon_inode:")}
    for inst in s["instances"]:
        shared = open_files(inst["pid"], first=3) & manager
        assert not shared, (inst["id"], shared)


def tls_channel(grpc, addr, d, name, peer):
    """A python3-grpcio channel presenting DIR/NAME.crt, checking the peer's
    role name (asg-manager or asg-agent)."""
    read = lambda f: open(os.path.join(d, f), "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(read("ca.crt"), read(name + ".key"), read(name + ".crt"))
    return grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override", peer)])


def as_stranger(args, timeout=20):
    """Runs a command as uid 65534 (another local user)."""
    return run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + args,
               timeout=timeout)


@test
def mutual_tls_by_default_binds_every_identity():
    """The default (tls.mode = auto): the manager made its own CA, every
    launched agent has a certificate of its own, and no certificate speaks
    for anyone else: not for another instance, not for another address,
    and only the manager's may set a load."""
    grpc, asg_pb2, stubs, health_pb2, health_stubs = python_stubs()
    m = Manager("tls", monitor={"adopt_unknown": True},
                group={"min_instances": 2, "desired_instances": 2, "max_instances": 5})
    agents = []
    try:
        m.start()
        s = m.wait_running(2)
        tls = os.path.join(m.dir, "tls")
        assert os.stat(tls).st_mode & 0o777 == 0o700
        assert "plaintext" not in m.log()
        victim = s["instances"][0]
        for i in s["instances"]:   # one certificate per instance, CN = its id
            r = run(["openssl", "x509", "-noout", "-subject", "-in",
                     "%s/agents/%s.crt" % (tls, i["id"])])
            assert r.returncode == 0 and ("CN = %s" % i["id"]) in r.stdout, r
        r = m.ctl("probe", victim["address"], "--json")     # the manager's certificate
        assert r.returncode == 0 and '"health":"SERVING"' in r.stdout, r
        # A certificate the operator issued for honest-1.
        certs = os.path.join(m.dir, "certs")
        m.agent_tls("honest-1")
        mgr = ["--manager", s["group"]["monitor_address"]]
        for args in (["--id", "nocert-1"] + mgr, ["--id", "impostor-1"] + mgr + m.agent_tls("honest-1"),
                     ["--id", "honest-1"] + mgr + m.agent_tls("honest-1")):
            p, _ = start_agent(*args)
            agents.append(p)
        m.wait_log(r"registration of impostor-1 refused: certificate of 'honest-1' cannot speak")
        wait_for(lambda: "honest-1" in [i["id"] for i in m.running()], 10, "honest-1 adopted")
        # honest-1's certificate cannot deregister, re-address or steer others.
        with tls_channel(grpc, s["group"]["monitor_address"], certs, "honest-1", "asg-manager") as ch:
            mon = stubs.MonitorStub(ch)
            for call, req in ((mon.Deregister, asg_pb2.DeregisterRequest(instance_id=victim["id"])),
                              (mon.Register, asg_pb2.RegisterRequest(instance_id=victim["id"],
                                                                      address="127.0.0.1:9"))):
                try:
                    call(req, timeout=5)
                    raise AssertionError("honest-1 spoke for %s" % victim["id"])
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
            # Its own id, but an address that is not its connection's.
            try:
                mon.Register(asg_pb2.RegisterRequest(instance_id="honest-1", address="127.0.0.2:9"),
                             timeout=5)
                raise AssertionError("registered an address that is not the caller's")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
                assert "not the caller's" in e.details(), e
        with tls_channel(grpc, victim["address"], certs, "honest-1", "asg-agent") as ch:
            try:
                stubs.AgentStub(ch).SetLoad(asg_pb2.SetLoadRequest(load=1.0), timeout=5)
                raise AssertionError("an agent's certificate set another agent's load")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
        # Plaintext callers get no conversation at all.
        with grpc.insecure_channel(s["group"]["monitor_address"]) as ch:
            try:
                stubs.MonitorStub(ch).Deregister(asg_pb2.DeregisterRequest(instance_id=victim["id"]),
                                                 timeout=3)
                raise AssertionError("a plaintext Deregister got through")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
        assert m.ctl("load", victim["id"], "70").returncode == 0   # the manager may
        s2 = m.status()
        v = [i for i in s2["instances"] if i["id"] == victim["id"]][0]
        assert v["state"] == "running" and v["pid"] == victim["pid"], v
        ids = [i["id"] for i in s2["instances"]]
        assert "nocert-1" not in ids and "impostor-1" not in ids, ids
        assert "nocert-1" not in m.log(), "a plaintext agent got through to the handlers"
        assert m.status()["group"]["refused"]["register"] >= 2, m.status()["group"]
        # The flag sets go together.
        r = run([BIN + "/asg-agent", "--listen", "127.0.0.1:0", "--tls-ca", certs + "/ca.crt"])
        assert r.returncode == 2 and "go together" in r.stderr, r
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        for p in agents:
            kill_pid(p.pid)
        m.cleanup()


@test
def another_local_user_cannot_steer_the_group():
    """uid 65534 on the same machine: cannot read the keys, cannot set a
    load, cannot deregister, cannot read the table's secrets."""
    python_stubs()
    m = Manager("uid")
    try:
        m.start()
        s = m.wait_running(2)
        victim = s["instances"][0]
        os.chmod(m.dir, 0o755)            # let the stranger reach the config, not the keys
        os.chmod(m.cfg_path, 0o644)
        r = as_stranger([BIN + "/asgctl", "-c", m.cfg_path, "load", victim["id"], "100"])
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
        r = as_stranger([BIN + "/asgctl", "-c", m.cfg_path, "cert", "evil-1", "/tmp"])
        assert r.returncode != 0, r
        r = as_stranger([BIN + "/asgctl", "--shm", m.shm, "status"])
        assert r.returncode != 0, r
        script = ("import grpc,sys; sys.path.insert(0, %r); import asg_pb2, asg_service_pb2_grpc as s\n"
                  "ch = grpc.insecure_channel(%r)\n"
                  "try:\n s.MonitorStub(ch).Deregister(asg_pb2.DeregisterRequest(instance_id=%r), timeout=3)\n"
                  " print('DEREGISTERED')\n"
                  "except grpc.RpcError as e:\n print(e.code())\n"
                  % (STUBS_DIR[0], s["group"]["monitor_address"], victim["id"]))
        r = as_stranger(["/usr/bin/python3", "-c", script])
        assert "DEREGISTERED" not in r.stdout and "UNAVAILABLE" in r.stdout, r
        s2 = m.status()
        v = [i for i in s2["instances"] if i["id"] == victim["id"]][0]
        assert v["state"] == "running" and v["pid"] == victim["pid"] and v["load"] < 0.99, v
    finally:
        m.cleanup()


@test
def operator_requests_cannot_be_squatted_by_another_user():
    """Another uid binds the controller's old abstract socket name before
    the manager starts: operator requests still reach the controller (an
    unnamed socket pair) and the squatter hears none of them."""
    m = Manager("squat", status={"listen": "127.0.0.1:%d" % free_port()},
                policy={"scale_in_below": 0.0})
    script = ("import socket,sys\n"
              "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
              "s.bind(b'\\0asg-controller' + sys.argv[1].encode())\n"
              "print('bound', flush=True)\n"
              "while True:\n s.recv(4096); print('GOT', flush=True)\n")
    squatter = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 "/usr/bin/python3", "-c", script, m.shm],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "bound"
        m.start()
        m.wait_running(2)
        url = "http://" + m.cfg["status"]["listen"]
        wait_for(lambda: http("GET", url + "/healthz")[0] == 200, 10, "status up")
        code, r = http("POST", url + "/api/v1/desired", {"desired": 3})
        assert code == 202, r
        wait_for(lambda: len(m.running()) == 3, 15, "desired 3 carried out by the controller")
        assert m.status()["group"]["operator_desired"] == 3
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        kill_pid(squatter.pid)
        out = squatter.communicate(timeout=10)[0]
        m.cleanup()
    assert "GOT" not in out, "the squatter received an operator request"


@test
def plaintext_is_said_in_the_log_and_in_status():
    m = Manager("plain", tls={"mode": "plaintext"})
    try:
        m.start()
        m.wait_log(r'tls.mode = "plaintext": agents and manager are NOT authenticated')
        r = m.ctl("status")
        assert "WARNING: tls.mode = \"plaintext\"" in r.stdout, r.stdout
        assert not os.path.exists(os.path.join(m.dir, "tls")), "plaintext made keys"
    finally:
        m.cleanup()


@test
def planted_table_and_pidfile_are_refused():
    """A segment another uid made (planted, or left by an unprivileged
    manager) is never attached; a pidfile that is a link or another's file
    is refused; the stranger's process is never signalled."""
    m = Manager("plant")
    victim = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "sleep", "60"])
    STARTED.add(victim.pid)
    try:
        # A table made by uid 65534, listing the stranger's own process.
        with open("/dev/shm" + m.shm, "wb") as f:
            f.write(b"\0" * 4096)
        os.chown("/dev/shm" + m.shm, 65534, 65534)
        r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
        assert r.returncode == 1 and "belongs to uid 65534" in r.stderr + r.stdout, r
        assert alive(victim.pid)
        os.unlink("/dev/shm" + m.shm)
        # The pidfile: a symbolic link (root would write through it)...
        target = os.path.join(m.dir, "precious")
        open(target, "w").write("keep me\n")
        os.symlink(target, m.pidfile)
        r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
        assert r.returncode == 1 and "symbolic link" in r.stderr, r
        assert open(target).read() == "keep me\n"
        os.unlink(m.pidfile)
        # ...or a file of another uid (it could flock it to stop us).
        open(m.pidfile, "w").close()
        os.chown(m.pidfile, 65534, 65534)
        r = run([BIN + "/asgd", "-f", "-c", m.cfg_path], timeout=10)
        assert r.returncode == 1 and "not a regular file of ours" in r.stderr, r
        os.unlink(m.pidfile)
        # A started manager's files are ours alone.
        m.start()
        m.wait_running(2)
        assert os.stat(m.pidfile).st_mode & 0o777 == 0o600
        assert os.stat("/dev/shm" + m.shm).st_mode & 0o777 == 0o600
        r = as_stranger(["flock", "-n", m.pidfile, "true"])
        assert r.returncode != 0, r
    finally:
        kill_pid(victim.pid)
        victim.wait()
        m.cleanup()


@with_manager("adoptee", monitor={"adopt_unknown": True},
              group={"min_instances": 2, "desired_instances": 2, "max_instances": 4})
def adoption_never_signals_a_strangers_process(m):
    """An agent registered by id that the manager never launched: when it
    leaves, the manager must not signal whatever process /proc shows with
    that id unless it is ours (our uid, the real asg-agent binary)."""
    s = m.wait_running(2)
    # A process of another uid that calls itself asg-agent --id ghost-1.
    fake = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c",
                             "import sys, time; time.sleep(60)", "asg-agent", "--id", "ghost-1"])
    STARTED.add(fake.pid)
    agent = None
    try:
        agent, addr = start_agent("--id", "ghost-1", "--manager", s["group"]["monitor_address"],
                                  *m.agent_tls("ghost-1"))
        wait_for(lambda: "ghost-1" in [i["id"] for i in m.running()], 10, "ghost-1 adopted")
        assert m.status()["group"]["target"] == 3
        agent.send_signal(signal.SIGSTOP)     # goes silent: unhealthy, leaves
        wait_for(lambda: m.status()["group"]["target"] == 2 and
                 "ghost-1" not in [i["id"] for i in m.status()["instances"]], 15,
                 "ghost-1 gone and the target back to 2")
        assert alive(fake.pid), "the manager signalled another user's process"
        s2 = m.status()
        assert len(m.running(s2)) == 2, s2["instances"]
    finally:
        if agent:
            kill_pid(agent.pid)
        kill_pid(fake.pid)
        fake.wait()


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
    finally:
        for pid in victims.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert most_in_flight <= 1, most_in_flight   # one replacement at a time (a tenth of ten)
    m.wait_log(r"replacements paced: \d+ unhealthy instance")
    s = wait_for(lambda: (lambda s: s if len(m.running(s)) == 10 and m.size(s) == 10 and
                          not s["group"]["terminating"] else None)(m.status()), 30, "ten running again")
    back = [i["id"] for i in m.running(s) if victims.get(i["id"]) == i["pid"]]
    assert back, ("no waiting instance rejoined", waiting, s["instances"])
    assert re.search(r"instance (%s) answers again before its replacement" % "|".join(back), m.log())


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


@with_manager("fdflood", start=False)
def idle_connection_flood_leaves_the_monitor_listening(m):
    """1,100 idle TCP connections to the monitor (more than the usual soft
    limit of 1,024 descriptors): the monitor raised its limit and drops
    connections that never finish a handshake, so a replacement for a
    killed agent still registers."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The manager starts under the common default soft limit of 1,024.
    m.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    s = m.wait_running(2)
    host, port = s["group"]["monitor_address"].rsplit(":", 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    socks = []
    try:
        for _ in range(1100):
            c = socket.socket()
            c.connect((host, int(port)))
            socks.append(c)
        victim = s["instances"][0]
        kill_pid(victim["pid"])
        wait_replaced(m, victim["id"], 2)
    finally:
        for c in socks:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@with_manager("deaf", start=False)
def deaf_monitor_listener_is_noticed_and_restarted(m):
    """A hard limit of 256 descriptors the monitor cannot raise, and 600
    idle connections: its gRPC listener hits EMFILE and stops accepting for
    good. The supervisor sees the kernel's accept queue never drain, kills
    the deaf monitor and starts a new one; replacements register again."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    m.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    s = m.wait_running(2)
    host, port = s["group"]["monitor_address"].rsplit(":", 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    monitor = m.pid("monitor")
    socks = []
    try:
        for _ in range(600):
            c = socket.socket()
            c.connect((host, int(port)))
            socks.append(c)
        m.wait_log(r"monitor \(pid %d\) is deaf: its listener on port %s has left \d+ connections "
                   r"unaccepted" % (monitor, port), 30)
        wait_for(lambda: m.pid("monitor") not in (0, monitor), 15, "a new monitor")
        for c in socks:
            c.close()
        socks = []
        victim = m.wait_running(2)["instances"][0]
        kill_pid(victim["pid"])
        wait_replaced(m, victim["id"], 2)
    finally:
        for c in socks:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@test
def installed_layout_finds_the_agent():
    """make install puts asgd in sbin/ and asg-agent in bin/: the local
    provider finds the agent there without configuration."""
    import shutil
    import tempfile
    root = tempfile.mkdtemp(prefix="asg-install-")
    os.makedirs(root + "/sbin")
    os.makedirs(root + "/bin")
    shutil.copy(BIN + "/asgd", root + "/sbin/asgd")
    shutil.copy(BIN + "/asg-agent", root + "/bin/asg-agent")
    m = Manager("install")
    try:
        e = dict(os.environ)
        m.logf = open(m.log_path, "a")
        m.proc = subprocess.Popen([root + "/sbin/asgd", "-f", "-c", m.cfg_path],
                                  stdout=m.logf, stderr=subprocess.STDOUT, env=e)
        STARTED.add(m.proc.pid)
        m.pids.add(m.proc.pid)
        m.wait_running(2)
        exes = {os.readlink("/proc/%d/exe" % i["pid"]) for i in m.status()["instances"]}
        assert exes == {os.path.realpath(root + "/bin/asg-agent")}, exes
    finally:
        m.cleanup()
        shutil.rmtree(root, ignore_errors=True)


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


@test
def agent_registers_with_backoff_and_deregisters():
    port = free_port()
    m = Manager("reg", group={"min_instances": 1, "max_instances": 2, "desired_instances": 1},
                monitor={"listen": "127.0.0.1:%d" % port, "adopt_unknown": True})
    agent = None
    try:
        agent, addr = start_agent("--id", m.group + "-77", "--manager", "127.0.0.1:%d" % port,
                                  *m.agent_tls(m.group + "-77"))
        time.sleep(1.5)           # nobody there: the agent retries with backoff
        m.start()
        wait_for(lambda: [i for i in m.running() if i["id"] == m.group + "-77"], 20,
                 "the early agent running")
        s = m.status()
        assert m.size(s) == 1, s        # it counts toward the group: no extra launch
        # A stranger is refused unless adopted... it is adopted here; a
        # second manager without adoption is checked below.
        assert stop_agent(agent) == 0
        m.wait_log(r"instance %s-77 deregistered" % m.group)
        wait_for(lambda: len(m.running()) == 1 and
                 m.running()[0]["id"] != m.group + "-77", 20, "a replacement")
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        if agent and agent.poll() is None:
            kill_pid(agent.pid)
        m.cleanup()


@with_manager("stranger")
def unknown_agent_refused(m):
    addr = m.status()["group"]["monitor_address"]
    agent, _ = start_agent("--id", "stranger-1", "--manager", addr, *m.agent_tls("stranger-1"))
    try:
        m.wait_log(r"registration of stranger-1 from .* refused: unknown instance")
        assert "stranger-1" not in [i["id"] for i in m.status()["instances"]]
    finally:
        stop_agent(agent)


@with_manager("full", group={"min_instances": 2, "max_instances": 2, "desired_instances": 2},
              monitor={"adopt_unknown": True}, shm={"capacity": 2})
def full_table_answers_resource_exhausted(m):
    m.wait_running(2)
    addr = m.status()["group"]["monitor_address"]
    agent, _ = start_agent("--id", "extra-1", "--manager", addr, *m.agent_tls("extra-1"))
    try:
        m.wait_log(r"registration of extra-1 from .* refused: the instance table is full")
        assert len(m.status()["instances"]) == 2
    finally:
        stop_agent(agent)
    err = agent.stderr.read()
    assert "status 8" in err, err  # RESOURCE_EXHAUSTED


@test
def agent_registers_again_when_the_manager_forgets_it():
    """The table is lost (manager killed, segment removed): the new manager
    finds the agent's process but not its address; the agent sees the
    probes stop and registers again."""
    port = free_port()
    m = Manager("forget", group={"min_instances": 1, "max_instances": 2, "desired_instances": 1},
                monitor={"listen": "127.0.0.1:%d" % port})
    agent = None
    lone = m.group + "-500"
    try:
        agent, _ = start_agent("--id", lone, "--manager", "127.0.0.1:%d" % port, *m.agent_tls(lone))
        m.start()   # reconciliation adopts it; its registration makes it running
        wait_for(lambda: lone in [i["id"] for i in m.running()], 15, "adopted and running")
        assert m.size(m.status()) == 1
        kill_pid(m.proc.pid)
        m.proc.wait()
        wait_for(lambda: not m.roles_up(), 5, "roles gone")
        os.unlink("/dev/shm" + m.shm)
        t0 = time.monotonic()
        m.start()
        wait_for(lambda: lone in [i["id"] for i in m.running()], 15, "registered again")
        figure("table lost -> agent registered again (s)", time.monotonic() - t0)
        log = m.log()
        assert len(re.findall(r"adopted %s \(pid %d\)" % (lone, agent.pid), log)) == 2, log
        assert len(re.findall(r"instance %s registered at" % lone, log)) == 2, log
        assert m.size(m.status()) == 1, "a duplicate was launched"
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        if agent and agent.poll() is None:
            kill_pid(agent.pid)
        m.cleanup()


@test
def init_script_start_reload_status_stop():
    m = Manager("init")
    env = dict(os.environ, ASGD=BIN + "/asgd", ASGD_CONFIG=m.cfg_path, ASGD_PIDFILE=m.pidfile)
    script = ROOT + "/scripts/asgd.init"
    try:
        r = run([script, "start"], env=env)
        assert r.returncode == 0, r
        wait_for(lambda: m.roles_up(), 10, "daemon up")
        r = run([script, "status"], env=env)
        assert r.returncode == 0 and "running" in r.stdout, r
        gen = m.status()["group"]["config_generation"]
        r = run([script, "reload"], env=env)
        assert r.returncode == 0, r
        wait_for(lambda: m.status()["group"]["config_generation"] == gen + 1, 5, "reloaded")
        pid = int(open(m.pidfile).read())
        m.pids.add(pid)
        r = run([script, "stop"], env=env)
        assert r.returncode == 0, r
        assert not alive(pid)
        r = run([script, "status"], env=env)
        assert r.returncode == 3, r
    finally:
        m.cleanup()


# ---- provider ec2 against a local EC2 endpoint (issue 4) ----

def with_ec2(name, env=None, fake_args=None, tls=False, **group):
    """Decorator: a FakeEC2 and a Manager on it (not started): fn(m, fake, env)."""
    def before(sections):
        fake = FakeEC2(**(fake_args or {}))
        secs = ec2_sections(fake, tls=tls, **group)
        secs["tls"].update(sections.get("tls", {}))
        sections.update(secs)
        return (fake, dict(EC2_ENV, **(env or {}))), fake.stop
    return scenario(name, before=before, start=False)


def table_ids(m):
    return sorted(i["id"] for i in m.status()["instances"])


@with_ec2("ec2scale")
def ec2_group_scales_out_and_in(m, fake, env):
    m.start(env=env)
    s = m.wait_running(2, timeout=20)
    assert all(i["id"].startswith("i-") for i in s["instances"]), s["instances"]
    sizes = []

    def pinned(pct, want):
        m.load_all(pct)
        st = m.status()
        sizes.append(m.size(st))
        return len(m.running(st)) == want and m.size(st) == want
    wait_for(lambda: pinned(90, 4), 40, "scale out to 4 EC2 instances")
    wait_for(lambda: pinned(10, 2), 40, "scale in to 2")
    assert 2 <= min(sizes) and max(sizes) <= 4, (min(sizes), max(sizes))
    wait_for(lambda: sorted(fake.stats()["live"]) == table_ids(m), 10, "EC2 and the table agree")
    st = fake.stats()
    assert st["bad_signatures"] == 0 and st["created"] == 4, st
    assert st["terminated"] == 2, st
    assert len(st["reasons"]) == 2 and all("scale in" in r for r in st["reasons"].values()), st
    # A dead instance (its agent killed) is replaced through EC2.
    victim = m.running()[0]["id"]
    fake.kill_instance(victim)
    wait_for(lambda: victim not in table_ids(m) and len(m.running()) == 2, 20, "replacement")
    assert fake.stats()["created"] == 5
    r = m.ctl("-c", m.cfg_path, "provider", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = sorted(i["id"] for i in json.loads(r.stdout)["instances"] if i["alive"])
    assert listed == table_ids(m), (listed, table_ids(m))
    # Stopping the manager never terminates cloud instances.
    live = sorted(fake.stats()["live"])
    rc, _ = m.stop()
    assert rc == 0
    assert sorted(fake.stats()["live"]) == live, "instances terminated on stop"


@with_ec2("ec2faults", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
          min_instances=3, desired_instances=3, max_instances=4)
def ec2_faults_cause_no_duplicates(m, fake, env):
    """Throttling, 500s and timeouts, some after the instance was created:
    retries reuse the ClientToken, so exactly 3 instances exist."""
    creds = os.path.join(m.dir, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n"
                "[asg]\naws_access_key_id = AKIDASGTEST\n"
                "aws_secret_access_key = asg-test-secret/with+slash\n")
    env.update(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="asg")
    fake.fault("DescribeInstances", "500", 2)
    fake.fault("DescribeInstances", "timeout", 1)
    fake.fault("RunInstances", "500-after-create", 1)
    fake.fault("RunInstances", "timeout-after-create", 1)
    fake.fault("RunInstances", "throttle", 2)
    m.start(env=env)
    m.wait_running(3, timeout=40)
    m.wait_log(r"AWS credentials from the shared file")
    time.sleep(2.5)   # a reconciliation later: still exactly three
    st = fake.stats()
    assert st["faults_left"] == 0, st
    assert st["created"] == 3, "duplicate launches: %s" % st
    assert st["token_replays"] >= 2, st
    assert st["bad_signatures"] == 0, st
    assert sorted(st["live"]) == table_ids(m), (st["live"], table_ids(m))
    assert re.search(r"RunInstances failed \((server|network)", m.log()), "no retry logged"


@with_ec2("ec2adopt", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                          "AWS_EC2_METADATA_DISABLED": "false"}, tls=True)
def ec2_whole_manager_killed_adopts_every_instance(m, fake, env):
    """Credentials from the instance metadata (IMDSv2 on the fake); the
    manager is killed with its table and rebuilds it from DescribeInstances;
    the instances, joined before, register again with their certificates."""
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = fake.endpoint
    # As on EC2, the manager's address is fixed: agents find it again.
    m.cfg["monitor"]["listen"] = "127.0.0.1:%d" % free_port()
    m.write_config()
    m.start(env=env)
    s = m.wait_running(2, timeout=20)
    m.wait_log(r"AWS credentials from the instance metadata")
    ids = sorted(i["id"] for i in s["instances"])
    runs = fake.stats()["actions"]["RunInstances"]
    kill_pid(m.proc.pid)
    m.proc.wait()
    wait_for(lambda: not m.roles_up(), 5, "roles gone")
    os.unlink("/dev/shm" + m.shm)      # the worst case: the table is lost too
    t0 = time.monotonic()
    m.start(env=env)
    wait_for(lambda: sorted(i["id"] for i in m.running()) == ids, 20, "both adopted and running")
    figure("ec2: manager + table lost -> instances adopted, running (s)", time.monotonic() - t0)
    st = fake.stats()
    assert st["actions"]["RunInstances"] == runs and st["created"] == 2, st
    assert st["bad_signatures"] == 0
    assert len(re.findall(r"adopted i-", m.log())) >= 2


@test
def ec2_bad_credentials_are_refused_by_the_fake():
    """The fake's botocore check can fail: a wrong secret is refused."""
    fake = FakeEC2()
    m = Manager("ec2auth", **ec2_sections(fake))
    try:
        env = dict(os.environ, **EC2_ENV)
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list"], env=env)
        assert r.returncode == 1 and "AuthFailure" in r.stderr, r
        assert fake.stats()["bad_signatures"] == 1
        env = dict(os.environ, **EC2_ENV)
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list"], env=env)
        assert r.returncode == 0 and "0 instance(s)" in r.stdout, r
    finally:
        m.cleanup()
        fake.stop()


@with_ec2("ec2join", tls=True)
def ec2_instances_join_for_their_certificates(m, fake, env):
    """tls.mode = auto on EC2: each instance's user data carries the CA and
    a one-time join token made for its launch; the agent joins, gets a
    certificate whose CN is its instance id, and registers over mutual TLS.
    A token is good once, for its own instance only; a caller without a
    certificate can make no other call."""
    grpc, asg_pb2, stubs, _, _ = python_stubs()
    m.start(env=env)
    s = m.wait_running(2, timeout=30)
    assert "plaintext" not in m.log()
    for i in s["instances"]:
        d = os.path.join(fake.dir, i["id"])
        assert not os.path.exists(os.path.join(d, "join.token")), "a spent token was kept"
        r = run(["openssl", "x509", "-noout", "-subject", "-in", d + "/agent.crt"])
        assert ("CN = %s" % i["id"]) in r.stdout, r
        m.wait_log(r"instance %s joined: join token spent" % i["id"])
    # The next launch boots no agent: its instance waits, pending, to join.
    fake.fault("RunInstances", "no-agent")
    victim = s["instances"][0]
    fake.kill_instance(victim["id"])
    pending = wait_for(lambda: [i for i in m.status()["instances"]
                                if i["state"] == "pending" and i["id"].startswith("i-")], 20,
                       "an instance that boots no agent")[0]["id"]

    def token_of(iid):
        return re.search(r"^echo ([0-9a-f]{64}) > ", fake.user_data(iid), re.M).group(1)
    ca = re.search(r"<<'ASG_CA'\n(.*?)ASG_CA\n", fake.user_data(pending), re.S).group(1)
    d = tempfile.mkdtemp(prefix="asg-join-")
    r = run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", d + "/k.pem", "-out", d + "/csr.pem", "-subj", "/CN=evil"])
    assert r.returncode == 0, r.stderr
    csr = open(d + "/csr.pem").read()
    creds = grpc.ssl_channel_credentials(ca.encode())      # the server checked, no client certificate
    with grpc.secure_channel(s["group"]["monitor_address"], creds,
                             options=[("grpc.ssl_target_name_override", "asg-manager")]) as ch:
        mon = stubs.MonitorStub(ch)

        def refused(call, req, code, words):
            try:
                call(req, timeout=10)
            except grpc.RpcError as e:
                assert e.code() == code and words in e.details(), (e.code(), e.details())
                return
            raise AssertionError("accepted: %s" % req)
        live = s["instances"][1]
        refused(mon.Deregister, asg_pb2.DeregisterRequest(instance_id=live["id"]),
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
        refused(mon.Register, asg_pb2.RegisterRequest(instance_id=pending, address="127.0.0.1:9"),
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
        join = asg_pb2.JoinRequest
        refused(mon.Join, join(instance_id=pending, join_token=token_of(live["id"]), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "wrong join token")
        refused(mon.Join, join(instance_id=live["id"], join_token=token_of(live["id"]), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "already spent its join token")
        refused(mon.Join, join(instance_id="i-0123456789abcdef0", join_token="0" * 64, csr_pem=csr),
                grpc.StatusCode.NOT_FOUND, "not in the group")
        refused(mon.Join, join(instance_id=pending, join_token="zz", csr_pem=csr),
                grpc.StatusCode.INVALID_ARGUMENT, "hex digits")
        refused(mon.Join, join(instance_id=pending, join_token=token_of(pending), csr_pem="junk"),
                grpc.StatusCode.INVALID_ARGUMENT, "not a PEM certificate request")
        # Its own token: a certificate for its id, whatever the request asked.
        cert = mon.Join(join(instance_id=pending, join_token=token_of(pending), csr_pem=csr),
                        timeout=10).certificate_pem
        with open(d + "/crt.pem", "w") as f:
            f.write(cert)
        with open(d + "/ca.pem", "w") as f:
            f.write(ca)
        r = run(["openssl", "x509", "-noout", "-subject", "-in", d + "/crt.pem"])
        assert ("CN = %s" % pending) in r.stdout and "evil" not in r.stdout, r.stdout
        r = run(["openssl", "verify", "-CAfile", d + "/ca.pem", d + "/crt.pem"])
        assert r.returncode == 0, r
        refused(mon.Join, join(instance_id=pending, join_token=token_of(pending), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "already spent its join token")
    shutil.rmtree(d)
    assert m.status()["group"]["refused"]["join"] >= 6, m.status()["group"]["refused"]
    st = m.status()
    assert any(i["id"] == live["id"] and i["state"] == "running" for i in st["instances"]), st
    assert fake.stats()["bad_signatures"] == 0


# ---- status role: metrics, API, dashboard (issue 5) ----

def with_status(name, env=None, **sections):
    """Decorator: a manager with the status role on a free port (m.url)."""
    def before(secs):
        secs.setdefault("status", {})["listen"] = "127.0.0.1:%d" % free_port()
        # An operator's extra instance must not be scaled in under the
        # test's feet: no scale-in on low load here.
        secs.setdefault("policy", {}).setdefault("scale_in_below", 0.0)
        return (), None

    def status_up(m):
        m.url = "http://" + m.cfg["status"]["listen"]
        wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
    return scenario(name, env=env, before=before, after_start=status_up, **sections)


def metrics(m):
    from prometheus_client.parser import text_string_to_metric_families
    code, text = http("GET", m.url + "/metrics")
    assert code == 200, code
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


@with_status("metrics")
def metrics_parsed_by_prometheus_client(m):
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])

    def loads(x):
        return {dict(k[1])["instance"]: v for k, v in x.items() if k[0] == "asg_instance_load"}
    # An instance appears in asg_instance_load once it has answered a probe.
    wait_for(lambda: sorted(loads(metrics(m))) == ids, 5, "a load sample of every instance")
    x = metrics(m)
    assert x[("asg_instances", (("state", "running"),))] == 2, x
    assert x[("asg_group_max_instances", ())] == 4 and x[("asg_group_min_instances", ())] == 2
    assert all(0 <= v <= 1 for v in loads(x).values()), loads(x)
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in x.items()
                     if k[0] == "asg_probe_duration_seconds_bucket")
    assert [b[1] for b in buckets] == sorted(b[1] for b in buckets), "buckets not cumulative"
    assert buckets[-1][1] == x[("asg_probe_duration_seconds_count", ())] > 0
    assert x[("asg_probes_total", ())] >= buckets[-1][1]
    # Reloads and restarts show up.
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metrics(m)[("asg_config_reloads_total", (("result", "ok"),))] == 1, 5, "reload ok")
    m.write_config("group = { max_instances = \"x\"; };\n")
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metrics(m)[("asg_config_reloads_total", (("result", "failed"),))] == 1, 5,
             "reload failed")
    kill_pid(m.pid("monitor"))
    wait_for(lambda: metrics(m)[("asg_role_restarts_total", (("role", "monitor"),))] == 1, 5,
             "restart counted")
    m.load_all(95)
    wait_for(lambda: metrics(m).get(("asg_scaling_actions_total",
                                     (("direction", "out"), ("reason", "load")))), 20, "scale out counted")


@with_status("api")
def status_api_reads_and_refuses_bad_input(m):
    m.wait_running(2)
    code, g = http("GET", m.url + "/api/v1/group")
    assert code == 200 and g["group"]["size"] == 2 and len(g["instances"]) == 2, g
    wait_for(lambda: all(len(i["history"]) >= 3 for i in http("GET", m.url + "/api/v1/group")[1]["instances"]),
             5, "load history")
    code, e = http("GET", m.url + "/api/v1/events")
    assert code == 200 and e["events"] and e["next"] == e["events"][-1]["number"], e
    assert any(ev["kind"] == "launch" for ev in e["events"]), e
    code, e2 = http("GET", m.url + "/api/v1/events?after=%d" % e["next"])
    assert code == 200 and all(ev["number"] > e["next"] for ev in e2["events"])
    before = m.status()["group"]
    bad = [("POST", "/api/v1/desired", {"desired": 99}, 400, "outside min..max"),
           ("POST", "/api/v1/desired", {"desired": "3"}, 400, "whole number"),
           ("POST", "/api/v1/desired", b"{not json", 400, "one JSON object"),
           ("POST", "/api/v1/desired", b'{"desired": 3} trailing', 400, "one JSON object"),
           ("POST", "/api/v1/desired", b"[3]", 400, "one JSON object"),
           ("POST", "/api/v1/instances/nope-1/terminate", {}, 404, "no instance"),
           ("POST", "/api/v1/instances/bad%20id/terminate", {}, 404, "no such resource"),
           ("POST", "/api/v1/instances/%s/load" % g["instances"][0]["id"], {"load": 1.5}, 400, "outside 0..1"),
           ("POST", "/api/v1/instances/%s/load" % g["instances"][0]["id"], {"lod": 1}, 400, "expected"),
           ("POST", "/api/v1/nothing", {}, 404, "no such resource"),
           ("DELETE", "/api/v1/desired", None, 405, "not allowed"),
           ("POST", "/api/v1/desired", b"x" * 5000, 413, "larger than")]
    for method, path, body, want, why in bad:
        code, r = http(method, m.url + path, body)
        assert code == want and why in r["error"], (path, body, code, r)
    code, r = http("POST", m.url + "/api/v1/instances", b"{}", headers={"Content-Type": "text/plain"})
    assert code == 415, (code, r)
    code, r = http("POST", m.url + "/api/v1/instances", {}, headers={"Origin": "http://evil.example"})
    assert code == 403 and "cross-origin" in r["error"], (code, r)
    after = m.status()["group"]
    assert (after["size"], after["target"], after["desired"]) == \
        (before["size"], before["target"], before["desired"]), (before, after)


@with_status("actions")
def status_api_actions_go_through_the_controller(m):
    s = m.wait_running(2)
    code, r = http("POST", m.url + "/api/v1/instances", {})
    assert code == 202 and r["accepted"], r
    wait_for(lambda: m.status()["group"]["size"] == 3, 10, "launched one")
    code, r = http("POST", m.url + "/api/v1/desired", {"desired": 4})
    assert code == 202, r
    wait_for(lambda: len(m.running()) == 4, 15, "desired 4")
    assert m.status()["group"]["operator_desired"] == 4
    victim = m.running()[0]["id"]
    code, r = http("POST", m.url + "/api/v1/instances/%s/terminate" % victim, {})
    assert code == 202, r
    wait_replaced(m, victim, 4)
    agent = m.running()[0]
    code, r = http("POST", m.url + "/api/v1/instances/%s/load" % agent["id"], {"load": 0.77})
    assert code == 200 and abs(r["load"] - 0.77) < 1e-9 and r["pinned"], r
    p = m.ctl("probe", agent["address"], "--json")
    assert '"load":0.7700' in p.stdout, p.stdout
    code, r = http("POST", m.url + "/api/v1/instances/%s/load" % agent["id"], {"auto": True})
    assert code == 200 and not r["pinned"], r
    kinds = [e["kind"] for e in http("GET", m.url + "/api/v1/events?limit=256")[1]["events"]]
    assert kinds.count("operator") >= 3, kinds
    del s


@with_status("token", env={"ASG_TEST_TOKEN": "s3cret-token"},
             status={"token": "env:ASG_TEST_TOKEN"})
def status_token_required_for_actions(m):
    m.wait_running(2)
    code, r = http("POST", m.url + "/api/v1/instances", {})
    assert code == 401 and "Bearer" in r["error"], (code, r)
    code, r = http("POST", m.url + "/api/v1/instances", {}, headers={"Authorization": "Bearer nope"})
    assert code == 401, (code, r)
    code, r = http("POST", m.url + "/api/v1/instances", {},
                   headers={"Authorization": "Bearer s3cret-token"})
    assert code == 202, (code, r)
    assert "s3cret-token" not in m.log(), "the token was logged"
    # With a token, reads need it too; the page itself and /healthz do not.
    for path in ("/api/v1/group", "/api/v1/events", "/metrics"):
        assert http("GET", m.url + path)[0] == 401, path
        assert http("GET", m.url + path, headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    assert http("GET", m.url + "/")[0] == 200 and http("GET", m.url + "/healthz")[0] == 200


@with_status("reloads", status={"allowed_hosts": ["a.example"]})
def status_serves_through_reloads(m):
    """Reloads that swap the allowed hosts and the token while four
    clients keep asking: every answer is one of the two configs' (200, 401
    or 421, never an error or a dropped connection) and the last one wins.
    Under ThreadSanitizer (make tsan) it checks that the HTTP threads never
    read what a reload writes."""
    import threading
    m.wait_running(2)
    port = m.url.rsplit(":", 1)[1]
    tokens = [os.path.join(m.dir, "token-%d" % i) for i in (0, 1)]
    for i, path in enumerate(tokens):
        with open(path, "w") as f:
            f.write("token-%d\n" % i)
        os.chmod(path, 0o600)
    hosts = ["a.example", "b.example"]
    bad = []
    stop = threading.Event()

    def client(k):
        while not stop.is_set():
            i = k % 2
            try:
                code, _ = http("GET", m.url + "/api/v1/group",
                               headers={"Host": "%s:%s" % (hosts[i], port),
                                        "Authorization": "Bearer token-%d" % i})
                if code not in (200, 401, 421):
                    bad.append(code)
            except Exception as e:   # noqa: BLE001 (a dropped connection is the failure)
                bad.append(repr(e))
            k += 1
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(12):
            i = n % 2
            m.cfg["status"]["allowed_hosts"] = [hosts[i]]
            m.cfg["status"]["token"] = "file:" + tokens[i]
            m.write_config()
            gen = m.status()["group"]["config_generation"]
            m.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: m.status()["group"]["config_generation"] > gen, 10, "reload %d" % n)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not bad, bad[:5]
    last = {"Host": "%s:%s" % (hosts[1], port), "Authorization": "Bearer token-1"}
    wait_for(lambda: http("GET", m.url + "/api/v1/group", headers=last)[0] == 200, 10,
             "the last reload's host and token")
    assert http("GET", m.url + "/api/v1/group",
                headers={"Host": "%s:%s" % (hosts[0], port), "Authorization": "Bearer token-1"})[0] == 421
    assert http("GET", m.url + "/api/v1/group",
                headers={"Host": "%s:%s" % (hosts[1], port), "Authorization": "Bearer token-0"})[0] == 401


@with_status("slowloris")
def slow_request_is_cut_at_the_deadline(m):
    """A client that drips one header line a second (never silent long
    enough for the idle timeout) is cut off once its request has taken
    longer than the 10 s deadline; the dashboard answers meanwhile."""
    host, port = m.url[len("http://"):].rsplit(":", 1)
    c = socket.create_connection((host, int(port)))
    c.settimeout(1)
    start = time.monotonic()
    closed = False
    try:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: %s\r\n" % host.encode())
        while time.monotonic() - start < 40 and not closed:
            try:
                c.sendall(b"X-Drip: 1\r\n")
                closed = c.recv(1) == b""
            except socket.timeout:
                pass
            except OSError:
                closed = True
            assert http("GET", m.url + "/healthz")[0] == 200
    finally:
        c.close()
    took = time.monotonic() - start
    assert closed, "a dripping request held its connection for %.0f s" % took
    assert took >= 9, "cut after %.1f s, before the deadline" % took
    wait_for(lambda: metrics(m)[("asg_refused_total", (("what", "http"),))] >= 1, 10,
             "the cut counted as refused")


@with_status("rebind", status={"allowed_hosts": ["asg.internal"]})
def status_refuses_foreign_hosts_and_origins(m):
    """DNS rebinding: a page on evil.example whose name resolves to
    127.0.0.1 sends Host: evil.example. Every request must name this
    server; every action must carry its Origin and exactly JSON."""
    s = m.wait_running(2)
    before = (s["group"]["size"], s["group"]["target"])
    port = m.url.rsplit(":", 1)[1]
    evil = {"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}
    for path in ("/", "/api/v1/group", "/metrics", "/api/v1/events"):
        code, r = http("GET", m.url + path, headers={"Host": evil["Host"]})
        assert code == 421, (path, code, r)
    code, r = http("POST", m.url + "/api/v1/instances", {}, headers=evil)
    assert code == 421, (code, r)
    code, r = http("POST", m.url + "/api/v1/desired", {"desired": 4}, headers={"Origin": None})
    assert code == 403 and "Origin" in r["error"], (code, r)
    code, r = http("POST", m.url + "/api/v1/instances", {},
                   headers={"Origin": "http://127.0.0.1:%d" % (int(port) + 1)})
    assert code == 403, (code, r)
    for ctype in ("application/jsonx", "text/plain", "application/x-www-form-urlencoded"):
        code, r = http("POST", m.url + "/api/v1/instances", {}, headers={"Content-Type": ctype})
        assert code == 415, (ctype, code, r)
    for host in ("localhost:" + port, "127.0.0.1:" + port, "asg.internal:" + port, "ASG.internal"):
        assert http("GET", m.url + "/api/v1/group", headers={"Host": host})[0] == 200, host
    assert http("GET", m.url + "/api/v1/group", headers={"Host": "127.0.0.1:1"})[0] == 421
    s = m.status()
    assert (s["group"]["size"], s["group"]["target"]) == before, s["group"]
    code, g = http("GET", m.url + "/api/v1/group")
    assert g["group"]["refused"]["http"] >= 9, g["group"]["refused"]
    x = metrics(m)
    assert x[("asg_refused_total", (("what", "http"),))] >= 9, x


@with_status("browser")
def dashboard_in_headless_chromium(m):
    from browser import Browser
    m.wait_running(2)
    b = Browser()
    try:
        b.goto(m.url + "/")
        wait_for(lambda: b.js("document.querySelectorAll('#instances tbody tr').length") == 2, 15,
                 "two instance rows")
        wait_for(lambda: b.js("document.querySelectorAll('#load-chart .load-line').length") >= 2, 10,
                 "load chart lines")
        wait_for(lambda: b.js("document.querySelectorAll('#events li').length") >= 4, 10, "events")
        assert "running" in b.js("document.querySelector('#instances tbody').innerText")
        # Press "Launch one": a third instance appears, pending then running.
        b.js("document.getElementById('launch').click()")
        wait_for(lambda: m.status()["group"]["size"] == 3, 10, "launch from the page")
        wait_for(lambda: b.js("document.querySelectorAll('#instances tbody tr').length") == 3, 10,
                 "third row on the page")
        # Move a load slider: that agent's load changes.
        target = b.js("document.querySelector('.load-slider').dataset.id")
        b.js("""(() => { const s = document.querySelector('.load-slider');
                 s.value = 83; s.dispatchEvent(new Event('input', {bubbles: true}));
                 s.dispatchEvent(new Event('change', {bubbles: true})); })()""")
        addr = [i for i in m.status()["instances"] if i["id"] == target][0]["address"]
        wait_for(lambda: '"load":0.8300' in m.ctl("probe", addr, "--json").stdout, 10,
                 "slider pinned the agent at 83%")
        time.sleep(1.5)
        out = os.path.join(ROOT, os.environ.get("ASG_ARTIFACTS", "build"), "dashboard.png")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        b.screenshot(out)
        assert os.path.getsize(out) > 10000
    finally:
        b.close()


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


@test
def agent_reports_real_cpu_and_memory():
    p, addr = start_agent("--id", "proc-1", "--load-source", "proc")
    try:
        time.sleep(1.3)
        with open("/proc/meminfo") as f:
            info = dict(l.split(":", 1) for l in f)
        kb = lambda k: int(info[k].split()[0])  # noqa: E731
        mem = 1 - kb("MemAvailable") / kb("MemTotal")
        r = run([BIN + "/asgctl", "-c", plain_cfg(), "probe", addr, "--json"])
        got = json.loads(r.stdout)["metrics"]
        assert abs(got["mem"] - mem) < 0.05, (got, mem)
        assert 0 <= got["cpu"] <= 1 and got["load"] == got["cpu"], got
    finally:
        stop_agent(p)
    r = run([BIN + "/asg-agent", "--listen", "127.0.0.1:0", "--load-source", "gpu"])
    assert r.returncode == 2 and "use sim or proc" in r.stderr, r


def main():
    only = sys.argv[1:]
    passed = failed = 0
    print("integration tests with %s%s" % (BIN, " (sanitizers)" if SLOW > 1 else ""))
    t_all = time.monotonic()
    for fn in TESTS:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        signal.alarm(int(120 * SLOW))
        try:
            fn()
            passed += 1
            print("ok    %-58s %5.1fs" % (fn.__name__, time.monotonic() - t0), flush=True)
        except BaseException:
            failed += 1
            print("FAIL  %-58s %5.1fs" % (fn.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc()
        finally:
            signal.alarm(0)
    kill_everything_started()
    if FIGURES:
        print("figures measured (seconds, each trial):")
        for k, v in FIGURES.items():
            print("  %-55s %s" % (k, " ".join("%.3f" % x for x in v)))
    print("integration: %.0fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def on_alarm(sig, frame):
    raise TimeoutError("test exceeded its time limit")


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, on_alarm)
    sys.exit(main())
