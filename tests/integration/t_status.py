#!/usr/bin/python3
"""Integration tests: the status role: /metrics, the API, the dashboard in Chromium."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)



@with_status("metrics")
def metrics_parsed_by_prometheus_client(m):
    from prometheus_client.parser import text_string_to_metric_families
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])

    def loads(x):
        return {dict(k[1])["instance_id"]: v for k, v in x.items() if k[0] == "asg_instance_load_ratio"}
    # An instance appears in asg_instance_load_ratio once it has answered a probe.
    wait_for(lambda: sorted(loads(metrics(m))) == ids, 5, "a load sample of every instance")
    code, text = http("GET", m.url + "/metrics")
    assert code == 200, code
    promtool_check(text)
    # Every family typed as it is declared: no sample falls out untyped,
    # and the counters are counters (the client names their family
    # without _total); the balancer's and etcd's two appear with them.
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert not [f.name for f in fams.values() if f.type == "untyped"], \
        [f.name for f in fams.values() if f.type == "untyped"]
    counters = sorted(n for n, f in fams.items() if f.type == "counter")
    assert counters == ["asg_config_reloads", "asg_evaluations", "asg_history_activities",
                        "asg_history_events_lost", "asg_history_samples", "asg_history_write_failures",
                        "asg_illegal_transitions",
                        "asg_instances_replaced", "asg_probe_rounds", "asg_probes", "asg_probes_failed",
                        "asg_provider_calls", "asg_refused", "asg_role_restarts", "asg_scaling_actions",
                        "asg_table_lock_recoveries"], counters
    assert all(smp.name == f.name + "_total" for f in fams.values() if f.type == "counter" for smp in f.samples)
    for n in ("asg_instance_load_ratio", "asg_instance_cpu_ratio", "asg_instance_mem_ratio"):
        assert fams[n].type == "gauge" and all(set(smp.labels) == {"instance_id"} for smp in fams[n].samples), n
    assert not [smp for f in fams.values() for smp in f.samples if "instance" in smp.labels]
    build = fams["asg_build_info"].samples
    assert len(build) == 1 and build[0].value == 1 and re.match(r"\d+\.\d+\.\d+$", build[0].labels["version"]), build
    assert m.ctl("version").stdout.startswith("asgctl %s " % build[0].labels["version"])
    x = metrics(m)
    assert x[("asg_instances", (("state", "running"),))] == 2, x
    assert x[("asg_illegal_transitions_total", ())] == 0, x
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
    code, g = m.api("GET", "/api/v1/group")
    assert code == 200 and g["group"]["size"] == 2 and len(g["instances"]) == 2, g
    wait_for(lambda: all(len(i["history"]) >= 3 for i in m.api("GET", "/api/v1/group")[1]["instances"]),
             5, "load history")
    code, e = m.api("GET", "/api/v1/events")
    assert code == 200 and e["events"] and e["next"] == e["events"][-1]["number"], e
    assert any(ev["kind"] == "launch" for ev in e["events"]), e
    code, e2 = m.api("GET", "/api/v1/events?after=%d" % e["next"])
    assert code == 200 and all(ev["number"] > e["next"] for ev in e2["events"])
    before = m.status()["group"]
    bad = [("POST", "/api/v1/desired", {"desired": 99}, 400, "outside min..max"),
           ("POST", "/api/v1/desired", {"desired": "3"}, 400, "whole number"),
           ("POST", "/api/v1/desired", b"{not json", 400, "one JSON object"),
           ("POST", "/api/v1/desired", b'{"desired": 3} trailing', 400, "one JSON object"),
           ("POST", "/api/v1/desired", b"[3]", 400, "one JSON object"),
           ("POST", "/api/v1/desired", b'{"desired": 3, "note": "caf\xe9"}', 400, "not valid UTF-8"),
           ("POST", "/api/v1/desired", b'{"desired": 3, "note": "\xed\xa0\x80"}', 400, "not valid UTF-8"),
           ("POST", "/api/v1/instances/nope-1/terminate", {}, 404, "no instance"),
           ("POST", "/api/v1/instances/bad%20id/terminate", {}, 404, "no such resource"),
           ("POST", "/api/v1/instances/%s/load" % g["instances"][0]["id"], {"load": 1.5}, 400, "outside 0..1"),
           ("POST", "/api/v1/instances/%s/load" % g["instances"][0]["id"], {"lod": 1}, 400, "expected"),
           ("POST", "/api/v1/nothing", {}, 404, "no such resource"),
           ("DELETE", "/api/v1/desired", None, 405, "not allowed"),
           ("POST", "/api/v1/desired", b"x" * 5000, 413, "larger than")]
    for method, path, body, want, why in bad:
        code, r = m.api(method, path, body)
        assert code == want and why in r["error"], (path, body, code, r)
    code, r = m.api("POST", "/api/v1/instances", b"{}", headers={"Content-Type": "text/plain"})
    assert code == 415, (code, r)
    code, r = m.api("POST", "/api/v1/instances", {}, headers={"Origin": "http://evil.example"})
    assert code == 403 and "cross-origin" in r["error"], (code, r)
    # An Origin of another port of this host is another server's page
    # (port 80's when it names none).
    host = m.url[len("http://"):].rsplit(":", 1)[0]
    for origin in ("http://" + host, "http://%s:1" % host):
        code, r = m.api("POST", "/api/v1/instances", {}, headers={"Origin": origin})
        assert code == 403 and "cross-origin" in r["error"], (origin, code, r)
    after = m.status()["group"]
    assert (after["size"], after["target"], after["desired"]) == \
        (before["size"], before["target"], before["desired"]), (before, after)


@with_status("actions")
def status_api_actions_go_through_the_controller(m):
    s = m.wait_running(2)
    code, r = m.api("POST", "/api/v1/instances", {})
    assert code == 202 and r["accepted"], r
    wait_for(lambda: m.status()["group"]["size"] == 3, 10, "launched one")
    code, r = m.api("POST", "/api/v1/desired", {"desired": 4})
    assert code == 202, r
    wait_for(lambda: len(m.running()) == 4, 15, "desired 4")
    assert m.status()["group"]["operator_desired"] == 4
    victim = m.running()[0]["id"]
    code, r = m.api("POST", "/api/v1/instances/%s/terminate" % victim, {})
    assert code == 202, r
    wait_replaced(m, victim, 4)
    agent = m.running()[0]
    code, r = m.api("POST", "/api/v1/instances/%s/load" % agent["id"], {"load": 0.77})
    assert code == 200 and abs(r["load"] - 0.77) < 1e-9 and r["pinned"], r
    p = m.ctl("probe", agent["address"], "--json")
    assert '"load":0.7700' in p.stdout, p.stdout
    code, r = m.api("POST", "/api/v1/instances/%s/load" % agent["id"], {"auto": True})
    assert code == 200 and not r["pinned"], r
    kinds = [e["kind"] for e in m.api("GET", "/api/v1/events?limit=256")[1]["events"]]
    assert kinds.count("operator") >= 3, kinds
    del s


@with_status("reloadwins")
def a_reload_ends_the_operators_desired_size(m):
    """An operator's desired size holds until the next reload: then the
    file's wins again (the controller forgets it when it takes the new
    config generation)."""
    m.wait_running(2)
    code, r = m.api("POST", "/api/v1/desired", {"desired": 3})
    assert code == 202, r
    wait_for(lambda: m.status()["group"]["operator_desired"] == 3, 10, "the operator's 3")
    gen = m.status()["group"]["config_generation"]
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["group"]["config_generation"] > gen, 10, "the reload published")
    wait_for(lambda: m.status()["group"]["operator_desired"] == 0, 10, "the operator's size forgotten")
    assert m.status()["group"]["desired"] == 2


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
    # With a token, reads need it too (/metrics included); /healthz does
    # not; the manager's own API token still works beside it.
    for path in ("/api/v1/group", "/api/v1/events", "/metrics", "/"):
        assert http("GET", m.url + path)[0] == 401, path
        assert http("GET", m.url + path, headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        assert m.api("GET", path)[0] == 200, path
    assert http("GET", m.url + "/healthz")[0] == 200


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
    code, r = m.api("POST", "/api/v1/desired", {"desired": 4}, headers={"Origin": None})
    assert code == 403 and "Origin" in r["error"], (code, r)
    code, r = m.api("POST", "/api/v1/instances", {},
                    headers={"Origin": "http://127.0.0.1:%d" % (int(port) + 1)})
    assert code == 403, (code, r)
    for ctype in ("application/jsonx", "text/plain", "application/x-www-form-urlencoded"):
        code, r = m.api("POST", "/api/v1/instances", {}, headers={"Content-Type": ctype})
        assert code == 415, (ctype, code, r)
    for host in ("localhost:" + port, "127.0.0.1:" + port, "asg.internal:" + port, "ASG.internal"):
        assert m.api("GET", "/api/v1/group", headers={"Host": host})[0] == 200, host
    assert m.api("GET", "/api/v1/group", headers={"Host": "127.0.0.1:1"})[0] == 421
    s = m.status()
    assert (s["group"]["size"], s["group"]["target"]) == before, s["group"]
    code, g = m.api("GET", "/api/v1/group")
    assert g["group"]["refused"]["http"] >= 9, g["group"]["refused"]
    x = metrics(m)
    assert x[("asg_refused_total", (("what", "http"),))] >= 9, x



def stranger_curl(m, method, path, body=None):
    """The HTTP status another local user gets, with every header a
    browser on the dashboard's own page would send."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", method,
            "-H", "Origin: " + m.url]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    r = as_stranger(args + [m.url + path])
    return int(r.stdout or 0)


