#!/usr/bin/python3
"""Integration tests: provider ec2 against the fake EC2 (signatures checked by botocore)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403 (the shared harness and its imports)


def with_ec2(name, env=None, fake_args=None, tls=False, **group):
    """Decorator: a FakeEC2 and a Manager on it (not started): fn(m, fake, env)."""
    def before(sections):
        fake = FakeEC2(**(fake_args or {}))
        secs = ec2_sections(fake, tls=tls, **group)
        secs["tls"].update(sections.get("tls", {}))
        sections.update(secs)
        return (fake, dict(EC2_ENV, **(env or {}))), fake.stop
    return scenario(name, before=before, start=False)


def table_ids(m):
    return sorted(i["id"] for i in m.status()["instances"])


@with_ec2("ec2scale")
def ec2_group_scales_out_and_in(m, fake, env):
    m.start(env=env)
    s = m.wait_running(2, timeout=20)
    assert all(i["id"].startswith("i-") for i in s["instances"]), s["instances"]
    sizes = []

    def pinned(pct, want):
        m.load_all(pct)
        st = m.status()
        sizes.append(m.size(st))
        return len(m.running(st)) == want and m.size(st) == want
    wait_for(lambda: pinned(90, 4), 40, "scale out to 4 EC2 instances")
    wait_for(lambda: pinned(10, 2), 40, "scale in to 2")
    assert 2 <= min(sizes) and max(sizes) <= 4, (min(sizes), max(sizes))
    wait_for(lambda: sorted(fake.stats()["live"]) == table_ids(m), 10, "EC2 and the table agree")
    st = fake.stats()
    assert st["bad_signatures"] == 0 and st["created"] == 4, st
    assert st["terminated"] == 2, st
    assert len(st["reasons"]) == 2 and all("scale in" in r for r in st["reasons"].values()), st
    # A dead instance (its agent killed) is replaced through EC2.
    victim = m.running()[0]["id"]
    fake.kill_instance(victim)
    wait_for(lambda: victim not in table_ids(m) and len(m.running()) == 2, 20, "replacement")
    assert fake.stats()["created"] == 5
    r = m.ctl("-c", m.cfg_path, "provider", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = sorted(i["id"] for i in json.loads(r.stdout)["instances"] if i["alive"])
    assert listed == table_ids(m), (listed, table_ids(m))
    # Stopping the manager never terminates cloud instances.
    live = sorted(fake.stats()["live"])
    rc, _ = m.stop()
    assert rc == 0
    assert sorted(fake.stats()["live"]) == live, "instances terminated on stop"


@with_ec2("ec2faults", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
          min_instances=3, desired_instances=3, max_instances=4)
def ec2_faults_cause_no_duplicates(m, fake, env):
    """Throttling, 500s and timeouts, some after the instance was created:
    retries reuse the ClientToken, so exactly 3 instances exist."""
    creds = os.path.join(m.dir, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n"
                "[asg]\naws_access_key_id = AKIDASGTEST\n"
                "aws_secret_access_key = asg-test-secret/with+slash\n")
    env.update(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="asg")
    fake.fault("DescribeInstances", "500", 2)
    fake.fault("DescribeInstances", "timeout", 1)
    fake.fault("RunInstances", "500-after-create", 1)
    fake.fault("RunInstances", "timeout-after-create", 1)
    fake.fault("RunInstances", "throttle", 2)
    m.start(env=env)
    m.wait_running(3, timeout=40)
    m.wait_log(r"AWS credentials from the shared file")
    time.sleep(2.5)   # a reconciliation later: still exactly three
    st = fake.stats()
    assert st["faults_left"] == 0, st
    assert st["created"] == 3, "duplicate launches: %s" % st
    assert st["token_replays"] >= 2, st
    assert st["bad_signatures"] == 0, st
    assert sorted(st["live"]) == table_ids(m), (st["live"], table_ids(m))
    assert re.search(r"RunInstances failed \((server|network)", m.log()), "no retry logged"


@with_ec2("ec2adopt", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                          "AWS_EC2_METADATA_DISABLED": "false"}, tls=True)
def ec2_whole_manager_killed_adopts_every_instance(m, fake, env):
    """Credentials from the instance metadata (IMDSv2 on the fake); the
    manager is killed with its table and rebuilds it from DescribeInstances;
    the instances, joined before, register again with their certificates."""
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = fake.endpoint
    # As on EC2, the manager's address is fixed: agents find it again.
    m.cfg["monitor"]["listen"] = "127.0.0.1:%d" % free_port()
    m.write_config()
    m.start(env=env)
    s = m.wait_running(2, timeout=20)
    m.wait_log(r"AWS credentials from the instance metadata")
    ids = sorted(i["id"] for i in s["instances"])
    runs = fake.stats()["actions"]["RunInstances"]
    kill_pid(m.proc.pid)
    m.proc.wait()
    wait_for(lambda: not m.roles_up(), 5, "roles gone")
    os.unlink(m.table_path())      # the worst case: the table is lost too
    t0 = time.monotonic()
    m.start(env=env)
    wait_for(lambda: sorted(i["id"] for i in m.running()) == ids, 20, "both adopted and running")
    figure("ec2: manager + table lost -> instances adopted, running (s)", time.monotonic() - t0)
    st = fake.stats()
    assert st["actions"]["RunInstances"] == runs and st["created"] == 2, st
    assert st["bad_signatures"] == 0
    assert len(re.findall(r"adopted i-", m.log())) >= 2


@test
def ec2_bad_credentials_are_refused_by_the_fake():
    """The fake's botocore check can fail: a wrong secret is refused."""
    fake = FakeEC2()
    m = Manager("ec2auth", **ec2_sections(fake))
    try:
        env = dict(os.environ, **EC2_ENV)
        env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list"], env=env)
        assert r.returncode == 1 and "AuthFailure" in r.stderr, r
        assert fake.stats()["bad_signatures"] == 1
        env = dict(os.environ, **EC2_ENV)
        r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list"], env=env)
        assert r.returncode == 0 and "0 instance(s)" in r.stdout, r
    finally:
        m.cleanup()
        fake.stop()


