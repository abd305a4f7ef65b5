#!/usr/bin/python3
"""Integration tests: the gRPC API as a client written from proto/ sees
it: every service, method, message, field and enum value documented
there; PingRequest.managers a list; grpc.health.v1 on the monitor's
port."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

DECL = re.compile(r"^\s*(?:(service|message|enum)\s+(\w+)\s*\{"
                  r"|rpc\s+(\w+)\s*\("
                  r"|(?:repeated\s+|optional\s+)?[\w.]+\s+(\w+)\s*=\s*\d+\s*;"
                  r"|(\w+)\s*=\s*\d+\s*;)")


def undocumented(path):
    """Declarations of a .proto file with no comment of their own: a "//"
    line right above (a run of them) or at the end of the line."""
    missing = []
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        code = line.split("//", 1)[0]
        d = DECL.match(code)
        if not d:
            continue
        above = i > 0 and lines[i - 1].strip().startswith("//")
        if "//" not in line and not above:
            name = next(g for g in d.groups()[1:] if g)
            missing.append("%s:%d: %s" % (os.path.basename(path), i + 1, name))
    return missing


@test
def every_declaration_in_proto_is_documented():
    """A client is written from proto/ alone: each service, method,
    message, field and enum value says what it is."""
    files = sorted(glob.glob(os.path.join(ROOT, "proto", "*.proto")))
    assert len(files) >= 3, files
    missing = [m for f in files for m in undocumented(f)]
    assert not missing, "undocumented in proto/:\n" + "\n".join(missing)
    # The checker sees what it should: a bare field is caught.
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".proto", delete=False) as f:
        f.write("// m\nmessage M {\n  string a = 1;  // a\n  string b = 2;\n}\n")
    try:
        assert undocumented(f.name) == [os.path.basename(f.name) + ":4: b"], undocumented(f.name)
    finally:
        os.unlink(f.name)


@scenario("mgrlist", tls={"mode": "plaintext"}, group={"min_instances": 1, "max_instances": 1,
                                                          "desired_instances": 1})
def a_probe_carries_the_managers_as_a_list(m):
    """PingRequest.managers is a repeated string, one address an item: an
    agent given a list by a probe registers with its items from then on
    (the agent logs the list it took up)."""
    grpc, asg_pb2, stubs, _, _ = python_stubs()
    field = asg_pb2.PingRequest.DESCRIPTOR.fields_by_name["managers"]
    assert field.label == field.LABEL_REPEATED, field.label
    s = m.wait_running(1)
    agent = s["instances"][0]
    mine = s["group"]["monitor_address"]
    with grpc.insecure_channel(agent["address"]) as ch:
        stubs.AgentStub(ch).Ping(asg_pb2.PingRequest(seq=1, managers=[mine, "127.0.0.1:1"]), timeout=5)
    m.wait_log(r"the group's managers are %s,127\.0\.0\.1:1" % re.escape(mine))
    # A bad item spoils the list, which is ignored (the agent keeps its own).
    with grpc.insecure_channel(agent["address"]) as ch:
        stubs.AgentStub(ch).Ping(asg_pb2.PingRequest(seq=2, managers=[mine, "no port"]), timeout=5)
    m.wait_log(r"sent a bad list of managers")


def health_of(grpc, health_pb2, health_stubs, ch, service=""):
    return health_stubs.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)


@with_manager("mhealth")
def the_monitor_serves_grpc_health(m):
    """grpc.health.v1.Health/Check on the monitor's port, for a balancer
    or grpc_health_probe in front of the managers, with no client
    certificate (like Join): SERVING for "" and asg.v1.Monitor, NOT_FOUND
    for another service, NOT_SERVING once the manager drains."""
    grpc, _, _, health_pb2, health_stubs = python_stubs()
    s = m.wait_running(2)
    m.agent_tls("hc")
    ca = open(os.path.join(m.dir, "certs", "ca.crt"), "rb").read()
    creds = grpc.ssl_channel_credentials(ca)       # the server checked, no client certificate
    opts = [("grpc.ssl_target_name_override", "asg-manager")]
    with grpc.secure_channel(s["group"]["monitor_address"], creds, options=opts) as ch:
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health_of(grpc, health_pb2, health_stubs, ch).status == serving
        assert health_of(grpc, health_pb2, health_stubs, ch, "asg.v1.Monitor").status == serving
        try:
            health_of(grpc, health_pb2, health_stubs, ch, "asg.v1.Nothing")
            raise AssertionError("an unknown service was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        # The drain: the controller stops the agents first, the monitor
        # answers meanwhile, and says it no longer serves.
        m.proc.send_signal(signal.SIGTERM)
        seen = []

        def not_serving():
            try:
                seen.append(health_of(grpc, health_pb2, health_stubs, ch).status)
            except grpc.RpcError as e:
                seen.append(e.code())
            return health_pb2.HealthCheckResponse.NOT_SERVING in seen or m.proc.poll() is not None
        wait_for(not_serving, 15, "NOT_SERVING during the drain", interval=0.02)
        assert health_pb2.HealthCheckResponse.NOT_SERVING in seen, seen


if __name__ == "__main__":
    sys.exit(run_tests())
