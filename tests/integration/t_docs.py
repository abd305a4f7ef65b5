#!/usr/bin/python3
"""Integration tests: the documentation says what the programs do.

Every fenced block in README.md and docs/*.md says what it is (an info
string: sh, cfg, text, json, ...). Every `sh` block is preceded by one of
  <!-- runnable -->                     run as it stands;
  <!-- runnable with a manager: WHY --> run while a manager of the test's
                                        runs in place of `make run`'s;
  <!-- not run: WHY -->                 and the reason it cannot be;
so no command reaches a reader unchecked without saying why. A runnable
block runs under `bash -e -o pipefail` (a failure anywhere in a pipe
counts) from a directory laid out as the source tree is (bin/ the
programs under test, etc/, bench/, tests/), so that files it writes stay
in the test's own directory. For a manager's block, etc/asg.cfg is the
test manager's config, and the shipped defaults the docs name (the
pidfile, the state directory, the status and monitor addresses) are
replaced by that manager's own before the block runs.

The user-facing docs never name the project's issue numbers: a reader
has no use for them."""
import glob
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(ROOT + "/docs/*.md"))
# What a user reads: the docs, the dated results, the shipped config and
# examples, the man pages (whoever writes them).
USER_FACING = DOCS + ["bench/RESULTS.md", "etc/asg.cfg"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(ROOT + "/etc/examples/*") + glob.glob(ROOT + "/man/*"))
MARK = re.compile(r"<!-- (runnable|runnable with a manager: [^>]*\S|not run: [^>]*\S) -->\s*$")
FENCE = re.compile(r"^(\s*)```(.*)$")
BLOCK_SECONDS = 60


def blocks(path):
    """[(line, info, mark or None, text)] of every fenced block in path."""
    lines = open(os.path.join(ROOT, path)).read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, info = i, m.group(1), m.group(2).strip()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        assert j < len(lines), "%s:%d: a fence that is never closed" % (path, start + 1)
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.search(prev)
        text = "\n".join(l[len(indent):] if l.startswith(indent) else l for l in lines[start + 1:j])
        out.append((start + 1, info, mark.group(1) if mark else None, text + "\n"))
        i = j + 1
    return out


def sandbox(etc=None):
    """A directory laid out as the source tree, for a block to run in."""
    d = tempfile.mkdtemp(prefix="asg-docs-")
    os.symlink(BIN, os.path.join(d, "bin"))
    os.symlink(os.path.join(ROOT, "bench"), os.path.join(d, "bench"))
    os.symlink(os.path.join(ROOT, "tests"), os.path.join(d, "tests"))
    if etc is None:
        os.symlink(os.path.join(ROOT, "etc"), os.path.join(d, "etc"))
    else:
        os.mkdir(os.path.join(d, "etc"))
        os.symlink(os.path.join(ROOT, "etc", "examples"), os.path.join(d, "etc", "examples"))
        shutil.copy(etc, os.path.join(d, "etc", "asg.cfg"))
    return d


def run_block(where, text, cwd):
    r = run(["/bin/bash", "-e", "-o", "pipefail", "-c", text], timeout=BLOCK_SECONDS, cwd=cwd)
    assert r.returncode == 0, "%s: exit %d\n--- block ---\n%s--- stdout ---\n%s--- stderr ---\n%s" % (
        where, r.returncode, text, r.stdout[-2000:], r.stderr[-2000:])
    return r


