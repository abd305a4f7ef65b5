"""Helpers for integration tests: start the real programs on 127.0.0.1,
wait with bounds, and clean up every process started, by pid."""
import http.client as httpclient
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.path.join(ROOT, os.environ.get("ASG_BIN", "bin")))
SANITIZED = "asan" in BIN or "tsan" in BIN
# Sanitized programs are slower; give probes and waits more room there.
SLOW = 2.0 if SANITIZED else 1.0
# The test hooks (ASG_FAULT) are built into the sanitized builds only.
HOOKS = SANITIZED


class Skip(Exception):
    """A test that cannot run with these binaries (said, never silent)."""


def needs_hooks(what):
    if not HOOKS:
        raise Skip("%s needs the test hooks of a sanitized build (make test runs it there)" % what)

# Tests never reach outside 127.0.0.0/8: no instance metadata at
# 169.254.169.254, and no developer's real AWS credentials. A test that
# wants IMDS points AWS_EC2_METADATA_SERVICE_ENDPOINT at the fake.
for _k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
           "AWS_EC2_METADATA_SERVICE_ENDPOINT"):
    os.environ.pop(_k, None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/asg-test/credentials"

STARTED = set()   # every pid a test started or saw; all killed at the end
FIGURES = {}      # name -> list of measured seconds


def figure(name, seconds):
    FIGURES.setdefault(name, []).append(seconds)


# Errors that mean "not yet": a server not yet listening or restarting
# (refused, reset, closed mid-answer), a file or table not yet made, an
# answer not yet in time. A condition that raises one of these is simply
# not true yet; any other exception is a real failure and escapes.
NOT_YET = (ConnectionError, FileNotFoundError, TimeoutError, socket.timeout)


def not_yet(e):
    import http.client
    import urllib.error
    if isinstance(e, urllib.error.HTTPError):
        return False
    if isinstance(e, urllib.error.URLError):
        return isinstance(e.reason, NOT_YET)
    return isinstance(e, NOT_YET + (http.client.RemoteDisconnected, http.client.IncompleteRead,
                                    http.client.BadStatusLine))


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond until it returns something true, for at most timeout
    (scaled by SLOW). "Not yet" errors count as not true; on timeout the
    last value or error is reported."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        try:
            last = cond()
        except Exception as e:   # noqa: BLE001 -- sorted by not_yet
            if not not_yet(e):
                raise
            last = e
        if last and not isinstance(last, BaseException):
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                         % (timeout * SLOW, what, last))


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def ours(pid):
    """True when pid is still one of our programs (not a reused pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"asg" in f.read()
    except OSError:
        return False


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def agent_processes():
    """id -> [pids] of every live asg-agent process (by its --id)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if not args[0].endswith(b"asg-agent") or not alive(int(d)):
            continue
        for i, a in enumerate(args[:-1]):
            if a == b"--id":
                out.setdefault(args[i + 1].decode(errors="replace"), []).append(int(d))
    return out


def agents_of_group(group):
    """pids of asg-agent processes whose --id starts with GROUP-."""
    return [pid for ident, pids in agent_processes().items()
            if ident.startswith(group + "-") for pid in pids]


