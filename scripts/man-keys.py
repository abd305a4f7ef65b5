#!/usr/bin/python3
"""asg.cfg(5)'s key reference, made from the one table of keys.

`asgd -k` prints every key with its type, range, default and whether a
reload applies it, from the table in common/config.c that also gives the
defaults and the checks. Between its two marker comments, man/asg.cfg.5
has one list per top-level group; in it each key's first two lines (the
.It line and the line of type, default and reload) are made here from
that table, and what follows them (the key's description, written by
hand) is kept, as is each group's introduction. So the page can neither
miss a key nor say another default than the code.

  scripts/man-keys.py ASGD [PAGE]          rewrite PAGE (default man/asg.cfg.5)
  scripts/man-keys.py --check ASGD [PAGE]  exit 1, saying what differs, when
                                           PAGE is not what it would write
A key with no description yet gets a placeholder that --check refuses.
"""
import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = '.\\" BEGIN KEYS: made by scripts/man-keys.py from asgd -k; edit descriptions only'
END = '.\\" END KEYS'
TODO = '.\\" TODO: describe this key'
SUMMARY_ENDS = ("applied on reload.", "needs a restart.", "-")


def keys_of(asgd):
    """[(key, type, default, reload)] in the table's order."""
    out = subprocess.run([asgd, "-k"], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| (.*?) \| (.*?) \| (.*?) \|$", out, re.M)
    if len(rows) != out.count("\n") - 2:
        sys.exit("man-keys: cannot read every line of asgd -k")
    return rows


def summary(typ, default, reload):
    """The key's line of facts: what its value is, its default, reload."""
    typ = typ.replace("`", "")
    typ = typ[0].upper() + typ[1:]
    quoted = typ.startswith(("String", "List"))
    if default == "(none)":
        default = "empty" if quoted else "none"
    else:
        default = default.strip("`")
        if quoted:
            default = '"%s"' % default
    when = "applied on reload" if reload == "applied" else "needs a restart"
    line = "%s; default %s; %s." % (typ, default, when)
    # mandoc -Tlint wants input lines of at most 80 bytes: a break at a
    # space is a space to roff (no line starts with a dot: none of the
    # words does).
    return "\n".join(textwrap.wrap(line, 80, break_long_words=False, break_on_hyphens=False))


def parse_page(lines):
    """The generated region's parts: ({group: intro lines},
    {key: description lines}) and the lines before and after it."""
    try:
        b, e = lines.index(BEGIN), lines.index(END)
    except ValueError:
        sys.exit("man-keys: the page lacks the marker lines %r and %r" % (BEGIN, END))
    intros, descs = {}, {}
    group = key = None
    for ln in lines[b + 1:e]:
        m = re.match(r"\.Ss (\S+)$", ln)
        if m:
            group, key = m.group(1), None
            intros[group] = []
        elif ln.startswith(".Bl ") or ln == ".El":
            key = None
        elif ln.startswith(".It Cm "):
            key = ln[len(".It Cm "):]
            descs[key] = None  # the next line is the generated summary
        elif key is not None and descs[key] is None:
            # The generated summary: up to the line that ends it.
            if ln.endswith(SUMMARY_ENDS):
                descs[key] = []
        elif key is not None:
            if ln != TODO:
                descs[key].append(ln)
        elif group is not None:
            intros[group].append(ln)
    return lines[:b], intros, descs, lines[e + 1:]


def render(rows, intros, descs):
    out = [BEGIN]
    group = None
    for key, typ, default, reload in rows:
        g = key.split(".")[0]
        if g != group:
            if group is not None:
                out.append(".El")
            group = g
            out.append(".Ss %s" % g)
            out.extend(intros.get(g, []))
            out.append(".Bl -tag -width Ds")
        out.append(".It Cm %s" % key)
        out.extend(summary(typ, default, reload).split("\n"))
        out.extend(descs.get(key) or [TODO])
    out.append(".El")
    out.append(END)
    return out


def main(argv):
    check = argv[:1] == ["--check"]
    args = argv[1:] if check else argv
    if not args:
        sys.exit(__doc__)
    asgd = args[0]
    page = args[1] if len(args) > 1 else os.path.join(ROOT, "man", "asg.cfg.5")
    lines = open(page).read().split("\n")
    head, intros, descs, tail = parse_page(lines)
    rows = keys_of(asgd)
    made = "\n".join(head + render(rows, intros, descs) + tail)
    if not check:
        open(page, "w").write(made)
        return 0
    problems = []
    if made != "\n".join(lines):
        problems.append("%s differs from asgd -k: run scripts/man-keys.py %s" % (page, asgd))
    known = {r[0] for r in rows}
    problems += ["%s: no description" % k for k, *_ in rows if not descs.get(k)]
    problems += ["%s: described but not a key" % k for k in descs if k not in known]
    for p in problems:
        print("man-keys: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
