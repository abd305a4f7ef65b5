#!/usr/bin/python3
"""Integration tests: provider "exec", the operator's own commands.

The commands are real programs written here (exec_ops.py below, in a temp
dir): launch starts a real asg-agent, detached, that joins the manager for
its certificate (agent --join, with the CA and one-time token asgd put in
the command's environment) and registers; list prints the live ones;
terminate stops one and succeeds for one already gone. Each records what
it did in a state directory, so the test knows every pid it must stop."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

OPS = r'''
import json, os, signal, subprocess, sys, time

cmd, state = sys.argv[1], sys.argv[2]
ident = sys.argv[3] if len(sys.argv) > 3 else ""
db = os.path.join(state, "instances.json")


def load():
    try:
        with open(db) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(d):
    with open(db + ".tmp", "w") as f:
        json.dump(d, f)
    os.rename(db + ".tmp", db)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def note(*words):
    with open(os.path.join(state, "calls.log"), "a") as f:
        f.write(" ".join(words) + "\n")


def fault():
    try:
        with open(os.path.join(state, "fault." + cmd)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def wait_addr():
    """The agent's bound address: the first line it prints."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(os.path.join(state, ident, "out")) as f:
            first = f.readline()
        if first.endswith("\n"):
            return first.strip()
        time.sleep(0.02)
    return ""


