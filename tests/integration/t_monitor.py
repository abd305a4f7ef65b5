#!/usr/bin/python3
"""Integration tests: the monitor: strangers, a full table, hostile peers, floods, a deaf listener."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contextlib  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


def register_decided(mon, request):
    """Register as an agent does until the answer is a decision: an unknown
    agent's first tries are answered "not admitted yet" (retry_after_ms)
    while the controller decides. Bounded: the last reply after 15 s."""
    end = time.monotonic() + 15
    while True:
        r = mon.Register(request, timeout=5)
        if r.accepted or not r.retry_after_ms or time.monotonic() > end:
            return r
        time.sleep(r.retry_after_ms / 1000.0)


def mon_register_at_max(grpc, asg_pb2, stubs, s, maximum):
    """Fills the group to its maximum with adopted ids; the next one must be
    refused. Returns the last reply."""
    r = None
    with grpc.insecure_channel(s["group"]["monitor_address"]) as ch:
        mon = stubs.MonitorStub(ch)
        for k in range(maximum + 1):
            r = register_decided(mon, asg_pb2.RegisterRequest(instance_id="extra-%d" % k,
                                                              address="127.0.0.1:9"))
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


# unhealthy after 6 misses: on a busy machine (two test files and
# stress-ng on two cores) one of the group's own agents once missed three
# 100 ms probes in a row during the flood and was rightly replaced, which
# the last checks would take for a stranger's doing.
@with_manager("hostile", monitor={"adopt_unknown": True, "unhealthy_after": 6}, policy={"scale_in_below": 0.0},
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
                r = register_decided(mon, asg_pb2.RegisterRequest(instance_id=name,
                                                                  address="127.0.0.1:%d" % srv.port))
                assert r.accepted, r
            # Both go unhealthy through probe misses (junk: protocol errors;
            # silent: every probe hits its deadline) and leave the group.
            for name in ("junk-1", "silent-1"):
                m.wait_log(r"instance %s unhealthy: missed 6 probes" % name, 10)
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


@contextlib.contextmanager
def flooded(m, soft, hard, n):
    """The manager started under a descriptor limit (soft, hard), then n
    TCP connections to its monitor that never say a word; yields (status,
    host, port, sockets). This process gets room for the flood, given back
    after with the sockets."""
    import resource
    mine = resource.getrlimit(resource.RLIMIT_NOFILE)
    m.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    s = m.wait_running(2)
    host, port = s["group"]["monitor_address"].rsplit(":", 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(mine[1], max(mine[0], 4096)), mine[1]))
    socks = []
    try:
        for _ in range(n):
            c = socket.socket()
            socks.append(c)
            c.connect((host, int(port)))
        yield s, host, port, socks
    finally:
        for c in socks:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, mine)


@with_manager("fdflood", start=False)
def idle_connection_flood_leaves_the_monitor_listening(m):
    """1,100 idle TCP connections to the monitor (more than the usual soft
    limit of 1,024 descriptors): the monitor raised its limit and drops
    connections that never finish a handshake, so a replacement for a
    killed agent still registers."""
    import resource
    # The manager starts under the common default soft limit of 1,024.
    with flooded(m, 1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1100) as (s, _, _, _):
        victim = s["instances"][0]
        kill_pid(victim["pid"])
        wait_replaced(m, victim["id"], 2)


@with_manager("lowfd", start=False)
def low_descriptor_limit_and_idle_flood_leave_the_monitor_serving(m):
    """A hard limit of 256 descriptors the monitor cannot raise, and 600
    idle connections: gRPC's own listener used to hit EMFILE there and
    never accept again (the supervisor then killed the deaf monitor). The
    monitor's relay sizes its budgets from the limit and drops the oldest
    idle connections instead: it stays, is never taken for deaf, and a
    replacement for a killed agent registers."""
    with flooded(m, 256, 256, 600) as (s, host, port, socks):
        monitor = m.pid("monitor")
        victim = s["instances"][0]
        kill_pid(victim["pid"])
        wait_replaced(m, victim["id"], 2)
        # longer than the supervisor's 5 s look at a listener without progress
        time.sleep(6.0)
        assert m.pid("monitor") == monitor, "the monitor was restarted"
        assert "is deaf" not in m.log(), m.log()[-3000:]


@test
def deaf_monitor_listener_is_noticed_and_restarted():
    """A monitor whose listener stops taking connections (the test hook
    monitor:relay-deaf stops its relay after the group's two agents have
    connected, as gRPC 1.51's own listener stopped for good after EMFILE):
    connections wait in the kernel's queue and the monitor's accept
    counter stands still while its probe rounds go on. The supervisor
    kills the deaf monitor and starts a new one; replacements register
    again."""
    needs_hooks("a listener made deaf")
    m = Manager("deaf")
    try:
        m.start(env={"ASG_FAULT": "monitor:relay-deaf:2"})
        deaf_listener_restarted(m)
    except BaseException:
        sys.stderr.write("---- asgd log ----\n%s\n" % m.log()[-6000:])
        raise
    finally:
        m.cleanup()


def deaf_listener_restarted(m):
    s = m.wait_running(2)
    monitor = s["processes"]["monitor"]
    host, port = s["group"]["monitor_address"].rsplit(":", 1)
    m.wait_log(r"ASG_FAULT: monitor: relay-deaf from now on")
    socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(20)]
    try:
        m.wait_log(r"monitor \(pid %d\) is deaf: its listener on port %s has left \d+ connections "
                   r"unaccepted" % (monitor, port), 30)
        wait_for(lambda: m.pid("monitor") not in (0, None, monitor), 15, "a new monitor")
    finally:
        for c in socks:
            c.close()
    victim = m.wait_running(2)["instances"][0]
    kill_pid(victim["pid"])
    wait_replaced(m, victim["id"], 2)


@test
def deaf_grpc_server_behind_the_relay_is_noticed_and_restarted():
    """The relay takes connections but its gRPC server reads none of them
    (the test hook monitor:grpc-deaf sends them, from the third on, to a
    listener that never accepts): relayed connections wait unread and the
    monitor's count of those gRPC took stands still while its probe rounds
    go on. The supervisor kills the monitor; the new one registers the
    agent that was waiting."""
    needs_hooks("a gRPC server made deaf")
    m = Manager("grpcdeaf", monitor={"adopt_unknown": True},
                group={"min_instances": 2, "desired_instances": 2, "max_instances": 4})
    agent = None
    try:
        m.start(env={"ASG_FAULT": "monitor:grpc-deaf:3"})
        s = m.wait_running(2)
        monitor = s["processes"]["monitor"]
        agent, _ = start_agent("--id", "late-1", "--manager", s["group"]["monitor_address"],
                               *m.agent_tls("late-1"))
        m.wait_log(r"monitor \(pid %d\) is deaf: its gRPC server has left \d+ relayed connections "
                   r"unread" % monitor, 30)
        wait_for(lambda: m.pid("monitor") not in (0, None, monitor), 15, "a new monitor")
        wait_for(lambda: "late-1" in [i["id"] for i in m.running()], 20, "late-1 registered with it")
    except BaseException:
        sys.stderr.write("---- asgd log ----\n%s\n" % m.log()[-6000:])
        raise
    finally:
        if agent:
            stop_agent(agent)
        m.cleanup()


# A stranger's flood of the monitor port, run as uid 65534. argv: host
# port n seconds mode. "idle": n connections that never say a word (or
# every other one, the first three bytes of a TLS record), from
# 127.0.x.y addresses (about ten each, 127.0.0.1 among them), each one
# reopened as soon as it is closed and a twentieth of them reopened every
# 100 ms anyway; "garbage": connect, send junk, close, as fast as it can,
# at most n at once. Prints "ready" once the first n are open (idle) or at
# once (garbage), and the number of connects at the end.
FLOOD = r"""
import os, select, socket, sys, time
host, port, n, seconds, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
addrs = ["127.0.%d.%d" % (k // 250, 1 + k % 250) for k in range(max(1, n // 10))]
made = [0]
first = b"\x16\x03\x01"   # the start of a TLS record, then nothing
if mode == "hello":            # a whole ClientHello, made once, sent again and again
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    first = out.read()
def dial():
    s = socket.socket()
    s.setblocking(False)
    try:
        s.bind((addrs[made[0] % len(addrs)], 0))
        made[0] += 1
        s.connect_ex((host, port))
        if mode in ("idle", "hello") and made[0] % 2:
            w = select.poll()
            w.register(s.fileno(), select.POLLOUT)
            w.poll(50)
            s.send(first)
    except OSError:
        s.close()
        return None
    return s
held = {}
order = []
def opened(s):
    if s is not None:
        held[s.fileno()] = s
        order.append(s)
def close(s):
    held.pop(s.fileno(), None)
    s.close()
end = time.monotonic() + seconds
if mode in ("idle", "hello"):
    for _ in range(n):
        opened(dial())
    print("ready", flush=True)
    last = time.monotonic()
    while time.monotonic() < end:
        p = select.poll()
        for fd in held:
            p.register(fd, select.POLLIN | select.POLLRDHUP)
        for fd, ev in p.poll(50):
            s = held.get(fd)
            if s is not None:
                close(s)
                opened(dial())
        if time.monotonic() - last >= 0.1:
            last = time.monotonic()
            order = [s for s in order if s.fileno() in held]
            for s in order[:n // 20]:
                close(s)
                opened(dial())
            order = [s for s in order if s.fileno() >= 0 and s.fileno() in held]
else:
    print("ready", flush=True)
    junk = os.urandom(512)
    while time.monotonic() < end:
        while len(held) < n:
            opened(dial())
        p = select.poll()
        for fd in held:
            p.register(fd, select.POLLOUT)
        for fd, ev in p.poll(20):
            s = held.get(fd)
            if s is None:
                continue
            try:
                s.send(junk)
            except OSError:
                pass
            close(s)
    order = []
for s in list(held.values()):
    s.close()
print(made[0], flush=True)
"""


def stranger_flood(host, port, n, seconds, mode):
    """Starts FLOOD as uid 65534; returns it once it says it is ready."""
    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "/usr/bin/python3", "-c", FLOOD, host, str(port), str(n), str(seconds), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.add(p.pid)
    line = p.stdout.readline().strip()
    assert line == "ready", (line, p.stderr.read())
    return p


def registers_under_flood(m, mode, n, seconds, within=2.5):
    """A legitimate agent (a certificate from the manager) registers while
    a stranger floods the monitor port, within `within` seconds (None: at
    some point); returns the seconds it took. The monitor is never taken
    for deaf and killed."""
    s = m.wait_running(1)
    monitor = s["processes"]["monitor"]
    host, port = s["group"]["monitor_address"].rsplit(":", 1)
    tls = m.agent_tls("late-1")
    flood = stranger_flood(host, port, n, seconds * SLOW, mode)
    agent = None
    try:
        if mode != "garbage":
            time.sleep(1.0)    # the flood holds its connections and keeps reopening them
        t0 = time.monotonic()
        agent, _ = start_agent("--id", "late-1", "--manager", s["group"]["monitor_address"], *tls)
        wait_for(lambda: "late-1" in [i["id"] for i in m.status()["instances"]], seconds + 30,
                 "late-1 registered under a %s flood" % mode, interval=0.02)
        took = time.monotonic() - t0
        figure("register under a %s flood" % mode, took)
        out, err = flood.communicate(timeout=(seconds + 30) * SLOW)
        assert flood.returncode == 0, err
        connects = int(out.split()[-1])
        print("    %s flood: %d connects; late-1 registered in %.2f s" % (mode, connects, took))
        # the supervisor looks for 5 s at a queue that never shrinks: the
        # flood lasted longer than that, and a second more is given to it
        time.sleep(1.0)
        # what the relay dropped is counted where the operator looks
        assert m.status()["group"]["refused"]["connection"] > 0, m.status()["group"]["refused"]
        deaf = [line for line in m.log().splitlines() if "is deaf" in line]
        assert not deaf, deaf
        assert m.pid("monitor") == monitor, "the monitor was restarted"
        if within is not None and took > within * SLOW:
            stop_agent(agent)
            raise AssertionError("registration took %.2f s under a %s flood; the agent said:\n%s"
                                 % (took, mode, agent.stderr.read()[-3000:]))
        # ... and the monitor still serves: the agent is probed and running
        wait_for(lambda: "late-1" in [i["id"] for i in m.running()], 10, "late-1 running")
    finally:
        if flood.poll() is None:
            kill_pid(flood.pid)
            flood.wait()
        if agent:
            stop_agent(agent)


FLOOD_GROUP = dict(monitor={"adopt_unknown": True, "unhealthy_after": 6},
                   group={"min_instances": 1, "desired_instances": 1, "max_instances": 3},
                   policy={"scale_in_below": 0.0})


@with_manager("idleflood", **FLOOD_GROUP)
def stranger_idle_connection_flood_neither_starves_registration_nor_deafens(m):
    """uid 65534 holds 3,000 idle connections to the monitor from 300
    addresses of 127/8, reopened for 9 s: an agent with a certificate
    registers within a couple of seconds, and the supervisor never takes
    the busy monitor for a deaf one."""
    registers_under_flood(m, "idle", 3000, 9)


@with_manager("helloflood", **FLOOD_GROUP)
def stranger_clienthello_flood_never_makes_the_monitor_deaf(m):
    """uid 65534 holds 3,000 connections from 300 addresses, every other
    one sending a whole TLS ClientHello (made once, sent again and again)
    and nothing more, reopened for 9 s: each costs gRPC a handshake, and
    beyond what the machine can do the agent's registration waits its
    turn (its time is reported, not bounded: 0.2-1.6 s in the release
    build, up to 25 s under ASan on a busy machine), but the supervisor
    never takes the busy monitor for a deaf one."""
    registers_under_flood(m, "hello", 3000, 9, within=None)


@with_manager("junkflood", **FLOOD_GROUP)
def stranger_garbage_connect_burst_neither_starves_registration_nor_deafens(m):
    """uid 65534 connects, sends junk and closes, as fast as it can (500
    at a time) for 7 s: the same."""
    registers_under_flood(m, "garbage", 500, 7)


# uid 65534 reads the relay's abstract names in /proc/net/unix (every user
# can) and binds the names it predicts the relay will use next: the same
# pid and middle part, slots 0..23, generations 0..399. It prints "ready"
# once it holds them, and keeps them until killed.
SQUATTER = r"""
import re, socket, sys, time
pid = sys.argv[1]
names = set()
deadline = time.monotonic() + 20
while not names and time.monotonic() < deadline:
    for line in open("/proc/net/unix"):
        m = re.search(r"@asg-relay-%s-([0-9a-f]+)-\d+-\d+" % pid, line)
        if m:
            names.add(m.group(1))
    time.sleep(0.05)
held = []
for mid in names:
    for slot in range(24):
        for gen in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind("\0asg-relay-%s-%s-%d-%d" % (pid, mid, slot, gen))
                held.append(s)
            except OSError:
                s.close()
print("ready %d %d" % (len(names), len(held)), flush=True)
time.sleep(120)
"""


@with_manager("squat", monitor={"unhealthy_after": 6})
def stranger_binding_the_relays_next_names_keeps_no_agent_out(m):
    """Every local user can read the relay's abstract socket names in
    /proc/net/unix and bind a name before we do. uid 65534 binds every
    name it can predict from the ones it sees; an agent killed then is
    replaced, and the replacement registers (before, each replacement's
    Register failed: "cannot reach the gRPC server")."""
    s = m.wait_running(2)
    monitor = s["processes"]["monitor"]
    squat = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "/usr/bin/python3", "-c", SQUATTER, str(monitor)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.add(squat.pid)
    try:
        ready = squat.stdout.readline().split()
        assert ready[:1] == ["ready"] and int(ready[1]) >= 1 and int(ready[2]) > 0, \
            (ready, squat.stderr.read() if squat.poll() is not None else "")
        victim = m.running()[0]["id"]
        kill_pid([i for i in m.running() if i["id"] == victim][0]["pid"])
        wait_replaced(m, victim, 2)
        assert "cannot reach the gRPC server" not in m.log(), \
            [line for line in m.log().splitlines() if "cannot reach" in line][:5]
        assert m.pid("monitor") == monitor
    finally:
        kill_pid(squat.pid)
        squat.wait()


@test
def monitor_removes_only_dead_monitors_private_dirs():
    """Each monitor makes /tmp/asg-monitor-PID-XXXXXX for its gRPC socket
    and removes those of monitors that were killed: by the pid in the
    name, never by emptiness (a monitor starting beside it has an empty
    one for a moment; removing it made that monitor's bind fail, seen
    with test files side by side)."""
    import tempfile
    dead = subprocess.Popen(["true"])
    dead.wait()
    live_dir = tempfile.mkdtemp(prefix="asg-monitor-%d-" % os.getpid(), dir="/tmp")
    dead_dir = tempfile.mkdtemp(prefix="asg-monitor-%d-" % dead.pid, dir="/tmp")
    m = Manager("tmpdirs")
    try:
        m.start()
        m.wait_running(2)
        assert os.path.isdir(live_dir), "a live monitor's empty directory was removed"
        assert not os.path.exists(dead_dir), "a dead monitor's directory was left"
    finally:
        m.cleanup()
        shutil.rmtree(live_dir, ignore_errors=True)
        shutil.rmtree(dead_dir, ignore_errors=True)


@with_manager("stranger")
def unknown_agent_refused(m):
    addr = m.status()["group"]["monitor_address"]
    agent, _ = start_agent("--id", "outsider-1", "--manager", addr, *m.agent_tls("outsider-1"))
    try:
        m.wait_log(r"registration of outsider-1 from .* refused: unknown instance")
        assert "outsider-1" not in [i["id"] for i in m.status()["instances"]]
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
def the_controller_alone_admits_a_joining_agent_within_the_scheduled_maximum():
    """An agent the manager did not launch registers on its own: the
    monitor only records the request; the controller decides, against the
    bounds in force from one place (file, schedule, operator): it creates
    the row of the first (its log line and event say so), and refuses the
    next once a schedule entry's maximum of 2 is reached (the file's
    maximum is 4), telling the monitor why for the agent's next try."""
    # No scale-in on low load: the joined instance must stay while the
    # second one asks (the policy may otherwise take it back out at once).
    m = Manager("admit", group={"min_instances": 1, "max_instances": 4, "desired_instances": 1},
                monitor={"adopt_unknown": True}, policy={"scale_in_below": 0.0})
    m.write_config(render(m.cfg) + '\nschedule = { timezone = "UTC"; entries = ( '
                   '{ at = "* * * * *"; max = 2; } ); };\n')
    agents = []
    try:
        m.start()
        s = m.wait_running(1)
        wait_for(lambda: (m.status()["schedule"]["active"] or {}).get("max") == 2, 10, "the entry in force")
        addr = s["group"]["monitor_address"]
        first, second = m.group + "-801", m.group + "-802"
        agents.append(start_agent("--id", first, "--manager", addr, *m.agent_tls(first))[0])
        wait_for(lambda: [i for i in m.running() if i["id"] == first], 20, "the first joining agent running")
        log = m.log()
        asked = log.index("unknown instance %s registered at" % first)
        admitted = log.index("controller: admitted unknown instance %s at" % first)
        assert asked < admitted, log[-3000:]
        ev = m.ctl("events", "-n", "100", "--json")
        assert ev.returncode == 0 and "controller: admitted unknown instance %s" % first in ev.stdout, \
            ev.stdout[-2000:] + ev.stderr
        wait_for(lambda: m.status()["group"]["target"] == 2, 10, "the target raised for it")
        agents.append(start_agent("--id", second, "--manager", addr, *m.agent_tls(second))[0])
        m.wait_log(r"controller: admission of unknown instance %s refused: the group is at its maximum "
                   r"size \(2\)" % second, 20)
        m.wait_log(r"registration of %s from .* refused: the group is at its maximum size \(2\)" % second, 20)
        s = m.status()
        assert second not in [i["id"] for i in s["instances"]], s["instances"]
        assert s["group"]["target"] == 2, s["group"]
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        for a in agents:
            stop_agent(a)
        m.cleanup()


@with_manager("paced", group={"min_instances": 6, "max_instances": 6, "desired_instances": 6},
              monitor={"probe_interval_ms": 3000}, shm={"capacity": 6})
def new_agents_are_probed_at_once_then_in_turns_spread_over_the_interval(m):
    """A new agent is probed as soon as it registers, not at its turn
    (up to an interval later); after that the six turns of each 3 s
    interval are spread over it (row i at i/6 of it), not sent at once."""
    m.wait_running(6)
    wait_for(lambda: all(i["probes_ok"] > 0 for i in m.status()["instances"]), 2.5,
             "every agent probed within moments of registering (the interval is 3 s)")
    rounds = m.status()["group"]["probe_rounds"]
    wait_for(lambda: m.status()["group"]["probe_rounds"] >= rounds + 2, 15, "two whole rounds")
    seen = sorted(i["last_seen_ms"] for i in m.status()["instances"])
    # turns 500 ms apart: the last answers of one snapshot span 2.5 s
    # (less what a busy machine delays); all at once they would span a
    # few milliseconds
    assert seen[-1] - seen[0] >= 1200, seen


if __name__ == "__main__":
    sys.exit(run_tests())
