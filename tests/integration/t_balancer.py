#!/usr/bin/python3
"""Integration tests: the group behind a real HAProxy (lb.kind = "haproxy"):
servers follow the group, drains lose no request, a restarted or
unreachable HAProxy, scaling on the request rate."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


def service_sections(d, hap, **group):
    g = {"min_instances": 1, "max_instances": 3, "desired_instances": 1}
    g.update(group)
    return {"group": g,
            "provider": {"local": {"kill_timeout_ms": 2000, "service_health": "http:/",
                                   "service": ["/usr/bin/python3", SERVICE, "{port}",
                                               os.path.join(d, "{port}.info")]}},
            "lb": hap.lb_section(),
            # Nothing scales in on its own during these tests unless asked.
            "policy": {"scale_in_below": 0.0, "scale_in_stabilization_ms": 600000}}


def balancer_matches(m, hap):
    """HAProxy's backend is exactly the running instances, each ready at its
    service address; returns the running instances then."""
    s = m.status()
    run = {i["id"]: i["service_address"] for i in m.running(s)} if s else {}
    srv = hap.servers()
    want = {k: (v, "no check") for k, v in run.items()}
    return run if run and srv == want and m.size(s) == len(run) else None


def balancer_test(name, load_fn=None, status=False, lb=None, local=None, **group):
    """Decorator: HAProxy, then a manager with a service group behind it; the
    test gets (m, hap, d). lb, and local(d): keys of lb and provider.local
    over service_sections'."""
    def wrap(fn):
        def inner():
            d = tempfile.mkdtemp(prefix="asg-lb-")
            hap = HAProxy()
            sec = service_sections(d, hap, **group)
            sec["lb"].update(lb or {})
            sec["provider"]["local"].update(local(d) if local else {})
            if status:
                sec["status"] = {"listen": "127.0.0.1:%d" % free_port()}
            m = Manager(name, **sec)

            def body():
                if status:
                    m.url = "http://" + m.cfg["status"]["listen"]
                    wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
                fn(m, hap, d)
            behind_haproxy(m, hap, d, fn.__name__, body)
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def term_time(d, service_addr):
    """When the instance's service was told to stop (Unix seconds), or None."""
    path = os.path.join(d, "%s.info.term" % service_addr.rsplit(":", 1)[1])
    return float(open(path).read()) if os.path.exists(path) else None


def removed_at(m, iid):
    """When the manager said it removed iid from the balancer (Unix s)."""
    r = m.ctl("events", "-n", "200", "--json")
    for e in json.loads(r.stdout)["events"]:
        if e["kind"] == "balancer" and e["message"] == "balancer: removed %s" % iid:
            return e["time_ms"] / 1000.0
    return None


