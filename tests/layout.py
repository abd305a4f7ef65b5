#!/usr/bin/python3
"""The house rules docs/architecture.md states (Layers), checked on the sources
(and, for calls, on the objects of a build): run by `make test` after the
release build.

- The folders are layers, read from its diagram (top line highest):
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
- No role keeps its state in a variable of static storage (file-scope,
  global, or `static` inside a function): it lives in a struct the role
  makes and passes in, so that two could exist in one process. Exempt:
  `extern` declarations, `const` objects, `volatile sig_atomic_t` flags
  (all a signal handler may set), and what the comment block right above
  it (or above the group of declarations it is in, with no blank line
  between) explains with "Process-wide because ..." (the log sink, a
  library initialised once, ...).

Usage: layout.py [BUILD_DIR]   (default build/release)"""
import collections
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("supervisor", "monitor_s", "controller", "status", "webhook", "history", "agent", "asgctl", "provider", "lb",
           "ha", "policy", "report", "shm", "proto", "aws", "common")
NO_SHM = ("policy", "provider", "lb", "ha")
KIND_NAMES = re.compile(r"\bPROVIDER_(EC2|LOCAL|EXEC)\b")
KIND_ALLOWED = ("provider/", "common/config.c", "common/config.h")
MAX_LINES, EXPLAIN_LINES = 100, 60
PROCESS_WIDE = "Process-wide because"
LAYERS_DOC = "docs/architecture.md"


