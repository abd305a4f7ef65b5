#!/usr/bin/python3
"""Integration tests: two managers of one group on a real etcd (Debian's
etcd-server, started here on 127.0.0.1): one leader, failover on a kill -9,
a paused leader fenced, etcd's own faults."""
import contextlib
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)

TTL_MS = 2000
EVAL_MS = 500
PREFIX = "/asg-it"


def pair(etcd, ttl_ms=TTL_MS, eval_ms=EVAL_MS, **group):
    """Managers a and b of one group (one name, one CA), each with its own
    table, ports and pidfile, both on etcd; not started."""
    g = {"min_instances": 2, "max_instances": 4, "desired_instances": 2}
    g.update(group)
    # These tests count provider calls and agents: a busy machine's stall
    # (both agents missed two 150 ms probes at once under stress-ng) must
    # not have an instance replaced. A killed local agent is still seen at
    # once by its parent; one adopted from the other manager, in 1.5 s.
    probing = {"unhealthy_after": 10}
    a = Manager("ha", group=g, policy={"evaluation_interval_ms": eval_ms}, monitor=dict(probing))
    b = Manager("ha", group=g, policy={"evaluation_interval_ms": eval_ms}, monitor=dict(probing))
    b.group = a.group
    b.cfg["group"]["name"] = a.group
    b.cfg["tls"]["dir"] = a.cfg["tls"]["dir"]
    for m, ident in ((a, "mgr-a"), (b, "mgr-b")):
        m.cfg["ha"] = {"etcd": etcd.endpoints(), "lease_ttl_ms": ttl_ms, "id": ident, "prefix": PREFIX}
        m.cfg["status"] = {"listen": "127.0.0.1:%d" % free_port()}
        m.url = "http://" + m.cfg["status"]["listen"]
        m.write_config()
    return a, b


def show_logs(*managers):
    """The end of each manager's log, for a test that failed."""
    for m in managers:
        sys.stderr.write("---- asgd log of %s ----\n%s\n" % (m.cfg.get("ha", {}).get("id", m.group), m.log()[-5000:]))


@contextlib.contextmanager
def watched(managers, *after):
    """Shows each manager's log if the block fails; cleans every manager up
    (the list as it is by then), then calls each of after, whatever
    happened."""
    try:
        yield
    except BaseException:
        show_logs(*managers)
        raise
    finally:
        for m in managers:
            m.cleanup()
        for f in after:
            f()


def start_pair(a, b, env_a=None, env_b=None):
    """a started and leading, then b started and standing by for it."""
    a.start(env=env_a)
    wait_for(lambda: role(a) == "leader", 10, "a leads")
    b.start(env=env_b)
    wait_for(lambda: role(b) == "standby" and ha(b)["leader"] == "mgr-a", 10, "b stands by for a")


def ha(m):
    s = m.status()
    return s["ha"] if s else {}


def role(m):
    return ha(m).get("role")


def calls(m):
    return ha(m)["provider_calls"]


def with_pair(members=1, env_a=None, ttl_ms=TTL_MS, **group):
    """Decorator: the test gets etcd and a started pair, a the leader and
    b its standby; logs shown on failure, everything stopped after."""
    def wrap(fn):
        def inner():
            etcd = Etcd(members)
            a, b = pair(etcd, ttl_ms=ttl_ms, **group)
            with watched([a, b], etcd.cleanup):
                start_pair(a, b, env_a)
                fn(etcd, a, b)
        inner.__name__ = fn.__name__
        TESTS.append(inner)
        return inner
    return wrap


def stop_roles(m, sig):
    """sig to m's supervisor and every role (not its agents). A kill
    freezes them all first: a supervisor that died before its roles would
    have them told (parent-death signal), and the controller would hand its
    lease over cleanly; a controller that died first would be restarted.
    Neither is a machine lost."""
    procs = [p for p in m.status()["processes"].values() if p]
    if sig == signal.SIGKILL:
        for p in procs:
            kill_pid(p, signal.SIGSTOP)
    for p in procs:
        kill_pid(p, sig)
    return procs


