#!/usr/bin/python3
"""The Debian package, as a maintainer and an operator meet it: `make deb`
builds it from a copy of the tree with dpkg-buildpackage (the
Build-Depends, nothing else); lintian reports no error; the binaries
carry dpkg-buildflags' hardening (the Makefile adds its flags to the
environment's instead of replacing them); the package installs into a
throw-away root (an overlay of / in a mount namespace: the machine itself
is never touched), creates the asg user and /var/lib/asg, runs `asgd -t`,
and purge removes what it made.

Run by `make test` in the release pass (`make deb-test`). Slow by nature:
one release build with the package's flags (about 2 minutes on 2 cores,
less with ccache), bounded at BUILD_BOUND_S; `make check` is not run
inside the package build (DEB_BUILD_OPTIONS=nocheck) since `make test`
runs those tests itself.

  usage: tests/deb.py [DEB_DIR]     (default build/deb-test)
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_BOUND_S = 900
STEP_BOUND_S = 120


def fail(msg):
    print("deb: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(cmd, bound=STEP_BOUND_S, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=bound, **kw)


def version():
    text = open(os.path.join(ROOT, "common/util.h")).read()
    return re.search(r'#define ASG_VERSION "([^"]+)"', text).group(1)


def build(deb_dir):
    """make deb, as a user would run it: no MAKEFLAGS of the make that runs
    this test (its jobserver stays out of the package build). Under make
    test, WERROR=-Werror is in the environment and applies: a warning
    that only the package's flags bring (FORTIFY's unused results) fails
    CI as any other."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["DEB_BUILD_OPTIONS"] = "nocheck"
    cmd = ["make", "-C", ROOT, "--no-print-directory", "deb", "DEB_DIR=" + deb_dir, "DEB_JOBS=2"]
    if shutil.which("ccache") and "CC" not in env:
        cmd.append("CC=ccache cc")
    r = run(cmd, bound=BUILD_BOUND_S, env=env)
    if r.returncode != 0:
        fail("make deb exited %d:\n%s\n%s" % (r.returncode, r.stdout[-6000:], r.stderr[-3000:]))
    debs = glob.glob(os.path.join(deb_dir, "asg_%s_*.deb" % version()))
    if len(debs) != 1:
        fail("make deb made %s, not one asg_%s_ARCH.deb" % (debs, version()))
    return debs[0]


def check_changelog_version():
    """debian/changelog's version is the programs' own (asgd -V)."""
    head = open(os.path.join(ROOT, "debian/changelog")).readline()
    m = re.match(r"asg \(([^)]+)\)", head)
    if not m or m.group(1) != version():
        fail("debian/changelog starts %r; the programs say %s" % (head.strip(), version()))


def check_build_depends():
    """Every package scripts/install-deps.sh installs to build is a
    Build-Depends (but build-essential, which a package build assumes, and
    procps, which asgd needs at run time: ${shlibs:Depends} does not see it)."""
    deps_sh = open(os.path.join(ROOT, "scripts/install-deps.sh")).read()
    build_pkgs = set(re.search(r'^PACKAGES="([^"]*)"', deps_sh, re.M).group(1).split())
    control = open(os.path.join(ROOT, "debian/control")).read()
    bd = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
    declared = {re.split(r"[\s(<\[]", d.strip())[0] for d in bd.split(",") if d.strip()}
    missing = build_pkgs - declared - {"build-essential", "procps"}
    if missing:
        fail("debian/control's Build-Depends lack %s (scripts/install-deps.sh builds with them)"
             % sorted(missing))


def check_lintian(deb):
    r = run(["lintian", "--fail-on", "error", deb])
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    if r.returncode != 0 or errors:
        fail("lintian reports errors:\n" + r.stdout + r.stderr)
    print("deb: lintian: no errors" + ("; " + "; ".join(r.stdout.splitlines()) if r.stdout else ""))


EXPECTED = [
    "./usr/sbin/asgd", "./usr/bin/asg-agent", "./usr/bin/asgctl",
    "./etc/asg/asg.cfg", "./lib/systemd/system/asgd.service",
    "./usr/lib/sysusers.d/asg.conf", "./usr/lib/tmpfiles.d/asg.conf",
    "./usr/share/doc/asg/copyright", "./usr/share/doc/asg/systemd.md",
    "./usr/share/man/man8/asgd.8.gz", "./usr/share/man/man8/asg-agent.8.gz",
    "./usr/share/man/man8/asgctl.8.gz", "./usr/share/man/man5/asg.cfg.5.gz",
    "./usr/share/bash-completion/completions/asgctl",
]


def check_contents(deb):
    listing = run(["dpkg-deb", "-c", deb]).stdout
    paths = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    missing = [p for p in EXPECTED if p not in paths]
    if missing:
        fail("the package lacks %s:\n%s" % (missing, listing))
    stray = [p for p in paths if p.startswith("./usr/local") or p.startswith("./etc/init.d")]
    if stray:
        fail("the package holds %s" % stray)