def doc_layers():
    """{folder: rank} from the diagram in the Layers section of
    docs/architecture.md: each line that starts with a layer's name lists
    its folders; the first line is the highest layer."""
    text = open(os.path.join(ROOT, LAYERS_DOC)).read()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
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
            problems.append("the layers diagram of docs/architecture.md does not place %s/" % d)
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
                problems.append("%s, a folder the layers diagram (docs/architecture.md) does not place" % where)
            elif ranks[other] >= ranks.get(own, 0):
                problems.append("%s: %s/ is %s %s/ in the layers of docs/architecture.md" % (
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


def blank_comments_and_strings(text):
    """text with comments, string and character literals and preprocessor
    lines blanked (newlines kept, so offsets and line numbers still hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text[i] in "\"'":
            j = i + 1
            while j < n and text[j] != text[i] and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i] + re.sub(r"[^\n]", " ", text[i + 1:j]) + text[i:j + 1][-1:])
            i = j + 1
            continue
        else:
            out.append(text[i])
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        i = j
    lines, cont = "".join(out).split("\n"), False
    for k, line in enumerate(lines):
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            lines[k] = " " * len(line)
    return "\n".join(lines)


def top_level(code):
    """(declaration, offset) of each top-level declaration of blanked code,
    braces' contents left out, and the (start, end) of each function body.
    A top-level item ends at a ";" or, for a function, at its closing
    brace."""
    depth, start, flat, decls, bodies = 0, None, [], [], []
    for i, c in enumerate(code):
        if depth == 0 and start is None and not c.isspace():
            start, flat = i, []
        if c == "{":
            if depth == 0:
                flat.append(c)
                opened = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                flat.append(c)
                head = "".join(flat).split("{", 1)[0]
                if "(" in head and "=" not in head:
                    bodies.append((opened, i))
                    start = None
        elif depth == 0 and start is not None:
            flat.append(c)
            if c == ";":
                decls.append(("".join(flat), start))
                start = None
    return decls, bodies


def declares_object(decl):
    """True when a top-level declaration makes a variable: not a type, a
    prototype, an extern or a static assertion."""
    d = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", re.sub(r"\s+", " ", decl)).strip()
    if re.match(r"(typedef|_Static_assert|static_assert)\b", d) or re.search(r"\bextern\b", d):
        return False
    d = d.split("=", 1)[0]
    if "}" in d:
        return bool(re.search(r"\w", d.rsplit("}", 1)[1]))   # struct {...} name;
    if re.match(r"(struct|union|enum) \w+ ?;$", d):
        return False
    if "(" in d and not re.match(r"\s*\*", d.split("(", 1)[1]):
        return False                    # a prototype, not a pointer to a function: (*name)(...)
    return bool(re.search(r"\w", d.rstrip(";")))


def exempt_object(decl):
    """A const object (const after the last "*", or no pointer and const)
    or a volatile sig_atomic_t flag."""
    d = re.sub(r"\s+", " ", decl).split("=", 1)[0]
    if "}" in d:
        d = d.split("{", 1)[0] + d.rsplit("}", 1)[1]
    if re.search(r"\bvolatile sig_atomic_t\b", d):
        return True
    if "*" in d:
        return bool(re.search(r"\*\s*const\b[^*]*$", d))
    return bool(re.search(r"\bconst\b", d))


def comment_above(lines, n):
    """The comment block that ends right above line index n, or above the
    declarations (lines ending with ";", no blank one) line n is the
    last of."""
    j = n - 1
    while j >= 0 and lines[j].rstrip().endswith(";") and not lines[j].lstrip().startswith(("/*", "*", "//")):
        j -= 1
    if j < 0 or not (lines[j].rstrip().endswith("*/") or lines[j].lstrip().startswith("//")):
        return ""
    block = []
    while j >= 0:
        block.insert(0, lines[j])
        if lines[j].lstrip().startswith("/*") or \
                (lines[j].lstrip().startswith("//") and not (j > 0 and lines[j - 1].lstrip().startswith("//"))):
            break
        j -= 1
    text = " ".join(re.sub(r"^\s*(/\*+|\*+/?|//)|\*+/\s*$", "", line) for line in block)
    return re.sub(r"\s+", " ", text)


def static_storage(path):
    """(line index, declaration, where) of every variable of static storage
    in a file: top-level ones, and those declared static in a function."""
    code = blank_comments_and_strings(open(path).read())
    decls, bodies = top_level(code)
    found = [(code.count("\n", 0, off), d, "file-scope") for d, off in decls if declares_object(d)]
    for first, last in bodies:
        for m in re.finditer(r"(?m)^[ \t]+static\b", code[first:last]):
            at = first + m.start()
            found.append((code.count("\n", 0, at), statement_at(code, at), "static in a function"))
    return found


def statement_at(code, i):
    """The declaration that starts at offset i, up to its ";", the contents
    of braces (a struct's members, an initializer) left out."""
    depth, out = 0, []
    for c in code[i:]:
        if c == "{":
            depth += 1
            if depth == 1:
                out.append(c)
        elif c == "}":
            depth -= 1
            if depth == 0:
                out.append(c)
        elif depth == 0:
            out.append(c)
            if c == ";":
                break
    return "".join(out)


def declared_name(decl):
    """What a declaration declares, for a message: its text before any
    initializer ("static int calls")."""
    d = re.sub(r"\s+", " ", decl.split("=", 1)[0]).strip().rstrip(";").strip()
    return d if len(d) <= 70 else d[:67] + "..."


def check_static_state(problems):
    for path in files(("c", "h")):
        lines = open(path).read().split("\n")
        for n, decl, where in static_storage(path):
            if exempt_object(decl) or PROCESS_WIDE in comment_above(lines, n):
                continue
            problems.append("%s:%d: %s: state in static storage (%s); keep it in a struct the role "
                            "passes in, or say \"%s ...\" in the comment right above it"
                            % (rel(path), n + 1, declared_name(decl), where, PROCESS_WIDE))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    problems = []
    check_includes(doc_layers(), problems)
    check_kind_names(problems)
    check_calls(build, problems)
    check_lengths(problems)
    check_static_state(problems)
    for p in problems:
        print("layout: " + p)
    print("layout: %s" % ("%d problems" % len(problems) if problems else
                          "layers, provider kinds, calls, function lengths and state as docs/architecture.md says"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