def wait_warm(a, b, n):
    """The standby has adopted the leader's n instances, and they know it:
    the leader has found b among the members and probed every agent three
    times since (a probe tells an agent the managers' addresses)."""
    wait_for(lambda: (lambda s: s and b.size(s) == n)(b.status()), 20, "the standby's table holds %d" % n)
    addr = b.status()["group"]["monitor_address"]
    wait_for(lambda: addr in ha(a)["managers"].split(","), 10, "a knows b's address")
    rounds = a.status()["group"]["probe_rounds"]
    wait_for(lambda: a.status()["group"]["probe_rounds"] >= rounds + 3, 10, "three probe rounds")


@with_pair()
def two_managers_one_leader_the_group_launched_once(etcd, a, b):
    a.wait_running(2)
    wait_warm(a, b, 2)
    assert len(agents_of_group(a.group)) == 2, agent_processes()
    assert calls(b) == 0, ha(b)
    assert calls(a) == 2, ha(a)
    hb = ha(b)
    assert hb["leader"] == "mgr-a" and hb["term"] == ha(a)["term"] > 0, (hb, ha(a))
    assert etcd.get("%s/%s/leader" % (PREFIX, a.group)).startswith("mgr-a "), "leader key"
    state = json.loads(etcd.get("%s/%s/state" % (PREFIX, a.group)))
    assert state["leader"] == "mgr-a" and state["launches"] >= 1, state
    # Operators see the roles.
    wait_for(lambda: http("GET", b.url + "/healthz")[0] == 200, 10, "b's status up")
    ma, mb = metrics(a), metrics(b)
    assert ma[("asg_ha_leader", ())] == 1 and mb[("asg_ha_leader", ())] == 0, (ma, mb)
    assert ma[("asg_ha_failovers_total", ())] == 1 and mb[("asg_ha_failovers_total", ())] == 0
    assert ma[("asg_provider_calls_total", ())] == 2 and mb[("asg_provider_calls_total", ())] == 0
    assert "ha: LEADER" in a.ctl("status").stdout
    assert "the leader is mgr-a" in b.ctl("status").stdout
    a.wait_log(r"ha: became leader, term \d+, lease 0x[0-9a-f]+")
    # The dashboards say it too (headless Debian chromium).
    from browser import Browser
    br = Browser()
    try:
        # The page may still be loading (no element yet): not an error.
        meta = "(document.getElementById('meta') || {}).textContent"
        br.login(a.login_link())
        wait_for(lambda: "HA leader, term %d" % ha(a)["term"] in (br.js(meta) or ""), 15, "a's page: leader")
        br.login(b.login_link())
        wait_for(lambda: "HA STANDBY: the leader is mgr-a" in (br.js(meta) or ""), 15, "b's page: standby")
    finally:
        br.close()
    # A standby refuses operators' requests: the leader's API is the one.
    code, r = b.api("POST", "/api/v1/desired", {"desired": 3})
    assert code == 409 and "standby: ask the leader, mgr-a" in json.dumps(r), (code, r)
    # The leader's operator choice goes to etcd at once, even one that
    # calls for no launch (the size is already 2).
    code, r = a.api("POST", "/api/v1/desired", {"desired": 2})
    assert code == 202, (code, r)
    state_key = "%s/%s/state" % (PREFIX, a.group)
    wait_for(lambda: json.loads(etcd.get(state_key))["operator_desired"] == 2, 10, "the desired size in etcd")
    assert len(agents_of_group(a.group)) == 2


@with_pair()
def leader_killed_standby_takes_the_same_instances(etcd, a, b):
    a.wait_running(2)
    wait_warm(a, b, 2)
    before = sorted(agents_of_group(a.group))
    t0 = time.monotonic()
    stop_roles(a, signal.SIGKILL)
    wait_for(lambda: role(b) == "leader", 10, "b leads", interval=0.02)
    took = time.monotonic() - t0
    figure("ha failover: leader kill -9 -> standby leads (TTL %d ms)" % TTL_MS, took)
    # The lease lapses within TTL of the kill; the standby campaigns every
    # evaluation interval; etcd sweeps expired leases every 500 ms.
    bound = (TTL_MS + 2 * EVAL_MS + 500) / 1000.0 * SLOW
    assert took <= bound, "b led %.2fs after the kill (bound %.2fs)" % (took, bound)
    # The agents register with b (the next manager they know) and nothing
    # is launched or stopped.
    b.wait_running(2, timeout=20)
    assert sorted(agents_of_group(a.group)) == before, (before, agents_of_group(a.group))
    assert calls(b) == 0, ha(b)
    assert ha(b)["failovers"] == 1
    b.wait_log(r"ha: became leader")
    # And b runs the group: a dead agent is replaced by b.
    kill_pid(before[0])
    wait_for(lambda: (lambda s: s and len(b.running(s)) == 2 and before[0] not in [i["pid"] for i in s["instances"]])(b.status()),
             20, "b replaced the killed agent")
    assert calls(b) >= 1


