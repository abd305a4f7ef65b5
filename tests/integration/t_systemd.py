#!/usr/bin/python3
"""Integration tests: asgd under systemd. The units as `make install`
installs them, rated by systemd-analyze itself; asgd's side of the
sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING) heard on a socket of
the test's own, as systemd would hear it; and what the unit's KillMode
leaves running when it stops asgd."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

# The most systemd-analyze may find exposed in the installed asgd.service
# ("OK" goes up to 3.9; the issue asks for 3.0 or less).
MAX_EXPOSURE = 3.0


def installed_units():
    """`make install-units` into a throw-away root, as a package would
    install them (PREFIX=/usr, the units where Debian 12 keeps them): {unit
    name: its path there}."""
    root = tempfile.mkdtemp(prefix="asg-units-")
    # Not the variables of a make that runs this test (make test's SAN=1
    # or its jobserver): a make of its own.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = run(["make", "-s", "-C", ROOT, "install-units", "DESTDIR=" + root, "PREFIX=/usr",
             "UNITDIR=/lib/systemd/system"], timeout=60, env=env)
    assert r.returncode == 0, r
    d = os.path.join(root, "lib/systemd/system")
    return root, {u: os.path.join(d, u) for u in os.listdir(d)}


def unit_settings(path):
    """[(key, value)] of a unit file's settings, in order."""
    out = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