def stop_process(proc, timeout=10):
    """SIGTERM, wait, then SIGKILL: for a subprocess.Popen the test started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(proc.pid)
            proc.wait()
    return proc.returncode


def fmt(v):
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):   # libconfig escapes backslash and quote like C
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, float):
        return repr(v)
    return str(v)


def render(cfg, indent=""):
    out = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.append("%s%s = {" % (indent, k))
            out.append(render(v, indent + "  "))
            out.append("%s};" % indent)
        else:
            out.append("%s%s = %s;" % (indent, k, fmt(v)))
    return "\n".join(out)


def run(args, timeout=20, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout * SLOW, **kw)


def behind_haproxy(m, hap, d, name, body, log_tail=8000):
    """Starts manager m (its group behind HAProxy hap, files in d) and runs
    body(): the manager's log is printed when it fails; m, hap and d are
    cleaned up whatever happens."""
    try:
        m.start()
        body()
    except BaseException:
        sys.stderr.write("---- asgd log of %s ----\n%s\n" % (name, m.log()[-log_tail:]))
        raise
    finally:
        m.cleanup()
        hap.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def as_stranger(args, timeout=20):
    """Runs a command as uid 65534 (another local user)."""
    return run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + args, timeout=timeout)


def promtool_check(text):
    """promtool (Debian's prometheus package) checks a metrics exposition
    as Prometheus would read it, with its lint rules (counters end in
    _total, names, units)."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)


class Manager:
    """One asgd with its own group, table, pidfile and fast config."""
    count = 0

    def __init__(self, name, **sections):
        Manager.count += 1
        self.dir = tempfile.mkdtemp(prefix="asg-it-")
        self.group = "it%d%s%d" % (os.getpid(), name, Manager.count)
        self.shm = "/asg-it-%d-%d" % (os.getpid(), Manager.count)
        self.pidfile = os.path.join(self.dir, "asgd.pid")
        self.cfg_path = os.path.join(self.dir, "asg.cfg")
        self.log_path = os.path.join(self.dir, "asgd.log")
        self.cfg = {
            "group": {"name": self.group, "min_instances": 2, "max_instances": 4,
                      "desired_instances": 2},
            "policy": {"kind": "threshold", "evaluation_interval_ms": 200,
                       "breach_periods": 2, "cooldown_ms": 600, "warmup_ms": 300,
                       "scale_in_stabilization_ms": 1000},
            "monitor": {"listen": "127.0.0.1:0", "probe_interval_ms": int(150 * SLOW),
                        "probe_timeout_ms": int(100 * SLOW), "unhealthy_after": 3},
            "provider": {"kind": "local", "boot_timeout_ms": 10000,
                         "local": {"kill_timeout_ms": 1000}},
            "shm": {"name": self.shm, "capacity": 64},
            "tls": {"dir": os.path.join(self.dir, "tls")},
            "status": {"listen": ""},
            "supervisor": {"pidfile": self.pidfile, "drain_timeout_ms": 5000,
                           "log_level": "info"},
        }
        for sec, vals in sections.items():
            self.cfg.setdefault(sec, {}).update(vals)
        self.proc = None
        self.pids = set()
        self.env = {}
        self.write_config()

    def write_config(self, text=None):
        with open(self.cfg_path, "w") as f:
            f.write(text if text is not None else render(self.cfg) + "\n")

    def start(self, env=None, wait=True, preexec_fn=None):
        e = dict(os.environ)
        e.update(env or {})
        self.env = dict(env or {})
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([BIN + "/asgd", "-f", "-c", self.cfg_path],
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=e,
                                     preexec_fn=preexec_fn)
        STARTED.add(self.proc.pid)
        self.pids.add(self.proc.pid)
        if wait:
            try:
                wait_for(lambda: self.roles_up(), 10, "monitor and controller up")
            except AssertionError as e:
                raise AssertionError("%s; asgd exit status %s; log:\n%s"
                                     % (e, self.proc.poll(), self.log()[-3000:]))
        return self

    def roles_up(self):
        s = self.status()
        return s and s["processes"]["monitor"] and s["processes"]["controller"] and \
            s["group"]["monitor_address"]

    def state_dir(self):
        return self.cfg["tls"]["dir"]

    def table_name(self):
        """The table's segment name: shm.name with the random suffix asgd
        recorded in its state directory (tls.dir) when it made the table;
        the last one seen once the record is gone (a stopped manager)."""
        try:
            with open(os.path.join(self.state_dir(), "table-" + self.shm.lstrip("/"))) as f:
                self._table = f.read().strip()
        except FileNotFoundError:
            pass
        return getattr(self, "_table", None)

    def table_path(self):
        name = self.table_name()
        return "/dev/shm" + name if name else None

    def tables_left(self):
        """Segments in /dev/shm under this manager's shm.name (any suffix)."""
        base = self.shm.lstrip("/")
        return [f for f in os.listdir("/dev/shm") if f == base or f.startswith(base + ".")]

    def group_nonce(self):
        """The group's nonce (tls.dir/group.nonce), made on the first start."""
        with open(os.path.join(self.state_dir(), "group.nonce")) as f:
            return f.read().strip()

    def ctl(self, *args, timeout=20):
        # The table's name as recorded, or the config to find it by (asgctl
        # then says there is none yet).
        name = self.table_name()
        where = ["--shm", name] if name else ["-c", self.cfg_path]
        return run([BIN + "/asgctl"] + where + list(args), timeout=timeout,
                   env=dict(os.environ, **self.env))

    def agent_tls(self, ident):
        """--tls-* arguments for an agent started by hand as ident, with a
        certificate issued by this manager's CA (asgctl cert)."""
        out = os.path.join(self.dir, "certs")
        os.makedirs(out, exist_ok=True)
        r = run([BIN + "/asgctl", "-c", self.cfg_path, "cert", ident, out])
        assert r.returncode == 0, r.stderr
        return ["--tls-ca", out + "/ca.crt", "--tls-cert", "%s/%s.crt" % (out, ident),
                "--tls-key", "%s/%s.key" % (out, ident)]

    def api_token(self):
        """The status API's credential, tls.dir/api.token (the manager's
        user reads it; so do the tests, running as that user)."""
        with open(os.path.join(self.cfg["tls"]["dir"], "api.token")) as f:
            return f.read().strip()

    def api(self, method, path, body=None, headers=None, timeout=10):
        """http() on this manager's status server (m.url), as the operator."""
        return http(method, self.url + path, body, headers, timeout, token=self.api_token())

    def login_link(self):
        """A one-time dashboard login link, as an operator gets it."""
        r = self.ctl("dashboard")
        assert r.returncode == 0, (r.returncode, r.stderr)
        return r.stdout.strip().splitlines()[-1]

    def status(self):
        r = self.ctl("status", "--json")
        if r.returncode != 0:
            # None: not yet, to the callers. Said when a table is there
            # all the same, for a test that then fails.
            if self.table_name() and not any(w in r.stderr for w in ("No such file", "no shared table")):
                sys.stderr.write("asgctl status: %s" % r.stderr[-300:])
            return None
        s = json.loads(r.stdout)
        for p in s["processes"].values():
            if p:
                self.pids.add(p)
                STARTED.add(p)
        for i in s["instances"]:
            if i["pid"] > 0:
                self.pids.add(i["pid"])
                STARTED.add(i["pid"])
        return s

    def running(self, s=None):
        s = s or self.status()
        return [i for i in s["instances"] if i["state"] == "running"] if s else []

    def size(self, s):
        return s["group"]["running"] + s["group"]["pending"]

    def wait_running(self, n, timeout=20, what=None):
        return wait_for(lambda: (lambda s: s if s and len(self.running(s)) == n
                                 and self.size(s) == n else None)(self.status()),
                        timeout, what or "%d running instances" % n)

    def log(self):
        # Bytes that are not UTF-8 are shown, not fatal to the test's
        # cleanup (once seen in CI, at the start of a log; the bytes around
        # them are said, to find who wrote them).
        with open(self.log_path, "rb") as f:
            raw = f.read()
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            sys.stderr.write("asgd log %s: not UTF-8 at byte %d: %r\n" % (self.log_path, e.start,
                                                                     raw[max(0, e.start - 300):e.start + 60]))
            return raw.decode(errors="replace")

    def wait_log(self, pattern, timeout=10):
        return wait_for(lambda: re.search(pattern, self.log()), timeout,
                        "log line matching %r" % pattern)

    def pid(self, role):
        s = self.status()
        return s["processes"][role] if s else None

    def load_all(self, pct):
        return self.ctl("load", "all", str(pct))

    def stop(self, timeout=8):
        """SIGTERM; returns (exit code, seconds)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout * SLOW)
        return rc, time.monotonic() - t0

    # A sanitizer's report, or an event the row state machine refused: in
    # any test, either is a bug.
    SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer"
                                  r"|no transition from \w+ on \w+")

    def sanitizer_report(self):
        """A sanitizer's report (or a refused row event) in the log of asgd
        or its agents, if any."""
        try:
            found = self.SANITIZER_REPORT.search(self.log())
        except OSError:
            return None
        return found and self.log()[max(0, found.start() - 200):found.start() + 3000]

    def cleanup(self):
        if os.environ.get("ASG_KEEP_LOG"):   # for a developer chasing a failure
            try:
                shutil.copy(self.log_path, os.environ["ASG_KEEP_LOG"])
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            kill_pid(self.proc.pid)
            self.proc.wait(timeout=10)
        # A daemon the test started some other way (asgd without -f) is
        # known by its pidfile alone, even when the test failed before
        # reading it.
        try:
            self.pids.add(int(open(self.pidfile).read().strip()))
        except (OSError, ValueError):
            pass
        # Sweep until nothing of ours is left three scans running: a
        # controller that was forking an agent as the supervisor died may
        # exec it (and so name it as the group's) after a scan found none.
        deadline, quiet = time.monotonic() + 10, 0
        while time.monotonic() < deadline and quiet < 3:
            left = [p for p in list(self.pids) + agents_of_group(self.group)
                    if alive(p) and ours(p)]
            quiet = 0 if left else quiet + 1
            for pid in left:
                kill_pid(pid)
            time.sleep(0.1)
        report = self.sanitizer_report()
        # The table and its config segment (shm/confseg.h), which a killed
        # supervisor leaves.
        for f in self.tables_left():
            try:
                os.unlink("/dev/shm/" + f)
            except FileNotFoundError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        if report:
            raise AssertionError("sanitizer report in the log of %s:\n%s" % (self.group, report))


def kill_everything_started():
    for pid in STARTED:
        if alive(pid) and ours(pid):
            kill_pid(pid)


class FakeEC2:
    """tests/integration/fake_ec2.py on 127.0.0.1, with its agents."""

    def __init__(self, page_size=2, stall=2.0, hide=15.0):
        import urllib.request  # noqa: F401
        self.dir = tempfile.mkdtemp(prefix="asg-fake-ec2-")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "tests/integration/fake_ec2.py"),
             "--agent", BIN + "/asg-agent", "--page-size", str(page_size), "--stall", str(stall),
             "--hide", str(hide),
             "--state-dir", self.dir],
            stdout=subprocess.PIPE, text=True)
        STARTED.add(self.proc.pid)
        self.port = int(self.proc.stdout.readline())
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.pids = set()

    def _call(self, path, body=None):
        import urllib.request
        req = urllib.request.Request(self.endpoint + path, data=body,
                                     method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def stats(self):
        s = self._call("/_fake/stats")
        self.pids.update(s["pids"])
        STARTED.update(s["pids"])
        return s

    def fault(self, action, kind, count=1):
        self._call("/_fake/fault", json.dumps({"action": action, "kind": kind,
                                               "count": count}).encode())

    def kill_instance(self, iid):
        self._call("/_fake/kill", iid.encode())

    def template(self, tid, name, versions, default=1):
        """A launch template the fake knows: versions is a list of
        {"ImageId", "InstanceType"}, version N at index N - 1."""
        self._call("/_fake/template", json.dumps({"id": tid, "name": name, "versions": versions,
                                                  "default": default}).encode())

    def user_data(self, iid):
        import urllib.request
        with urllib.request.urlopen(self.endpoint + "/_fake/user_data/" + iid, timeout=10) as r:
            return r.read().decode()

    def stop(self):
        try:
            self.stats()
        except Exception:
            pass
        stop_process(self.proc)
        for pid in self.pids:
            if alive(pid) and ours(pid):
                kill_pid(pid)
        shutil.rmtree(self.dir, ignore_errors=True)


EC2_ENV = {"AWS_ACCESS_KEY_ID": "AKIDASGTEST",
           "AWS_SECRET_ACCESS_KEY": "asg-test-secret/with+slash",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
           "AWS_EC2_METADATA_DISABLED": "true"}


def ec2_sections(fake, tls=False, **group):
    """A group on the fake EC2; tls=True keeps the default mutual TLS
    (instances join), else plaintext."""
    g = {"min_instances": 2, "max_instances": 4, "desired_instances": 2}
    g.update(group)
    return {"group": g, "tls": {} if tls else {"mode": "plaintext"},
            "provider": {"kind": "ec2", "boot_timeout_ms": 15000,
                         "ec2": {"region": "us-east-1", "endpoint": fake.endpoint,
                                 "image_id": "ami-12345678", "instance_type": "t3.micro",
                                 "security_group_ids": ["sg-1", "sg-2"],
                                 "reconcile_interval_ms": 2000, "call_timeout_ms": 1000}}}


class HAProxy:
    """Debian's haproxy on 127.0.0.1 with a runtime API socket at level
    admin and one empty backend `web` (the manager fills it), started in the
    foreground so that it is stopped by its pid."""

    def __init__(self, template=None):
        """template: another config (with %(socket)s and %(port)s)."""
        self.dir = tempfile.mkdtemp(prefix="asg-hap-")
        os.chmod(self.dir, 0o700)
        self.socket = os.path.join(self.dir, "admin.sock")
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write((template or HAPROXY_CFG) % {"socket": self.socket, "port": self.port})
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "haproxy.log"), "a"))
        STARTED.add(self.proc.pid)
        wait_for(lambda: self.proc.poll() is not None or self.answers(), 10, "haproxy up")
        assert self.proc.poll() is None, open(os.path.join(self.dir, "haproxy.log")).read()

    def answers(self):
        try:
            return "Name: HAProxy" in self.cmd("show info")
        except OSError:
            return False

    def cmd(self, line):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(self.socket)
            s.sendall(line.encode() + b"\n")
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return out.decode()
                out += b
        finally:
            s.close()

    def servers(self):
        """{name: (address, status)} of backend web, from `show stat`."""
        lines = self.cmd("show stat web 4 -1").splitlines()
        head = lines[0][2:].split(",")
        out = {}
        for ln in lines[1:]:
            f = dict(zip(head, ln.split(",")))
            if f.get("svname"):
                out[f["svname"]] = (f["addr"], f["status"])
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            kill_pid(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_pid(self.proc.pid)
                self.proc.wait(timeout=10)

    def restart(self):
        self.stop()
        try:
            os.unlink(self.socket)
        except FileNotFoundError:
            pass
        self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def lb_section(self, **extra):
        lb = {"kind": "haproxy", "haproxy": {"socket": self.socket, "backend": "web"},
              "interval_ms": 200, "reconcile_interval_ms": 1000, "drain_timeout_ms": 5000}
        lb.update(extra)
        return lb


# What an operator puts in front of a group (etc/examples/haproxy.cfg says
# the same): retries and redispatch, so that a request meeting a server that
# is going away is sent to another one.
class Load:
    """Threads sending GET / through HAProxy on keep-alive connections, as
    fast as they can or, given a rate, that many a second in all; every
    answer that is not a 200, and every broken connection, is a failure."""

    def __init__(self, port, threads=4, rate=None):
        self.port, self.rate, self.ok, self.failed, self.errors = port, rate, 0, 0, []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(k, threads), daemon=True)
                        for k in range(threads)]
        for t in self.threads:
            t.start()

    def set_rate(self, rate):
        self.rate = rate

    def pace(self, k, nthreads, schedule):
        """Waits for this thread's next turn at the set rate."""
        t0, n = schedule
        n += 1
        due = t0 + (n * nthreads + k) / self.rate
        if due > time.monotonic():
            self.stopping.wait(due - time.monotonic())
        if due < time.monotonic() - 1:     # a second behind: start the schedule again
            t0, n = time.monotonic(), 0
        schedule[:] = [t0, n]

    def loop(self, k, nthreads):
        conn, schedule = None, [time.monotonic(), 0]
        while not self.stopping.is_set():
            if self.rate:
                self.pace(k, nthreads, schedule)
            try:
                conn = conn or httpclient.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                good = r.status == 200
                why = "HTTP %d" % r.status
            except (OSError, httpclient.HTTPException) as e:
                good, why = False, repr(e)
                conn = None
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(why)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(20)
        return self.ok, self.failed, self.errors[:10]


HAPROXY_CFG = """global
    stats socket %(socket)s mode 600 level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 10s
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout 500 503
frontend fe
    bind 127.0.0.1:%(port)d
    default_backend web
backend web
    balance roundrobin
"""


class Etcd:
    """Debian's etcd on 127.0.0.1: one member, or a cluster of three, each
    with its own data dir and ports, started in the foreground and stopped
    by its pid."""

    def __init__(self, members=1, tls=False):
        self.dir = tempfile.mkdtemp(prefix="asg-etcd-")
        self.tls = tls and self.make_certs()
        self.members = [{"name": "m%d" % i, "client": free_port(), "peer": free_port(), "proc": None}
                        for i in range(members)]
        self.cluster = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"]) for m in self.members)
        for i in range(members):
            self.start(i, wait=False)
        for i in range(members):
            wait_for(lambda: self.answers(i), 20, "etcd member %d up" % i)

    def make_certs(self):
        """A CA, etcd's server certificate (IP 127.0.0.1) and a client
        certificate, with the openssl command; paths by name."""
        d = os.path.join(self.dir, "pki")
        os.makedirs(d)
        p = {k: os.path.join(d, k) for k in ("ca.key", "ca.crt", "server.key", "server.crt",
                                              "client.key", "client.crt", "ext", "other-ca.key", "other-ca.crt")}
        with open(p["ext"], "w") as f:
            f.write("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n")
        ssl = lambda *a: run(["openssl"] + list(a), timeout=30)  # noqa: E731
        for ca in ("ca", "other-ca"):   # etcd's, and one that signed nothing of it
            r = ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test " + ca,
                    "-keyout", p[ca + ".key"], "-out", p[ca + ".crt"])
            assert r.returncode == 0, r.stderr
        for who in ("server", "client"):
            csr = os.path.join(d, who + ".csr")
            r = ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + who, "-keyout", p[who + ".key"],
                    "-out", csr)
            assert r.returncode == 0, r.stderr
            r = ssl("x509", "-req", "-in", csr, "-CA", p["ca.crt"], "-CAkey", p["ca.key"], "-CAcreateserial",
                    "-days", "2", "-extfile", p["ext"], "-out", p[who + ".crt"])
            assert r.returncode == 0, r.stderr
        return p

    def endpoint(self, i):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.members[i]["client"])

    def urlopen(self, url, body, timeout=2):
        import ssl
        import urllib.request
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls["ca.crt"])
            ctx.load_cert_chain(self.tls["client.crt"], self.tls["client.key"])
        return urllib.request.urlopen(url, body, timeout=timeout, context=ctx)

    def endpoints(self):
        return [self.endpoint(i) for i in range(len(self.members))]

    def start(self, i, wait=True):
        m = self.members[i]
        data = os.path.join(self.dir, m["name"])
        log = open(os.path.join(self.dir, m["name"] + ".log"), "a")
        m["proc"] = subprocess.Popen(
            ["etcd", "--name", m["name"], "--data-dir", data,
             "--listen-client-urls", self.endpoint(i), "--advertise-client-urls", self.endpoint(i),
             "--listen-peer-urls", "http://127.0.0.1:%d" % m["peer"],
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m["peer"],
             "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", os.path.basename(self.dir)] +
            (["--cert-file", self.tls["server.crt"], "--key-file", self.tls["server.key"],
              "--client-cert-auth", "--trusted-ca-file", self.tls["ca.crt"]] if self.tls else []),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()   # the child has its own
        STARTED.add(m["proc"].pid)
        if wait:
            wait_for(lambda: self.answers(i), 20, "etcd member %d up" % i)

    def answers(self, i):
        try:
            with self.urlopen(self.endpoint(i) + "/health", None) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def stop(self, i, sig=signal.SIGKILL):
        p = self.members[i]["proc"]
        if p and p.poll() is None:
            kill_pid(p.pid, sig)
            p.wait(timeout=10)

    def leader(self):
        """The index of etcd's own (raft) leader among the members."""
        for i, ep in enumerate(self.endpoints()):
            try:
                with self.urlopen(ep + "/v3/maintenance/status", b"{}") as r:
                    st = json.loads(r.read())
                    if st.get("leader") == st["header"]["member_id"]:
                        return i
            except (OSError, ValueError, KeyError):
                continue
        return None

    def get(self, key):
        """The value at key (text), or None: through the JSON gateway, as
        an operator's etcdctl would read it."""
        import base64
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        for ep in self.endpoints():
            try:
                with self.urlopen(ep + "/v3/kv/range", body) as r:
                    kvs = json.loads(r.read()).get("kvs", [])
                    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
            except OSError:
                continue
        return None

    def cleanup(self):
        for i in range(len(self.members)):
            self.stop(i)
        shutil.rmtree(self.dir, ignore_errors=True)


def http(method, url, body=None, headers=None, timeout=10, token=None):
    """(status, parsed JSON or text) of one request to a local URL; with
    token, as the operator (Authorization: Bearer)."""
    import urllib.error
    import urllib.request
    assert url.startswith("http://127.0.0.1:"), url
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"} if data is not None else {}
    if method == "POST":   # what a browser on the dashboard's own page sends
        h["Origin"] = "/".join(url.split("/")[:3])
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}   # None: leave the header out
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in ctype else raw.decode()