def pid_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@with_pair(env_a={"ASG_FAULT": "controller:stop-before-calls:2"})
def leader_stalled_before_its_calls_is_fenced(etcd, a, b):
    """The leader's controller stops itself (the test hook) between
    deciding and calling the provider, as a stalled VM would; the test
    continues it once the standby leads: the guard makes it call nothing."""
    needs_hooks("stopping the controller before its provider calls")
    a.wait_running(2)
    wait_warm(a, b, 2)
    ctl = a.pid("controller")
    assert calls(a) == 2
    victim = sorted(agents_of_group(a.group))[0]
    kill_pid(victim)   # a replaces it: its second batch of calls
    wait_for(lambda: pid_state(ctl) == "T", 20, "a's controller stopped before its calls")
    wait_for(lambda: role(b) == "leader", 10, "b leads while a's controller is stopped")
    kill_pid(ctl, signal.SIGCONT)
    a.wait_log(r"provider call\(s\) not made: this manager does not lead")
    wait_for(lambda: role(a) == "standby", 10, "a is the standby")
    assert calls(a) == 2, "the stalled leader called its provider after waking: %r" % ha(a)
    b.wait_running(2, timeout=20)
    assert len(agents_of_group(a.group)) == 2, agent_processes()


@with_pair()
def paused_manager_wakes_as_standby_and_makes_no_call(etcd, a, b):
    a.wait_running(2)
    wait_warm(a, b, 2)
    agents = sorted(agents_of_group(a.group))
    calls_a = calls(a)
    paused = stop_roles(a, signal.SIGSTOP)
    try:
        wait_for(lambda: role(b) == "leader", 10, "b leads while a is paused")
        # While a sleeps one of its agents dies: a would replace it on
        # waking if it still thought it led.
        kill_pid(agents[0])
        wait_for(lambda: (lambda s: s and len(b.running(s)) == 2 and agents[0] not in [i["pid"] for i in s["instances"]])(b.status()),
                 20, "b replaced the dead agent")
    finally:
        for p in paused:
            kill_pid(p, signal.SIGCONT)
    wait_for(lambda: role(a) == "standby" and ha(a)["leader"] == "mgr-b", 10, "a wakes as the standby")
    # a's controller has run since it woke (it published its new role) and
    # noticed its dead child; give it several evaluations to misbehave in.
    n = a.status()["group"]["evaluations"]
    wait_for(lambda: role(b) == "leader" and a.status()["group"]["evaluations"] >= n, 10, "a idle")
    t_end = time.monotonic() + 4 * EVAL_MS / 1000.0 * SLOW
    while time.monotonic() < t_end:
        assert calls(a) == calls_a, "the fenced old leader called its provider: %r" % ha(a)
        time.sleep(0.1)
    # Two agents: none launched by a. One b replaces for missed probes (a
    # busy machine) may still be stopping: that settles, an extra launch
    # would not.
    wait_for(lambda: len(agents_of_group(a.group)) == 2, 15, "two agents of the group")


@with_pair()
def etcd_down_leader_stops_acting_and_resumes(etcd, a, b):
    a.wait_running(2)
    wait_warm(a, b, 2)
    etcd.stop(0)
    t0 = time.monotonic()
    wait_for(lambda: role(a) == "standby", 10, "a stops acting")
    took = time.monotonic() - t0
    assert took <= TTL_MS / 1000.0 * SLOW + 0.5, "a acted %.2fs after etcd went (TTL %d ms)" % (took, TTL_MS)
    assert ha(a)["error"], ha(a)
    # Nobody acts: a dead agent is not replaced, the others keep running.
    agents = sorted(agents_of_group(a.group))
    calls_a, calls_b = calls(a), calls(b)
    kill_pid(agents[0])
    wait_for(lambda: (lambda s: s and any(i["state"] != "running" for i in s["instances"]) or
                      len(s["instances"]) < 2)(a.status()), 10, "a saw the agent die")
    assert calls(a) == calls_a and calls(b) == calls_b
    assert all(alive(p) for p in agents[1:])
    etcd.start(0)
    wait_for(lambda: role(a) == "leader" or role(b) == "leader", 20, "a leader again")
    leader = a if role(a) == "leader" else b
    leader.wait_running(2, timeout=20)
    assert len(agents_of_group(a.group)) == 2