@balancer_test("lbout", desired_instances=1)
def haproxy_follows_scale_out_under_wrk(m, hap, d):
    """policy.metric = "requests": wrk through HAProxy pushes the request
    rate per instance over its target; the group grows to max and HAProxy's
    backend is exactly the running instances at their service addresses."""
    m.cfg["policy"].update({"metric": "requests", "target_requests": 20, "kind": "target"})
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"reload|config generation", 10)
    wait_for(lambda: balancer_matches(m, hap), 20, "HAProxy serving the first instance")
    wrk = subprocess.Popen(["wrk", "-t2", "-c8", "-d120s", "http://127.0.0.1:%d/" % hap.port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.add(wrk.pid)
    try:
        wait_for(lambda: (lambda r: r if r and len(r) == 3 else None)(balancer_matches(m, hap)), 60,
                 "three instances, all in HAProxy")
        ev = m.ctl("events", "-n", "200").stdout
        assert re.search(r"scale out: target \d -> \d: [0-9.]+ requests/s per instance against target 20", ev), ev
        s = m.status()
        assert s["balancer"]["up"] and s["balancer"]["metric"] == "requests", s["balancer"]
        assert all(i["balancer"] == "added" for i in m.running(s)), s["instances"]
        wait_for(lambda: all(i["requests_per_s"] and i["requests_per_s"] > 0 for i in m.running()), 10,
                 "a request rate for every instance")
    finally:
        kill_pid(wrk.pid)
        wrk.wait(10)


@balancer_test("lbdrain", status=True, desired_instances=3)
def drains_lose_no_request(m, hap, d):
    """Under steady load through HAProxy: an operator's terminate and a
    scale-in from 3 to 1 fail no request, and every instance left HAProxy
    before its service was told to stop."""
    seen = {}

    def matching(n, without=None):
        r = balancer_matches(m, hap)
        seen.update(r or {})
        return r if r and len(r) == n and without not in r else None
    first = wait_for(lambda: matching(3), 30, "three instances in HAProxy")
    load = Load(hap.port)
    try:
        wait_for(lambda: load.ok > 50, 20, "requests flowing")
        victim = sorted(first)[0]
        code, r = m.api("POST", "/api/v1/instances/%s/terminate" % victim, {})
        assert code == 202, (code, r)
        wait_for(lambda: matching(3, victim), 30, "the terminated instance replaced, HAProxy updated")
        code, r = m.api("POST", "/api/v1/desired", {"desired": 1})
        assert code == 202, (code, r)
        wait_for(lambda: matching(1), 30, "scaled in to one, HAProxy updated")
        s = wait_for(lambda: (lambda s: s if s["group"]["terminating"] == 0 else None)(m.status()), 20,
                     "the scaled-in instances gone")
        before = load.ok
        wait_for(lambda: load.ok > before + 20, 10, "requests still flowing")
    finally:
        ok, failed, errors = load.stop()
    assert failed == 0, "%d of %d requests failed: %s" % (failed, ok + failed, errors)
    gone = [iid for iid in seen if iid not in [i["id"] for i in m.running(s)]]
    assert len(seen) == 4 and len(gone) == 3, (seen, gone)   # 3, a replacement; 1 left
    for iid in gone:
        stopped, removed = term_time(d, seen[iid]), removed_at(m, iid)
        assert stopped and removed, (iid, stopped, removed)
        assert removed <= stopped + 0.002, "%s: service stopped at %.3f, removed from HAProxy at %.3f" % (
            iid, stopped, removed)


@balancer_test("lbkill", desired_instances=2)
def killed_service_is_replaced_and_haproxy_follows(m, hap, d):
    first = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                     30, "two instances in HAProxy")
    victim = sorted(first)[0]
    _, _, pid = open(os.path.join(d, "%s.info" % first[victim].rsplit(":", 1)[1])).read().split()
    kill_pid(int(pid))                               # the service, not its agent
    wait_for(lambda: (lambda r: r if r and len(r) == 2 and victim not in r else None)(
        balancer_matches(m, hap)), 30, "replaced, and HAProxy without the dead one")


@balancer_test("lbrestart", desired_instances=2)
def haproxy_restart_rebuilds_the_backend(m, hap, d):
    """HAProxy restarted loses its runtime servers: the controller adds them
    again within the reconcile interval."""
    first = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                     30, "two instances in HAProxy")
    hap.restart()
    again = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                     10, "the backend rebuilt")
    assert again == first, (first, again)
    assert "balancer lost" in m.log(), "the loss was not said"