def shipped_defaults():
    """{key: default} for the keys a manager's block may name, from asgd -k."""
    r = run([BIN + "/asgd", "-k"])
    assert r.returncode == 0, r
    want = ("supervisor.pidfile", "status.listen", "monitor.listen", "group.name")
    found = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| [^|]+ \| `([^`]*)` \|", r.stdout, re.M))
    return {k: found[k] for k in want}


@test
def every_fenced_block_says_what_it_is():
    problems = []
    for path in DOCS:
        for line, info, mark, _ in blocks(path):
            where = "%s:%d" % (path, line)
            if not info:
                problems.append("%s: a fence without an info string (sh, cfg, text, json, ...)" % where)
            elif info.split()[0] in ("sh", "bash", "shell", "console") and mark is None:
                problems.append("%s: a sh block with neither <!-- runnable --> nor <!-- not run: why -->"
                                % where)
            elif info.split()[0] != "sh" and mark is not None:
                problems.append("%s: only sh blocks are run; this one is %r" % (where, info))
    assert not problems, "\n".join(problems)
    marks = [b[2] for p in DOCS for b in blocks(p)]
    assert sum(1 for x in marks if x and x.startswith("runnable")) >= 5, "hardly anything is run"


@test
def user_facing_docs_name_no_issue_numbers():
    found = []
    for path in USER_FACING:
        if not os.path.isfile(os.path.join(ROOT, path)):
            continue
        for n, line in enumerate(open(os.path.join(ROOT, path), errors="replace"), 1):
            if re.search(r"\bissues?\s+#?\d+|\(#\d+\)|\bPR\s*#?\d+", line, re.I):
                found.append("%s:%d: %s" % (path, n, line.strip()[:100]))
    assert not found, "issue numbers in user-facing docs:\n" + "\n".join(found)


@test
def readme_is_short_and_names_the_licence():
    """README is what asg is, the two commands, a tour and a map of docs/:
    the reference lives in docs/ and the man pages."""
    text = open(os.path.join(ROOT, "README.md")).read()
    assert text.count("\n") <= 250, "README.md has %d lines; keep it to 250" % text.count("\n")
    assert "BSD 2-Clause" in text and "(LICENSE)" in text
    assert "BSD 2-Clause License" in open(os.path.join(ROOT, "LICENSE")).read()
    for link in re.findall(r"\]\(((?:docs|bench)/[^)#]+)", text):
        assert os.path.isfile(os.path.join(ROOT, link)), "README links to %s, which is not there" % link


def anchors(path):
    """The anchors GitHub makes of a page's headings."""
    out = set()
    for h in re.findall(r"^#+ (.*)$", open(path).read(), re.M):
        out.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return out


@test
def links_between_the_docs_lead_somewhere():
    bad = []
    for path in DOCS + ["bench/RESULTS.md"]:
        here = os.path.dirname(os.path.join(ROOT, path))
        for target in re.findall(r"\]\(([^)\s]+)\)", open(os.path.join(ROOT, path)).read()):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(here, file)) if file else os.path.join(ROOT, path)
            if not os.path.exists(dest):
                bad.append("%s: %s: no such file" % (path, target))
            elif anchor and anchor not in anchors(dest):
                bad.append("%s: %s: no such heading" % (path, target))
    assert not bad, "\n".join(bad)


@test
def runnable_blocks_run():
    ran = 0
    for path in DOCS:
        for line, info, mark, text in blocks(path):
            if mark != "runnable":
                continue
            d = sandbox()
            try:
                run_block("%s:%d" % (path, line), text, d)
                ran += 1
            finally:
                shutil.rmtree(d, ignore_errors=True)
    assert ran >= 3, ran


@with_status("docs")
def manager_blocks_run(m):
    """The tour and the other blocks that need a manager, run against a
    manager of the test's, its own names put for the shipped defaults."""
    shipped = shipped_defaults()
    s = m.wait_running(2)
    mine = {
        shipped["supervisor.pidfile"]: m.pidfile,
        "/var/lib/asg/" + shipped["group.name"]: m.state_dir(),
        shipped["status.listen"]: m.cfg["status"]["listen"],
        shipped["monitor.listen"]: s["group"]["monitor_address"],
    }
    d = sandbox(etc=m.cfg_path)
    ran = 0
    try:
        for path in DOCS:
            for line, info, mark, text in blocks(path):
                if not (mark or "").startswith("runnable with a manager"):
                    continue
                for theirs, ours in mine.items():
                    text = text.replace(theirs, ours)
                run_block("%s:%d" % (path, line), text, d)
                ran += 1
                assert m.proc.poll() is None, "%s:%d stopped the manager" % (path, line)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert ran >= 2, ran
    # The tour's reload was applied, and nothing it did was illegal.
    wait_for(lambda: (m.status() or {}).get("group", {}).get("config_generation", 0) >= 2, 10,
             "the tour's reload applied")


if __name__ == "__main__":
    sys.exit(run_tests())