@test
def installed_unit_is_rated_ok_by_systemd_analyze_security():
    """systemd-analyze security --offline=yes on the installed asgd.service:
    exposure at most 3.0, and every directive the hardening relies on there
    (a unit that loses one scores worse, but say which)."""
    root, units = installed_units()
    try:
        unit = units["asgd.service"]
        r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit], timeout=60)
        m = re.search(r"Overall exposure level for asgd\.service: ([0-9.]+) (\w+)", r.stdout + r.stderr)
        assert m, r
        assert float(m.group(1)) <= MAX_EXPOSURE, "exposure %s %s:\n%s" % (m.group(1), m.group(2), r.stdout)
        s = dict(unit_settings(unit))
        for k, v in (("Type", "notify"), ("User", "asg"), ("StateDirectory", "asg"),
                     ("RuntimeDirectory", "asg"), ("NoNewPrivileges", "yes"),
                     ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                     ("CapabilityBoundingSet", ""), ("KillMode", "process")):
            assert s.get(k) == v, (k, s.get(k))
        assert "AF_NETLINK" in s["RestrictAddressFamilies"].split(), s["RestrictAddressFamilies"]
        assert "RemoveIPC" not in s and "DynamicUser" not in s, "either would delete the table on a stop"
        assert s["ExecStart"].startswith("/usr/sbin/asgd -f "), s["ExecStart"]
        # Every unit installed parses: systemd-analyze verify on its own.
        for name, path in units.items():
            r = run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", path], timeout=60)
            bad = [ln for ln in (r.stdout + r.stderr).splitlines()
                   if ln.strip() and "is not executable" not in ln and "No such file" not in ln]
            assert not bad, (name, bad)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class NotifySocket:
    """A datagram socket where systemd would listen ($NOTIFY_SOCKET):
    each message with the sender's pid (SCM_CREDENTIALS, as systemd's
    NotifyAccess=main checks it)."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.s.settimeout(0.1)
        self.got = []   # (monotonic time, sender pid, {key: value})

    def take(self):
        """Reads what has arrived; returns the messages so far."""
        while True:
            try:
                data, anc, _, _ = self.s.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                return self.got
            pid = None
            for level, kind, body in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", body[:12])[0]
            fields = dict(ln.split("=", 1) for ln in data.decode().splitlines() if "=" in ln)
            self.got.append((time.monotonic(), pid, fields))

    def first(self, key):
        return next((g for g in self.take() if key in g[2]), None)

    def close(self):
        self.s.close()


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e]


@with_manager("notify", start=False)
def asgd_tells_systemd_ready_then_watchdog_then_stopping(m):
    """Type=notify: READY=1 (with a STATUS= line) only once the monitor
    serves and the controller has evaluated, from asgd's own pid; WATCHDOG=1
    at half of $WATCHDOG_USEC; STOPPING=1 as soon as SIGTERM starts the
    drain. The roles and agents do not inherit $NOTIFY_SOCKET (systemd
    hears the supervisor alone)."""
    ns = NotifySocket(m.dir)
    try:
        m.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"}, wait=False)
        wait_for(lambda: ns.first("READY"), 15 * SLOW, "READY=1")
        when, pid, fields = ns.first("READY")
        assert pid == m.proc.pid, (pid, m.proc.pid)
        assert fields["READY"] == "1" and fields["STATUS"].startswith("running: monitor on 127.0.0.1:"), fields
        s = m.status()
        assert s["processes"]["monitor"] and s["processes"]["controller"], s["processes"]
        assert s["group"]["evaluations"] >= 1 and s["group"]["probe_rounds"] >= 1, s["group"]
        # Before READY: nothing but watchdog pings (no second READY after it either).
        assert [g for g in ns.take() if "READY" in g[2]] == [ns.first("READY")]
        t0 = time.monotonic()
        wait_for(lambda: len([g for g in ns.take() if g[0] > t0 and "WATCHDOG" in g[2]]) >= 4,
                 5 * SLOW, "four WATCHDOG=1 at 200 ms")
        assert all(g[1] == m.proc.pid for g in ns.take()), ns.got
        wait_for(lambda: m.running(), 20 * SLOW, "agents running")
        # A role forgets it after its fork (its /proc environ still shows
        # what asgd was exec'd with); the agents the controller execs show
        # what the role had left.
        for i in m.running():
            assert "NOTIFY_SOCKET" not in environ_of(i["pid"]), i
        t1 = time.monotonic()
        m.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: ns.first("STOPPING"), 5 * SLOW, "STOPPING=1")
        when, pid, fields = ns.first("STOPPING")
        assert pid == m.proc.pid and when >= t1 and fields["STATUS"].startswith("draining"), fields
        assert m.proc.wait(timeout=15 * SLOW) == 0
    finally:
        ns.close()


@with_manager("nonotify", start=False)
def without_notify_socket_asgd_says_nothing_and_runs(m):
    """Not under systemd: no $NOTIFY_SOCKET, no message, no error."""
    e = {k: "" for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    m.start(env=e)
    assert "sd_notify" not in m.log() and "told the service manager" not in m.log(), m.log()[-2000:]


def fixed_monitor_port(secs):
    """The monitor on one port across the restart, as in production
    (monitor.listen = "0.0.0.0:7301"): the agents find the next asgd there."""
    secs.setdefault("monitor", {})["listen"] = "127.0.0.1:%d" % free_port()
    return (), None


@scenario("killmode", before=fixed_monitor_port,
          provider={"local": {"stop_on_exit": False, "kill_timeout_ms": 1000}})
def agents_outlive_asgd_stopped_as_its_unit_stops_it(m):
    """What the installed unit's KillMode=process does on `systemctl
    restart asgd`: SIGTERM to asgd alone, nothing to the rest of the
    cgroup; with provider.local.stop_on_exit = false the local agents keep
    running (KillMode=mixed would SIGKILL them once asgd exited), and the
    asgd started next takes them back, same pids."""
    root, units = installed_units()
    try:
        assert dict(unit_settings(units["asgd.service"]))["KillMode"] == "process"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    before = {i["id"]: i["pid"] for i in m.running(m.wait_running(2, timeout=20 * SLOW))}
    rc, _ = m.stop(timeout=15)
    assert rc == 0
    assert all(alive(p) for p in before.values()), before
    m.start()
    s = m.wait_running(2, timeout=20 * SLOW)
    assert {i["id"]: i["pid"] for i in m.running(s)} == before, (s["instances"], before)


@with_manager("piddir", start=False)
def asgd_makes_its_pidfiles_directory(m):
    """The default pidfile is /run/asg/asgd.pid: under systemd
    RuntimeDirectory= makes /run/asg for the asg user; started any other
    way (the init script, by hand) asgd makes the directory itself."""
    d = os.path.join(m.dir, "run-asg")
    m.cfg["supervisor"]["pidfile"] = os.path.join(d, "asgd.pid")
    m.pidfile = m.cfg["supervisor"]["pidfile"]
    m.write_config()
    m.start()
    assert os.stat(d).st_mode & 0o777 == 0o755, oct(os.stat(d).st_mode)
    wait_for(lambda: open(m.pidfile).read().strip() == str(m.proc.pid), 10, "the pid in the pidfile")
    r = run([BIN + "/asgd", "-k"])
    assert re.search(r"^\| `supervisor\.pidfile` \| string \| `/run/asg/asgd\.pid` \|", r.stdout, re.M), r.stdout


FAKE_CURL = """#!/bin/sh
# IMDSv2 as the user data asks it: a token, then the id and the address.
for a do
    case "$a" in
    */api/token) echo tok; exit 0 ;;
    */instance-id) echo i-0abc; exit 0 ;;
    */local-ipv4) echo 10.0.0.7; exit 0 ;;
    esac
done
exit 22
"""
FAKE_SYSTEMCTL = """#!/bin/sh
# Records what it was asked; `cat UNIT` succeeds when $HAVE_UNIT says so.
echo "$*" >> "$SYSTEMCTL_LOG"
[ "$1" != cat ] || [ -n "$HAVE_UNIT" ]
"""
PRINT_ARGS = """#!/bin/sh
printf '%s\\n' "$@"
"""


def ec2_user_data_of(fake, root, extra):
    """A manager on the fake EC2 with tls (a join) and an operator's
    service with an awkward word; the user data of its first instance."""
    ec2 = ec2_sections(fake, tls=True, min_instances=1, max_instances=1, desired_instances=1)
    ec2["provider"]["ec2"].update(extra)
    m = Manager("agentunit", **ec2)
    try:
        m.start(env=EC2_ENV)
        # Launched is enough (its agent need not come up): the user data
        # is what RunInstances was given. The row has EC2's id once the
        # launch is answered (before, the group's own name for it).
        def launched():
            st = m.status()                        # None: not yet
            ids = [i["id"] for i in (st or {}).get("instances", []) if i["id"].startswith("i-")]
            return ids[0] if ids else None
        iid = wait_for(launched, 30 * SLOW, "an instance launched, with EC2's id")
        return m.group, fake.user_data(iid)
    except BaseException:
        sys.stderr.write("---- asgd log ----\n%s\n" % m.log()[-4000:])
        raise
    finally:
        m.cleanup()


def run_user_data(ud, root, have_unit):
    """Runs the user data as an instance would, with curl and systemctl
    stood in for and /etc/asg, /var/lib/asg-agent under root: (what
    systemctl was asked, stdout)."""
    bindir = os.path.join(root, "fakebin")
    os.makedirs(bindir, exist_ok=True)
    for name, text in (("curl", FAKE_CURL), ("systemctl", FAKE_SYSTEMCTL)):
        with open(os.path.join(bindir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(bindir, name), 0o755)
    log = os.path.join(root, "systemctl.log")
    if os.path.exists(log):
        os.unlink(log)
    ud = ud.replace("/etc/asg", root + "/etc/asg").replace("/var/lib/asg-agent", root + "/state")
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], SYSTEMCTL_LOG=log,
               HAVE_UNIT="1" if have_unit else "")
    r = run(["/bin/sh", "-c", ud], env=env, timeout=30)
    assert r.returncode == 0, r
    asked = open(log).read().splitlines() if os.path.exists(log) else []
    return asked, r.stdout


@test
def ec2_user_data_hands_the_agent_to_its_unit():
    """Where the image has asg-agent@.service, the user data writes the
    agent's words to /etc/asg/agent-GROUP.args (root's, 0600) and starts
    asg-agent@GROUP.service instead of exec'ing the agent; the installed
    unit's ExecStart, run by /bin/sh as systemd would, hands the agent
    exactly the words the bare exec gives it where there is no unit (an
    awkward word of the operator's service included)."""
    root = tempfile.mkdtemp(prefix="asg-agentunit-")
    fake = FakeEC2()
    units_root = None
    try:
        agent = os.path.join(root, "print-args")
        with open(agent, "w") as f:
            f.write(PRINT_ARGS)
        os.chmod(agent, 0o755)
        odd = "it's a \"word\" $HOME `x` %i"
        group, ud = ec2_user_data_of(fake, root, {"agent_path": agent,
                                                  "service": ["/usr/bin/python3", "-c", odd]})
        unit = "asg-agent@%s.service" % group
        # No unit on the image: the script becomes the agent.
        asked, bare = run_user_data(ud, root, have_unit=False)
        assert asked == ["cat " + unit], asked
        words = bare.splitlines()
        assert words[:2] == ["--listen", "0.0.0.0:7302"] and words[-3:] == ["/usr/bin/python3", "-c", odd], words
        assert ["--id", "i-0abc"] == words[words.index("--id"):words.index("--id") + 2], words
        assert root + "/state" in words, words   # --join DIR
        # The unit there: started, not exec'd; its words in the args file.
        asked, out = run_user_data(ud, root, have_unit=True)
        assert asked == ["cat " + unit, "--no-block start " + unit], asked
        assert out == "", out
        args = os.path.join(root, "etc/asg/agent-%s.args" % group)
        assert os.stat(args).st_mode & 0o777 == 0o600, oct(os.stat(args).st_mode)
        units_root, units = installed_units()
        start = dict(unit_settings(units["asg-agent@.service"]))["ExecStart"]
        assert start.startswith("/bin/sh -c '") and start.endswith("'"), start
        # systemd's part: %i is the instance, $$ a dollar; the rest is sh's.
        script = start[len("/bin/sh -c '"):-1].replace("%i", group).replace("$$", "$")
        script = script.replace("/etc/asg", root + "/etc/asg")
        r = run(["/bin/sh", "-c", script], timeout=30)
        assert r.returncode == 0, r
        assert r.stdout == bare, (r.stdout, bare)
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
        if units_root:
            shutil.rmtree(units_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_tests())
