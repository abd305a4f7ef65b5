#!/usr/bin/python3
"""Integration tests: launch specs: each instance carries the generation
of the launch spec it was launched from; an operator's change of the spec
moves the generation on, nothing else does."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")
SPEC_DIR = tempfile.mkdtemp(prefix="asg-spec-")


def generations(s):
    """(the group's generation, sorted generations of its instances)."""
    return s["group"]["launch_spec_generation"], sorted(i["launch_spec_generation"] for i in s["instances"])


def reload_seen(m, before):
    """SIGHUP, and the supervisor's count of good reloads past before."""
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metrics(m)[("asg_config_reloads_total", (("result", "ok"),))] > before, 10, "the reload")
    return before + 1


def evaluations_past(m, n):
    """Waits for n more evaluations of the controller: it has acted on
    whatever it read before."""
    start = m.status()["group"]["evaluations"]
    wait_for(lambda: m.status()["group"]["evaluations"] >= start + n, 10, "%d evaluations" % n)


@with_status("spec", provider={"local": {"kill_timeout_ms": 1000, "service_health": "http:/",
                                         "service": ["/usr/bin/python3", SERVICE, "{port}",
                                                     os.path.join(SPEC_DIR, "{port}.info")]}})
def a_changed_service_is_a_new_generation_and_nothing_else_is(m):
    """A group of 2 runs at generation 1. The service's command changes
    and the config is reloaded: generation 2, logged with the key; an
    instance launched after it is of generation 2 while the first two
    stay at 1, in asgctl status (text and JSON), the API and /metrics. A
    reload that changes nothing, one that changes only a policy threshold,
    and a restart of the controller keep generation 2: the next change of
    the spec makes generation 3, not more."""
    s = m.wait_running(2)
    assert generations(s) == (1, [1, 1]), generations(s)
    m.cfg["provider"]["local"]["service"] += ["--bind", "127.0.0.1"]   # the same service, another command
    m.write_config()
    reloads = reload_seen(m, 0)
    m.wait_log(r"launch spec generation 2: provider\.local\.service changed")
    wait_for(lambda: m.status()["group"]["launch_spec_generation"] == 2, 10, "generation 2")
    code, _ = m.api("POST", "/api/v1/desired", {"desired": 3})
    assert code == 202, code
    s = m.wait_running(3, what="the group scaled out to 3")
    assert generations(s) == (2, [1, 1, 2]), generations(s)
    code, g = m.api("GET", "/api/v1/group")
    assert code == 200 and generations(g) == (2, [1, 1, 2]), g
    text = m.ctl("status").stdout
    assert "launch spec generation 2\n" in text, text
    # the SPEC column: after ID, ADDRESS, STATE, LOAD, CPU, MEM, LAST SEEN and MISSES
    spec = [line[97:104].strip() for line in text.splitlines() if line.startswith(m.group + "-")]
    assert sorted(spec) == ["1", "1", "2"], text
    x = metrics(m)
    assert x[("asg_launch_spec_generation", ())] == 2, x
    assert x[("asg_instances_launch_spec", (("generation", "1"),))] == 2, x
    assert x[("asg_instances_launch_spec", (("generation", "2"),))] == 1, x

    reloads = reload_seen(m, reloads)                                  # nothing changed
    evaluations_past(m, 3)
    assert m.status()["group"]["launch_spec_generation"] == 2
    m.cfg["policy"]["scale_out_above"] = 0.95                          # a key outside the spec
    m.write_config()
    reloads = reload_seen(m, reloads)
    evaluations_past(m, 3)
    assert m.status()["group"]["launch_spec_generation"] == 2

    ctl = m.pid("controller")
    kill_pid(ctl)
    wait_for(lambda: m.pid("controller") not in (None, ctl), 10, "the controller back")
    evaluations_past(m, 3)
    s = m.status()
    assert s["group"]["launch_spec_generation"] == 2, generations(s)
    assert [i["launch_spec_generation"] for i in s["instances"]].count(2) >= 1, generations(s)

    m.cfg["provider"]["local"]["service"] = m.cfg["provider"]["local"]["service"][:-2]
    m.write_config()
    reload_seen(m, reloads)
    wait_for(lambda: m.status()["group"]["launch_spec_generation"] == 3, 10, "generation 3")
    assert m.log().count("launch spec generation ") == 3, \
        [line for line in m.log().splitlines() if "launch spec generation" in line]
    # Generation 3 is generation 1's spec again (the change reverted): the
    # two instances of 1 are of the spec in force, only the one of 2 is old
    # (a rollout would replace it alone).
    code, r = m.api("GET", "/api/v1/rollout")
    assert code == 200 and (r["old_instances"], r["new_instances"]) == (1, 2), r


@with_status("specpage")
def the_dashboard_shows_the_generations(m):
    """The dashboard's Spec column: each instance's generation, and the
    group's in its heading."""
    from browser import Browser
    m.wait_running(2)
    b = Browser()
    try:
        b.login(m.login_link())
        wait_for(lambda: b.js("[...document.querySelectorAll('#instances tbody .sg')].map((e) => e.textContent)"
                              ".join(',')") == "1,1", 15, "the Spec column")
        assert b.js("document.getElementById('spec-head').textContent") == "Spec (now 1)"
    finally:
        b.close()


if __name__ == "__main__":
    try:
        sys.exit(run_tests())
    finally:
        shutil.rmtree(SPEC_DIR, ignore_errors=True)