# ---- what every test file shares: the test list, scenarios, helpers ----

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def scenario(name, env=None, before=None, after_start=None, start=True, **sections):
    """Decorator: the test gets a Manager (started unless start=False) and
    whatever `before(sections)` returns; its log is shown when the test
    fails, and every process is cleaned up, the manager's and before's."""
    def wrap(fn):
        def inner():
            extra, undo = before(sections) if before else ((), None)
            m = Manager(name, **sections)
            try:
                if start:
                    m.start(env=env)
                    if after_start:
                        after_start(m)
                fn(m, *extra)
            except BaseException:
                sys.stderr.write("---- asgd log of %s ----\n%s\n" % (fn.__name__, m.log()[-6000:]))
                raise
            finally:
                m.cleanup()
                if undo:
                    undo()
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def with_status(name, env=None, **sections):
    """Decorator: a manager with the status role on a free port (m.url),
    up before the test begins."""
    def before(secs):
        secs.setdefault("status", {})["listen"] = "127.0.0.1:%d" % free_port()
        # An operator's extra instance must not be scaled in under the
        # test's feet: no scale-in on low load here.
        secs.setdefault("policy", {}).setdefault("scale_in_below", 0.0)
        return (), None

    def status_up(m):
        m.url = "http://" + m.cfg["status"]["listen"]
        wait_for(lambda: http("GET", m.url + "/healthz")[0] == 200, 10, "status up")
    return scenario(name, env=env, before=before, after_start=status_up, **sections)


