#!/usr/bin/python3
"""The house rules README's Layout section states, checked on the sources
(and, for calls, on the objects of a build): run by `make test` after the
release build.

- The folders are layers, read from README's diagram (top line highest):
  a file includes headers of its own folder and of lower layers only,
  never of a folder beside it or above it.
- The libraries that decide or act (policy/, provider/, lb/, ha/) see
  instances through their own headers, never through shm/.
- Only provider/ and the config table (common/config.[ch]) name a
  provider kind.
- No two source files call each other (from the build's symbols: a file
  that defines what another uses and uses what that one defines).
- No function is over 100 lines; one over 60 says why in the comment
  above it ("Long because ...").

Usage: layout.py [BUILD_DIR]   (default build/release)"""
import collections
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("supervisor", "monitor_s", "controller", "status", "agent", "asgctl", "provider", "lb",
           "ha", "policy", "report", "shm", "proto", "aws", "common")
NO_SHM = ("policy", "provider", "lb", "ha")
KIND_NAMES = re.compile(r"\bPROVIDER_(EC2|LOCAL|EXEC)\b")
KIND_ALLOWED = ("provider/", "common/config.c", "common/config.h")
MAX_LINES, EXPLAIN_LINES = 100, 60


def readme_layers():
    """{folder: rank} from the diagram in README's Layout section: each
    line that starts with a layer's name lists its folders; the first line
    is the highest layer."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    diagram = section.split("```", 2)[1]
    rows = [re.findall(r"\b([a-z_]+)/", line) for line in diagram.splitlines()
            if re.match(r"\s*[a-z]+\s{2,}\S", line)]
    rows = [r for r in rows if r]
    ranks = {}
    for i, folders in enumerate(rows):
        for f in folders:
            ranks[f] = len(rows) - i
    return ranks


def files(exts):
    for d in SOURCES:
        for ext in exts:
            yield from sorted(glob.glob(os.path.join(ROOT, d, "*." + ext)))


def rel(path):
    return os.path.relpath(path, ROOT)


def included_folder(own, name):
    """The folder an #include "name" reaches from folder own."""
    if name.endswith(".pb-c.h"):
        return "proto"                      # generated from proto/*.proto
    if name.startswith("../"):
        return name[3:].split("/", 1)[0]
    if "/" in name:
        return name.split("/", 1)[0]
    return own


def check_includes(ranks, problems):
    for d in SOURCES:
        if d not in ranks:
            problems.append("README's layout diagram does not place %s/" % d)
    for path in files(("c", "h")):
        own = rel(path).split("/", 1)[0]
        for n, line in enumerate(open(path), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            other = included_folder(own, m.group(1))
            where = "%s:%d: includes %s" % (rel(path), n, m.group(1))
            if other == own:
                continue
            if other not in ranks:
                problems.append("%s, a folder README's diagram does not place" % where)
            elif ranks[other] >= ranks.get(own, 0):
                problems.append("%s: %s/ is %s %s/ in README's layers" % (
                    where, other, "beside" if ranks[other] == ranks.get(own) else "above", own))
            elif own in NO_SHM and other == "shm":
                problems.append("%s: %s/ sees instances through its own header, not shm/" % (where, own))


def check_kind_names(problems):
    for path in files(("c", "h")):
        r = rel(path)
        if r.startswith(KIND_ALLOWED):
            continue
        for n, line in enumerate(open(path), 1):
            if KIND_NAMES.search(line):
                problems.append("%s:%d: names a provider kind (ask provider/ for a capability)" % (r, n))


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "TDBR":
            defined.add(p[2])
        elif len(p) == 2 and p[0] == "U":
            used.add(p[1])
    return defined, used


def check_calls(build, problems):
    objs = [o for d in SOURCES for o in sorted(glob.glob(os.path.join(ROOT, build, d, "*.o")))]
    if not objs:
        problems.append("no objects under %s: build first (make all)" % build)
        return
    owner, uses = {}, {}
    for o in objs:
        defined, uses[o] = symbols(o)
        for s in defined:
            owner[s] = o
    edges = collections.defaultdict(dict)
    for o, used in uses.items():
        for s in sorted(used):
            if owner.get(s, o) != o:
                edges[o].setdefault(owner[s], s)
    for a in sorted(edges):
        for b, sym in edges[a].items():
            if a < b and a in edges.get(b, {}):
                problems.append("%s and %s call each other (%s, %s)" % (
                    rel(a), rel(b), sym, edges[b][a]))


def functions(path):
    """(name, first line, lines, comment above) of each function: a body
    opens with "{" alone at the start of a line and closes with "}" there."""
    lines = open(path).read().split("\n")
    out = []
    for i, line in enumerate(lines):
        if line != "{":
            continue
        start = i - 1
        while start > 0 and lines[start - 1].strip() and not lines[start - 1].rstrip().endswith(("*/", ";", "}")) \
                and not lines[start - 1].startswith("#"):
            start -= 1
        header = " ".join(lines[start:i])
        m = re.search(r"(\w+)\s*\(", header)
        if not m or "=" in header.split("(", 1)[0]:
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("}")), len(lines) - 1)
        comment = []
        j = start - 1
        if j >= 0 and lines[j].rstrip().endswith("*/"):
            while j >= 0:
                comment.insert(0, lines[j])
                if lines[j].lstrip().startswith("/*"):
                    break
                j -= 1
        out.append((m.group(1), start + 1, end - start + 1, " ".join(comment)))
    return out


def check_lengths(problems):
    for path in files(("c",)):
        for name, first, n, comment in functions(path):
            where = "%s:%d: %s is %d lines" % (rel(path), first, name, n)
            if n > MAX_LINES:
                problems.append("%s (at most %d)" % (where, MAX_LINES))
            elif n > EXPLAIN_LINES and "long because" not in comment.lower():
                problems.append("%s, over %d without saying why (\"Long because ...\" above it)"
                                % (where, EXPLAIN_LINES))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    problems = []
    check_includes(readme_layers(), problems)
    check_kind_names(problems)
    check_calls(build, problems)
    check_lengths(problems)
    for p in problems:
        print("layout: " + p)
    print("layout: %s" % ("%d problems" % len(problems) if problems else
                          "layers, provider kinds, calls and function lengths as README says"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
