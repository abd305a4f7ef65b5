#!/usr/bin/python3
"""Integration tests: lifecycle hooks (lifecycle.*) with the real programs:
a launching hook that takes 2 s and continues, one that abandons (the
instance replaced), one whose result comes later (asgctl lifecycle
heartbeat and complete), the http form; a terminating hook that finds the
instance already out of HAProxy, one that hangs (its timeout, its default,
its processes killed); a stranger refused."""
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")

# The hook: records what it was given, then does what the file
# TRANSITION.mode in its directory says.
HOOK = r"""#!/bin/sh
d='%(dir)s'
base="$d/$ASG_INSTANCE.$ASG_TRANSITION"
cat > "$base.json"
env | grep '^ASG_' | sort > "$base.env"
echo $$ > "$base.pid"
echo "hook for $ASG_INSTANCE says hello"
case "$(cat "$d/$ASG_TRANSITION.mode" 2>/dev/null)" in
  sleep2) sleep 2; touch "$base.done"; exit 0 ;;
  abandon) exit 1 ;;
  later) exit 3 ;;
  wait-go) touch "$base.waiting"
           while [ ! -e "$base.go" ]; do sleep 0.05; done; exit 0 ;;
  hang) sleep 600 & echo $! > "$base.child"; wait ;;
esac
exit 0
"""



def hooked(name, **lifecycle):
    """Decorator: HAProxy, then a manager of a service group behind it with
    these lifecycle keys (the hook script: HOOK), a status API; the test
    gets (m, hap, d, hook)."""
    def wrap(fn):
        def inner():
            d = tempfile.mkdtemp(prefix="asg-hook-")
            hook = os.path.join(d, "hook.sh")
            with open(hook, "w") as f:
                f.write(HOOK % {"dir": d})
            os.chmod(hook, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
            hap = HAProxy()
            lc = {k: dict(v) for k, v in lifecycle.items()}
            for v in lc.values():
                if v.get("command") == "HOOK":
                    v["command"] = [hook]
            m = Manager(name, group={"min_instances": 1, "max_instances": 3, "desired_instances": 1},
                        provider={"local": {"kill_timeout_ms": 2000, "service_health": "http:/",
                                            "service": ["/usr/bin/python3", SERVICE, "{port}",
                                                        os.path.join(d, "{port}.info")]}},
                        lb=hap.lb_section(),
                        policy={"scale_out_above": 1.0, "scale_in_below": 0.0,
                                "scale_in_stabilization_ms": 600000},
                        status={"listen": "127.0.0.1:%d" % free_port()},
                        lifecycle=lc)
            m.url = "http://" + m.cfg["status"]["listen"]

            def body():
                wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
                fn(m, hap, d, hook)
            behind_haproxy(m, hap, d, fn.__name__, body)
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def mode(d, transition, what):
    with open(os.path.join(d, transition + ".mode"), "w") as f:
        f.write(what)


def states(m):
    s = m.status()
    return {i["id"]: i for i in s["instances"]} if s else {}


def in_state(m, state, not_in=()):
    """An instance (its status entry) in state, other than those not_in."""
    for i in states(m).values():
        if i["state"] == state and i["id"] not in not_in:
            return i
    return None


def events(m):
    return json.loads(m.ctl("events", "-n", "200", "--json").stdout)["events"]


def event(m, pattern):
    """The first event whose message matches pattern, or None."""
    for e in events(m):
        if re.search(pattern, e["message"]):
            return e
    return None


def metric(m, name_labels):
    code, text = http("GET", m.url + "/metrics")
    assert code == 200, text
    for ln in text.splitlines():
        if ln.startswith(name_labels + " "):
            return float(ln.split()[-1])
    return None


def reload(m):
    m.write_config()
    gen = m.status()["group"]["config_generation"]
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: m.status()["group"]["config_generation"] > gen, 10, "the reload applied")


class HookServer:
    """An http lifecycle hook: records each POST's JSON, answers continue."""

    def __init__(self, answer=b'{"result":"continue"}'):
        self.bodies = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                owner.bodies.append((self.headers.get("Content-Type"), json.loads(self.rfile.read(n))))
                out = answer
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass
        self.srv = HTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@hooked("hooklaunch", launching={"command": "HOOK", "timeout_s": 20, "default": "abandon"})