def raw_get(url, headers=None):
    """(status, headers) without following a redirect."""
    import http.client
    host, port = url[len("http://"):].split("/", 1)[0].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("GET", "/" + url[len("http://"):].split("/", 1)[1], headers=headers or {})
        r = c.getresponse()
        r.read()
        return r.status, r.headers
    finally:
        c.close()


def login(link):
    """Opens a login link as a browser would: (status, headers, the
    cookie "NAME=VALUE", the key the page stores in localStorage)."""
    import http.client
    host, port = link[len("http://"):].split("/", 1)[0].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("GET", "/" + link[len("http://"):].split("/", 1)[1])
        r = c.getresponse()
        body = r.read().decode()
    finally:
        c.close()
    found = re.search(r'localStorage\.setItem\("asg_session_key_%s","([0-9a-f]{64})"\)' % port, body)
    return r.status, r.headers, (r.headers.get("Set-Cookie") or "").split(";")[0], found and found.group(1)


@with_status("stranger")
def stranger_cannot_use_the_api_by_default(m):
    """The default config (no status.token): another local user, sending
    what a browser on the dashboard would (Origin, JSON), can neither act
    nor read the group; it cannot read the token nor get a login link.
    The operator's one-time link works once, and its cookie then
    authorizes the page and its actions."""
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])
    before = (s["group"]["size"], s["group"]["target"], s["group"]["desired"])
    refused0 = metrics(m)[("asg_refused_total", (("what", "http"),))]
    attacks = [("POST", "/api/v1/instances/%s/load" % ids[0], {"load": 1.0}),
               ("POST", "/api/v1/desired", {"desired": 4}),
               ("POST", "/api/v1/instances/%s/terminate" % ids[1], {}),
               ("POST", "/api/v1/instances", {}),
               ("POST", "/api/v1/login", {}),
               ("GET", "/api/v1/group", None),
               ("GET", "/api/v1/instances", None),
               ("GET", "/api/v1/events", None),
               ("GET", "/", None),
               ("GET", "/login?code=" + "0" * 32, None)]
    for method, path, body in attacks:
        code = stranger_curl(m, method, path, body)
        assert code in (401, 403), (method, path, code)
    assert stranger_curl(m, "GET", "/healthz") == 200 and stranger_curl(m, "GET", "/metrics") == 200
    tokfile = os.path.join(m.cfg["tls"]["dir"], "api.token")
    assert os.stat(tokfile).st_mode & 0o777 == 0o600
    r = as_stranger(["cat", tokfile])
    assert r.returncode != 0 and not r.stdout, r
    r = as_stranger([BIN + "/asgctl", "--shm", m.shm, "dashboard"])
    assert r.returncode != 0 and "login?code=" not in r.stdout, r
    time.sleep(1.5 * SLOW)   # what a launch or a SetLoad would have needed to show
    s = m.status()
    assert (s["group"]["size"], s["group"]["target"], s["group"]["desired"]) == before, s["group"]
    # None terminated by the stranger: one gone was replaced for missing
    # probes (a busy machine starves a new agent of its first answers).
    events = m.api("GET", "/api/v1/events?limit=256")[1]["events"]
    for gone in set(ids) - {i["id"] for i in s["instances"]}:
        why = [e["message"] for e in events if e["kind"] == "terminate" and e["instance"] == gone]
        assert why and all("replacing unhealthy instance" in w for w in why), (gone, why, s["instances"])
    assert s["group"]["operator_desired"] == 0, s["group"]
    p = m.ctl("probe", s["instances"][0]["address"], "--json")
    assert '"load":1.0000' not in p.stdout, p.stdout
    kinds = [e["kind"] for e in m.api("GET", "/api/v1/events?limit=256")[1]["events"]]
    assert "operator" not in kinds, kinds
    refused = metrics(m)[("asg_refused_total", (("what", "http"),))]
    assert refused - refused0 >= len(attacks), (refused0, refused)
    assert m.api_token() not in m.log(), "the token was logged"
    # A link names the server as the client did, with its port.
    port = m.url.rsplit(":", 1)[1]
    code, r = m.api("POST", "/api/v1/login", {}, headers={"Host": "localhost"})
    assert code == 200 and r["url"].startswith("http://localhost:%s/login?code=" % port), (code, r)
    # The operator's link: once.
    link = m.login_link()
    code, h, cookie, key = login(link)
    assert code == 200 and "no-store" in h["Cache-Control"], (code, dict(h))
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attr in h["Set-Cookie"], h["Set-Cookie"]
    assert raw_get(link)[0] == 401, "a login link worked twice"
    assert link.split("code=")[1] not in m.log(), "the login code was logged"
    jar = {"Cookie": cookie}
    both = {"Cookie": cookie, "X-ASG-Session": key}
    # The cookie alone (what a page on another port of this host is sent
    # by the browser) opens the page, which holds no data, and nothing
    # else: not as the operator, not as the stranger who got it.
    assert http("GET", m.url + "/", headers=jar)[0] == 200
    assert http("GET", m.url + "/api/v1/group", headers=jar)[0] == 401
    r = as_stranger(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Cookie: " + cookie,
                     "-H", "Origin: " + m.url, "-H", "Content-Type: application/json",
                     "-d", '{"desired": 3}', m.url + "/api/v1/desired"])
    assert r.stdout == "401", (r.stdout, r.stderr)
    assert http("GET", m.url + "/api/v1/group", headers={"X-ASG-Session": key})[0] == 401
    assert http("GET", m.url + "/api/v1/group", headers=dict(jar, **{"X-ASG-Session": "0" * 64}))[0] == 401
    assert http("GET", m.url + "/api/v1/group", headers=both)[0] == 200
    code, r = http("POST", m.url + "/api/v1/desired", {"desired": 2}, headers=both)
    assert code == 202, (code, r)
    name, value = cookie.split("=", 1)
    forged = "%s=%s" % (name, value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert http("GET", m.url + "/api/v1/group", headers={"Cookie": forged, "X-ASG-Session": key})[0] == 401
    expiry, mac = value.split(".")
    longer = "%s=%d.%s" % (name, int(expiry) + 3600, mac)
    assert http("GET", m.url + "/api/v1/group", headers={"Cookie": longer, "X-ASG-Session": key})[0] == 401


FLOOD = r"""
import socket, sys, time
sources, per, seconds, port = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
addrs = ["127.77.%d.%d" % (k // 200, 1 + k % 200) for k in range(sources)]
if len(sys.argv) > 5:   # the addresses to flood from, given
    addrs = sys.argv[5].split(",")[:sources]
socks = [None] * (sources * per)
opened = 0
def dead(s):
    try:
        return s.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
end = time.monotonic() + seconds
first = True
while time.monotonic() < end:
    for i in range(len(socks)):
        s = socks[i]
        if s is not None and not dead(s):
            continue
        if s is not None:
            s.close()
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind((addrs[i % sources], 0))
            s.connect(("127.0.0.1", port))
            opened += 1
        except OSError:
            s.close()
            s = None
        socks[i] = s
    if first:
        print("up", flush=True)
        first = False
    time.sleep(0.01)
print("opened", opened, flush=True)
"""


def status_log_lines(m, t0, t1):
    """Wall-clock times of the status role's log lines between t0 and t1."""
    import datetime
    out = []
    for line in m.log().splitlines():
        mm = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) status\[\d+\] ", line)
        if mm:
            t = datetime.datetime.strptime(mm.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if t0 <= t <= t1:
                out.append(t)
    return out


@with_status("flood")
def operator_gets_through_a_connection_flood(m):
    """Another local user holds 12 x 48 idle connections from 127.77.0.x,
    reopening every one the server drops, for several seconds: the
    operator's authenticated GET /api/v1/group and a /healthz are each
    answered within two seconds, and the status role's log stays within
    its limiter (MHD's complaints included)."""
    m.wait_running(2)
    port = int(m.url.rsplit(":", 1)[1])
    seconds = 10
    t0 = time.time()
    flood = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "/usr/bin/python3", "-c", FLOOD, "12", "48", str(seconds), str(port)],
                             stdout=subprocess.PIPE, text=True)
    STARTED.add(flood.pid)
    took = []
    try:
        assert flood.stdout.readline().strip() == "up"
        deadline = time.monotonic() + seconds - 3
        while time.monotonic() < deadline:
            for what in ("group", "healthz"):
                start = time.monotonic()
                try:
                    if what == "group":
                        code, g = m.api("GET", "/api/v1/group", timeout=5)
                        # the group's answer (its size may move: a busy
                        # machine's health replacement, a scale-out on load)
                        ok = code == 200 and g["group"]["size"] >= 1
                    else:
                        ok = http("GET", m.url + "/healthz", timeout=5)[0] == 200
                except OSError as e:
                    ok = repr(e)
                took.append((what, round(time.monotonic() - start, 3), ok))
            time.sleep(0.3)
        out = flood.communicate(timeout=30 * SLOW)[0]
    finally:
        kill_pid(flood.pid)
        flood.wait()
    t1 = time.time()
    opened = int(out.split()[-1])
    assert opened > 12 * 48, "the flood opened only %d connections" % opened
    slow = [t for t in took if t[2] is not True or t[1] > 2.0 * SLOW]
    assert not slow and len(took) >= 8, (slow, took)
    for t in took:
        figure("status: an operator's request during a flood from 12 x 48", t[1])
    lines = status_log_lines(m, t0, t1)
    # At most LOG_LIMIT_PER_S lines and one "more like it" line per second
    # of the limiter's: any second of the clock overlaps two of its windows.
    worst = max((sum(1 for u in lines if t <= u < t + 1) for t in lines), default=0)
    assert worst <= 2 * (5 + 1), "%d status log lines within one second" % worst
    assert len(lines) <= (t1 - t0 + 2) * (5 + 1), "%d status log lines in %.0f s" % (len(lines), t1 - t0)
    x = metrics(m)
    assert x[("asg_refused_total", (("what", "http"),))] > 0, x


