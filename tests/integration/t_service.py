#!/usr/bin/python3
"""Integration tests: the operator's own service run by the agent (-- COMMAND):
its port and environment, its health, its load, its stop, and a group of them."""
import os
import threading
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


def service_cmd(info, *flags):
    return ["--", "/usr/bin/python3", SERVICE, "{port}", info] + list(flags)


def read_info(info):
    """(port, instance id, pid) the service wrote from its environment."""
    wait_for(lambda: os.path.exists(info), 20, "the service up (%s)" % info)
    port, iid, pid = open(info).read().split()
    return int(port), iid, int(pid)


def group_gone(pgid):
    """No process left in that process group."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        return False
            except (OSError, ValueError, IndexError):
                pass
    return True


def probe(addr):
    r = run([BIN + "/asgctl", "-c", plain_cfg(), "probe", addr, "--json"])
    return r.returncode, r.stdout + r.stderr


@test
def agent_runs_the_operators_service():
    """-- COMMAND: {port} replaced, ASG_SERVICE_PORT and ASG_INSTANCE_ID set,
    checked over HTTP; a probe fails once the service is gone; SIGTERM
    stops the agent cleanly."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-1", "--service-health", "http:/", *service_cmd(info))
    try:
        port, iid, pid = read_info(info)
        assert iid == "svc-1" and port > 0, (port, iid)
        code, body = http("GET", "http://127.0.0.1:%d/" % port)
        assert code == 200, (code, body)
        wait_for(lambda: '"health":"SERVING"' in probe(addr)[1], 10, "SERVING once checked")
        kill_pid(pid)                                      # the service dies, the agent lives
        wait_for(lambda: probe(addr)[0] != 0, 10, "probes fail without the service")
        rc, out = probe(addr)
        assert "service exited" in out, out
        assert p.poll() is None, "the agent died with its service"
    finally:
        rc = stop_agent(p)
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 0, rc


@test
def agent_checks_its_service_over_http():
    """A service that answers 503 on its health path fails its check."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-2", "--service-health", "http:/sick", *service_cmd(info))
    try:
        read_info(info)
        wait_for(lambda: "answered 503" in probe(addr)[1], 10, "the failed check in the probe")
    finally:
        stop_agent(p)
        shutil.rmtree(d, ignore_errors=True)


def serving(addr):
    return '"health":"SERVING"' in probe(addr)[1]


def with_service(agent_args, service_flags, check):
    """An agent running service.py with these flags; check(addr) while it runs."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent(*(list(agent_args) + service_cmd(info, *service_flags)))
    try:
        read_info(info)
        check(addr)
    finally:
        rc = stop_agent(p)
        shutil.rmtree(d, ignore_errors=True)
    assert rc == 0, "the agent exited with %s: %s" % (rc, p.stderr.read()[-3000:])


@test
def agent_checks_an_ipv6_only_service():
    """A service listening on [::1] alone, under an agent whose listen
    host is a name (localhost): the check reaches it over IPv6."""
    # The probe names the agent by address: gRPC's resolver of names
    # (c-ares) leaks a few bytes that the ASan build of asgctl reports.
    with_service(["--listen", "localhost:0", "--id", "svc-v6", "--service-health", "http:/"],
                 ["--bind", "::1"],
                 lambda addr: wait_for(lambda: serving(addr.replace("localhost:", "127.0.0.1:")),
                                       10, "SERVING over IPv6"))


@test
def agent_sends_the_services_own_host():
    """The check says `Host: 127.0.0.1:PORT` (the address and port it
    connects to), or the NAME of an http://NAME/PATH check, while it still
    connects to the service's port; a service that answers only to its
    own name is healthy, and a wrong name is reported."""
    def healthy(addr):
        wait_for(lambda: serving(addr), 10, "SERVING with the right Host")
    with_service(["--id", "svc-host", "--service-health", "http:/"],
                 ["--require-host", "127.0.0.1:{port}"], healthy)
    with_service(["--id", "svc-name", "--service-health", "http://www.asg.test/"],
                 ["--require-host", "www.asg.test"], healthy)
    with_service(["--id", "svc-wrong", "--service-health", "http://other.asg.test/"],
                 ["--require-host", "www.asg.test"],
                 lambda addr: wait_for(lambda: "answered 421" in probe(addr)[1], 10,
                                       "the wrong Host reported"))


def make_cert(cert, key):
    """A self-signed certificate (its own CA) for svc.asg.test and 127.0.0.1."""
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=svc.asg.test",
             "-addext", "subjectAltName=DNS:svc.asg.test,IP:127.0.0.1"])
    assert r.returncode == 0, r.stderr