def launching_hook_holds_abandons_and_waits_for_the_operator(m, hap, d, hook):
    """A launching hook that takes 2 s: its instance waits in launching:wait
    (in status, the API and /metrics; not in HAProxy) and runs only once the
    hook has exited 0; the hook got the JSON and the environment. One that
    exits 1 abandons: terminated and replaced, with the launch backoff. One
    that exits 3 waits for the operator: asgctl lifecycle heartbeat, then
    complete continue; a running instance's completion is refused. The
    http form: POSTed the same JSON, its 200 continues."""
    mode(d, "launching", "sleep2")
    first = wait_for(lambda: in_state(m, "launching:wait"), 15, "the first instance in launching:wait")
    x = first["id"]
    assert hap.servers() == {}, hap.servers()
    assert metric(m, 'asg_instances{state="launching:wait"}') == 1
    s = m.status()
    assert s["group"]["launching_wait"] == 1 and s["group"]["size"] == 1, s["group"]
    text = m.ctl("status").stdout
    assert "launching:wait 1, terminating:wait 0" in text and re.search(r"%s .*launching:wait" % x, text), text
    code, g = m.api("GET", "/api/v1/group")
    assert code == 200 and [i["state"] for i in g["instances"] if i["id"] == x] == ["launching:wait"], g
    done = os.path.join(d, x + ".launching.done")

    def running_after_hook():
        i = states(m).get(x)
        if i and i["state"] == "running":
            assert os.path.exists(done), "running before its hook finished"
            return i
        assert hap.servers() == {} or os.path.exists(done), "in HAProxy before its hook finished"
        return None
    wait_for(running_after_hook, 15, "the first instance running after its hook")
    wait_for(lambda: x in hap.servers(), 10, "the first instance in HAProxy")
    facts = json.load(open(os.path.join(d, x + ".launching.json")))
    assert facts["group"] == m.group and facts["instance"] == x and facts["transition"] == "launching", facts
    assert facts["addr"] == first["address"] and facts["service_addr"] and facts["spec_generation"] >= 1, facts
    env = open(os.path.join(d, x + ".launching.env")).read()
    assert "ASG_INSTANCE=%s\n" % x in env and "ASG_TRANSITION=launching\n" in env, env
    assert "ASG_TIMEOUT_S=20\n" in env and "ASG_GROUP=%s\n" % m.group in env, env
    assert event(m, r"launching hook of %s: continue \(exited 0\): running" % x), events(m)
    assert re.search(r"launching hook of %s: hook for %s says hello" % (x, x), m.log()), m.log()[-2000:]

    # Abandoned: terminated, and replaced after the backoff.
    mode(d, "launching", "abandon")
    assert m.api("POST", "/api/v1/desired", {"desired": 2})[0] == 202
    ab = wait_for(lambda: event(m, r"launching hook of (\S+): abandon \(exited 1\): terminated and replaced"),
                  15, "a launch abandoned")
    y = ab["instance"]
    mode(d, "launching", "later")
    z = wait_for(lambda: in_state(m, "launching:wait", not_in=(x, y)), 15, "the replacement waiting")["id"]
    assert re.search(r"launch failures in a row: 1; next launch in 500 ms", m.log()), m.log()[-3000:]
    wait_for(lambda: y not in states(m), 10, "the abandoned instance gone")
    wait_for(lambda: event(m, r"launching hook of %s: the result comes later" % z), 10, "the hook said later")

    r = m.ctl("lifecycle", "heartbeat", z)
    assert r.returncode == 0 and "has 20 s more" in r.stdout, (r.stdout, r.stderr)
    left = states(m)[z]["hook_timeout_in_ms"]
    assert 15000 < left <= 20000, left
    r = m.ctl("lifecycle", "complete", x, "continue")
    assert r.returncode == 1 and "no lifecycle hook holds it" in r.stderr, (r.stdout, r.stderr)
    r = m.ctl("lifecycle", "complete", z, "continue")
    assert r.returncode == 0, (r.stdout, r.stderr)
    wait_for(lambda: states(m)[z]["state"] == "running" and z in hap.servers(), 10, "the completed one running")
    assert z not in hap.servers() or event(m, r"launching hook of %s: continue \(the operator's word\)" % z)

    # The http form.
    srv = HookServer()
    try:
        m.cfg["lifecycle"]["launching"] = {"http": "http://127.0.0.1:%d/hook" % srv.port, "timeout_s": 20}
        reload(m)
        assert m.api("POST", "/api/v1/desired", {"desired": 3})[0] == 202
        w = wait_for(lambda: event(m, r"launching hook of (\S+): continue \(HTTP 200\): running"), 15,
                     "the http hook's continue")["instance"]
        ctype, body = srv.bodies[0]
        assert ctype == "application/json" and body["instance"] == w and body["transition"] == "launching", body
        wait_for(lambda: states(m)[w]["state"] == "running", 10, "the http-hooked instance running")
    finally:
        srv.stop()


