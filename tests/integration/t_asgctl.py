#!/usr/bin/python3
"""Integration tests: asgctl: errors, watch and events."""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


@test
def asgctl_errors_are_clear():
    r = run([BIN + "/asgctl", "--shm", "/asg-it-none", "status"])
    assert r.returncode != 0 and "no shared table /asg-it-none" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "-c", plain_cfg(), "probe", "127.0.0.1:1"])
    assert r.returncode == 1 and "probe 127.0.0.1:1" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "probe", "not-an-address"])
    assert r.returncode == 2 and "not host:port" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "frobnicate"])
    assert r.returncode == 2 and "bad command" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "--shm", "/asg-it-none", "load", "all", "150"])
    assert r.returncode == 2 and "percentage" in r.stderr, r.stderr
    r = run([BIN + "/asgctl", "-c", "/nonexistent.cfg", "status"])
    assert r.returncode == 2 and "/nonexistent.cfg: cannot read" in r.stderr, r.stderr


@with_manager("watch")
def asgctl_watch_and_events(m):
    m.wait_running(2)
    time.sleep(0.6)
    r = m.ctl("watch", "-n", "2", "-i", "100")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("LOAD, LAST 40 SAMPLES") == 2 and "\u2581" <= max(r.stdout), r.stdout
    assert re.search(r"%s-1\s+[\u2581-\u2588]+" % m.group, r.stdout), r.stdout
    r = m.ctl("events", "-n", "3")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, r.stdout
    r = m.ctl("events", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["events"], r.stdout
    r = m.ctl("events", "-n", "0")
    assert r.returncode == 2, r


@with_manager("broken")
def asgctl_reads_a_broken_file_leniently(m):
    """Right after a reload the manager refused (min above max), asgctl -c
    FILE still shows the group the manager runs, exit 0, with a warning
    that names the file's error; the same with a syntax error in the file,
    and with the file's shm.name on a line after it."""
    s = m.wait_running(2)
    ids = sorted(i["id"] for i in s["instances"])
    good = render(m.cfg)
    broken = good.replace("min_instances = 2", "min_instances = 9")
    assert broken != good
    m.write_config(broken)
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"config file %s has errors, not reloading: .*min_instances" % re.escape(m.cfg_path))
    ctl = [BIN + "/asgctl", "-c", m.cfg_path]
    r = run(ctl + ["status"])
    assert r.returncode == 0, r.stderr
    assert "group %s " % m.group in r.stdout and "min 2  desired 2  max 4" in r.stdout, r.stdout
    assert all(i in r.stdout for i in ids), r.stdout
    assert re.search(r"warning: %s has 1 error, the first: %s:\d+: group.max_instances \(4\) is below "
                     r"group.min_instances \(9\)" % (re.escape(m.cfg_path), re.escape(m.cfg_path)), r.stderr), r.stderr
    r = run(ctl + ["status", "--json"])
    assert r.returncode == 0 and json.loads(r.stdout)["group"]["min"] == 2, (r.stdout, r.stderr)
    assert "warning" in r.stderr, r.stderr

    # A syntax error: the line is skipped, the rest (shm.name after it) read.
    lines = good.splitlines()
    at = next(k for k, ln in enumerate(lines) if "min_instances" in ln)
    lines[at] = lines[at].replace("= 2", "= ;")
    assert lines.index(next(ln for ln in lines if "shm" in ln)) > at
    m.write_config("\n".join(lines) + "\n")
    r = run(ctl + ["status"])
    assert r.returncode == 0 and "group %s " % m.group in r.stdout, (r.stdout, r.stderr)
    assert re.search(r"warning: %s has \d+ errors?, the first: %s:%d: syntax error"
                     % (re.escape(m.cfg_path), re.escape(m.cfg_path), at + 1), r.stderr), r.stderr
    # The manager, for its part, still refuses the file.
    r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
    assert r.returncode == 1 and "syntax error" in r.stderr, (r.stdout, r.stderr)


@test
def replay_timeline_compare_and_plot():
    """asgctl replay on a generated trace (bench/gen_trace.py): the
    timeline's sums are the printed totals, --compare runs the presets side
    by side with the same figures as one run each, --plot writes an SVG
    that an XML parser reads, with one point per column."""
    import xml.etree.ElementTree as ET
    d = tempfile.mkdtemp(prefix="asg-replay-")
    try:
        trace = os.path.join(d, "flash.txt")
        with open(trace, "w") as f:
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "gen_trace.py"), "flash",
                            "--seed", "3", "--days", "2"], stdout=f, check=True, timeout=60)
        again = run(["/usr/bin/python3", os.path.join(ROOT, "bench", "gen_trace.py"), "flash",
                     "--seed", "3", "--days", "2"]).stdout
        assert again == open(trace).read(), "the generator is not seeded"
        base = [BIN + "/asgctl", "replay", "--trace", trace, "--capacity", "20", "--min", "1", "--max", "40"]
        tl, svg = os.path.join(d, "t.csv"), os.path.join(d, "p.svg")
        r = run(base + ["--policy", "predictive", "--json", "--timeline", tl, "--plot", svg])
        assert r.returncode == 0, r.stderr
        tot = json.loads(r.stdout)
        rows = list(csv.DictReader(open(tl)))
        assert len(rows) == 2 * 1440 and list(rows[0]) == ["minute", "demand", "ready", "booting", "target",
                                                           "overloaded"], rows[0]
        cost = sum(float(x["ready"]) + float(x["booting"]) for x in rows)
        over = sum(1 for x in rows if float(x["demand"]) > 0 and (float(x["ready"]) == 0 or
                                                                  float(x["demand"]) > 0.9 * float(x["ready"]) * 20))
        assert abs(cost - tot["instance_minutes"]) < 1 and over == tot["overload_minutes"] > 0, (cost, over, tot)
        r = run(base + ["--compare", "seeds", "--compare", "hpa", "--compare", "predictive", "--json"])
        assert r.returncode == 0, r.stderr
        cmp = {x["config"]: x for x in json.loads(r.stdout)}
        assert cmp["predictive"]["instance_minutes"] == tot["instance_minutes"], (cmp, tot)
        assert set(cmp) == {"seeds", "hpa", "predictive"}
        text = run(base + ["--compare", "seeds", "--compare", "hpa"]).stdout
        assert re.search(r"^seeds\s+[0-9.]+\s+\d+", text, re.M) and re.search(r"^hpa\s", text, re.M), text
        root = ET.parse(svg).getroot()
        lines = [e for e in root.iter() if e.tag.endswith("polyline")]
        assert len(lines) == 3 and all(len(e.get("points").split()) == 1200 for e in lines), len(lines)
        r = run(base + ["--compare", os.path.join(d, "none.cfg")])
        assert r.returncode == 2 and "none.cfg: cannot read" in r.stderr, r.stderr
        r = run(base + ["--plot", "/nonexistent/dir/p.svg"])
        assert r.returncode == 2 and "/nonexistent/dir/p.svg" in r.stderr, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_tests())