@with_pair(members=3, ttl_ms=5000)
def one_etcd_member_of_three_lost_changes_no_leader(etcd, a, b):
    """The member lost is etcd's own leader, the worst case: etcd holds an
    election (its election timeout is 1 s) while the managers' calls to
    that member fail over to the others. At asg's default lease (5 s), as a
    2 s lease renewed within 1.6 s may not outlast that."""
    a.wait_running(2)
    term = ha(a)["term"]
    lost = wait_for(lambda: etcd.leader() is not None and etcd.leader() + 1, 10, "etcd's leader") - 1
    etcd.stop(lost)
    t_end = time.monotonic() + 3 * 5.0
    while time.monotonic() < t_end:
        ha_a, ha_b = ha(a), ha(b)
        assert ha_a["role"] == "leader" and ha_a["term"] == term, ha_a
        assert ha_b["role"] == "standby" and ha_b["leader"] == "mgr-a", ha_b
        time.sleep(0.1)
    assert ha(a)["failovers"] == 1 and calls(b) == 0


SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


def version_of(pid):
    """The version an agent's service answers (its --answer), or None."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return None
    return args[args.index(b"--answer") + 1].decode() if b"--answer" in args else None


class AgentWatch:
    """Samples the group's agent processes every 50 ms on a thread: the
    most alive at once, and every pid each instance id ever had."""

    def __init__(self, group):
        self.group, self.most, self.pids = group, 0, {}
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping.wait(0.05):
            procs = {i: [p for p in ps if not self.forked(p)] for i, ps in agent_processes().items()
                     if i.startswith(self.group + "-")}
            self.most = max(self.most, sum(len(p) for p in procs.values()))
            for ident, pids in procs.items():
                self.pids.setdefault(ident, set()).update(pids)

    @staticmethod
    def forked(pid):
        """A child of an agent not yet exec'd (its service starting), or
        LeakSanitizer's tracer at its exit: the agent's command line, not
        another instance."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%d/cmdline" % ppid, "rb") as f:
                return f.read().split(b"\0")[0].endswith(b"asg-agent")
        except (OSError, ValueError, IndexError):
            return False

    def stop(self):
        self.stopping.set()
        self.t.join(10)
        return self


def rollout_of(m):
    code, r = m.api("GET", "/api/v1/rollout")
    return r if code == 200 else None