@hooked("hookterm", terminating={"command": "HOOK", "timeout_s": 20, "default": "continue"})
def terminating_hook_sees_it_out_of_haproxy_and_a_hang_times_out(m, hap, d, hook):
    """A terminating hook runs once its instance is drained and out of
    HAProxy, before its process is stopped (terminating:wait in status and
    /metrics); the hook's exit lets it go. One that hangs past its
    timeout_s of 1: its default (continue) applies and its processes (the
    script and the sleep it started) are killed. A stranger cannot
    complete a hook."""
    mode(d, "terminating", "wait-go")
    assert m.api("POST", "/api/v1/desired", {"desired": 2})[0] == 202
    wait_for(lambda: len(hap.servers()) == 2 and len(m.running()) == 2, 20, "two instances in HAProxy")
    x = sorted(i["id"] for i in m.running())[0]
    xpid = states(m)[x]["pid"]
    assert m.api("POST", "/api/v1/instances/%s/terminate" % x, {"decrement": True})[0] == 202
    waiting = os.path.join(d, x + ".terminating.waiting")
    wait_for(lambda: os.path.exists(waiting), 15, "the terminating hook running")
    assert x not in hap.servers(), hap.servers()       # out of HAProxy before its hook ran
    assert states(m)[x]["state"] == "terminating:wait" and 0 < states(m)[x]["hook_timeout_in_ms"] <= 20000
    assert metric(m, 'asg_instances{state="terminating:wait"}') == 1
    assert m.status()["group"]["terminating_wait"] == 1
    promtool = subprocess.run(["promtool", "check", "metrics"], input=http("GET", m.url + "/metrics")[1],
                              capture_output=True, text=True, timeout=30)
    assert promtool.returncode == 0, (promtool.stdout, promtool.stderr)
    assert alive(xpid), "stopped before its hook let it go"
    stranger = as_stranger(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                            "-H", "Content-Type: application/json", "-H", "Origin: " + m.url,
                            "-d", '{"action":"continue"}', m.url + "/api/v1/instances/%s/lifecycle" % x])
    assert stranger.stdout == "401", (stranger.stdout, stranger.stderr)
    assert states(m)[x]["state"] == "terminating:wait"
    facts = json.load(open(os.path.join(d, x + ".terminating.json")))
    assert facts["instance"] == x and facts["transition"] == "terminating", facts
    assert facts["reason"] == "operator request (decrement)", facts
    open(os.path.join(d, x + ".terminating.go"), "w").close()
    wait_for(lambda: x not in states(m) and not alive(xpid), 10, "the instance stopped after its hook")
    assert event(m, r"terminating hook of %s: continue \(exited 0\): stopping it" % x), events(m)

    # A hook that hangs.
    m.cfg["lifecycle"]["terminating"]["timeout_s"] = 1
    mode(d, "terminating", "hang")
    reload(m)
    y = m.running()[0]["id"]
    assert m.api("POST", "/api/v1/instances/%s/terminate" % y, {})[0] == 202
    ev = wait_for(lambda: event(m, r"terminating hook of %s: continue \(no answer within its timeout, 1 s: its "
                                   r"processes killed; its default\): stopping it" % y), 15, "the hook timed out")
    assert ev["kind"] == "lifecycle", ev
    base = os.path.join(d, y + ".terminating")
    pids = [int(open(base + ".pid").read()), int(open(base + ".child").read())]
    wait_for(lambda: not any(alive(p) for p in pids), 5, "the hook's processes killed")
    wait_for(lambda: y not in states(m) and len(m.running()) == 1, 15, "the instance stopped and replaced")


def a_huge_http_answer_is_not_read_as_continue():
    """An http hook whose 200 carries a body past 4 KB (its "result":
    "abandon" at the end, past the cut): the answer cannot be read whole,
    so the default (abandon) applies, said why; never continue."""
    srv = HookServer(b'{"pad":"' + b"x" * 6000 + b'","result":"abandon"}')
    try:
        run_it = hooked("hookhuge", launching={"http": "http://127.0.0.1:%d/hook" % srv.port, "timeout_s": 10,
                                               "default": "abandon"})(huge_answer_checks)
        TESTS.remove(run_it)    # run here, with its server
        run_it()
    finally:
        srv.stop()


def huge_answer_checks(m, hap, d, hook):
    ev = wait_for(lambda: event(m, r"launching hook of (\S+): abandon \(POST failed: its answer is longer than "
                                   r"4095 bytes; its default\)"), 15, "the huge answer's default")
    assert not event(m, r"launching hook of %s: continue" % ev["instance"]), events(m)


TESTS.append(a_huge_http_answer_is_not_read_as_continue)


if __name__ == "__main__":
    sys.exit(run_tests())
