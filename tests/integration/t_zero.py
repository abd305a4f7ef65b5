#!/usr/bin/python3
"""Integration tests: scale to zero and back behind a real HAProxy
(docs/scale-to-zero.md): an idle group goes to zero, its first request
waits at HAProxy (etc/examples/haproxy-hold.lua) while an instance is
launched, and gets the service's answer."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")
HOLD_LUA = os.path.join(ROOT, "etc", "examples", "haproxy-hold.lua")

# The harness's HAProxy, with what docs/scale-to-zero.md asks of an
# operator's: the shipped Lua action loaded, and the backend holding a
# request while it has no server.
ZERO_CFG = HAPROXY_CFG.replace("    stats timeout 10s\n", "    stats timeout 10s\n    lua-load %s\n" % HOLD_LUA) \
    .replace("    timeout queue 10s\n", "    timeout queue 60s\n") \
    + "    http-request lua.asg_wait_for_server 60\n"


def at_zero(m):
    s = m.status()
    return s if s and s["scale_to_zero"]["at_zero"] and m.size(s) == 0 and not s["instances"] else None


def zero_group_serves_its_first_request():
    """min_instances 0, idle 2 s: the group of one goes to zero once idle
    (drained first); a request then waits at HAProxy, wakes one instance and
    gets the service's answer; idle again, the group goes back to zero."""
    d = tempfile.mkdtemp(prefix="asg-zero-")
    hap = HAProxy(ZERO_CFG)
    sec = {"group": {"min_instances": 0, "desired_instances": 1, "max_instances": 2, "scale_to_zero_idle_s": 2},
           "policy": {"metric": "requests", "kind": "target", "target_requests": 100,
                      "scale_in_stabilization_ms": 600000},
           "provider": {"local": {"kill_timeout_ms": 2000, "service_health": "http:/",
                                  "service": ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"),
                                              "--answer", "served-by-the-group"]}},
           "lb": hap.lb_section(),
           "status": {"listen": "127.0.0.1:%d" % free_port()}}
    m = Manager("zero", **sec)
    m.url = "http://" + m.cfg["status"]["listen"]

    def body():
        m.wait_running(1)
        s = wait_for(lambda: at_zero(m), 30, "the idle group at zero")
        assert s["group"]["target"] == 0, s["group"]
        assert s["scale_to_zero"]["backend"] is not None, s["scale_to_zero"]
        m.wait_log(r"scale in: target 1 -> 0: no request at the balancer for 2 s: scale to zero", 5)
        text = m.ctl("status").stdout
        assert re.search(r"scaled to zero since \S+Z, idle since \S+Z", text), text
        wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
        text = http("GET", m.url + "/metrics")[1]
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (r.stdout, r.stderr)
        code, g = m.api("GET", "/api/v1/group")
        assert code == 200 and g["scale_to_zero"]["at_zero"] and g["scale_to_zero"]["enabled"], (code, g)
        met = metrics(m)
        assert met[("asg_scale_to_zero_at_zero", ())] == 1, met
        assert ("asg_lb_queue", ()) in met and ("asg_lb_backend_sessions_total", ()) in met, met
        # The first request: held at HAProxy until the woken instance joins.
        t0 = time.monotonic()
        code, body = http("GET", "http://127.0.0.1:%d/" % hap.port, timeout=60)
        waited = time.monotonic() - t0
        assert (code, body.strip()) == (200, "served-by-the-group"), (code, body)
        m.wait_log(r"scale out: target 0 -> 1: cold start from zero", 5)
        s = m.status()
        assert not s["scale_to_zero"]["at_zero"] and s["scale_to_zero"]["cold_starts"] == 1, s["scale_to_zero"]
        figure("zero: the first request at zero answered after", waited)
        # Idle again: back to zero.
        wait_for(lambda: at_zero(m), 30, "the group back at zero")
    behind_haproxy(m, hap, d, "zero_group_serves_its_first_request", body)


TESTS.append(zero_group_serves_its_first_request)

if __name__ == "__main__":
    sys.exit(run_tests())
