#!/usr/bin/python3
"""Integration tests: the operator's hands on rollouts: GET and POST
/api/v1/rollout (each bad field refused by name, before the controller
hears of it; no stranger starts one), asgctl rollout status|start|pause|
resume|rollback|cancel, the rollout in /metrics, and a real rollout of a
group of 2 after a reload changed its service."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")
INFO_DIR = tempfile.mkdtemp(prefix="asg-roapi-")

# Bodies of POST /api/v1/rollout that must be refused, each with the
# field its error must name.
BAD = [({}, "action"),
       ({"action": "go"}, "action"),
       ({"action": 1}, "action"),
       ({"action": "start", "max_surge": "x"}, "max_surge"),
       ({"action": "start", "max_surge": -1}, "max_surge"),
       ({"action": "start", "max_surge": "101%"}, "max_surge"),
       ({"action": "start", "max_unavailable": "1.5"}, "max_unavailable"),
       ({"action": "start", "canary": -1}, "canary"),
       ({"action": "start", "canary": "2"}, "canary"),
       ({"action": "start", "canary_weight": "150%"}, "canary_weight"),
       ({"action": "start", "canary_weight": -5}, "canary_weight"),
       ({"action": "start", "bake_s": 1.5}, "bake_s"),
       ({"action": "start", "bake_s": 86401}, "bake_s"),
       ({"action": "start", "pause_at": [50, 20]}, "pause_at"),
       ({"action": "start", "pause_at": [0]}, "pause_at"),
       ({"action": "start", "pause_at": [100]}, "pause_at"),
       ({"action": "start", "pause_at": [10, 20, 30, 40, 50]}, "pause_at"),
       ({"action": "start", "pause_at": "50%"}, "pause_at"),
       ({"action": "start", "max_surge": 0, "max_unavailable": 0}, "max_surge"),
       ({"action": "start", "surge": 1}, "surge"),
       ({"action": "pause", "bake_s": 1}, "bake_s")]



def stranger_curl(m, method, path, body=None):
    """The HTTP status another local user gets, with the headers the
    dashboard's own page would send but no credential."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", method,
            "-H", "Origin: " + m.url]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return int(as_stranger(args + [m.url + path]).stdout or 0)



def complete(*words):
    """What asgctl's bash completion offers for the last of words."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _asgctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = run(["bash", "--norc", "-c", script, "bash", ROOT + "/scripts/asgctl.bash-completion",
             BIN + "/asgctl"] + list(words))
    assert r.returncode == 0 and not r.stderr, r
    return [w for w in r.stdout.splitlines() if w]


@test
def usage_page_and_completion_know_the_rollout_commands():
    """asgctl's usage names every rollout command and option, asgctl(8)
    documents each option and has a ROLLOUTS section, and bash completes
    them."""
    usage = run([BIN + "/asgctl", "--help"]).stdout
    page = open(os.path.join(ROOT, "man", "asgctl.8")).read().replace("\\-", "-")
    assert ".Sh ROLLOUTS" in page
    options = ["--max-surge", "--max-unavailable", "--canary", "--canary-weight", "--bake-s", "--pause-at"]
    for opt in options:
        assert opt in usage, opt
        assert re.search(r"\bFl %s\b" % re.escape(opt[1:]), page), opt
    for action in ("status", "start", "pause", "resume", "rollback", "cancel"):
        assert action in usage.split("rollout", 1)[1], action
    assert "rollout" in complete("ro")
    assert complete("rollout", "") == ["status", "start", "pause", "resume", "rollback", "cancel"]
    assert complete("rollout", "status", "--") == ["--json"]
    assert complete("rollout", "start", "--") == options
    assert complete("rollout", "start", "--max-surge", "") == []


def rollout_events(m):
    """The messages of the rollout's and operators' events so far."""
    evs = m.api("GET", "/api/v1/events?limit=256")[1]["events"]
    return [e["message"] for e in evs if e["kind"] in ("rollout", "operator")]


def rollout_status(m):
    r = m.ctl("rollout", "status", "--json")
    assert r.returncode == 0, (r.returncode, r.stderr)
    return json.loads(r.stdout)


def reload_seen(m, before):
    """SIGHUP, and the supervisor's count of good reloads past before."""
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metrics(m)[("asg_config_reloads_total", (("result", "ok"),))] > before, 10, "the reload")
    return before + 1