@with_ec2("ec2join", tls=True)
def ec2_instances_join_for_their_certificates(m, fake, env):
    """tls.mode = auto on EC2: each instance's user data carries the CA and
    a one-time join token made for its launch; the agent joins, gets a
    certificate whose CN is its instance id, and registers over mutual TLS.
    A token is good once, for its own instance only; a caller without a
    certificate can make no other call."""
    grpc, asg_pb2, stubs, _, _ = python_stubs()
    m.start(env=env)
    s = m.wait_running(2, timeout=30)
    assert "plaintext" not in m.log()
    for i in s["instances"]:
        d = os.path.join(fake.dir, i["id"])
        assert not os.path.exists(os.path.join(d, "join.token")), "a spent token was kept"
        r = run(["openssl", "x509", "-noout", "-subject", "-in", d + "/agent.crt"])
        assert ("CN = %s" % i["id"]) in r.stdout, r
        m.wait_log(r"instance %s joined: join token spent" % i["id"])
    # The next launch boots no agent: its instance waits, pending, to join.
    fake.fault("RunInstances", "no-agent")
    victim = s["instances"][0]
    fake.kill_instance(victim["id"])
    pending = wait_for(lambda: [i for i in m.status()["instances"]
                                if i["state"] == "pending" and i["id"].startswith("i-")], 20,
                       "an instance that boots no agent")[0]["id"]

    def token_of(iid):
        return re.search(r"^echo ([0-9a-f]{64}) > ", fake.user_data(iid), re.M).group(1)
    ca = re.search(r"<<'ASG_CA'\n(.*?)ASG_CA\n", fake.user_data(pending), re.S).group(1)
    d = tempfile.mkdtemp(prefix="asg-join-")
    r = run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", d + "/k.pem", "-out", d + "/csr.pem", "-subj", "/CN=evil"])
    assert r.returncode == 0, r.stderr
    csr = open(d + "/csr.pem").read()
    creds = grpc.ssl_channel_credentials(ca.encode())      # the server checked, no client certificate
    with grpc.secure_channel(s["group"]["monitor_address"], creds,
                             options=[("grpc.ssl_target_name_override", "asg-manager")]) as ch:
        mon = stubs.MonitorStub(ch)

        def refused(call, req, code, words):
            try:
                call(req, timeout=10)
            except grpc.RpcError as e:
                assert e.code() == code and words in e.details(), (e.code(), e.details())
                return
            raise AssertionError("accepted: %s" % req)
        live = s["instances"][1]
        refused(mon.Deregister, asg_pb2.DeregisterRequest(instance_id=live["id"]),
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
        refused(mon.Register, asg_pb2.RegisterRequest(instance_id=pending, address="127.0.0.1:9"),
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate")
        join = asg_pb2.JoinRequest
        refused(mon.Join, join(instance_id=pending, join_token=token_of(live["id"]), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "wrong join token")
        refused(mon.Join, join(instance_id=live["id"], join_token=token_of(live["id"]), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "already spent its join token")
        refused(mon.Join, join(instance_id="i-0123456789abcdef0", join_token="0" * 64, csr_pem=csr),
                grpc.StatusCode.NOT_FOUND, "not in the group")
        refused(mon.Join, join(instance_id=pending, join_token="zz", csr_pem=csr),
                grpc.StatusCode.INVALID_ARGUMENT, "hex digits")
        refused(mon.Join, join(instance_id=pending, join_token=token_of(pending), csr_pem="junk"),
                grpc.StatusCode.INVALID_ARGUMENT, "not a PEM certificate request")
        # Its own token: a certificate for its id, whatever the request asked.
        cert = mon.Join(join(instance_id=pending, join_token=token_of(pending), csr_pem=csr),
                        timeout=10).certificate_pem
        with open(d + "/crt.pem", "w") as f:
            f.write(cert)
        with open(d + "/ca.pem", "w") as f:
            f.write(ca)
        r = run(["openssl", "x509", "-noout", "-subject", "-in", d + "/crt.pem"])
        assert ("CN = %s" % pending) in r.stdout and "evil" not in r.stdout, r.stdout
        r = run(["openssl", "verify", "-CAfile", d + "/ca.pem", d + "/crt.pem"])
        assert r.returncode == 0, r
        refused(mon.Join, join(instance_id=pending, join_token=token_of(pending), csr_pem=csr),
                grpc.StatusCode.PERMISSION_DENIED, "already spent its join token")
    shutil.rmtree(d)
    assert m.status()["group"]["refused"]["join"] >= 6, m.status()["group"]["refused"]
    st = m.status()
    assert any(i["id"] == live["id"] and i["state"] == "running" for i in st["instances"]), st
    assert fake.stats()["bad_signatures"] == 0


TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/asg-web/0123456789abcdef"


@with_ec2("ec2elb", min_instances=2, max_instances=4, desired_instances=2)
def elbv2_targets_follow_the_group(m, fake, env):
    """lb.kind = "elbv2" against the fake: every running instance becomes a
    target; scale-in deregisters a target, waits until the target group has
    drained it, and only then terminates the instance; throttled and failed
    calls are retried; every call is signed for elasticloadbalancing."""
    m.cfg["lb"] = {"kind": "elbv2", "interval_ms": 200, "drain_timeout_ms": 20000,
                   "elbv2": {"target_group_arn": TARGET_GROUP, "endpoint": fake.endpoint, "port": 8080}}
    m.write_config()
    fake.fault("RegisterTargets", "throttle", 2)
    fake.fault("DescribeTargetHealth", "500", 2)
    m.start(env=env)
    wait_for(lambda: (lambda s, t: t if s and t == table_ids(m) and len(m.running(s)) == 2 else None)(
        m.status(), fake.stats()["targets"]), 30, "both instances registered as targets")

    def pinned(pct, want):
        m.load_all(pct)
        st = m.status()
        return len(m.running(st)) == want and m.size(st) == want and \
            fake.stats()["targets"] == sorted(i["id"] for i in m.running(st))
    wait_for(lambda: pinned(90, 4), 40, "four instances, four targets")
    wait_for(lambda: pinned(10, 2), 60, "scaled in to two, two targets")
    st = wait_for(lambda: (lambda st: st if len(st["terminated_at"]) == 2 else None)(fake.stats()), 20,
                  "the two drained instances terminated")
    for iid, t_end in st["terminated_at"].items():
        dereg, gone = st["elb_deregistered"].get(iid), st["elb_gone"].get(iid)
        assert dereg and gone and dereg < gone <= t_end, (iid, dereg, gone, t_end)
    assert st["bad_signatures"] == 0 and st["faults_left"] == 0, st
    assert all(i["balancer"] == "added" for i in m.running()), m.status()["instances"]


SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.py")


@with_ec2("ec2svc")
def ec2_user_data_runs_the_operators_service(m, fake, env):
    """provider.ec2.service: the user data hands the agent `-- COMMAND`, each
    word quoted for the shell (a word with a quote and spaces survives /bin/sh
    as written); the instances serve it and report its address."""
    d = tempfile.mkdtemp(prefix="asg-ec2svc-")
    odd = "it's a \"word\" $HOME `x`"
    m.cfg["provider"]["ec2"].update({"service": ["/usr/bin/python3", SERVICE, "{port}",
                                                 os.path.join(d, "{port}.info"), odd],
                                     "service_health": "http:/"})
    m.write_config()
    try:
        m.start(env=env)
        s = m.wait_running(2, timeout=30)
        for i in s["instances"]:
            assert i["service_address"].startswith("127.0.0.1:"), i
            assert http("GET", "http://%s/" % i["service_address"])[0] == 200, i
        ud = fake.user_data(s["instances"][0]["id"])
        line = [ln for ln in ud.splitlines() if ln.startswith("set -- ")][0]
        # What /bin/sh makes of the agent's words (the line the script
        # execs the agent with, or writes for asg-agent@.service).
        shown = run(["/bin/sh", "-c", "ip=10.0.0.1; id=i-1; " + line + "; printf '%s\\n' \"$@\""])
        words = shown.stdout.split("\n")
        cut = words.index("--")
        assert words[cut + 1:cut + 6] == ["/usr/bin/python3", SERVICE, "{port}",
                                          os.path.join(d, "{port}.info"), odd], words
        assert words[words.index("--service-health") + 1] == "http:/", words
    finally:
        shutil.rmtree(d, ignore_errors=True)


@with_ec2("ec2tmpl")
def ec2_launch_template_version_is_part_of_the_launch_spec(m, fake, env):
    """provider.ec2.launch_template_version goes to RunInstances as
    LaunchTemplate.Version (the fake records it per instance); changing it
    and reloading is a new launch spec generation: the instance launched
    after it is of generation 2 with the new version, the first two stay at
    1 with the old."""
    ec2 = m.cfg["provider"]["ec2"]
    del ec2["image_id"]
    ec2.update({"launch_template": "lt-0123456789abcdef0", "launch_template_version": "3"})
    m.write_config()
    m.start(env=env)
    s = m.wait_running(2, timeout=20)
    first = sorted(i["id"] for i in s["instances"])
    templates = fake.stats()["templates"]
    assert all(templates.get(i) == "lt-0123456789abcdef0@3" for i in first), templates
    assert [i["launch_spec_generation"] for i in s["instances"]] == [1, 1], s["instances"]
    ec2["launch_template_version"] = "$Latest"
    m.cfg["group"]["desired_instances"] = 3
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log(r"launch spec generation 2: provider\.ec2\.launch_template_version changed")
    s = m.wait_running(3, timeout=20)
    gens = {i["id"]: i["launch_spec_generation"] for i in s["instances"]}
    new = [i for i in gens if i not in first]
    assert len(new) == 1 and gens[new[0]] == 2 and all(gens[i] == 1 for i in first), gens
    assert fake.stats()["templates"][new[0]] == "lt-0123456789abcdef0@$Latest", fake.stats()["templates"]
    assert fake.stats()["bad_signatures"] == 0


ROLL_LT = "lt-0a1b2c3d4e5f60718"


def template_group(m, fake, version, **rollout):
    """The group launches from ROLL_LT (version 1: ami-00000001, version 2:
    ami-00000002; version 1 the default) at version; rollout.* as given."""
    fake.template(ROLL_LT, "asg-rollout", [{"ImageId": "ami-00000001", "InstanceType": "t3.micro"},
                                           {"ImageId": "ami-00000002", "InstanceType": "t3.small"}])
    ec2 = m.cfg["provider"]["ec2"]
    del ec2["image_id"]
    ec2.update({"launch_template": ROLL_LT, "launch_template_version": version})
    m.cfg["rollout"] = dict({"bake_s": 1, "max_surge": "1", "max_unavailable": "0"}, **rollout)
    m.write_config()


def reload_version(m, version, **rollout):
    m.cfg["provider"]["ec2"]["launch_template_version"] = version
    m.cfg["rollout"].update(rollout)
    m.write_config()
    m.proc.send_signal(signal.SIGHUP)


def events(m):
    r = m.ctl("events", "-n", "200", "--json")
    assert r.returncode == 0, r.stderr
    return r.stdout


@with_ec2("ec2roll")
def ec2_rollout_replaces_template_version_1_by_version_2(m, fake, env):
    """A group of 2 launched from template version 1; a reload naming
    version 2 with rollout.auto starts a rollout: every instance ends
    launched from version 2 (as the fake, which resolves versions, says),
    none of version 1 is left, and never more than desired + 1 (max
    surge) instances are alive at once."""
    template_group(m, fake, "1")
    m.start(env=env)
    first = sorted(i["id"] for i in m.wait_running(2, timeout=20)["instances"])
    st = fake.stats()
    assert [st["versions"].get(i) for i in first] == [1, 1], st["versions"]
    assert [st["images"][i] for i in first] == ["ami-00000001"] * 2, st["images"]
    reload_version(m, "2", auto=True)
    most = []

    def all_version_2():
        st = fake.stats()
        most.append(len(st["live"]))
        s = m.status()
        done = sorted(st["live"]) == (table_ids(m) if s else None) and len(st["live"]) == 2 and \
            all(st["versions"].get(i) == 2 for i in st["live"]) and \
            all(i["state"] == "running" and i["launch_spec_generation"] == 2 for i in s["instances"])
        return done and re.search(r"rollout 1 succeeded", m.log())
    t0 = time.monotonic()
    wait_for(all_version_2, 60, "every instance launched from version 2, the rollout succeeded")
    figure("ec2: rollout of 2 instances to template version 2 (s)", time.monotonic() - t0)
    assert max(most) <= 3, "more than desired + max surge alive at once: %s" % most
    st = fake.stats()
    assert not set(first) & set(st["live"]), (first, st["live"])
    assert all("rollout 1: generation 1 replaced by 2" in st["reasons"].get(i, "") for i in first), st["reasons"]
    assert st["bad_signatures"] == 0 and st["created"] == 4, st
    assert re.search(r"rollout 1 succeeded: 2 instance\(s\) replaced", events(m)), events(m)


@with_ec2("ec2rollbad")
def ec2_unknown_template_version_fails_the_rollout_and_rolls_back(m, fake, env):
    """A reload naming a version the template does not have: each launch is
    refused by EC2 (InvalidLaunchTemplateId.VersionNotFound), said with the
    template and version; no new instance ever comes up, so the rollout
    fails and rolls back; the version 1 instances stay, and launches after
    it are of version 1 again."""
    m.cfg["provider"]["boot_timeout_ms"] = 4000
    template_group(m, fake, "1")
    m.start(env=env)
    first = sorted(i["id"] for i in m.wait_running(2, timeout=20)["instances"])
    reload_version(m, "9", auto=True, rollback=True)
    m.wait_log(r"launch \S+ failed: launch template %s, version 9: InvalidLaunchTemplateId\.VersionNotFound"
               % ROLL_LT, 20)
    m.wait_log(r"rollout 1 failed: launches of generation 2 failed \d+ times in a row .*; "
               r"rolling back to generation 1", 30)
    m.wait_log(r"rollout 1 rolled back to generation 1: launches of generation 2", 20)
    assert re.search(r"rolling back", events(m)), events(m)
    st = fake.stats()
    assert sorted(st["live"]) == first and st["created"] == 2 and st["terminated"] == 0, st
    assert st["actions"]["RunInstances"] >= 4, st["actions"]
    # The spec rolled back to stays in force: a replacement is of version 1.
    fake.kill_instance(first[0])
    wait_for(lambda: first[0] not in table_ids(m) and len(m.running()) == 2, 30, "a replacement")
    st = fake.stats()
    new = [i for i in st["live"] if i not in first]
    assert len(new) == 1 and st["versions"][new[0]] == 1, st["versions"]
    assert st["bad_signatures"] == 0


@test
def ec2_fake_resolves_template_versions_as_ec2():
    """The fake as an AWS SDK (botocore) sees it: $Latest, $Default, no
    version and a number resolve to the template's versions, each with its
    own image and type, tagged as EC2 tags them; an unknown version, name
    or id gets EC2's error codes."""
    import botocore.session
    from botocore.exceptions import ClientError
    fake = FakeEC2()
    try:
        fake.template(ROLL_LT, "asg-rollout", [{"ImageId": "ami-00000001", "InstanceType": "t3.micro"},
                                               {"ImageId": "ami-00000002", "InstanceType": "t3.small"},
                                               {"ImageId": "ami-00000003", "InstanceType": "t3.large"}],
                      default=2)
        ec2 = botocore.session.get_session().create_client(
            "ec2", region_name="us-east-1", endpoint_url=fake.endpoint,
            aws_access_key_id=EC2_ENV["AWS_ACCESS_KEY_ID"], aws_secret_access_key=EC2_ENV["AWS_SECRET_ACCESS_KEY"])

        def run_with(**lt):
            r = ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate=lt)["Instances"][0]
            tags = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
            return r["ImageId"], r["InstanceType"], tags.get("aws:ec2launchtemplate:version")
        assert run_with(LaunchTemplateId=ROLL_LT, Version="$Latest") == ("ami-00000003", "t3.large", "3")
        assert run_with(LaunchTemplateId=ROLL_LT, Version="$Default") == ("ami-00000002", "t3.small", "2")
        assert run_with(LaunchTemplateId=ROLL_LT) == ("ami-00000002", "t3.small", "2")
        assert run_with(LaunchTemplateName="asg-rollout", Version="1") == ("ami-00000001", "t3.micro", "1")

        def code(**lt):
            try:
                ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate=lt)
            except ClientError as e:
                return e.response["Error"]["Code"]
            return None
        assert code(LaunchTemplateId=ROLL_LT, Version="4") == "InvalidLaunchTemplateId.VersionNotFound"
        assert code(LaunchTemplateName="asg-nope", Version="1") == "InvalidLaunchTemplateName.NotFoundException"
        assert code(LaunchTemplateId="lt-00000000000000000") == "InvalidLaunchTemplateId.NotFound"
        st = fake.stats()
        assert st["created"] == 4 and st["bad_signatures"] == 0, st
        assert sorted(st["versions"].values()) == [1, 2, 2, 3], st["versions"]
    finally:
        fake.stop()


@with_ec2("ec2credchain", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                               "AWS_EC2_METADATA_DISABLED": "false"})
def ec2_broken_credentials_file_falls_through_to_instance_metadata(m, fake, env):
    """A credentials file that botocore too refuses (a line that is no
    key = value) is named with its line and passed over: the instance's
    role (IMDSv2 on the fake) is used, and the file's values are never
    logged."""
    creds = os.path.join(m.dir, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = AKIDNEVERLOGGED\n"
                "aws_secret_access_key = secret-never-logged\nnot a key = value line\n"
                "this line has no equals sign\n")
    env.update(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE=os.path.join(m.dir, "no-config"),
               AWS_EC2_METADATA_SERVICE_ENDPOINT=fake.endpoint)
    m.start(env=env)
    m.wait_running(2, timeout=30)
    m.wait_log(r"AWS credentials from the instance metadata")
    m.wait_log(re.escape(creds) + r":5: ")
    log = m.log()
    assert "never-logged" not in log and "AKIDNEVERLOGGED" not in log
    st = fake.stats()
    assert st["bad_signatures"] == 0 and st["created"] == 2, st


@test
def ec2_credentials_file_with_semicolon_comments():
    """`;` comments, as botocore reads them, and `[profile NAME]` in the
    config file: asgctl signs with what the files say."""
    fake = FakeEC2()
    m = Manager("ec2semi", **ec2_sections(fake))
    try:
        creds, config = os.path.join(m.dir, "credentials"), os.path.join(m.dir, "config")
        with open(creds, "w") as f:
            f.write("; the keys of the test account\n[asg]\n; the id\n"
                    "aws_access_key_id = AKIDASGTEST\n# and the secret\n"
                    "aws_secret_access_key = asg-test-secret/with+slash\n")
        with open(config, "w") as f:
            f.write("; the same, as a config profile\n[profile cfg]\nregion = us-east-1\n"
                    "aws_access_key_id = AKIDASGTEST\n"
                    "aws_secret_access_key = asg-test-secret/with+slash\n")
        for profile in ("asg", "cfg"):
            env = dict(os.environ, **EC2_ENV)
            env.update(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_PROFILE=profile,
                       AWS_SHARED_CREDENTIALS_FILE=creds, AWS_CONFIG_FILE=config)
            r = run([BIN + "/asgctl", "-c", m.cfg_path, "provider", "list"], env=env)
            assert r.returncode == 0 and "0 instance(s)" in r.stdout, (profile, r)
        assert fake.stats()["bad_signatures"] == 0
    finally:
        m.cleanup()
        fake.stop()


if __name__ == "__main__":
    sys.exit(run_tests())
