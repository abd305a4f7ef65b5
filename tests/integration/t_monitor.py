#!/usr/bin/python3
"""Integration tests: the monitor: strangers, a full table, hostile peers, floods, a deaf listener."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contextlib  # noqa: E402
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


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
                r = mon.Register(asg_pb2.RegisterRequest(instance_id=name,
                                                          address="127.0.0.1:%d" % srv.port), timeout=5)
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


@with_manager("deaf", start=False)
def deaf_monitor_listener_is_noticed_and_restarted(m):
    """A hard limit of 256 descriptors the monitor cannot raise, and 600
    idle connections: its gRPC listener hits EMFILE and stops accepting for
    good. The supervisor sees the kernel's accept queue never drain, kills
    the deaf monitor and starts a new one; replacements register again."""
    with flooded(m, 256, 256, 600) as (s, host, port, socks):
        monitor = m.pid("monitor")
        m.wait_log(r"monitor \(pid %d\) is deaf: its listener on port %s has left \d+ connections "
                   r"unaccepted" % (monitor, port), 30)
        wait_for(lambda: m.pid("monitor") not in (0, monitor), 15, "a new monitor")
        for c in socks:
            c.close()
        victim = m.wait_running(2)["instances"][0]
        kill_pid(victim["pid"])
        wait_replaced(m, victim["id"], 2)


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