@with_status("roapi")
def bad_requests_and_strangers_never_reach_the_controller(m):
    """Every malformed field of POST /api/v1/rollout is a 400 naming it;
    asgctl refuses bad options with exit 2 before sending anything; a
    stranger (another uid, no token) can neither read nor start a
    rollout; none of it reaches the controller (no event, state none).
    Then pause, resume, cancel and rollback with nothing running reach it
    and are refused as operator events, asgctl exiting 1 with the reason,
    as it does with no manager running."""
    m.wait_running(2)
    for body, field in BAD:
        code, r = m.api("POST", "/api/v1/rollout", body)
        assert code == 400 and field in r["error"], (body, code, r)
    for args in (["start", "--max-surge", "x"], ["start", "--pause-at", "50%,20%"], ["start", "--bake-s"],
                 ["start", "--canary-weight", "101%"], ["start", "--canary", "-1"], ["pause", "--bake-s", "1"],
                 ["start", "--colour", "red"], ["go"], []):
        r = m.ctl("rollout", *args)
        assert r.returncode == 2 and "usage" in r.stderr, (args, r.returncode, r.stderr)
    for method, path in (("POST", "/api/v1/rollout"), ("GET", "/api/v1/rollout")):
        code = stranger_curl(m, method, path, {"action": "start"} if method == "POST" else None)
        assert code in (401, 403), (method, path, code)
    r = as_stranger([BIN + "/asgctl", "--shm", m.shm, "rollout", "start"])
    assert r.returncode != 0, r
    code, ro = m.api("GET", "/api/v1/rollout")
    assert code == 200 and ro["state"] == "none" and ro["number"] == 0, ro
    assert ro["generation_in_force"] == 1 and ro["new_instances"] == 2 and ro["old_instances"] == 0, ro
    assert not [e for e in rollout_events(m) if "rollout" in e], rollout_events(m)
    assert m.api("GET", "/api/v1/group")[1]["rollout"] == ro

    for action in ("pause", "resume", "cancel", "rollback"):
        r = m.ctl("rollout", action)
        assert r.returncode == 1 and "operator: rollout %s refused" % action in r.stderr, \
            (action, r.returncode, r.stdout, r.stderr)
        assert [e for e in rollout_events(m) if "operator: rollout %s refused" % action in e], rollout_events(m)
    text = m.ctl("rollout", "status").stdout
    assert "rollout: none yet" in text and "2 old" not in text and "0 old, 2 new" in text, text
    x = metrics(m)
    assert x[("asg_rollout_state", (("state", "none"),))] == 1, x
    assert x[("asg_rollout_state", (("state", "running"),))] == 0, x
    assert x[("asg_instances_by_generation", (("generation", "1"),))] == 2, x
    promtool_check(http("GET", m.url + "/metrics")[1])
    # No manager: exit 1, saying so.
    assert m.stop()[0] == 0
    for args in (["pause"], ["status"]):
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "rollout"] + args)
        assert r.returncode == 1 and r.stderr, (args, r.returncode, r.stderr)


@with_status("roll", provider={"local": {"kill_timeout_ms": 1000, "service_health": "http:/",
                                         "service": ["/usr/bin/python3", SERVICE, "{port}",
                                                     os.path.join(INFO_DIR, "{port}.info")]}})