def check_unit_documentation(root):
    """Every file a packaged unit's Documentation= names is in the
    package (it once named a README that nothing installed)."""
    units = glob.glob(os.path.join(root, "lib/systemd/system/*.service"))
    if not units:
        fail("no unit in the package")
    for unit in units:
        for line in open(unit):
            if not line.startswith("Documentation="):
                continue
            for url in line.split("=", 1)[1].split():
                if url.startswith("file://") and not os.path.exists(root + url[len("file://"):]):
                    fail("%s: Documentation= names %s, which the package lacks"
                         % (os.path.basename(unit), url))


def extract(deb, tmp):
    root = os.path.join(tmp, "x")
    run(["dpkg-deb", "-x", deb, root])
    return root


def check_packaged_asgd(root):
    r = run([os.path.join(root, "usr/sbin/asgd"), "-t", "-c", os.path.join(root, "etc/asg/asg.cfg")])
    if r.returncode != 0:
        fail("the packaged asgd -t on the packaged config: %s%s" % (r.stdout, r.stderr))


def check_hardening(root):
    """dpkg-buildflags' flags reached the compiler and the linker:
    BIND_NOW (LDFLAGS -z now), the stack protector and FORTIFY's checked
    functions (CFLAGS, CPPFLAGS). The Makefile once set CFLAGS and LDFLAGS
    itself, and none of these were there."""
    for prog in ("usr/sbin/asgd", "usr/bin/asg-agent", "usr/bin/asgctl"):
        path = os.path.join(root, prog)
        dyn = run(["readelf", "-d", path]).stdout
        syms = run(["nm", "-D", path]).stdout
        if not re.search(r"\bBIND_NOW\b|FLAGS_1\)\s+Flags:.*\bNOW\b", dyn):
            fail("%s: not linked with -z now (LDFLAGS from dpkg-buildflags ignored)" % prog)
        if "__stack_chk_fail" not in syms:
            fail("%s: no stack protector (CFLAGS from dpkg-buildflags ignored)" % prog)
        if not re.search(r"__\w+_chk\b", syms.replace("__stack_chk_fail", "")):
            fail("%s: no FORTIFY_SOURCE checked call (CPPFLAGS from dpkg-buildflags ignored)" % prog)


# Mounts a throw-away root: a tmpfs holding an overlay of / (its upper
# layer takes every write), /dev bound in, its own /proc, /run and /tmp.
# All in unshare's mount namespace: gone when the shell exits.
OUTER = r"""
set -eu
T=$1
mount -t tmpfs -o size=512m asg-deb-test "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
mount --rbind /dev "$T/root/dev"
mount -t proc proc "$T/root/proc"
mount -t tmpfs tmpfs "$T/root/run"
mount -t tmpfs tmpfs "$T/root/tmp"
cp "$2" "$T/root/tmp/asg.deb"
chroot "$T/root" /bin/sh -s < "$3"
"""

# In the throw-away root: as if asg had never been here, install, look,
# purge, look again. Prints key=value lines.
INNER = r"""
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
dpkg --purge asg >/dev/null 2>&1
getent passwd asg >/dev/null && userdel asg
rm -rf /var/lib/asg /etc/asg
dpkg -i /tmp/asg.deb >/tmp/dpkg.log 2>&1 || { echo "install_failed=1"; cat /tmp/dpkg.log; exit 1; }
echo "user=$(getent passwd asg)"
echo "statedir=$(stat -c '%U:%G %a' /var/lib/asg 2>&1)"
echo "unit=$(test -f /lib/systemd/system/asgd.service && echo present)"
/usr/sbin/asgd -t -c /etc/asg/asg.cfg >/tmp/t.log 2>&1
echo "asgd_t=$? $(tr '\n' ' ' </tmp/t.log)"
dpkg --purge asg >/tmp/purge.log 2>&1 || { echo "purge_failed=1"; cat /tmp/purge.log; exit 1; }
for p in /var/lib/asg /etc/asg /usr/sbin/asgd /lib/systemd/system/asgd.service \
         /usr/lib/sysusers.d/asg.conf /usr/lib/tmpfiles.d/asg.conf; do
    test -e "$p" && echo "left=$p"
done
getent passwd asg >/dev/null && echo "user_after=present"
echo "done=1"
"""


def throwaway_root_available():
    if os.geteuid() != 0:
        return "not root"
    r = run(["unshare", "-m", "sh", "-c",
             "d=$(mktemp -d) && mount -t tmpfs t $d && mkdir $d/u $d/w $d/m && "
             "mount -t overlay o -o lowerdir=/,upperdir=$d/u,workdir=$d/w $d/m; "
             "r=$?; umount -R $d; rmdir $d; exit $r"])
    return None if r.returncode == 0 else "no overlay of / here: " + r.stderr.strip()