@test
def agent_checks_an_https_service_with_its_ca():
    """https:/PATH with --service-ca: healthy; the same service checked
    against the system's CAs fails on its certificate; verification is off
    only with --service-insecure; https://NAME/ checks the certificate for
    NAME."""
    d = tempfile.mkdtemp(prefix="asg-tls-")
    cert, key = os.path.join(d, "svc.crt"), os.path.join(d, "svc.key")
    try:
        make_cert(cert, key)
        tls = ["--tls", cert, key]

        def healthy(addr):
            wait_for(lambda: serving(addr), 10, "SERVING over HTTPS")
        with_service(["--id", "svc-tls", "--service-health", "https:/", "--service-ca", cert], tls,
                     healthy)
        with_service(["--id", "svc-tls-name", "--service-health", "https://svc.asg.test/",
                      "--service-ca", cert], tls + ["--require-host", "svc.asg.test"], healthy)
        with_service(["--id", "svc-tls-sys", "--service-health", "https:/"], tls,
                     lambda addr: wait_for(lambda: "certificate" in probe(addr)[1], 10,
                                           "the unknown CA refused"))
        with_service(["--id", "svc-tls-off", "--service-health", "https:/", "--service-insecure"],
                     tls, healthy)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def service_that_ignores_sigterm_is_killed_after_its_timeout():
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-3", "--service-stop-ms", "300",
                          *service_cmd(info, "--ignore-term"))
    try:
        _, _, pid = read_info(info)
        t0 = time.monotonic()
        rc = stop_agent(p)
        assert rc == 0, rc
        assert time.monotonic() - t0 < 10 * SLOW
        assert group_gone(pid), "the service's process group outlived its agent"
        assert "did not stop within 300 ms: SIGKILL" in p.stderr.read()
    finally:
        if p.poll() is None:
            kill_pid(p.pid)
        shutil.rmtree(d, ignore_errors=True)


@test
def service_does_not_outlive_a_killed_agent():
    """An agent killed outright (SIGKILL) cannot stop its service: the kernel
    tells the service (SIGTERM), so no orphan keeps the port."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-5", *service_cmd(info))
    try:
        _, _, pid = read_info(info)
        kill_pid(p.pid)
        p.wait(10)
        wait_for(lambda: not alive(pid), 10, "the service gone with its agent")
    finally:
        if alive(pid):
            kill_pid(pid)
        shutil.rmtree(d, ignore_errors=True)


@test
def service_load_is_its_process_groups_cpu():
    """--load-source service: a service keeping a core busy reports as its
    load the share of a core it really got (of --service-cpus 1), as the
    test reads it from /proc over the same seconds: on an idle machine near
    1, on a busy one whatever the scheduler gave it, never an idle 0."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-4", "--load-source", "service", "--service-cpus", "1",
                          *service_cmd(info, "--burn"))
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick   # utime + stime
    try:
        _, _, pid = read_info(info)
        last = [time.monotonic(), cpu_s(pid)]
        seen = []

        def agrees():
            now, used = time.monotonic(), cpu_s(pid)
            share = (used - last[1]) / (now - last[0])
            last[:] = [now, used]
            rc, out = probe(addr)
            m = re.search(r'"load":([0-9.]+)', out)
            if rc != 0 or not m:
                return False
            seen.append((round(float(m.group(1)), 2), round(share, 2)))
            return share > 0.1 and abs(float(m.group(1)) - min(share, 1.0)) < 0.2
        try:
            wait_for(agrees, 20 * SLOW, "the service's cpu as the load", interval=1.0)
        except AssertionError as e:
            raise AssertionError("%s; (load, measured share) each second: %s" % (e, seen))
    finally:
        stop_agent(p)
        shutil.rmtree(d, ignore_errors=True)


@test
def agent_reports_its_services_request_count():
    """--service-requests http:/count: every probe carries the counter the
    service answers there."""
    d = tempfile.mkdtemp(prefix="asg-svc-")
    info = os.path.join(d, "svc.info")
    p, addr = start_agent("--id", "svc-6", "--service-requests", "http:/count", *service_cmd(info))
    try:
        port, _, _ = read_info(info)
        for _ in range(7):
            assert http("GET", "http://127.0.0.1:%d/" % port)[0] == 200

        def counted():
            m = re.search(r'"requests_total":"?(\d+)', probe(addr)[1])
            return m and int(m.group(1)) >= 7
        wait_for(counted, 10, "the service's count in the probe")
    finally:
        stop_agent(p)
        shutil.rmtree(d, ignore_errors=True)