@balancer_test("lbdown", status=True, desired_instances=2)
def haproxy_unreachable_holds_scale_in(m, hap, d):
    """HAProxy stopped: the group keeps running, a scale-in waits (the victim
    is held, its service running), the log and /metrics say why; HAProxy
    back: the victim is let go."""
    first = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                     30, "two instances in HAProxy")
    hap.stop()
    m.wait_log(r"balancer haproxy unreachable: HAProxy socket", 10)
    wait_for(lambda: metrics(m).get(("asg_lb_up", ())) == 0, 10, "asg_lb_up 0")
    code, r = m.api("POST", "/api/v1/desired", {"desired": 1})
    assert code == 202, (code, r)
    s = wait_for(lambda: (lambda s: s if s["group"]["terminating"] == 1 else None)(m.status()), 10,
                 "one instance terminating")
    victim = [i for i in s["instances"] if i["state"] == "terminating"][0]
    assert victim["balancer"] == "added", victim
    # Held: several balancer steps later, its service has not been told to stop.
    steps = metrics(m)[("asg_lb_errors_total", ())]
    wait_for(lambda: metrics(m)[("asg_lb_errors_total", ())] >= steps + 5, 10, "more failed steps")
    assert term_time(d, victim["service_address"]) is None, "stopped before it was drained"
    assert m.status()["group"]["running"] == 1
    x = metrics(m)
    assert x[("asg_instances_balancer", (("state", "added"),))] == 2, x
    hap.restart()                                    # empty backend: the victim is not in it
    wait_for(lambda: term_time(d, victim["service_address"]), 20, "the victim stopped once HAProxy answers")
    wait_for(lambda: (lambda r: r if r and len(r) == 1 else None)(balancer_matches(m, hap)), 20,
             "the survivor back in HAProxy")
    assert metrics(m)[("asg_lb_up", ())] == 1


@test
def haproxy_answering_errors_is_reported():
    """A socket that is not HAProxy's admin API (a backend HAProxy does not
    have): an error naming the backend, and no instance is lost."""
    d = tempfile.mkdtemp(prefix="asg-lb-")
    hap = HAProxy()
    sec = service_sections(d, hap, desired_instances=1)
    sec["lb"]["haproxy"]["backend"] = "nosuch"
    m = Manager("lberr", **sec)
    try:
        m.start()
        m.wait_log(r"HAProxy has no backend nosuch \(lb.haproxy.backend\)", 10)
        m.wait_running(1)
        s = m.status()
        assert not s["balancer"]["up"] and "nosuch" in s["balancer"]["error"], s["balancer"]
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()
        hap.cleanup()
        shutil.rmtree(d, ignore_errors=True)