def check_install_purge(deb, tmp):
    why = throwaway_root_available()
    if why:
        print("deb: NOTE: install and purge NOT tried (%s): checked the contents and the "
              "packaged asgd -t only" % why)
        return
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    for name, text in (("outer.sh", OUTER), ("inner.sh", INNER)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    r = run(["unshare", "-m", "sh", os.path.join(tmp, "outer.sh"), mnt, deb,
             os.path.join(tmp, "inner.sh")], bound=300)
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line and
               re.match(r"^\w+=", line))
    lefts = [line[5:] for line in r.stdout.splitlines() if line.startswith("left=")]
    if r.returncode != 0 or out.get("done") != "1":
        fail("install/purge in a throw-away root: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    user = out.get("user", "").split(":")
    if len(user) < 7 or user[0] != "asg" or int(user[2]) >= 1000 or not user[6].endswith("nologin"):
        fail("installing did not create the asg system user: %r" % out.get("user"))
    if out.get("statedir") != "asg:asg 750":
        fail("/var/lib/asg after install: %r, not asg:asg 750" % out.get("statedir"))
    if out.get("unit") != "present":
        fail("the unit is not installed")
    if not out.get("asgd_t", "").startswith("0 "):
        fail("asgd -t after install: %r" % out.get("asgd_t"))
    if lefts:
        fail("purge left %s" % lefts)
    if out.get("user_after") != "present":
        fail("purge removed the asg user: Debian keeps system users (their uid may own files "
             "elsewhere); docs/packaging.md says so")
    print("deb: installed in a throw-away root: user %s, /var/lib/asg asg:asg 750, "
          "asgd -t OK; purged: nothing left but the user" % ":".join(user[:3]))


def check_install_paths(tmp):
    """make install follows PREFIX: with /usr/local nothing lands in
    /lib/systemd (where systemd's own units are), and the unit names the
    installed asgd."""
    dest = os.path.join(tmp, "dest")
    r = run(["make", "-C", ROOT, "--no-print-directory", "install", "DESTDIR=" + dest,
             "PREFIX=/usr/local"], bound=BUILD_BOUND_S)
    if r.returncode != 0:
        fail("make install PREFIX=/usr/local: %s%s" % (r.stdout[-3000:], r.stderr[-3000:]))
    unit = os.path.join(dest, "usr/local/lib/systemd/system/asgd.service")
    if not os.path.exists(unit) or os.path.exists(os.path.join(dest, "lib")):
        fail("make install PREFIX=/usr/local: the unit is not (only) in "
             "/usr/local/lib/systemd/system: %s" % sorted(os.listdir(dest)))
    if "/usr/local/sbin/asgd" not in open(unit).read():
        fail("the installed unit does not run /usr/local/sbin/asgd")
    for d in ("sysusers.d", "tmpfiles.d"):
        if not os.path.exists(os.path.join(dest, "usr/local/lib", d, "asg.conf")):
            fail("make install PREFIX=/usr/local: no %s/asg.conf" % d)


def check_make_check():
    """make check (what dh_auto_test runs) installs nothing: no apt-get,
    no install-deps; it runs the Check units and the house rules."""
    r = run(["make", "-C", ROOT, "-n", "--no-print-directory", "check"])
    if r.returncode != 0:
        fail("make -n check: %s" % r.stderr)
    if re.search(r"apt-get|install-deps", r.stdout):
        fail("make check would install packages:\n" + r.stdout)
    for needed in ("layout.py", "check_unit"):
        if needed not in r.stdout:
            fail("make check does not run %s" % needed)


def compile_lines(target):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WERROR",
                                                             "CFLAGS", "CPPFLAGS", "LDFLAGS")}
    r = run(["make", "-C", ROOT, "-n", "-B", "--no-print-directory", target], env=env)
    return [line for line in r.stdout.splitlines() if " -c -o " in line]


def check_werror():
    """Warnings are errors in make test (and so CI) alone: a user's plain
    make, or a distribution's newer compiler, warns and builds. And the
    environment's flags come first, ours after: CFLAGS=-DASG_MARK reaches
    every compile line."""
    werror = re.compile(r"-Werror(\s|$)")
    plain = compile_lines("all")
    if not plain or any(werror.search(line) for line in plain):
        fail("make all compiles with -Werror (or compiles nothing)")
    tested = compile_lines("test")
    if not tested or not all(werror.search(line) for line in tested):
        fail("make test compiles without -Werror")
    env = dict(os.environ, CFLAGS="-DASG_MARK_C", CPPFLAGS="-DASG_MARK_CPP")
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    r = run(["make", "-C", ROOT, "-n", "-B", "--no-print-directory", "all"], env=env)
    lines = [line for line in r.stdout.splitlines() if " -c -o " in line]
    if not lines or not all("-DASG_MARK_C" in line and "-DASG_MARK_CPP" in line for line in lines):
        fail("CFLAGS/CPPFLAGS from the environment do not reach every compile line")


def main():
    deb_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/deb-test"))
    check_changelog_version()
    check_build_depends()
    check_make_check()
    check_werror()
    deb = build(deb_dir)
    print("deb: built " + os.path.relpath(deb, ROOT))
    check_contents(deb)
    check_lintian(deb)
    tmp = tempfile.mkdtemp(prefix="asg-deb-")
    try:
        check_install_paths(tmp)
        root = extract(deb, tmp)
        check_hardening(root)
        check_unit_documentation(root)
        check_packaged_asgd(root)
        check_install_purge(deb, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("deb: OK")


if __name__ == "__main__":
    main()