@test
def rollout_goes_on_after_a_leader_failover():
    """A group of 3 serving v1; both managers reload v2; the leader starts
    a rollout (surge 1, bake 3 s) and is killed -9, supervisor and roles,
    once it has replaced one instance. The standby leads and finishes the
    rollout from the state in etcd (the rollout, the specs by digest, each
    instance's spec): every instance ends on v2, none left behind on v1,
    none launched twice, never more agents than 3 + surge (+ any the old
    leader was still stopping), and its rollout status says succeeded.
    (Without the rollout in etcd the new leader knows of no rollout and
    the v1 instances stay.)"""
    etcd = Etcd()
    d = tempfile.mkdtemp(prefix="asg-haro-")
    a, b = pair(etcd, min_instances=1, max_instances=6, desired_instances=3)

    def service(version):
        return ["/usr/bin/python3", SERVICE, "{port}", os.path.join(d, "{port}.info"), "--answer", version]

    for m in (a, b):
        m.cfg["provider"].update({"boot_timeout_ms": 8000})
        m.cfg["provider"]["local"].update({"kill_timeout_ms": 2000, "service_health": "http:/",
                                           "service": service("v1")})
        # The group's size is the test's: no scaling on load.
        m.cfg["policy"].update({"scale_in_below": 0.0, "scale_out_above": 1.0,
                                "scale_in_stabilization_ms": 600000})
        m.write_config()
    watch = None
    with watched([a, b], etcd.cleanup, lambda: shutil.rmtree(d, ignore_errors=True)):
        start_pair(a, b)
        a.wait_running(3)
        wait_warm(a, b, 3)
        assert sorted(version_of(p) for p in agents_of_group(a.group)) == ["v1"] * 3
        for m in (a, b):
            reloads = metrics(m).get(("asg_config_reloads_total", (("result", "ok"),)), 0)
            m.cfg["provider"]["local"]["service"] = service("v2")
            m.write_config()
            m.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: metrics(m)[("asg_config_reloads_total", (("result", "ok"),))] > reloads, 10,
                     "the reload")
        wait_for(lambda: a.status()["group"]["launch_spec_generation"] == 2, 10, "a at generation 2")
        watch = AgentWatch(a.group)
        code, r = a.api("POST", "/api/v1/rollout", {"action": "start", "max_surge": 1, "bake_s": 3})
        assert code == 202, (code, r)
        wait_for(lambda: (lambda r: r and r["state"] == "running" and r["replaced"] >= 1)(rollout_of(a)), 30,
                 "a replaced one instance")
        s = a.status()
        stopping = len([i for i in s["instances"] if i["state"] == "terminating"])
        r = rollout_of(a)
        assert r["state"] == "running" and r["remaining"] >= 1, r
        stop_roles(a, signal.SIGKILL)
        wait_for(lambda: role(b) == "leader", 10, "b leads")
        r = wait_for(lambda: (lambda r: r if r and r["state"] in ("succeeded", "failed", "rolled_back",
                                                                  "cancelled") else None)(rollout_of(b)),
                     60, "b's rollout over")
        assert r["state"] == "succeeded", r
        # Its last old instance is stopping as it succeeds.
        s = wait_for(lambda: (lambda s: s if s and len(b.running(s)) == 3 and len(s["instances"]) == 3 and
                              len(agents_of_group(a.group)) == 3 else None)(b.status()), 30, "3 instances")
        watch.stop()
        gen = s["group"]["launch_spec_generation"]
        assert all(i["launch_spec_generation"] == gen for i in s["instances"]), s["instances"]
        assert sorted(version_of(p) for p in agents_of_group(a.group)) == ["v2"] * 3, agent_processes()
        twice = {i: p for i, p in watch.pids.items() if len(p) > 1}
        assert not twice, "instance ids launched twice: %r" % twice
        assert watch.most <= 3 + 1 + stopping, "%d agents at once (%d being stopped at the kill)" % (
            watch.most, stopping)
        assert r["to_generation"] == gen and r["remaining"] == 0, r
        assert re.search(r"ha: rollout 1 taken over from the last leader, running", b.log()), b.log()[-3000:]


def ec2_pair(etcd, fake):
    a, b = pair(etcd)
    for m in (a, b):
        sec = ec2_sections(fake)
        sec["group"]["name"] = a.group
        # The size is the operator's: the load policy stays out of it.
        sec["policy"] = {"scale_out_above": 1.0, "scale_in_below": 0.0}
        for k, v in sec.items():
            m.cfg.setdefault(k, {}).update(v)
        m.write_config()
    return a, b


def ec2_failover_mid_launch(fault):
    """On the fake EC2: the leader's RunInstances creates the instance but
    its answer is lost (stalled past the call timeout), and the leader is
    killed before it can ask again; the new leader takes the group over.
    Returns the fake's stats and b's status once b runs 3."""
    etcd, fake = Etcd(), FakeEC2(stall=3.0, hide=30.0)
    a, b = ec2_pair(etcd, fake)
    with watched([a, b], fake.stop, etcd.cleanup):
        start_pair(a, b, EC2_ENV, EC2_ENV)
        a.wait_running(2, timeout=30)
        wait_warm(a, b, 2)
        fake.fault("RunInstances", fault, 1)
        code, _ = a.api("POST", "/api/v1/desired", {"desired": 3})
        assert code == 202, code
        wait_for(lambda: fake.stats()["created"] == 3, 20, "the third instance created")
        stop_roles(a, signal.SIGKILL)      # its answer never came back
        wait_for(lambda: role(b) == "leader", 10, "b leads")
        b.wait_running(3, timeout=40)
        # Two of b's reconciliations more (each lists the group), while a
        # hidden instance is still missing from the listing.
        n = fake.stats()["actions"]["DescribeInstances"]
        wait_for(lambda: fake.stats()["actions"]["DescribeInstances"] >= n + 2, 20, "two reconciliations")
        st = fake.stats()
        assert fault != "lost-and-hidden" or st["hidden"] == 1, "too slow to see the hidden window: %s" % st
        return st, b.status(), b.log()