def fnv_bucket(addr, buckets=2048):
    """The per-source bucket the status server once used: FNV-1a of the
    address's four bytes, modulo 2048."""
    h = 2166136261
    for b in socket.inet_aton(addr):
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % buckets


def idle_then_healthz(port, idle):
    """A client from 127.0.0.1 that connects, stays silent for idle
    seconds (as a browser's preconnected socket does), then asks for
    /healthz: True when answered 200."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        time.sleep(idle)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        c.close()


@with_status("collide", monitor={"unhealthy_after": 10})
def addresses_chosen_to_share_the_operators_bucket_do_not_spend_its_budget(m):
    """Each source address has its own budget, by its exact address: uid
    65534 floods from 32 addresses of 127/8 chosen to fall in 127.0.0.1's
    bucket of a 2048-entry hash, and the operator's connections from
    127.0.0.1, silent for a moment before their request, are still
    answered (with the hash buckets, every one was cut)."""
    m.wait_running(2)
    port = int(m.url.rsplit(":", 1)[1])
    want = fnv_bucket("127.0.0.1")
    twins = []
    for a in range(1, 256):
        for b in range(256):
            addr = "127.%d.%d.9" % (a, b)
            if fnv_bucket(addr) == want:
                twins.append(addr)
        if len(twins) >= 32:
            break
    seconds = 8
    flood = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "/usr/bin/python3", "-c", FLOOD, "32", "4", str(seconds), str(port),
                              ",".join(twins[:32])],
                             stdout=subprocess.PIPE, text=True)
    STARTED.add(flood.pid)
    try:
        assert flood.stdout.readline().strip() == "up"
        answered = [idle_then_healthz(port, 0.6) for _ in range(6)]
        out = flood.communicate(timeout=30 * SLOW)[0]
    finally:
        kill_pid(flood.pid)
        flood.wait()
    assert int(out.split()[-1]) > 32 * 4, out
    assert all(answered), answered


@test
def asgd_on_a_terminal_prints_a_login_link():
    """make run: asgd -f on a terminal prints a one-time login link there
    (never in the log) that leads to a working page."""
    import pty
    m = Manager("tty", status={"listen": "127.0.0.1:%d" % free_port()})
    m.url = "http://" + m.cfg["status"]["listen"]
    master, slave = pty.openpty()
    m.logf = open(m.log_path, "a")
    try:
        m.proc = subprocess.Popen([BIN + "/asgd", "-f", "-c", m.cfg_path], stdout=slave,
                                  stderr=m.logf)
        STARTED.add(m.proc.pid)
        m.pids.add(m.proc.pid)
        os.close(slave)
        seen = []

        def link():
            import select
            if select.select([master], [], [], 0.2)[0]:
                seen.append(os.read(master, 4096).decode(errors="replace"))
            found = re.search(r"http://127\.0\.0\.1:\d+/login\?code=[0-9a-f]{32}", "".join(seen))
            return found and found.group(0)
        url = wait_for(link, 15, "a login link on the terminal")
        assert url.startswith(m.url + "/login?code="), url
        code, h, cookie, key = login(url)
        assert code == 200 and "HttpOnly" in h["Set-Cookie"], (code, dict(h))
        code, page = http("GET", m.url + "/", headers={"Cookie": cookie})
        assert code == 200 and "<title>asg</title>" in page, code
        assert raw_get(url)[0] == 401
        assert url.split("code=")[1] not in m.log(), "the login code was logged"
    except BaseException:
        sys.stderr.write("---- asgd log ----\n%s\n" % m.log()[-5000:])
        raise
    finally:
        os.close(master)
        m.cleanup()


# The page is under test, not probing: a busy machine's stall must not
# replace an instance (and rebuild the rows) while the browser works.
@with_status("browser", monitor={"unhealthy_after": 10})
def dashboard_in_headless_chromium(m):
    from browser import Browser
    m.wait_running(2)
    b = Browser()
    try:
        # The operator's one-time link logs the browser in (a session
        # cookie) and leads to the page.
        b.login(m.login_link())
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
        # The slider of an instance known to be running (the third may still
        # be pending, and a pending agent has no address to set a load on).
        running = [i for i in m.status()["instances"] if i["state"] == "running"]
        target, addr = running[0]["id"], running[0]["address"]
        moved = b.js("""(() => { const s = document.querySelector('.load-slider[data-id="' + CSS.escape(%s) + '"]');
                 if (!s) return null;
                 s.value = 83; s.dispatchEvent(new Event('input', {bubbles: true}));
                 s.dispatchEvent(new Event('change', {bubbles: true})); return s.dataset.id; })()""" % json.dumps(target))
        assert moved == target, (moved, target)
        try:
            wait_for(lambda: '"load":0.8300' in m.ctl("probe", addr, "--json").stdout, 10,
                     "slider pinned the agent at 83%")
        except AssertionError as e:
            raise AssertionError("%s; the page said %r; instances %r" % (
                e, b.js("document.getElementById('msg').textContent"),
                [(i["id"], i["state"], i["address"]) for i in m.status()["instances"]]))
        time.sleep(1.5)
        out = os.path.join(ROOT, os.environ.get("ASG_ARTIFACTS", "build"), "dashboard.png")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        b.screenshot(out)
        assert os.path.getsize(out) > 10000
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(run_tests())
