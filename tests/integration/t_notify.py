#!/usr/bin/python3
"""Integration tests: notifications (webhook/notify.h): every event of a
scale-out delivered to a webhook receiver in order as CloudEvents 1.0,
signed, filtered per webhook, not sent again by a restarted notifier; and
dead receivers (nobody listening, a listener that never answers) that
neither hold up the controller nor grow the notifier's memory."""
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


class Receiver:
    """A webhook receiver on 127.0.0.1: every POST kept as (path, headers,
    body), answered 204, or as answers[path] says: a list of statuses
    for its first requests (then 204), or one status for all."""

    def __init__(self, answers=None):
        got = self.got = []
        lock = self.lock = threading.Lock()
        answers = dict(answers or {})

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                path = self.path.split("?")[0]
                with lock:
                    got.append((self.path, dict(self.headers), body))
                    a = answers.get(path, 204)
                    code = (a.pop(0) if a else 204) if isinstance(a, list) else a
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path):
        """Every request path received, tries again included."""
        with self.lock:
            return [(h, b, json.loads(b)) for p, h, b in self.got if p.split("?")[0] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def notify_text(webhooks, **keys):
    """notify = { ... } in libconfig's syntax; webhooks: strings, or
    (url, [kinds]) pairs for the group form."""
    items = []
    for w in webhooks:
        if isinstance(w, tuple):
            items.append('{ url = "%s"; events = [%s]; }' % (w[0], ", ".join('"%s"' % k for k in w[1])))
        else:
            items.append('"%s"' % w)
    body = "webhooks = ( %s );\n" % ", ".join(items)
    body += "".join("  %s = %s;\n" % (k, fmt(v)) for k, v in keys.items())
    return "notify = {\n  %s};\n" % body


def manager_with(name, notify, **sections):
    m = Manager(name, group={"min_instances": 1, "max_instances": 2, "desired_instances": 1},
                policy={"scale_in_below": 0.0}, **sections)
    m.write_config(render(m.cfg) + "\n" + notify)
    return m


def all_events(m):
    r = m.ctl("events", "-n", "256", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["events"]


def notifier_pid(m):
    s = m.status()
    return s and s["notify"]["pid"]


def check_cloudevent(h, ce, nonce):
    """CloudEvents 1.0, structured mode: its required attributes, ours."""
    assert h["Content-Type"] == "application/cloudevents+json", h
    assert ce["specversion"] == "1.0", ce
    for a in ("id", "source", "type"):
        assert isinstance(ce[a], str) and ce[a], (a, ce)
    assert ce["source"].startswith("asg://") and ce["source"].endswith("/" + ce["data"]["group"]), ce
    # A digest of the group's nonce, never the nonce (it marks the group's agents).
    digest = hashlib.sha256(b"asg cloudevents id v1\n" + nonce.encode()).hexdigest()[:32]
    assert ce["id"].startswith(digest + "-") and ce["id"].endswith("-%d" % ce["data"]["number"]), ce
    assert nonce not in json.dumps(ce), ce
    assert ce["type"] == "io.asg." + ce["data"]["kind"], ce
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ce["time"]), ce
    assert ce.get("subject", None) == (ce["data"]["instance"] or None), ce


@test
def webhook_gets_every_event_of_a_scale_out_in_order():
    # /flaky fails its first two requests (503, then 429): retried, in
    # order; /bad refuses everything (400): never retried.
    rx = Receiver({"/flaky": [503, 429], "/bad": 400})
    port = free_port()
    m = manager_with("nfy", "", status={"listen": "127.0.0.1:%d" % port})
    key = os.path.join(m.dir, "notify.key")
    with open(key, "w") as f:
        f.write("k3y-for-the-test\n")
    os.chmod(key, 0o600)
    m.write_config(render(m.cfg) + "\n" + notify_text(
        [rx.url + "/all", (rx.url + "/launch?token=hidden", ["launch"]), rx.url + "/flaky", rx.url + "/bad"],
        secret="file:" + key, retry_max_s=1))
    m.url = "http://127.0.0.1:%d" % port
    try:
        m.start()
        m.wait_running(1)
        assert m.load_all(90).returncode == 0
        m.wait_running(2, timeout=20, what="the scale-out to 2")

        def all_delivered():
            ev = all_events(m)
            got = [ce["data"]["number"] for _, _, ce in rx.events("/all")]
            return ev if got[:len(ev)] == [e["number"] for e in ev] else None
        ev = wait_for(all_delivered, 10, "every event in the ring delivered to /all, in order")
        assert ev[0]["number"] == 1, ev[0]   # from the table's first event on
        nonce = m.group_nonce()
        got = rx.events("/all")
        for (h, body, ce), e in zip(got, ev):
            check_cloudevent(h, ce, nonce)
            assert ce["type"] == "io.asg." + e["kind"] and ce["data"]["message"] == e["message"], (ce, e)
            # Signed: HMAC-SHA256 of "<timestamp>.<body>" under the key file's line.
            want = hmac.new(b"k3y-for-the-test", h["X-Asg-Timestamp"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
            assert h["X-Asg-Signature"] == "sha256=" + want, h
        types = [ce["type"] for _, _, ce in got]
        out = [i for i, (_, _, ce) in enumerate(got) if ce["type"] == "io.asg.scale"
               and "out" in ce["data"]["message"]]
        assert out and "io.asg.launch" in types[out[-1]:], types
        # The filtered webhook: the launches, each once, in order, nothing else.
        launches = [e["number"] for e in ev if e["kind"] == "launch"]
        wait_for(lambda: [ce["data"]["number"] for _, _, ce in rx.events("/launch")] == launches, 5,
                 "the launches delivered to /launch")
        # Retried after a 503 and a 429: the first event three times, then
        # each once, in order. Refused with 400: each event once, given up.
        numbers = [e["number"] for e in ev]
        wait_for(lambda: [ce["data"]["number"] for _, _, ce in rx.events("/flaky")][2:2 + len(ev)] == numbers,
                 10, "every event delivered to /flaky after two failures")
        assert [ce["data"]["number"] for _, _, ce in rx.events("/flaky")][:3] == [1, 1, 1]
        wait_for(lambda: [ce["data"]["number"] for _, _, ce in rx.events("/bad")][:len(ev)] == numbers, 10,
                 "every event offered to /bad once")
        # Seen in status (text and JSON), in /metrics (promtool checks it),
        # never with the path or query of a webhook's URL.
        s = m.status()
        w = s["notify"]["webhooks"]
        assert w[0]["target"] == rx.url and w[0]["events"] == "all" and w[0]["delivered"] >= len(ev), w
        assert w[1]["events"] == ["launch"] and w[1]["delivered"] == len(launches) and w[0]["dropped"] == 0, w
        assert w[2]["failed"] == 2 and w[2]["refused"] == 0 and w[2]["delivered"] >= len(ev), w
        assert w[3]["delivered"] == 0 and w[3]["refused"] >= len(ev) and w[3]["last_status"] == 400, w
        assert w[3]["failed"] == w[3]["refused"] and w[3]["queued"] == 0, w
        text = m.ctl("status").stdout
        assert re.search(r"webhook 1 %s: delivered \d+, failed 0" % re.escape(rx.url), text), text
        assert "token=hidden" not in text and "token=hidden" not in m.log()
        assert "k3y" not in m.log()
        code, mtext = http("GET", m.url + "/metrics")
        r = subprocess.run(["promtool", "check", "metrics"], input=mtext, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, (r.stdout, r.stderr)
        x = metrics(m)
        assert x[("asg_notify_delivered_total", (("target", rx.url), ("webhook", "2")))] == len(launches), x
        assert x[("asg_notify_queued", (("target", rx.url), ("webhook", "1")))] == 0, x
        code, body = m.api("GET", "/api/v1/notify")
        assert code == 200 and body["notify"]["webhooks"][1]["delivered"] == len(launches), body
        assert http("GET", m.url + "/api/v1/notify")[0] == 401   # the operator's credential, as every GET
        # The dashboard's line per webhook.
        from browser import Browser
        b = Browser()
        try:
            b.login(m.login_link())
            wait_for(lambda: re.search(r"webhook 2 %s: delivered %d, failed 0" % (re.escape(rx.url), len(launches)),
                                       b.js("document.getElementById('notify').innerText") or ""), 15,
                     "the webhooks on the dashboard")
        finally:
            b.close()
        # A notifier killed and restarted goes on where it left off: the
        # supervisor's event about its death arrives, nothing is sent twice.
        pid = notifier_pid(m)
        kill_pid(pid)
        wait_for(lambda: notifier_pid(m) not in (None, 0, pid), 10, "the notifier restarted")
        wait_for(lambda: any(ce["type"] == "io.asg.role" and "notify (pid %d)" % pid in ce["data"]["message"]
                             for _, _, ce in rx.events("/all")), 10, "the notifier's death delivered")
        nums = [ce["data"]["number"] for _, _, ce in rx.events("/all")]
        assert nums == sorted(set(nums)), nums
    finally:
        m.cleanup()
        rx.stop()


@test
def dead_webhooks_neither_block_nor_grow():
    # Nobody listens on one port; the other accepts connections (the
    # kernel's backlog) and never answers.
    refused_port = free_port()
    hang = socket.socket()
    hang.bind(("127.0.0.1", free_port()))
    hang.listen(64)
    hang_url = "http://127.0.0.1:%d/hook" % hang.getsockname()[1]
    m = manager_with("nfydead", notify_text(["http://127.0.0.1:%d/hook" % refused_port, hang_url],
                                            queue=4, timeout_ms=300, retry_max_s=1))
    # Under ASan, freed memory waits in a quarantine (256 MB by default)
    # before its reuse: RSS would grow with every request made and freed.
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=1") if x)
    try:
        m.start(env={"ASAN_OPTIONS": asan} if SANITIZED else None)
        m.wait_running(1)
        # The controller goes on as if nothing were wrong: a scale-out in time.
        assert m.load_all(90).returncode == 0
        m.wait_running(2, timeout=20, what="the scale-out to 2 despite dead webhooks")

        def webhooks():
            s = m.status()
            return s and s["notify"]["webhooks"]
        wait_for(lambda: all(w["dropped"] > 0 and w["failed"] > 0 for w in webhooks()), 10,
                 "both webhooks failing and dropping")
        pid = notifier_pid(m)

        def rss_kb():
            with open("/proc/%d/status" % pid) as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        before, dropped = rss_kb(), [w["dropped"] for w in webhooks()]
        # 40 more events (reloads), far beyond the queue of 4.
        for _ in range(40):
            os.kill(m.proc.pid, signal.SIGHUP)
            time.sleep(0.01)
        wait_for(lambda: all(w["dropped"] >= d + 30 for w, d in zip(webhooks(), dropped)), 10,
                 "the oldest events dropped")
        w = webhooks()
        assert all(x["queued"] <= 4 and x["delivered"] == 0 for x in w), w
        assert notifier_pid(m) == pid
        assert rss_kb() < before + 2048, (before, rss_kb())
        text = m.ctl("status").stdout
        assert re.search(r"webhook 2 %s: delivered 0, failed \d+, refused 0, queued [0-4], dropped \d+"
                         % re.escape(hang_url.rsplit("/", 1)[0]), text), text
    finally:
        m.cleanup()
        hang.close()


@test
def notify_config_refused_by_name():
    """asgd -t refuses what the notifier could not deliver safely, naming
    the key and its line: a URL of another scheme, a key file others can
    read."""
    m = Manager("nfycfg")
    try:
        cfg = render(m.cfg) + "\n"
        m.write_config(cfg + notify_text(["ftp://127.0.0.1:21/x"]))
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode == 1 and re.search(r"asg\.cfg:\d+: notify\.webhooks: item 1: .*not an http:// "
                                               r"or https:// URL", r.stderr), r.stderr
        key = os.path.join(m.dir, "loose.key")
        with open(key, "w") as f:
            f.write("k\n")
        os.chmod(key, 0o644)
        m.write_config(cfg + notify_text(["http://127.0.0.1:9/x"], secret="file:" + key))
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode == 1 and "notify.secret" in r.stderr and key in r.stderr, r.stderr
        os.chmod(key, 0o600)
        r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
        assert r.returncode == 0, r.stderr
    finally:
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