@test
def ec2_failover_mid_launch_adopts_the_instance():
    """The instance shows in DescribeInstances: the new leader adopts it by
    its tags and launches nothing."""
    st, s, _ = ec2_failover_mid_launch("timeout-after-create")
    assert st["created"] == 3, "a launch made twice: %s" % st
    assert sorted(st["live"]) == sorted(i["id"] for i in s["instances"]), (st["live"], s["instances"])
    assert st["bad_signatures"] == 0 and s["ha"]["provider_calls"] == 0, (st, s["ha"])


@test
def ec2_failover_mid_launch_asks_again_with_the_same_token():
    """The instance is not in DescribeInstances yet (EC2's eventual
    consistency): the new leader finds the launch in the last leader's
    state in etcd and asks again with the same ClientToken; EC2 answers with
    the instance made the first time. Exactly one instance for that launch
    (fails without the state: b launches a fourth)."""
    st, s, log = ec2_failover_mid_launch("lost-and-hidden")
    assert st["created"] == 3, "a launch made twice: %s" % st
    assert st["token_replays"] >= 1, st
    assert sorted(st["live"]) == sorted(i["id"] for i in s["instances"]), (st["live"], s["instances"])
    assert re.search(r"ha: the last leader's launch of \S+ had no answer: asking again with its token", log)


@test
def etcd_over_tls_with_a_client_certificate():
    """etcd serving https and asking for client certificates: with ha.tls
    (CA, certificate, key) the manager leads; without its certificate, or
    trusting another CA, it names the failure and never leads."""
    etcd = Etcd(tls=True)
    p = etcd.tls
    cases = [({"ca": p["ca.crt"], "cert": p["client.crt"], "key": p["client.key"]}, None),
             ({"ca": p["ca.crt"]}, r"ha: .*etcd https://127\.0\.0\.1:\d+: "),
             ({"ca": p["other-ca.crt"], "cert": p["client.crt"], "key": p["client.key"]},
              r"ha: .*(SSL|certificate)")]
    managers = []
    with watched(managers, etcd.cleanup):
        for tls, failure in cases:
            m = Manager("hatls", ha={"etcd": etcd.endpoints(), "lease_ttl_ms": 2000, "tls": tls})
            managers.append(m)
            m.start()
            if failure is None:
                wait_for(lambda: role(m) == "leader", 10, "the manager leads over TLS")
                m.wait_running(2)
                m.stop()
            else:
                m.wait_log(failure)
                s = m.status()
                assert s["ha"]["role"] == "standby" and s["ha"]["error"] and s["ha"]["provider_calls"] == 0, s["ha"]
                assert not agents_of_group(m.group)