@test
def group_scales_on_the_requests_its_services_count():
    """policy.metric = "requests" with no balancer: the services' own counts
    (provider.local.service_requests) size the group; requests sent to the
    instances straight raise it past one step."""
    d = tempfile.mkdtemp(prefix="asg-svcs-")
    m = Manager("svcreq", group={"min_instances": 1, "desired_instances": 1, "max_instances": 4},
                policy={"kind": "target", "metric": "requests", "target_requests": 5},
                provider={"local": {"kill_timeout_ms": 1000, "service_health": "http:/",
                                    "service_requests": "http:/count",
                                    "service": ["/usr/bin/python3", SERVICE, "{port}",
                                                os.path.join(d, "{port}.info")]}})
    stop = threading.Event()

    def load():
        while not stop.is_set():
            for i in m.running():
                http("GET", "http://%s/" % i["service_address"])
    t = threading.Thread(target=load, daemon=True)
    try:
        m.start()
        m.wait_running(1)
        t.start()
        s = wait_for(lambda: (lambda s: s if s and len(m.running(s)) == 4 else None)(m.status()), 30,
                     "the group at max on the services' counts")
        # at some moment, not necessarily that one: the load thread can
        # stall a second on a service that is not listening yet, and a
        # rate is taken over a second or more
        wait_for(lambda: any(i["service_requests_per_s"] for i in m.status()["instances"]), 10,
                 "a service's request rate in the status")
        ev = m.ctl("events", "-n", "50").stdout
        assert re.search(r"requests/s per instance against target 5", ev), ev
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        stop.set()
        if t.is_alive():
            t.join(20)
        m.cleanup()
        shutil.rmtree(d, ignore_errors=True)


@test
def service_flags_are_checked():
    for args, words in ((["--load-source", "service"], "need a service"),
                        (["--service-health", "udp"], "use tcp, none, http:/PATH"),
                        (["--service-health", "http://a b/"], "use tcp, none, http:/PATH"),
                        (["--service-health", "http://u@name/"], "no user name"),
                        (["--service-ca", "/etc/hostname", "--", "true"], "for an https check"),
                        (["--service-health", "http:/", "--service-insecure", "--", "true"],
                         "for an https check"),
                        (["--service-requests", "tcp"], "use http:/PATH"),
                        (["--service-requests", "http:/count"], "need a service"),
                        (["--swarm", "2", "--", "true"], "a swarm runs no service"),
                        (["stray"], "goes after --")):
        r = run([BIN + "/asg-agent", "--listen", "127.0.0.1:0"] + args)
        assert r.returncode != 0 and words in r.stderr, (args, r)


@test
def group_of_https_services_checked_with_the_configured_ca():
    """provider.local.service_health = "https:/" with service_ca: the
    agents check their HTTPS services against that CA, and the group runs."""
    d = tempfile.mkdtemp(prefix="asg-svcs-")
    cert, key = os.path.join(d, "svc.crt"), os.path.join(d, "svc.key")
    make_cert(cert, key)
    m = Manager("tlsservices", provider={"local": {
        "kill_timeout_ms": 1000, "service_health": "https:/", "service_ca": cert,
        "service": ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"),
                    "--tls", cert, key]}})
    try:
        m.start()
        m.wait_running(2)
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()
        shutil.rmtree(d, ignore_errors=True)


@test
def group_of_services_replaces_a_dead_one():
    """provider.local.service: every instance runs the service; the table
    has each one's service address; a service killed under its agent makes
    the instance unhealthy, and it is replaced by one whose service runs."""
    d = tempfile.mkdtemp(prefix="asg-svcs-")
    m = Manager("services", provider={"local": {"kill_timeout_ms": 1000, "service_health": "http:/",
                                                  "service": ["/usr/bin/python3", SERVICE, "{port}",
                                                              os.path.join(d, "{port}.info")]}})
    try:
        m.start()
        s = m.wait_running(2)
        infos = {}
        for i in s["instances"]:
            host, port = i["service_address"].rsplit(":", 1)
            assert host == "127.0.0.1", i
            infos[i["id"]] = read_info(os.path.join(d, "%s.info" % port))
            assert infos[i["id"]][1] == i["id"], infos
            assert http("GET", "http://%s/" % i["service_address"])[0] == 200
        victim = s["instances"][0]["id"]
        kill_pid(infos[victim][2])                         # its service, not its agent
        wait_replaced(m, victim, 2)
        for i in m.running():
            assert http("GET", "http://%s/" % i["service_address"])[0] == 200, i
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_tests())