@test
def shipped_examples_put_http_server_behind_haproxy():
    """etc/examples/haproxy.cfg and web.cfg as docs/web-service.md walks through them,
    with only their paths, ports and names moved into the test's own: two
    http.server instances behind HAProxy, a page served through it."""
    m = Manager("lbex")
    d = m.dir
    port = free_port()
    hcfg = open(os.path.join(ROOT, "etc/examples/haproxy.cfg")).read()
    hcfg = hcfg.replace("/run/asg/", d + "/").replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    open(os.path.join(d, "haproxy.cfg"), "w").write(hcfg)
    hap = subprocess.Popen(["haproxy", "-db", "-f", os.path.join(d, "haproxy.cfg")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.add(hap.pid)
    wcfg = open(os.path.join(ROOT, "etc/examples/web.cfg")).read()
    for a, b in (("/run/asg/", d + "/"), ('"127.0.0.1:7311"', '"127.0.0.1:0"'),
                 ('"127.0.0.1:9181"', '""'), ('"/asg-web"', '"%s"' % m.shm),
                 ('name = "web";', 'name = "%s";' % m.group)):
        assert a in wcfg, a
        wcfg = wcfg.replace(a, b)
    m.write_config(wcfg + 'tls = { dir = "%s/tls"; };\n' % d)
    try:
        wait_for(lambda: os.path.exists(os.path.join(d, "haproxy.sock")), 10, "haproxy up")
        m.start()
        s = m.wait_running(2, timeout=30)
        want = sorted(i["id"] for i in s["instances"])
        wait_for(lambda: sorted(i["id"] for i in m.status()["instances"] if i["balancer"] == "added")
                 == want, 20, "both instances in HAProxy")
        code, body = http("GET", "http://127.0.0.1:%d/" % port)
        assert code == 200 and "Directory listing" in body, (code, body[:200])
    except BaseException:
        sys.stderr.write(m.log()[-5000:])
        raise
    finally:
        m.cleanup()
        kill_pid(hap.pid)
        hap.wait(10)


FAKE_HAPROXY = r"""
import os, socket, sys
path, group = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
if sys.argv[3:] == ["drop"]:   # the file is root's; who listens (and answers) is not
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
s.listen(16)
n = 0
while True:
    c, _ = s.accept()
    try:   # a client that hangs up unanswered (it refused us) is no reason to stop
        c.recv(4096)
        n += 1
        rows = "".join("web,%s-%d,0,0,%d,no check,%d,2,127.0.0.1:1\n" % (group, k, n * 100000, n * 100000)
                       for k in range(1, 9))
        c.sendall(("# pxname,svname,qcur,scur,stot,status,req_tot,type,addr\n" + rows).encode())
    except OSError:
        pass
    c.close()
"""


def strangers_rates_not_believed(m):
    """After a refused balancer socket: ten evaluations on, the group is
    not scaled on the stranger's rates and the balancer shows down,
    naming uid 65534."""
    wait_for(lambda: m.status()["group"]["running"] == 1, 20, "the instance running")
    seen = m.status()["group"]["evaluations"]
    wait_for(lambda: m.status()["group"]["evaluations"] >= seen + 10, 20, "ten more evaluations")
    s = m.status()
    assert s["group"]["target"] == 1 and m.size(s) == 1, s["group"]
    assert not s["balancer"]["up"] and "uid 65534" in s["balancer"]["error"], s["balancer"]
    assert all(i["requests_per_s"] is None for i in s["instances"]), s["instances"]


@test
def strangers_socket_is_not_believed():
    """Another uid's socket at lb.haproxy.socket (a world-writable directory,
    created before HAProxy's) claims huge request rates for every instance:
    refused by its owner, the group is not scaled on it."""
    d = tempfile.mkdtemp(prefix="asg-lb-")
    os.chmod(d, 0o1777)
    sock = os.path.join(d, "haproxy.sock")
    sec = {"group": {"min_instances": 1, "max_instances": 4, "desired_instances": 1},
           "lb": {"kind": "haproxy", "haproxy": {"socket": sock, "backend": "web"}, "interval_ms": 200},
           "policy": {"kind": "target", "metric": "requests", "target_requests": 10}}
    m = Manager("lbstranger", **sec)
    fake = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c", FAKE_HAPROXY, sock, m.group])
    STARTED.add(fake.pid)
    try:
        wait_for(lambda: os.path.exists(sock), 10, "the stranger's socket")
        m.start()
        m.wait_log(r"refused HAProxy socket \S+: owned by uid 65534, not root or asgd's uid 0", 10)
        strangers_rates_not_believed(m)
    except BaseException:
        sys.stderr.write(m.log()[-4000:])
        raise
    finally:
        m.cleanup()
        kill_pid(fake.pid)
        fake.wait(10)
        shutil.rmtree(d, ignore_errors=True)


@test
def socket_of_ours_with_a_strangers_listener_is_not_believed():
    """What a path swapped between asgd's lstat and its connect would leave:
    the socket file passes the owner check (root's, in a root 0755
    directory) but the process answering on it runs as uid 65534 (it bound
    as root, then dropped to 65534 before listening). The peer's
    credentials (SO_PEERCRED) are checked after connecting: refused, by the
    listener's uid, and the group is not scaled on its huge rates."""
    d = tempfile.mkdtemp(prefix="asg-lb-")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "haproxy.sock")
    sec = {"group": {"min_instances": 1, "max_instances": 4, "desired_instances": 1},
           "lb": {"kind": "haproxy", "haproxy": {"socket": sock, "backend": "web"}, "interval_ms": 200},
           "policy": {"kind": "target", "metric": "requests", "target_requests": 10}}
    m = Manager("lbpeer", **sec)
    fake = subprocess.Popen(["/usr/bin/python3", "-c", FAKE_HAPROXY, sock, m.group, "drop"])
    STARTED.add(fake.pid)
    try:
        wait_for(lambda: os.path.exists(sock), 10, "the socket")
        wait_for(lambda: "65534" in open("/proc/%d/status" % fake.pid).read().split("Uid:")[1].split("\n")[0],
                 10, "the listener dropped to uid 65534")
        assert os.lstat(sock).st_uid == 0
        m.start()
        m.wait_log(r"refused HAProxy socket \S+: the process listening on it runs as uid 65534, "
                   r"not root or asgd's uid 0", 10)
        strangers_rates_not_believed(m)
    except BaseException:
        sys.stderr.write(m.log()[-4000:])
        raise
    finally:
        m.cleanup()
        kill_pid(fake.pid)
        fake.wait(10)
        shutil.rmtree(d, ignore_errors=True)


@test
def balancer_config_is_checked():
    cases = [({"kind": "haproxy"}, "lb.kind \"haproxy\" needs lb.haproxy.socket"),
             ({"kind": "haproxy", "haproxy": {"socket": "/tmp/x.sock", "backend": "a b"}},
              "needs lb.haproxy.backend"),
             ({"kind": "elbv2"}, "lb.kind \"elbv2\" needs provider.kind \"ec2\""),
             ({"kind": "round-robin"}, "lb.kind")]
    for lb, words in cases:
        m = Manager("lbcfg", lb=lb)
        try:
            r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
            assert r.returncode != 0 and words in r.stderr and "asg.cfg:" in r.stderr, (lb, r.stderr)
        finally:
            m.cleanup()
    m = Manager("lbcfg", policy={"metric": "requests"})
    try:
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode != 0 and "policy.metric \"requests\" needs" in r.stderr, r.stderr
    finally:
        m.cleanup()


def haproxy_weights(hap):
    """{server: the weight set at HAProxy (uweight)} of backend web."""
    lines = hap.cmd("show stat web 4 -1").splitlines()
    head = lines[0][2:].split(",")
    out = {}
    for ln in lines[1:]:
        f = dict(zip(head, ln.split(",")))
        if f.get("svname") and f.get("type") == "2":
            out[f["svname"]] = int(f["uweight"])
    return out


def reload_with(m, **lb):
    m.cfg["lb"].update(lb)
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)