# An "etcd" that grants every lease and wins every transaction: whoever
# runs it decides that the manager leads.
YES_ETCD = r"""
import http.server, sys
ANSWER = b'{"ID": "7", "TTL": "5", "result": {"ID": "7", "TTL": "5"}, "succeeded": true, "header": {"revision": "5"}}'
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@test
def strangers_etcd_on_loopback_is_not_believed():
    """etcd is down and another local user (uid 65534) squats its loopback
    port with an "etcd" that makes every manager the leader: refused, by
    the uid holding the port, and the manager launches nothing. The same
    server run by our own uid is believed (the manager leads and launches):
    the owner is what tells them apart."""
    port = free_port()
    for stranger in (True, False):
        srv = subprocess.Popen((["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if stranger else [])
                               + ["/usr/bin/python3", "-c", YES_ETCD, str(port)])
        STARTED.add(srv.pid)
        m = Manager("hastranger", ha={"etcd": ["http://127.0.0.1:%d" % port], "lease_ttl_ms": 2000})
        with watched([m], lambda: stop_process(srv)):
            wait_for(lambda: srv.poll() is not None or port_listening(port), 10, "the squatter listening")
            m.start()
            if stranger:
                m.wait_log(r"etcd http://127\.0\.0\.1:%d: the port is held by uid 65534, neither root nor ours" % port)
                s = m.status()
                assert s["ha"]["role"] == "standby" and "uid 65534" in s["ha"]["error"], s["ha"]
                assert s["ha"]["provider_calls"] == 0 and not agents_of_group(m.group), s["ha"]
            else:
                wait_for(lambda: role(m) == "leader", 10, "led by our own uid's server")
                m.wait_running(2)


@test
def etcd_port_nobody_holds_is_not_trusted():
    """The port-owner check fails closed: with nothing on the plaintext
    etcd port, "no stranger holds it" is not taken for "ours holds it"
    (whoever binds it first would be believed): the manager says so, stays
    standby and launches nothing. Real etcd (ours) on that port is then
    believed: the manager leads and launches."""
    etcd = Etcd()
    etcd.stop(0)
    port = etcd.members[0]["client"]
    m = Manager("hanobody", ha={"etcd": etcd.endpoints(), "lease_ttl_ms": 2000})
    with watched([m], etcd.cleanup):
        m.start()
        m.wait_log(r"etcd http://127\.0\.0\.1:%d: nothing listens on port %d.*not trusted" % (port, port))
        s = m.status()
        assert s["ha"]["role"] == "standby" and "nothing listens" in s["ha"]["error"], s["ha"]
        assert s["ha"]["provider_calls"] == 0 and not agents_of_group(m.group), s["ha"]
        etcd.start(0)
        wait_for(lambda: role(m) == "leader", 15, "led once our etcd holds the port")
        m.wait_running(2)


def port_listening(port):
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


HOSTILE = [b"not json", b"[1,2,3]", b'{"ID": {"x": 1}, "TTL": [5]}', b'{"ID": "0", "TTL": "0"}',
           b'{"result": "x"}', b'{"succeeded": true, "header": {"revision": "-9"}}',
           b'{"responses": [{"response_range": {"kvs": [{"value": "!!notbase64!!"}]}}]}',
           b'{"responses": [{"response_range": {"kvs": [{"value": "' + b"QUFB" * 400 + b'"}]}}]}',
           b'{"kvs": "nope"}', b"{" * 100000]


@test
def hostile_etcd_answers_make_no_leader_and_no_crash():
    """Whatever answers on the etcd port (wrong JSON, wrong types, huge
    values, bad base64, errors; none of them a valid lease grant): the
    manager names the failure, never leads on it, launches nothing, and no
    process dies."""
    import http.server
    import threading
    answers = {"n": 0}

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = HOSTILE[answers["n"] % len(HOSTILE)]
            answers["n"] += 1
            self.send_response(200 if answers["n"] % 7 else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    m = Manager("hostile", ha={"etcd": ["http://127.0.0.1:%d" % srv.server_address[1]], "lease_ttl_ms": 2000})
    with watched([m], srv.shutdown):
        m.start()
        pids = dict(m.status()["processes"])
        wait_for(lambda: answers["n"] > 3 * len(HOSTILE), 30, "every hostile answer given a few times")
        s = m.status()
        assert s["ha"]["role"] == "standby" and s["ha"]["error"], s["ha"]
        assert s["ha"]["provider_calls"] == 0 and not agents_of_group(m.group), s["ha"]
        assert s["processes"] == pids, (pids, s["processes"])
        assert re.search(r"ha: (keeping the lease|campaigning|writing|reading)", m.log())


@test
def ha_config_errors_name_the_key():
    for ha_sec, want in (({"etcd": ["http://10.1.2.3:2379"]}, "plaintext off loopback"),
                         ({"etcd": ["127.0.0.1:2379"]}, "is not http(s)://HOST:PORT"),
                         ({"etcd": ["http://127.0.0.1:2379"], "id": "a b"}, "ha.id must be"),
                         ({"etcd": ["http://127.0.0.1:2379"], "prefix": "asg"}, "ha.prefix must be"),
                         ({"etcd": ["https://127.0.0.1:2379"], "tls": {"cert": "/x.crt"}},
                          "ha.tls.cert and ha.tls.key go together"),
                         ({"lease_ttl_ms": 100}, "ha.lease_ttl_ms")):
        m = Manager("hacfg", ha=ha_sec)
        try:
            r = run([BIN + "/asgd", "-t", "-c", m.cfg_path])
            assert r.returncode == 1 and want in r.stderr, (ha_sec, r.stderr)
            assert re.search(r"asg\.cfg:\d+: ", r.stderr), r.stderr
        finally:
            m.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests())