def asgctl_rolls_a_changed_service_out(m):
    """A group of 2 whose service's command changes in a reload: asgctl
    rollout start --bake-s 1 --max-surge 1 replaces both, and rollout
    status, /api/v1/rollout and /metrics agree that it succeeded with
    every instance of the new generation; the settings are the ones
    given. A second start then does nothing (every instance is new), and
    a cancel with nothing running is refused; the dashboard shows it. A
    further change of the spec makes every instance old again."""
    m.wait_running(2)
    m.cfg["provider"]["local"]["service"] += ["--bind", "127.0.0.1"]   # the same service, another command
    m.write_config()
    reload_seen(m, 0)
    wait_for(lambda: rollout_status(m)["generation_in_force"] == 2, 10, "generation 2 in force")
    ro = rollout_status(m)
    assert (ro["state"], ro["old_instances"], ro["new_instances"]) == ("none", 2, 0), ro
    r = m.ctl("rollout", "start", "--bake-s", "1", "--max-surge", "1", "--pause-at", "50%")
    assert r.returncode == 0 and "started (operator)" in r.stdout, (r.returncode, r.stdout, r.stderr)
    paused = wait_for(lambda: (lambda s: s if s["state"] == "paused" else None)(rollout_status(m)), 40 * SLOW,
                      "the checkpoint at 50%")
    assert paused["replaced"] == 1 and paused["remaining"] == 1, paused
    r = m.ctl("rollout", "resume")
    assert r.returncode == 0 and "resumed" in r.stdout, (r.returncode, r.stdout, r.stderr)
    done = wait_for(lambda: (lambda s: s if s["state"] == "succeeded" else None)(rollout_status(m)), 40 * SLOW,
                    "the rollout to succeed")
    assert (done["from_generation"], done["to_generation"], done["total"], done["replaced"],
            done["remaining"]) == (1, 2, 2, 2, 0), done
    assert (done["max_surge"], done["max_unavailable"], done["bake_s"], done["pause_at"]) == \
        ("1", "0", 1, [50]), done
    assert done["started_ms"] > 0 and done["ended_ms"] >= done["started_ms"] and not done["rolling_back"], done
    s = wait_for(lambda: (lambda s: s if sorted(i["launch_spec_generation"] for i in s["instances"]) == [2, 2]
                          and len(m.running(s)) == 2 else None)(m.status()), 20 * SLOW,
                 "every instance of generation 2")
    assert s["rollout"]["new_instances"] == 2 and s["rollout"]["old_instances"] == 0, s["rollout"]
    code, api = m.api("GET", "/api/v1/rollout")
    assert code == 200 and api == rollout_status(m), (api, rollout_status(m))
    x = metrics(m)
    assert x[("asg_rollout_state", (("state", "succeeded"),))] == 1, x
    assert sum(v for k, v in x.items() if k[0] == "asg_rollout_state") == 1, x
    assert (x[("asg_rollout_replaced", ())], x[("asg_rollout_remaining", ())]) == (api["replaced"], api["remaining"])
    gens = {dict(k[1])["generation"]: v for k, v in x.items() if k[0] == "asg_instances_by_generation"}
    assert gens == {"2": 2}, gens
    promtool_check(http("GET", m.url + "/metrics")[1])
    text = m.ctl("rollout", "status").stdout
    assert "rollout 1: succeeded" in text and "replaced 2 of 2, remaining 0" in text and "0 old, 2 new" in text, text

    r = m.ctl("rollout", "cancel")
    assert r.returncode == 1 and "refused" in r.stderr, (r.returncode, r.stderr)
    r = m.ctl("rollout", "start")
    assert r.returncode == 0 and "nothing to replace" not in r.stderr, (r.returncode, r.stdout, r.stderr)
    again = rollout_status(m)
    assert again["number"] == 2 and again["state"] == "succeeded" and again["total"] == 0, again
    dashboard_shows_and_steers_the_rollout(m)
    # The next change of the spec: with no rollout running, old and new
    # are counted against the generation in force, not the last rollout's.
    m.cfg["provider"]["local"]["service"] = m.cfg["provider"]["local"]["service"][:-2]
    m.write_config()
    reload_seen(m, 1)
    wait_for(lambda: rollout_status(m)["generation_in_force"] == 3, 10, "generation 3 in force")
    ro = rollout_status(m)
    assert (ro["state"], ro["to_generation"], ro["old_instances"], ro["new_instances"]) == ("succeeded", 2, 2, 0), ro


def dashboard_shows_and_steers_the_rollout(m):
    """The dashboard's rollout panel: state, reason, progress and the old
    and new counts; only the buttons the state allows are enabled, and
    its Start goes through the API with the page's session."""
    from browser import Browser
    b = Browser()
    try:
        b.login(m.login_link())
        wait_for(lambda: b.js("document.getElementById('ro-state').textContent") == "succeeded", 15,
                 "the rollout panel")
        progress = b.js("document.getElementById('ro-progress').textContent")
        assert "replaced 0 of 0" in progress and "0 old, 2 new" in progress and "generation 2 in force" in progress, \
            progress
        assert "#2: nothing to replace" in b.js("document.getElementById('ro-reason').textContent")
        enabled = b.js("[...document.querySelectorAll('.ro-act')].filter((e) => !e.disabled)"
                       ".map((e) => e.dataset.action).join(',')")
        assert enabled == "start", enabled
        b.js("document.querySelector('.ro-act[data-action=\"start\"]').click()")
        wait_for(lambda: rollout_status(m)["number"] == 3, 10, "the page's start")
        wait_for(lambda: b.js("document.getElementById('ro-reason').textContent").startswith("#3:"), 10,
                 "the page showing rollout 3")
    finally:
        b.close()


@with_status("rosquat")
def asgctl_sends_no_token_to_a_strangers_port(m):
    """The status port held by another uid (the manager stopped, or a
    config naming a port someone else bound): asgctl rollout start says
    so and sends nothing; the stranger's listener never sees the API
    token."""
    m.wait_running(2)
    port = free_port()
    script = ("import socket,sys\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(4); s.settimeout(15)\n"
              "print('bound', flush=True)\n"
              "try:\n c, _ = s.accept(); c.settimeout(5); print('GOT', c.recv(4096), flush=True)\n"
              "except OSError as e:\n print('none', e, flush=True)\n")
    squatter = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 "/usr/bin/python3", "-c", script, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "bound"
        cfg = dict(m.cfg)
        cfg["status"] = dict(m.cfg["status"], listen="127.0.0.1:%d" % port)
        path = m.cfg_path + ".squat"
        with open(path, "w") as f:
            f.write(render(cfg) + "\n")
        r = run([BIN + "/asgctl", "-c", path, "rollout", "start"], timeout=20)
    finally:
        kill_pid(squatter.pid)
        out = squatter.communicate(timeout=10)[0]
    assert "Bearer" not in out and "GOT" not in out, out
    assert r.returncode != 0 and "uid 65534" in r.stderr, (r.returncode, r.stderr)
    assert rollout_status(m)["number"] == 0


if __name__ == "__main__":
    sys.exit(run_tests())
