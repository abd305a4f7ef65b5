#!/usr/bin/python3
"""Runs the integration test files (tests/integration/t_*.py) side by side:
one process per file, one more at once than there are cores
(ASG_TEST_JOBS overrides). Each file's output is printed whole when the file ends, so
lines never interleave; then one summary line. Names on the command line
run only those tests (every file is asked; files without them pass 0);
--chaos-short also runs chaos.py --short, alone, once the files are done:
50 agents with TLS are the heaviest load of all, and beside another file
on a busy two-core machine they starved each other.

Each file is isolated: its shm names, groups and temp dirs carry its pid,
its ports come from its own slice (ASG_TEST_SLOT), and it kills by pid
every process it started."""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Longest first (measured), so that no long file starts last.
FIRST = ["t_security", "t_ha", "t_supervisor", "t_status", "t_monitor", "t_ec2", "t_agent"]


def ordered(files):
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(files, key=lambda f: (rank.get(os.path.basename(f)[:-3], len(FIRST)), f))


def start(job, names, slot):
    out = tempfile.TemporaryFile(mode="w+")
    env = dict(os.environ, ASG_TEST_SLOT=str(slot))
    args = job if isinstance(job, list) else [job] + names
    proc = subprocess.Popen([sys.executable] + args, stdout=out, stderr=subprocess.STDOUT, env=env)
    return proc, out


def report(job, proc, out, seconds):
    """Prints the file's output; returns (passed, failed) from its summary
    line (a file that died without one counts as one failure)."""
    path = " ".join(job) if isinstance(job, list) else job
    out.seek(0)
    text = out.read()
    out.close()
    print("== %s (%.0f s) ==" % (os.path.basename(path), seconds))
    sys.stdout.write(text)
    m = re.search(r"^(\d+) passed, (\d+) failed(, (\d+) skipped)?$", text, re.M)
    if not m:
        print("FAIL  %s ended (code %s) without its summary" % (os.path.basename(path), proc.returncode))
        return 0, 1, 0
    passed, failed, skipped = int(m.group(1)), int(m.group(2)), int(m.group(4) or 0)
    if proc.returncode != 0 and failed == 0:
        print("FAIL  %s exited with code %d" % (os.path.basename(path), proc.returncode))
        failed = 1
    return passed, failed, skipped


def main():
    names = [a for a in sys.argv[1:] if a != "--chaos-short"]
    # One more file than cores: the tests wait (bake times, probes, drains)
    # more than they compute; with two files on two cores half the CPU sat
    # idle (vmstat), and three cut the release files' wall from 348 to 265 s
    # beside stress-ng --cpu 2.
    jobs = int(os.environ.get("ASG_TEST_JOBS", "0")) or max(2, (os.cpu_count() or 2) + 1)
    pending = ordered(glob.glob(os.path.join(HERE, "t_*.py")))
    alone = [[os.path.join(HERE, "chaos.py"), "--short"]] if "--chaos-short" in sys.argv else []
    bin_dir = os.environ.get("ASG_BIN", "bin")
    print("integration tests with %s: %d files, %d at a time" % (bin_dir, len(pending), jobs), flush=True)
    running = {}
    free_slots = list(range(jobs))
    passed = failed = skipped = 0
    t0 = time.monotonic()
    while pending or running or alone:
        if not pending and not running:
            pending, alone = alone, []
            free_slots = free_slots[:1]   # nothing beside it
        while pending and free_slots:
            path = pending.pop(0)
            slot = free_slots.pop(0)
            proc, out = start(path, names, slot)
            running[proc.pid] = (path, proc, out, slot, time.monotonic())
        pid, status = os.wait()     # whichever file ends first
        if pid not in running:
            continue
        path, proc, out, slot, started = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        p, f, k = report(path, proc, out, time.monotonic() - started)
        passed += p
        failed += f
        skipped += k
        free_slots.append(slot)
        sys.stdout.flush()
    print("integration: %.0f s wall" % (time.monotonic() - t0))
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