def start_agent():
    d = os.path.join(state, ident)
    os.makedirs(d, mode=0o700, exist_ok=True)
    if os.environ.get("ASG_JOIN_TOKEN"):
        fd = os.open(os.path.join(d, "join.token"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, os.environ["ASG_JOIN_TOKEN"].encode() + b"\n")
        os.close(fd)
        fd = os.open(os.path.join(d, "ca.crt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, os.environ["ASG_CA_PEM"].encode())
        os.close(fd)
    args = [os.environ["EXEC_AGENT"], "--listen", "127.0.0.1:0", "--id", ident,
            "--manager", os.environ["ASG_MANAGER"]]
    if os.environ.get("ASG_JOIN_TOKEN"):
        args += ["--join", d]
    out = open(os.path.join(d, "out"), "w")
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                         start_new_session=True, close_fds=True)
    # Recorded at once: if this command is killed now, the next launch of
    # the same id finds this agent rather than start a second one.
    insts = load()
    insts[ident] = {"pid": p.pid, "addr": ""}
    save(insts)
    addr = wait_addr()
    insts[ident]["addr"] = addr
    save(insts)
    return addr


def launch():
    token = os.environ.get("ASG_JOIN_TOKEN", "")
    note("launch", ident, "token" if token else "no-token", os.environ.get("ASG_INSTANCE_ID", "?"),
         "token-in-argv" if token and any(token in a for a in sys.argv) else "argv-clean",
         "api-token-seen" if "EXEC_API_TOKEN" in os.environ else "no-api-token")
    f = fault()
    if f == "fail":
        sys.stderr.write("quota exceeded for " + ident + "\n")
        sys.exit(3)
    if f == "hang":
        # A child of its own holds our stdout open: once the command is
        # killed, asgd must neither wait for it nor signal it.
        left = subprocess.Popen(["/bin/sleep", "3600"], stdin=subprocess.DEVNULL)
        with open(os.path.join(state, "hung.pids"), "a") as h:
            h.write("%d %d\n" % (os.getpid(), left.pid))
        time.sleep(3600)
    known = load().get(ident)
    addr = (known["addr"] or wait_addr()) if known and alive(known["pid"]) else start_agent()
    if f == "garbage":
        # The first instance answers only once it has registered: the
        # answer comes for a row already running.
        deadline = time.monotonic() + 20
        while ident.endswith("-1") and time.monotonic() < deadline:
            with open(os.path.join(state, ident, "log")) as log:
                if "registered with" in log.read():
                    break
            time.sleep(0.02)
        sys.stdout.write("<html>not an answer</html>\n")
    else:
        sys.stdout.write("%s %s\n" % (ident, addr))


def terminate():
    force = os.environ.get("ASG_TERMINATE_FORCE") == "1"
    note("terminate", ident, "force" if force else "grace")
    known = load().get(ident)
    if known and alive(known["pid"]):
        os.kill(known["pid"], signal.SIGKILL if force else signal.SIGTERM)
    # gone already: nothing to do, and that is success


def listing():
    if fault() == "garbage":
        sys.stdout.write("ok\n\x01\x02 bad bytes\n")
        return
    for i, v in sorted(load().items()):
        if alive(v["pid"]):
            sys.stdout.write("%s %s\n" % (i, v["addr"]) if v["addr"] else i + "\n")


{"launch": launch, "terminate": terminate, "list": listing}[cmd]()
'''


class Ops:
    """The operator's commands and their state directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="asg-exec-")
        self.script = os.path.join(self.dir, "exec_ops.py")
        with open(self.script, "w") as f:
            f.write(OPS)

    def section(self, timeout_ms=10000):
        cmd = lambda what, *more: ["/usr/bin/python3", self.script, what, self.dir] + list(more)  # noqa: E731
        return {"kind": "exec", "boot_timeout_ms": 20000,
                "exec": {"launch": cmd("launch", "{id}"), "terminate": cmd("terminate", "{id}"),
                         "list": cmd("list"), "timeout_ms": timeout_ms,
                         "reconcile_interval_ms": 1000}}

    def instances(self):
        try:
            with open(os.path.join(self.dir, "instances.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def live(self):
        return {i: v for i, v in self.instances().items() if alive(v["pid"])}

    def calls(self):
        try:
            with open(os.path.join(self.dir, "calls.log")) as f:
                return [line.split() for line in f]
        except FileNotFoundError:
            return []

    def fault(self, cmd, what):
        path = os.path.join(self.dir, "fault." + cmd)
        if what:
            with open(path, "w") as f:
                f.write(what)
        elif os.path.exists(path):
            os.unlink(path)

    def hung(self):
        try:
            with open(os.path.join(self.dir, "hung.pids")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def cleanup(self):
        """Every process the commands started, by the pid they recorded
        (still that process: an agent, a command, or its sleep)."""
        def still(pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
            except OSError:
                return False
            return alive(pid) and (b"asg" in cmdline or cmdline == b"/bin/sleep\x003600\x00")
        pids = [v["pid"] for v in self.instances().values()] + self.hung()
        for pid in pids:
            if still(pid):
                kill_pid(pid)
        wait_for(lambda: not [p for p in pids if still(p)], 10, "the test's processes stopped")
        shutil.rmtree(self.dir, ignore_errors=True)


# The API token in asgd's environment (status.token = "env:..."): the
# commands must not get it.
AGENT_ENV = {"EXEC_AGENT": BIN + "/asg-agent", "EXEC_API_TOKEN": "t" * 40}


def with_ops(timeout_ms=10000, start=True, **sections):
    """Decorator: a manager whose provider is exec with this test's Ops
    (started, unless start=False: the test sets a fault first)."""
    def before(secs):
        ops = Ops()
        secs["provider"] = ops.section(timeout_ms)
        return (ops,), ops.cleanup
    sections.setdefault("status", {"listen": "", "token": "env:EXEC_API_TOKEN"})
    return scenario("exec", env=AGENT_ENV, before=before, start=start, **sections)


def running_ids(m):
    return sorted(i["id"] for i in m.running())


def matches_live(m, ops, n):
    """n instances running, and exactly the agents the commands keep alive."""
    ids = running_ids(m)
    return len(ids) == n and ids == sorted(ops.live())


@with_ops()
def exec_group_launches_joins_replaces_and_scales_in(m, ops):
    """A group of 2 through the operator's commands: each agent joins for
    its certificate (the token in its environment, never in argv; the
    API token of status.token = "env:NAME" kept back) and
    registers; a killed agent is replaced through launch after terminate
    or once list no longer has it; a scale-in calls terminate; the
    manager's stop signals none of them (they are the commands')."""
    wait_for(lambda: matches_live(m, ops, 2), 30, "2 exec instances running")
    launches = [c for c in ops.calls() if c[0] == "launch"]
    assert len(launches) == 2 and all(c[2] == "token" and c[1] == c[3] and c[4] == "argv-clean"
                                      and c[5] == "no-api-token" for c in launches), launches
    for iid in ops.live():
        assert os.path.exists(os.path.join(ops.dir, iid, "agent.crt")), iid   # joined
        assert not os.path.exists(os.path.join(ops.dir, iid, "join.token")), iid  # spent
    m.wait_log(r"instance %s-\d+ joined: join token spent" % m.group)
    r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list", "--json"])   # asgctl runs list too
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed["provider"] == "exec" and sorted(i["id"] for i in listed["instances"]) == \
        sorted(ops.live()), (listed, ops.live())
    assert "answered badly" not in m.log() and "no clear answer" not in m.log(), m.log()

    victim = running_ids(m)[0]
    kill_pid(ops.live()[victim]["pid"])
    wait_for(lambda: matches_live(m, ops, 2) and victim not in running_ids(m), 30,
             "a replacement for %s through exec" % victim)
    # Its row goes once list no longer has it (or after terminate, which
    # succeeds for one already gone): either way one launch replaces it.
    assert len([c for c in ops.calls() if c[0] == "launch"]) == 3, ops.calls()

    m.cfg["group"].update(min_instances=1, max_instances=1, desired_instances=1)
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: matches_live(m, ops, 1), 30, "scaled in to 1 through exec terminate")
    gone = [c[1] for c in ops.calls() if c[0] == "terminate" and c[1] != victim]
    assert len(gone) >= 1 and gone[0] not in ops.live(), (gone, ops.live())

    left = dict(ops.live())
    rc, _ = m.stop()
    assert rc == 0, rc
    assert left and all(alive(v["pid"]) for v in left.values()), "asgd stopped an exec instance"


@with_ops(start=False)
def exec_launch_garbage_answer_loses_no_instance(m, ops):
    """A launch that starts its instance but answers garbage: a clear error
    naming the command and why; the same id is asked again (the command
    answers for the instance it made, never a second), the instance joins
    and runs, and no agent is left outside the group."""
    ops.fault("launch", "garbage")
    m.start(env=AGENT_ENV)
    m.wait_log(r"provider\.exec\.launch \(/usr/bin/python3.*\) answered badly: line 1: "
               r"\"<html>not an answer</html>\" is not ID \[HOST:PORT\]")
    m.wait_log(r"launch %s-1: provider\.exec\.launch \(/usr/bin/python3\) answered badly: .* "
               r"\(it registered meanwhile\)" % m.group)
    wait_for(lambda: matches_live(m, ops, 2), 30, "both instances running despite the garbage")
    ids = [c[1] for c in ops.calls() if c[0] == "launch"]
    assert len(set(ids)) == 2, ids           # asked again with the same ids only
    assert len(ops.instances()) == 2, ops.instances()   # and no second agent for one


@with_ops(start=False)
def exec_launch_failure_is_clear_and_retried(m, ops):
    """A launch that exits non-zero: its status and stderr in the log, the
    row dropped (nothing was started), and launches resume once it works."""
    ops.fault("launch", "fail")
    m.start(env=AGENT_ENV)
    m.wait_log(r"launch %s-\d+ failed: provider\.exec\.launch \(/usr/bin/python3\) exited with status 3: "
               r"quota exceeded for %s-\d+" % (m.group, m.group))
    assert ops.live() == {}, ops.live()
    ops.fault("launch", "")
    wait_for(lambda: matches_live(m, ops, 2), 40, "2 instances once launch works")


@with_ops(timeout_ms=3000, start=False)
def exec_hanging_launch_is_killed_by_pid_and_loses_nothing(m, ops):
    """A launch that hangs: killed (that command's pid only: the child it
    left holding the pipe is neither waited for nor signalled) when
    provider.exec.timeout_ms runs out, said in the log, asked again with
    the same id; once it answers, the group comes up."""
    ops.fault("launch", "hang")
    m.start(env=AGENT_ENV)
    m.wait_log(r"provider\.exec\.launch \(/usr/bin/python3\) did not finish within 3000 ms "
               r"\(provider\.exec\.timeout_ms\): killed", timeout=20)
    command, its_child = wait_for(lambda: ops.hung(), 10, "the hung command's pid")[:2]
    wait_for(lambda: not alive(command), 10, "the hung command killed")
    ops.fault("launch", "")
    wait_for(lambda: matches_live(m, ops, 2), 40, "2 instances once launch answers")
    hung = ops.hung()
    assert not [p for p in hung[0::2] if alive(p)], hung       # every hung command killed
    assert alive(its_child), "asgd signalled a process the command started"


@with_ops()
def exec_list_garbage_forgets_nothing(m, ops):
    """A list that answers garbage: the reconciliation says why and skips;
    every instance stays, none is adopted or dropped."""
    wait_for(lambda: matches_live(m, ops, 2), 30, "2 exec instances running")
    before = running_ids(m)
    ops.fault("list", "garbage")
    m.wait_log(r"cannot list the provider's instances: provider\.exec\.list \(/usr/bin/python3\) answered badly: "
               r"line 2: \"\?\? bad bytes\" is not ID \[HOST:PORT\]")
    assert running_ids(m) == before, (running_ids(m), before)
    ops.fault("list", "")
    assert matches_live(m, ops, 2)


if __name__ == "__main__":
    sys.exit(run_tests())
