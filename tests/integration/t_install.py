#!/usr/bin/python3
"""Integration tests: installation: the installed layout and the init script."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


@test
def installed_layout_finds_the_agent():
    """make install puts asgd in sbin/ and asg-agent in bin/: the local
    provider finds the agent there without configuration."""
    import shutil
    import tempfile
    root = tempfile.mkdtemp(prefix="asg-install-")
    os.makedirs(root + "/sbin")
    os.makedirs(root + "/bin")
    shutil.copy(BIN + "/asgd", root + "/sbin/asgd")
    shutil.copy(BIN + "/asg-agent", root + "/bin/asg-agent")
    m = Manager("install")
    try:
        e = dict(os.environ)
        m.logf = open(m.log_path, "a")
        m.proc = subprocess.Popen([root + "/sbin/asgd", "-f", "-c", m.cfg_path],
                                  stdout=m.logf, stderr=subprocess.STDOUT, env=e)
        STARTED.add(m.proc.pid)
        m.pids.add(m.proc.pid)
        m.wait_running(2)
        exes = {os.readlink("/proc/%d/exe" % i["pid"]) for i in m.status()["instances"]}
        assert exes == {os.path.realpath(root + "/bin/asg-agent")}, exes
    finally:
        m.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@test
def init_script_start_reload_status_stop():
    m = Manager("init")
    env = dict(os.environ, ASGD=BIN + "/asgd", ASGD_CONFIG=m.cfg_path, ASGD_PIDFILE=m.pidfile)
    script = ROOT + "/scripts/asgd.init"
    try:
        r = run([script, "start"], env=env)
        assert r.returncode == 0, r
        wait_for(lambda: m.roles_up(), 10, "daemon up")
        r = run([script, "status"], env=env)
        assert r.returncode == 0 and "running" in r.stdout, r
        gen = m.status()["group"]["config_generation"]
        r = run([script, "reload"], env=env)
        assert r.returncode == 0, r
        wait_for(lambda: m.status()["group"]["config_generation"] == gen + 1, 5, "reloaded")
        pid = int(open(m.pidfile).read())
        m.pids.add(pid)
        r = run([script, "stop"], env=env)
        assert r.returncode == 0, r
        assert not alive(pid)
        r = run([script, "status"], env=env)
        assert r.returncode == 3, r
    finally:
        m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