@balancer_test("lbweight", desired_instances=2)
def weights_follow_load_and_return_to_the_base(m, hap, d):
    """Two instances in HAProxy at the base weight 100; with
    lb.weight_by_load on and their loads pinned at 90 % and 10 %, the busy
    one's weight falls below the idle one's (15 and 95 by the formula);
    off again, both back at 100."""
    run = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                   30, "two instances in HAProxy")
    busy, idle = sorted(run)
    wait_for(lambda: haproxy_weights(hap) == {busy: 100, idle: 100}, 10, "both at the base weight")
    assert m.ctl("load", busy, "90").returncode == 0 and m.ctl("load", idle, "10").returncode == 0
    reload_with(m, weight_by_load=True)
    w = wait_for(lambda: (lambda w: w if w.get(busy, 100) < 30 and w.get(idle, 0) > 80 else None)(
        haproxy_weights(hap)), 15, "the busy instance weighed below the idle one")
    assert w[busy] < w[idle], w
    # Pinned, its load jumps to 90 %: its weight falls to 15 from 30 or
    # more, a change large enough for the event log (recorded just after
    # HAProxy took it).
    said = r"balancer: weight of %s \d+ -> 15\b" % re.escape(busy)
    wait_for(lambda: re.search(said, m.ctl("events", "-n", "50").stdout), 5, "the change in the event log")
    reload_with(m, weight_by_load=False)
    wait_for(lambda: haproxy_weights(hap) == {busy: 100, idle: 100}, 15, "both back at the base weight")


@balancer_test("lb5xx", status=True, desired_instances=1,
               local=lambda d: {"service_health": "tcp",
                                "service": ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"),
                                            "--status", "500"]})
