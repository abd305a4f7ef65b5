#!/usr/bin/python3
"""Integration tests: the man pages (mandoc -Tlint, man -l, the key
reference against asgd -k, make install), --help and --version on the
three programs, the exit codes the pages document, and asgctl's bash
completion against a running manager."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

MAN = os.path.join(ROOT, "man")
PAGES = {"asgd": "asgd.8", "asg-agent": "asg-agent.8", "asgctl": "asgctl.8", "asg.cfg": "asg.cfg.5"}
PROGRAMS = ["asgd", "asg-agent", "asgctl"]


def page(name):
    return os.path.join(MAN, PAGES[name])


def lint(path):
    """mandoc -Tlint's complaints about one page, but one kind: a
    reference to another of our own pages, which mandoc looks for only in
    /usr/share/man and finds there once they are installed."""
    r = run(["mandoc", "-Tlint", path])
    ours = r"referenced manual not found: Xr (%s) (\d)" % "|".join(re.escape(p) for p in PAGES)
    left = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(ours, line)
        if m and os.path.exists(os.path.join(MAN, "%s.%s" % (m.group(1), m.group(2)))):
            continue
        left.append(line)
    return left


@test
def man_pages_pass_mandoc_lint():
    """Every page, and only ours, in man/; mandoc -Tlint (all levels,
    style included) says nothing of any."""
    assert sorted(os.listdir(MAN)) == sorted(PAGES.values()), os.listdir(MAN)
    for name in PAGES:
        assert lint(page(name)) == [], (name, lint(page(name)))


@test
def man_pages_read_well_with_man():
    """man -l renders each page without a groff warning, within 80
    columns, with the sections a reader looks for."""
    for name in PAGES:
        r = run(["man", "--warnings", "-l", page(name)],
                env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", PAGER="cat"))
        assert r.returncode == 0 and r.stderr == "", (name, r.returncode, r.stderr)
        text = re.sub(r".\x08", "", r.stdout)
        for section in ["NAME", "SYNOPSIS" if name != "asg.cfg" else "DESCRIPTION", "SEE ALSO"]:
            assert re.search(r"^%s$" % section, text, re.M), (name, section)
        if name != "asg.cfg":
            assert re.search(r"^EXIT STATUS$", text, re.M), name
        wide = [ln for ln in text.splitlines() if len(ln) > 80]
        assert not wide, (name, wide)


@test
def asg_cfg_key_reference_is_the_config_table():
    """asg.cfg(5) lists every key asgd -k prints, in its order, with its
    type, range, default and reload rule as asgd -k says them, and a
    description; scripts/man-keys.py makes that part, and --check refuses a
    page that differs (a key added to the code and not to the page)."""
    r = run([sys.executable, ROOT + "/scripts/man-keys.py", "--check", BIN + "/asgd"])
    assert r.returncode == 0, r.stdout + r.stderr
    keys = re.findall(r"^\| `([a-z0-9_.]+)` \|", run([BIN + "/asgd", "-k"]).stdout, re.M)
    text = open(page("asg.cfg")).read()
    assert re.findall(r"^\.It Cm ([a-z0-9_.]+)$", text, re.M) == keys
    # And the check bites: a page missing one key is refused, naming it.
    tmp = tempfile.mkdtemp(prefix="asg-man-")
    try:
        broken = os.path.join(tmp, "asg.cfg.5")
        with open(broken, "w") as f:
            f.write(re.sub(r"^\.It Cm shm\.capacity\n(?:(?!\.It|\.El).*\n)*", "", text, flags=re.M))
        r = run([sys.executable, ROOT + "/scripts/man-keys.py", "--check", BIN + "/asgd", broken])
        assert r.returncode == 1 and "shm.capacity: no description" in r.stdout, r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def asg_cfg_examples_are_valid_configs():
    """Each example in asg.cfg(5) (its literal displays) passes asgd -t,
    and a broken one would not."""
    text = open(page("asg.cfg")).read()
    blocks = re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", text, re.M | re.S)
    assert len(blocks) >= 3, blocks
    tmp = tempfile.mkdtemp(prefix="asg-man-cfg-")
    try:
        cfg = os.path.join(tmp, "example.cfg")
        for block in blocks + ["group = { min_instances = 0; };\n"]:
            with open(cfg, "w") as f:
                f.write(block.replace("\\e", "\\"))
            r = run([BIN + "/asgd", "-t", "-c", cfg])
            assert (r.returncode == 0) == (block in blocks), (block, r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def make_install_installs_the_pages_and_the_completion():
    """make install (through install-man) puts the pages under
    PREFIX/share/man and the completion where bash-completion looks."""
    tmp = tempfile.mkdtemp(prefix="asg-man-install-")
    try:
        args = ["make", "--no-print-directory", "-C", ROOT, "DESTDIR=" + tmp, "PREFIX=/usr"]
        # Not the flags of the make that runs the tests (SAN=1, its jobserver).
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        plan = run(args + ["-n", "install"], timeout=60, env=env)
        assert plan.returncode == 0 and "share/man/man8" in plan.stdout, plan
        r = run(args + ["install-man"], timeout=60, env=env)
        assert r.returncode == 0, r
        for name, file in PAGES.items():
            installed = "%s/usr/share/man/man%s/%s" % (tmp, file[-1], file)
            assert open(installed).read() == open(page(name)).read(), installed
        comp = tmp + "/usr/share/bash-completion/completions/asgctl"
        assert "complete -F _asgctl asgctl" in open(comp).read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def usage_options(text):
    """The options a usage text names: -x and --long-name."""
    return set(re.findall(r"(?<![\w-])(-[a-zA-Z]|--[a-z][a-z-]*)\b", text))


@test
def every_program_has_help_and_version_and_its_page_documents_its_options():
    """--version and -V print NAME VERSION, --help and -h the usage on
    stdout, all with status 0; a bad option gets the usage on stderr and
    status 2. Every option the usage names is in the man page."""
    for prog in PROGRAMS:
        for flag in ["--version", "-V"]:
            r = run([BIN + "/" + prog, flag])
            assert r.returncode == 0 and re.match(r"%s \d+\.\d+\.\d+" % prog, r.stdout), (prog, flag, r)
        for flag in ["--help", "-h"]:
            r = run([BIN + "/" + prog, flag])
            assert r.returncode == 0 and "usage: " + prog in r.stdout and not r.stderr, (prog, flag, r)
        r = run([BIN + "/" + prog, "--no-such-option"])
        assert r.returncode == 2 and "usage: " + prog in r.stderr and not r.stdout, (prog, r)
        documented = open(page(prog)).read().replace("\\-", "-")
        help_text = run([BIN + "/" + prog, "--help"]).stdout
        for opt in usage_options(help_text):
            assert re.search(r"\bFl %s\b" % re.escape(opt[1:]), documented), (prog, opt)


def exit_codes_documented(name):
    text = open(page(name)).read()
    section = text.split("\n.Sh EXIT STATUS\n", 1)[1].split("\n.Sh ", 1)[0]
    return set(int(c) for c in re.findall(r"^\.It (\d+)$", section, re.M))


@test
def exit_codes_are_the_documented_ones():
    """EXIT STATUS in each page lists the codes the program uses, and each
    case the page gives for a code ends with it."""
    assert exit_codes_documented("asgd") == {0, 1, 2}
    assert exit_codes_documented("asgctl") == {0, 1, 2}
    assert exit_codes_documented("asg-agent") == {0, 2}
    tmp = tempfile.mkdtemp(prefix="asg-man-exit-")
    try:
        bad = os.path.join(tmp, "bad.cfg")
        with open(bad, "w") as f:
            f.write("group = { min_instances = 0; };\n")
        assert run([BIN + "/asgd", "-t", "-c", bad]).returncode == 1
        assert run([BIN + "/asgd", "-t"]).returncode == 0
        assert run([BIN + "/asgd", "-t", "extra"]).returncode == 2
        assert run([BIN + "/asgctl", "--shm", "/asg-man-none-%d" % os.getpid(), "status"]).returncode == 1
        assert run([BIN + "/asgctl", "no-such-command"]).returncode == 2
        assert run([BIN + "/asgctl", "-c", bad, "replay", "--trace", bad, "--capacity", "1"]).returncode == 2
        assert run([BIN + "/asg-agent", "--id", "x"]).returncode == 2  # no --listen
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def complete(*words):
    """What asgctl's completion offers for the last of words (the word
    being typed, maybe empty), in plain bash."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _asgctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = run(["bash", "--norc", "-c", script, "bash", ROOT + "/scripts/asgctl.bash-completion",
             BIN + "/asgctl"] + list(words))
    assert r.returncode == 0 and not r.stderr, r
    return [w for w in r.stdout.splitlines() if w]