def with_manager(name, **sections):
    return scenario(name, **sections)


PORTS_GIVEN = set()


def free_port():
    """A bindable port below the kernel's ephemeral range, so that no
    agent binding port 0 can be handed it while a test relies on it. Test
    files running side by side (run.py gives each its ASG_TEST_SLOT) pick
    from slices of the range that do not overlap."""
    import random
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    base = max(1024, lo - 12000)
    slot = int(os.environ.get("ASG_TEST_SLOT", "0")) % 16
    width = (lo - base) // 16
    for _ in range(200):
        port = random.randint(base + slot * width, base + (slot + 1) * width - 1)
        # a port handed out before may be free again but not for long: an
        # etcd given the same port twice (client and peer, two calls 700
        # ports apart at random) failed with "address already in use"
        if port in PORTS_GIVEN:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            PORTS_GIVEN.add(port)
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in %d..%d" % (base + slot * width, base + (slot + 1) * width - 1))


ARTIFACTS = os.path.join(ROOT, os.environ.get("ASG_ARTIFACTS", "build"))


def plain_cfg():
    """A config for asgctl to talk to agents started by hand without TLS."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "plaintext-asgctl.cfg")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write('tls = { mode = "plaintext"; };\n')
    return path


def start_agent(*args, env=None):
    """An agent started by hand; env adds to its environment (a group's
    nonce, say: see Manager.group_nonce)."""
    p = subprocess.Popen([BIN + "/asg-agent", "--listen", "127.0.0.1:0"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})))
    STARTED.add(p.pid)
    line = p.stdout.readline().strip()
    return p, line


def stop_agent(p):
    """SIGTERM (the agent deregisters), then SIGKILL if it hangs; its exit code."""
    return stop_process(p)


STUBS_DIR = []


def python_stubs():
    """Python stubs generated now from our protos and the official
    health.proto (copied to a flat path: as grpc/health/v1/ its module
    would hide the installed grpc package; names on the wire unchanged)."""
    import shutil
    import tempfile
    out = tempfile.mkdtemp(prefix="asg-py-")
    shutil.copy("/usr/share/grpc-proto/grpc/health/v1/health.proto", out + "/official_health.proto")
    r = run(["protoc", "-I", ROOT + "/proto", "-I", out,
             "--python_out=" + out, "--grpc_python_out=" + out,
             "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
             "asg.proto", "asg_service.proto", "official_health.proto"])
    assert r.returncode == 0, r.stderr
    os.chmod(out, 0o755)          # readable by the stranger uid of some tests
    STUBS_DIR[:] = [out]
    import atexit
    atexit.register(shutil.rmtree, out, True)   # made for this process alone
    sys.path.insert(0, out)
    import grpc
    import asg_pb2
    import asg_service_pb2_grpc
    import official_health_pb2
    import official_health_pb2_grpc
    return grpc, asg_pb2, asg_service_pb2_grpc, official_health_pb2, official_health_pb2_grpc


def wait_replaced(m, victim, size):
    """Waits until the group is back at size without the victim."""
    def replaced():
        r = m.running()
        return len(r) == size and victim not in [i["id"] for i in r]
    wait_for(replaced, 15, "a replacement for %s running" % victim)


def metrics(m):
    from prometheus_client.parser import text_string_to_metric_families
    code, text = http("GET", m.url + "/metrics")
    assert code == 200, code
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def on_alarm(sig, frame):
    raise TimeoutError("test exceeded its time limit")


def run_tests():
    """Runs this file's tests (those named on the command line, or all)
    one after another, each bounded by an alarm; prints one line per test,
    the measured figures, and 'N passed, N failed'. The exit code is 1 if
    any failed."""
    signal.signal(signal.SIGALRM, on_alarm)
    only = sys.argv[1:]
    passed = failed = skipped = 0
    t_all = time.monotonic()
    for fn in TESTS:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        signal.alarm(int(120 * SLOW))
        try:
            fn()
            passed += 1
            print("ok    %-58s %5.1fs" % (fn.__name__, time.monotonic() - t0), flush=True)
        except Skip as why:
            skipped += 1
            print("skip  %-58s %s" % (fn.__name__, why), flush=True)
        except BaseException:
            failed += 1
            print("FAIL  %-58s %5.1fs" % (fn.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc()
        finally:
            signal.alarm(0)
    kill_everything_started()
    if FIGURES:
        print("figures measured (seconds, each trial):")
        for k, v in FIGURES.items():
            print("  %-55s %s" % (k, " ".join("%.3f" % x for x in v)))
    print("%s: %.0fs" % (os.path.basename(sys.argv[0]), time.monotonic() - t_all))
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""),
          flush=True)
    return 1 if failed else 0
