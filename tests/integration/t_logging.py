#!/usr/bin/python3
"""Integration tests: the log as its readers get it: journald (a "<N>"
priority on every line when stderr is the journal), syslog (the facility
supervisor.log_facility names) and a person (asgd -f: the local time
first, no prefix)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

LINE = r"(?P<role>[a-z]+)\[(?P<pid>\d+)\] (?P<level>error|warn|info|debug): "
JOURNAL_LINE = re.compile(r"^<(?P<prio>[0-7])>" + LINE)
HUMAN_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} " + LINE)
PRIORITY = {"error": 3, "warn": 4, "info": 6, "debug": 7}


def stream_of(path):
    """JOURNAL_STREAM as systemd sets it for a stream: DEVICE:INODE."""
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def refuse_a_reload(m):
    """A broken config and SIGHUP: an error line (and the old config kept)."""
    good = open(m.cfg_path).read()
    m.write_config("group = {\n  min_instances = 3;\n  max_instances = 2;\n};\n")
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"has errors, not reloading")
    m.write_config(good)


@test
def journal_lines_carry_their_priority():
    """stderr is the file JOURNAL_STREAM names: every line of asgd, its
    roles and its local agents starts with the syslog priority of its
    level, which journald takes off and files the line under (an error
    as an error, not as info), and carries no time of its own."""
    m = Manager("jrnl")
    try:
        open(m.log_path, "a").close()
        m.start(env={"JOURNAL_STREAM": stream_of(m.log_path)})
        m.wait_running(2)
        refuse_a_reload(m)
        m.wait_log(r"agent\[\d+\] info: ")
        lines = m.log().splitlines()
        bad = [l for l in lines if not JOURNAL_LINE.match(l)]
        assert not bad, "lines without their priority prefix:\n%s" % "\n".join(bad[:10])
        seen = {}
        for l in lines:
            g = JOURNAL_LINE.match(l)
            assert int(g["prio"]) == PRIORITY[g["level"]], l
            seen.setdefault(g["role"], set()).add(g["level"])
        for role in ("asgd", "monitor", "controller", "agent"):
            assert role in seen, (role, sorted(seen))
        refusal = [l for l in lines if "has errors, not reloading" in l]
        assert refusal and refusal[-1].startswith("<3>asgd["), refusal
        assert any(l.startswith("<6>asgd[") and " starting: config " in l for l in lines)
    finally:
        m.cleanup()


@test
def foreground_without_the_journal_stays_readable():
    """JOURNAL_STREAM names some other stream (a shell started from a unit
    passes it on): asgd -f into a file writes for a person, the time
    first and no priority prefix."""
    m = Manager("human")
    try:
        m.start(env={"JOURNAL_STREAM": stream_of("/dev/null")})
        m.wait_running(2)
        refuse_a_reload(m)
        lines = m.log().splitlines()
        bad = [l for l in lines if not HUMAN_LINE.match(l)]
        assert not bad, "lines not for a person:\n%s" % "\n".join(bad[:10])
        assert not any(l.startswith("<") for l in lines)
    finally:
        m.cleanup()


FACILITY = {"daemon": 3, "user": 1, "local3": 19, "local5": 21}


class FakeDevLog:
    """A syslog socket where asgd, without -f, looks for one: /dev/log, in
    a mount namespace of its own (unshare -m, as root) whose /dev holds
    only what asgd needs (null, urandom, shm) and this socket's link."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.lines = []

    def wrap(self, tmp, argv):
        dev = os.path.join(tmp, "dev")
        script = ("set -e; mkdir {d}; mount -t tmpfs none {d}; "
                  "for f in null zero random urandom; do touch {d}/$f; mount --bind /dev/$f {d}/$f; done; "
                  "mkdir {d}/shm; mount --bind /dev/shm {d}/shm; ln -s {log} {d}/log; "
                  "mount --rbind {d} /dev; exec \"$@\"").format(d=dev, log=self.path)
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"] + argv

    def read(self):
        try:
            while True:
                self.lines.append(self.sock.recv(4096).decode(errors="replace"))
        except socket.timeout:
            pass
        return self.lines

    def find(self, text):
        return [l for l in self.read() if text in l]


def pri(line):
    return int(line[1:line.index(">")])


@test
def syslog_gets_the_configured_facility():
    """asgd without -f logs to syslog under supervisor.log_facility; a
    reload with another facility moves the supervisor's and the roles'
    next lines to it."""
    if os.geteuid() != 0:
        raise Skip("needs root for a mount namespace with its own /dev/log")
    m = Manager("fac", supervisor={"log_facility": "local3"})
    log = FakeDevLog(m.dir)
    daemon = None
    try:
        r = run(log.wrap(m.dir, [BIN + "/asgd", "-c", m.cfg_path]))
        assert r.returncode == 0, r
        def pid_written():                   # made first, written after: empty is not yet
            text = open(m.pidfile).read().strip() if os.path.exists(m.pidfile) else ""
            return int(text) if text.isdigit() else None
        daemon = wait_for(pid_written, 10, "the daemon's pidfile")
        m.pids.add(daemon)
        STARTED.add(daemon)
        wait_for(lambda: m.roles_up(), 10, "monitor and controller up")
        start = wait_for(lambda: log.find(" starting: config "), 10, "the starting line in syslog")
        assert pri(start[0]) == FACILITY["local3"] * 8 + 6, start
        roles = wait_for(lambda: [l for l in log.read() if "monitor: " in l], 10, "a monitor line")
        assert all(pri(l) >> 3 == FACILITY["local3"] for l in roles), roles
        assert all(pri(l) >> 3 == FACILITY["local3"] for l in log.read()), log.read()
        m.cfg["supervisor"]["log_facility"] = "local5"
        m.write_config()
        before = len(log.read())
        os.kill(daemon, signal.SIGHUP)
        applied = wait_for(lambda: [l for l in log.read()[before:] if "monitor: config generation" in l],
                           10, "the monitor's line on the new config")
        assert pri(applied[0]) == FACILITY["local5"] * 8 + 6, applied
        reloaded = wait_for(lambda: log.find("config reloaded from"), 10, "the reload line")
        assert pri(reloaded[-1]) >> 3 == FACILITY["local5"], reloaded
        os.kill(daemon, signal.SIGTERM)
        # Read on while it drains, as syslog does: a datagram socket's
        # queue is short, and a full one holds every sender up.
        wait_for(lambda: (log.read(), not alive(daemon))[1], 15, "the daemon stopped")
        assert all(pri(l) >> 3 == FACILITY["local5"] for l in log.read()[before:]), log.read()[before:]
    except BaseException:
        sys.stderr.write("---- syslog of %s ----\n%s\n" % (m.group, "\n".join(log.read()[-60:])))
        raise
    finally:
        log.sock.close()
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