def complete_as_bash_does(line):
    """The same with the bash-completion package loaded (which is what
    loads the installed file), for a command line as bash splits it: at
    each ':' too, so that HOST:PORT is three words."""
    words = re.findall(r"[^\s:]+|:", line) + ([""] if line[-1] in " :" else [])
    script = ('source /usr/share/bash-completion/bash_completion; source "$1"; COMP_LINE="$2"; '
              'COMP_POINT=${#COMP_LINE}; shift 2; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_asgctl; printf "%s\\n" "${COMPREPLY[@]}"')
    r = run(["bash", "--norc", "-c", script, "bash", ROOT + "/scripts/asgctl.bash-completion",
             line] + words)
    assert r.returncode == 0 and not r.stderr, r
    return [w for w in r.stdout.splitlines() if w]


# The group held at 2 (no scaling on load): completion asks the manager
# itself, and must find the instances the test found.
@with_manager("complete", policy={"scale_out_above": 1.0, "scale_in_below": 0.0})
def bash_completion_offers_commands_options_and_the_groups_ids(m):
    """Commands, global options and a command's options; for load and
    cert, the ids of the running group's instances, for probe their
    agents' addresses, asked of the manager named by the -c or --shm
    already typed."""
    m.wait_running(2)
    assert "status" in complete("") and "replay" in complete("re")
    assert complete("--v") == ["--version"]
    assert complete("-c", m.cfg_path, "status", "--") == ["--json"]
    assert complete("replay", "--policy", "p") == ["predictive"]
    ids = sorted(i["id"] for i in m.status()["instances"])
    assert len(ids) == 2
    assert sorted(complete("-c", m.cfg_path, "load", "")) == sorted(ids + ["all"])
    assert sorted(complete("--shm", m.table_name(), "load", "")) == sorted(ids + ["all"])
    assert complete("-c", m.cfg_path, "cert", ids[0][:-1] + "") == \
        [i for i in ids if i.startswith(ids[0][:-1])]
    assert complete("-c", m.cfg_path, "load", ids[0], "au") == ["auto"]
    addresses = sorted(i["address"] for i in m.status()["instances"])
    assert sorted(complete("-c", m.cfg_path, "probe", "")) == addresses
    assert complete("-c", m.cfg_path, "probe", addresses[0], "--") == ["--json"]
    # With bash-completion: an address typed up to its port's first digit
    # gets the rest of the port (bash replaces only the word after ':').
    host, port = addresses[0].rsplit(":", 1)
    line = "%s/asgctl -c %s probe %s:%s" % (BIN, m.cfg_path, host, port[0])
    ports = [a.rsplit(":", 1)[1] for a in addresses if a.startswith("%s:%s" % (host, port[0]))]
    assert sorted(complete_as_bash_does(line)) == sorted(ports)   # the table's order, not ours
    line = "%s/asgctl -c %s load " % (BIN, m.cfg_path)
    assert sorted(complete_as_bash_does(line)) == sorted(ids + ["all"])


if __name__ == "__main__":
    sys.exit(run_tests())