def five_hundreds_are_counted_per_instance(m, hap, d):
    """A service that is up but answers 500, behind HAProxy in http mode:
    the instance's balancer_5xx counts every one HAProxy saw: its hrsp_5xx
    and the attempts it retried (wretr; the harness's HAProxy retries on
    500, here on the same server, the only one)."""
    run = wait_for(lambda: (lambda r: r if r and len(r) == 1 else None)(balancer_matches(m, hap)),
                   30, "the instance in HAProxy")
    iid = list(run)[0]
    for _ in range(20):
        code, _ = http("GET", "http://127.0.0.1:%d/" % hap.port)
        assert code == 500, code
    lines = hap.cmd("show stat web 4 -1").splitlines()
    row = [dict(zip(lines[0][2:].split(","), ln.split(","))) for ln in lines[1:]]
    row = [r for r in row if r.get("svname") == iid][0]
    seen = int(row["hrsp_5xx"]) + int(row["wretr"])
    assert int(row["hrsp_5xx"]) == 20 and seen >= 20, row
    inst = wait_for(lambda: (lambda i: i if i and i[0]["balancer_5xx"] == seen else None)(
        [i for i in m.status()["instances"] if i["id"] == iid]), 10, "%d answers 5xx counted" % seen)
    assert inst[0]["balancer"] == "added", inst


@balancer_test("lb503", desired_instances=2,
               local=lambda d: {"service": ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"),
                                            "--status-file", os.path.join(d, "{port}.status")]})
def retried_503s_are_counted_against_the_server(m, hap, d):
    """One of two instances answers 503; HAProxy (retry-on 503, redispatch,
    as etc/examples/haproxy.cfg) retries each on the other, so the client
    sees none and HAProxy counts them in neither req_tot nor hrsp_5xx of
    the bad one: only in its retries (wretr). They count as its 5xx, so a
    rollout can still tell that it is bad; the good one's stay at 0."""
    run = wait_for(lambda: (lambda r: r if r and len(r) == 2 else None)(balancer_matches(m, hap)),
                   30, "two instances in HAProxy")
    bad, good = sorted(run)
    with open(os.path.join(d, "%s.status" % run[bad].rsplit(":", 1)[1]), "w") as f:
        f.write("503\n")
    for _ in range(20):
        code, _ = http("GET", "http://127.0.0.1:%d/" % hap.port)
        assert code == 200, code
    five = lambda: {i["id"]: i["balancer_5xx"] for i in m.status()["instances"]}
    got = wait_for(lambda: (lambda f: f if (f.get(bad) or 0) >= 10 and f.get(good) is not None else None)(five()),
                   10, "the bad one's 503s counted")
    assert got[good] == 0, got


@balancer_test("lbcanary", status=True, desired_instances=3, max_instances=4)
def canary_takes_its_weight_until_resumed(m, hap, d):
    """A rollout with --canary 1 --canary-weight 10%: paused after its
    canary, the one new instance beside two old ones has HAProxy weight
    10 * 2 * 100 / (90 * 1) = 22 (10 % of new requests), the old ones 100;
    resumed, the canary's weight is the base again."""
    first = wait_for(lambda: (lambda r: r if r and len(r) == 3 else None)(balancer_matches(m, hap)),
                     30, "three instances in HAProxy")
    m.cfg["provider"]["local"]["service"] += ["--bind", "127.0.0.1"]    # a new launch spec
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"launch spec generation 2", 10)
    r = m.ctl("rollout", "start", "--canary", "1", "--canary-weight", "10%", "--bake-s", "1")
    assert r.returncode == 0, r.stderr

    def paused_canary():
        w = haproxy_weights(hap)
        new = [k for k in w if k not in first]
        old = [k for k in w if k in first]
        return w if len(new) == 1 and len(old) == 2 and w[new[0]] == 22 and all(w[k] == 100 for k in old) else None
    w = wait_for(paused_canary, 30, "the canary at 10 % beside two old instances")
    canary = [k for k in w if k not in first][0]
    wait_for(lambda: json.loads(m.ctl("rollout", "status", "--json").stdout)["state"] == "paused", 10,
             "the rollout paused on its canary")
    assert m.ctl("rollout", "resume").returncode == 0
    wait_for(lambda: haproxy_weights(hap).get(canary) == 100, 15, "the canary back at the base weight")


if __name__ == "__main__":
    sys.exit(run_tests())
