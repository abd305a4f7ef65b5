#!/usr/bin/python3
"""Integration tests: strangers: mutual TLS, another uid, a squatted socket, planted files, adoption of strangers."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


def tls_channel(grpc, addr, d, name, peer):
    """A python3-grpcio channel presenting DIR/NAME.crt, checking the peer's
    role name (asg-manager or asg-agent)."""
    read = lambda f: open(os.path.join(d, f), "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(read("ca.crt"), read(name + ".key"), read(name + ".crt"))
    return grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override", peer)])



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


def forge_cert(ca_dir, out, name, cn, san):
    """A certificate signed with the manager's CA key by openssl itself:
    CN cn, SAN DNS:san, clientAuth; as OUT/NAME.crt and NAME.key."""
    key, crt, csr, ext = ["%s/%s.%s" % (out, name, x) for x in ("key", "crt", "csr", "ext")]
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s\n" % san)
    for args in (["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                 ["req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr],
                 ["x509", "-req", "-in", csr, "-CA", ca_dir + "/ca.crt", "-CAkey", ca_dir + "/ca.key",
                  "-set_serial", "7", "-days", "1", "-extfile", ext, "-out", crt]):
        r = run(["openssl"] + args)
        assert r.returncode == 0, r


@test
def only_the_manager_may_call_an_agent():
    """Agents' certificates carry clientAuth (they call the monitor), so a
    certificate from the manager's CA is not enough to call an agent: an
    agent's certificate may not Ping (with a list of managers the target
    would take up), GetMetrics or SetLoad another agent, not even one whose
    CN is the manager's name (only the manager's has its SAN), and asgctl
    cert will not issue that name; the manager still may, and the health
    service stays open to any verified caller."""
    grpc, asg_pb2, stubs, health_pb2, health_stubs = python_stubs()
    m = Manager("agentrpc")
    try:
        m.start()
        s = m.wait_running(2)
        victim = s["instances"][0]
        certs = os.path.join(m.dir, "certs")
        m.agent_tls("rogue-1")
        forge_cert(os.path.join(m.dir, "tls"), certs, "forged", "asg-manager", "asg-agent")
        for who in ("rogue-1", "forged"):
            with tls_channel(grpc, victim["address"], certs, who, "asg-agent") as ch:
                agent = stubs.AgentStub(ch)
                for call, req in ((agent.Ping, asg_pb2.PingRequest(seq=1, managers=["127.0.0.1:1", "127.0.0.1:2"])),
                                  (agent.GetMetrics, asg_pb2.MetricsRequest()),
                                  (agent.SetLoad, asg_pb2.SetLoadRequest(load=1.0))):
                    try:
                        call(req, timeout=5)
                        raise AssertionError("%s's certificate was answered by %s" % (who, call))
                    except grpc.RpcError as e:
                        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (who, e)
                        assert "only the manager" in e.details(), (who, e.details())
                h = health_stubs.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert h.status == health_pb2.HealthCheckResponse.SERVING, h
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "cert", "asg-manager", certs])
        assert r.returncode != 0 and "asg-manager" in r.stderr, r
        # The manager's own calls after them: the agent's loop would have
        # taken up a list it was given (every 10 ms) long before.
        assert m.ctl("load", victim["id"], "70").returncode == 0
        m.wait_log(r"load pinned to 0\.700")
        r = m.ctl("probe", victim["address"], "--json")
        assert r.returncode == 0 and '"health":"SERVING"' in r.stdout, r
        assert "managers are 127.0.0.1:1" not in m.log(), "the agent took up a list from an agent"
        v = [i for i in m.status()["instances"] if i["id"] == victim["id"]][0]
        assert v["state"] == "running" and v["pid"] == victim["pid"] and v["load"] < 0.99, v
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()


@test
def status_token_file_is_read_as_a_secret():
    """status.token = "file:..." names a secret: a link the stranger made to
    its own file, a file the stranger owns, and a file of ours that others
    may read are each refused by asgd -t, at the start and at a reload,
    with the file named and why; a 0600 file of ours is taken."""
    drop = tempfile.mkdtemp(prefix="asg-it-drop-")
    os.chmod(drop, 0o1777)              # like /tmp: anyone may create here
    theirs, link, loose, good = (os.path.join(drop, n) for n in ("theirs", "link", "loose", "good"))
    r = as_stranger(["/bin/sh", "-c", "umask 077; echo stranger-token > %s && ln -s %s %s"
                     % (theirs, theirs, link)])
    assert r.returncode == 0 and os.lstat(theirs).st_uid == 65534, r
    for path, mode in ((loose, 0o644), (good, 0o600)):
        with open(path, "w") as f:
            f.write("operator-token\n")
        os.chmod(path, mode)
    bad = ((link, "symbolic link"), (theirs, "owned by uid 65534"), (loose, "mode 0644"))
    m = Manager("tokfile")
    try:
        for path, why in bad:
            m.cfg["status"]["token"] = "file:" + path
            m.write_config()
            r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
            assert r.returncode != 0 and path in r.stderr and why in r.stderr, (path, r)
            m.start(wait=False)
            assert m.proc.wait(timeout=10) != 0, path
            assert re.search(re.escape(path) + ".*" + why, m.log()), (path, m.log()[-2000:])
        m.cfg["status"]["token"] = "file:" + good
        m.write_config()
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode == 0, r
        m.start()
        m.wait_running(2)
        m.cfg["status"]["token"] = "file:" + link
        m.write_config()
        m.proc.send_signal(signal.SIGHUP)
        m.wait_log(r"status\.token: %s: is a symbolic link, refused; not reloading" % re.escape(link))
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()
        shutil.rmtree(drop, ignore_errors=True)


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
        r = as_stranger([BIN + "/asgctl", "--shm", m.table_name(), "status"])
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
        m.url = "http://" + m.cfg["status"]["listen"]
        wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
        code, r = m.api("POST", "/api/v1/desired", {"desired": 3})
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
        # The state directory holds the group's nonce and the table's name;
        # no key, no certificate.
        made = os.listdir(os.path.join(m.dir, "tls"))
        assert not [f for f in made if f.endswith((".key", ".crt")) or f == "agents"], \
            "plaintext made keys: %s" % made
    finally:
        m.cleanup()


@test
def planted_table_and_pidfile_are_refused():
    """A segment another uid made (planted, or left by an unprivileged
    manager) is never attached, nor can it keep the manager from starting;
    a pidfile that is a link or another's file is refused; the stranger's
    process is never signalled."""
    m = Manager("plant")
    victim = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "sleep", "60"])
    STARTED.add(victim.pid)
    try:
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
        # A table made by uid 65534 under the very name asgd recorded for
        # its table (as if the stranger had learned it): asgd leaves it
        # alone and makes its own under a new name; asgctl refuses it too.
        plant = m.shm + ".0123456789abcdef"
        os.makedirs(m.state_dir(), mode=0o700)
        record = os.path.join(m.state_dir(), "table-" + m.shm.lstrip("/"))
        with open(os.open(record, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(plant + "\n")
        with open("/dev/shm" + plant, "wb") as f:
            f.write(b"\0" * 4096)
        os.chown("/dev/shm" + plant, 65534, 65534)
        m.start()
        m.wait_running(2)
        assert m.table_name() not in (None, plant), m.table_name()
        assert re.search(r"%s belongs to uid 65534 .*making a new table" % re.escape(plant), m.log()), m.log()
        r = run([BIN + "/asgctl", "--shm", plant, "status"])
        assert r.returncode != 0 and "belongs to uid 65534" in r.stderr, r
        assert os.stat("/dev/shm" + plant).st_uid == 65534
        os.unlink("/dev/shm" + plant)
        assert alive(victim.pid)
        # A started manager's files are ours alone.
        assert os.stat(m.pidfile).st_mode & 0o777 == 0o600
        assert os.stat(m.table_path()).st_mode & 0o777 == 0o600
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
        # The controller counts it into the target at its next evaluation.
        wait_for(lambda: m.status()["group"]["target"] == 3, 5, "target raised for ghost-1")
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


@test
def a_flood_of_unknown_registrations_is_logged_within_its_limit():
    """With tls.mode = plaintext anybody who reaches the monitor can ask to
    join under any id (with mutual TLS, any holder of a certificate under
    its own, again and again). At the group's maximum every request is
    refused; the request and its refusal are logged a few a second, like
    every refusal a stranger can provoke, and do not flood the log or push
    the group's history out of its event ring."""
    grpc, asg_pb2, stubs, _, _ = python_stubs()
    m = Manager("flood", tls={"mode": "plaintext"}, monitor={"adopt_unknown": True},
                group={"min_instances": 1, "desired_instances": 1, "max_instances": 1})
    try:
        m.start()
        s = m.wait_running(1)
        ev = m.ctl("events", "-n", "256", "--json")
        assert ev.returncode == 0 and "launch spec generation 1" in ev.stdout, ev
        n = 400
        ids = ["flood-%d" % k for k in range(n)]
        with grpc.insecure_channel(s["group"]["monitor_address"]) as ch:
            mon = stubs.MonitorStub(ch)
            ask = lambda i: mon.Register(asg_pb2.RegisterRequest(instance_id=i, address="127.0.0.1:9"),  # noqa: E731
                                         timeout=10)
            t0 = time.monotonic()
            for i in ids:
                try:
                    ask(i)
                except grpc.RpcError:
                    pass  # busy table or a full inbox: refused, counted
            took = time.monotonic() - t0

            def refused_now():
                try:
                    r = ask(ids[-1])
                    return not r.accepted and "maximum size" in r.reason
                except grpc.RpcError:
                    return False
            wait_for(refused_now, 20, "the last request decided and refused")
            took = time.monotonic() - t0
        log = m.log()
        asks = log.count("asks the controller to admit it")
        refusals = log.count("controller: admission of unknown instance")
        # 5 lines a second each (LOG_LIMIT_PER_S), over the flood and the wait
        allowed = 5 * (took + 2) + 10
        assert asks <= allowed and refusals <= allowed, \
            "%d requests in %.1f s: %d request and %d refusal lines logged" % (n, took, asks, refusals)
        ev = m.ctl("events", "-n", "256", "--json")
        assert ev.returncode == 0 and "launch spec generation 1" in ev.stdout, \
            "the flood pushed the group's history out of the event ring: " + ev.stdout[:600]
        assert [i["id"] for i in m.status()["instances"]] == [s["instances"][0]["id"]]
    except BaseException:
        sys.stderr.write(m.log()[-3000:])
        raise
    finally:
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
