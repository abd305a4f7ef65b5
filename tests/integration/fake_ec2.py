#!/usr/bin/python3
"""A stand-in for the EC2 Query API on 127.0.0.1, for tests.

- Every request's SigV4 signature is checked with botocore (an
  implementation we did not write); a bad one gets 401 AuthFailure.
- Instances live in memory; each one is a real asg-agent process started
  from the instance's user data (its --manager), as the instance would;
  with --join in it, the CA and join token go to a 0700 directory of its
  own under --state-dir, as the script puts them in /var/lib/asg-agent.
- DescribeInstances filters by tag and state and pages with NextToken.
- RunInstances honours ClientToken: the same token returns the same
  instance, never a second one.
- Launch templates with numbered versions, each with its own ImageId and
  InstanceType (TEMPLATES; more through /_fake/template): RunInstances
  resolves LaunchTemplate.Version ("N", "$Latest", "$Default", none: the
  default), answers an unknown template or version with EC2's error codes,
  and tags the instance aws:ec2launchtemplate:id / :version (the number
  resolved), as EC2 does.
- Faults are injected on request: throttling, 500s, timeouts, and 500s or
  timeouts *after* the instance was created (the caller never learns);
  "no-agent" creates an instance whose agent never starts; "lost-and-hidden"
  times the answer out and keeps the new instance out of DescribeInstances
  for --hide seconds, as EC2's eventual consistency can.
- /latest/... serves IMDSv2 (token, role, temporary credentials).
- /_fake/stats, /_fake/fault and /_fake/template are the test's control
  (unsigned; stats give each instance's template version and image);
  /_fake/user_data/ID shows an instance's user data, as the EC2 API shows
  it to the account's users.

- The Elastic Load Balancing API (version 2015-12-01, signed for the
  service "elasticloadbalancing") on the same port: RegisterTargets,
  DeregisterTargets and DescribeTargetHealth on one target group
  (TARGET_GROUP); a deregistered target drains for --deregistration-delay
  seconds, then is gone. Stats record when each target was deregistered,
  when it was gone, and when its instance was terminated.

Usage: fake_ec2.py --agent PATH --state-dir DIR [--page-size N]; prints
its port first."""
import argparse
import base64
import json
import os
import re
import shlex
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEYS = {  # access key id -> (secret, session token or None)
    "AKIDASGTEST": ("asg-test-secret/with+slash", None),
    "ASIAASGIMDS": ("imds-secret", "imds-session-token-" + "x" * 100),
}
IMDS_ROLE = "asg-test-role"
NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}

LOCK = threading.Lock()
INSTANCES = {}      # id -> dict
ORDER = []          # ids in creation order
TOKENS = {}         # client token -> id
FAULTS = []         # [{"action", "kind", "count"}]
STATS = {"requests": 0, "bad_signatures": 0, "actions": {}, "created": 0,
         "token_replays": 0, "faults": {}, "terminated": 0, "terminated_at": {},
         "elb_registered": {}, "elb_deregistered": {}, "elb_gone": {}}
IMDS_TOKENS = set()
ARGS = None
# id -> {"name", "versions": [{"ImageId", "InstanceType"}, ...] (version N
# at index N - 1), "default": N}
TEMPLATES = {
    "lt-0123456789abcdef0": {"name": "asg-web", "default": 1, "versions": [
        {"ImageId": "ami-11111111", "InstanceType": "t3.micro"},
        {"ImageId": "ami-22222222", "InstanceType": "t3.small"},
        {"ImageId": "ami-33333333", "InstanceType": "t3.medium"}]},
}


def resolve_template(form):
    """(template id, version number, that version's data) for RunInstances'
    LaunchTemplate.*, or (EC2 error code, message, None). Lock held."""
    tid, name = form.get("LaunchTemplate.LaunchTemplateId"), form.get("LaunchTemplate.LaunchTemplateName")
    if tid and name:
        return "InvalidParameterCombination", "give LaunchTemplateId or LaunchTemplateName, not both", None
    if tid and not re.fullmatch(r"lt-[0-9a-f]{8,17}", tid):
        return "InvalidLaunchTemplateId.Malformed", "The launch template ID '%s' is malformed" % tid, None
    if name:
        tid = next((k for k, t in TEMPLATES.items() if t["name"] == name), None)
        if not tid:
            return ("InvalidLaunchTemplateName.NotFoundException",
                    "The specified launch template, with template name %s, does not exist." % name, None)
    t = TEMPLATES.get(tid)
    if not t:
        return "InvalidLaunchTemplateId.NotFound", "The specified launch template ID %s does not exist." % tid, None
    v = form.get("LaunchTemplate.Version", "$Default")
    n = len(t["versions"]) if v == "$Latest" else t["default"] if v == "$Default" else \
        int(v) if re.fullmatch(r"[1-9][0-9]{0,8}", v) else 0
    if not 1 <= n <= len(t["versions"]):
        return ("InvalidLaunchTemplateId.VersionNotFound",
                "Could not find launch template version %s for launch template %s." % (v, tid), None)
    return tid, n, t["versions"][n - 1]


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def instance_xml(i):
    tags = "".join("<item><key>%s</key><value>%s</value></item>" % (xml_escape(k), xml_escape(v))
                   for k, v in i["tags"].items())
    return ("<item><instanceId>%s</instanceId><imageId>%s</imageId>"
            "<instanceState><code>%d</code><name>%s</name></instanceState>"
            "<privateIpAddress>127.0.0.1</privateIpAddress><instanceType>%s</instanceType>"
            "<launchTime>%s</launchTime><clientToken>%s</clientToken><tagSet>%s</tagSet></item>"
            % (i["id"], xml_escape(i["image"]), CODES[i["state"]] | 0x0100, i["state"],
               xml_escape(i.get("type") or "t2.micro"), i["launch_time"], xml_escape(i["token"]), tags))


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def start_agent(inst, user_data):
    """Run what the user data would: an agent registering with --manager;
    with --join, first the CA and the join token into a 0700 directory."""
    inst["user_data"] = user_data
    m = re.search(r"--manager (\S+)", user_data)
    if not m:
        return
    args = [ARGS.agent, "--listen", "127.0.0.1:0", "--id", inst["id"], "--manager", m.group(1)]
    if " --join " in user_data:
        ca = re.search(r"<<'ASG_CA'\n(.*?)ASG_CA\n", user_data, re.S)
        tok = re.search(r"^echo ([0-9a-f]{64}) > \S+/join\.token$", user_data, re.M)
        if not ca or not tok:
            sys.stderr.write("fake_ec2: user data with --join but no CA or token\n")
            return
        d = os.path.join(ARGS.state_dir, inst["id"])
        os.mkdir(d, 0o700)
        write_private(os.path.join(d, "ca.crt"), ca.group(1))
        write_private(os.path.join(d, "join.token"), tok.group(1) + "\n")
        args += ["--join", d]
    # The agent's words: the `set -- ...` line the script hands the agent
    # (directly, or through asg-agent@.service).
    set_line = [ln for ln in user_data.splitlines() if ln.startswith("set -- ")]
    words = shlex.split(set_line[0])[2:] if set_line else []
    if "--" in words:              # the operator's service, as the shell would pass it
        cut = words.index("--")
        for flag in ("--service-health", "--service-port", "--service-requests"):
            if flag in words[:cut]:
                args += [flag, words[words.index(flag) + 1]]
        args += words[cut:]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    inst["pid"] = p.pid
    inst["proc"] = p


ELB_ACTIONS = ("RegisterTargets", "DeregisterTargets", "DescribeTargetHealth")
ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/asg-web/0123456789abcdef"
TARGETS = {}   # (instance id, port) -> {"state": ...}


def elb_gone(key):
    with LOCK:
        if TARGETS.get(key, {}).get("state") == "draining":
            del TARGETS[key]
            STATS["elb_gone"][key[0]] = time.time()


def later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.daemon = True
    t.start()


def set_state(iid, state):
    with LOCK:
        inst = INSTANCES.get(iid)
        if inst and not (state == "running" and inst["state"] != "pending"):
            inst["state"] = state


def take_fault(action):
    for f in FAULTS:
        if f["action"] in (action, "*") and f["count"] > 0:
            f["count"] -= 1
            STATS["faults"][f["kind"]] = STATS["faults"].get(f["kind"], 0) + 1
            return f["kind"]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="text/xml;charset=UTF-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                   "<Code>%s</Code><Message>%s</Message></Error></Errors>"
                   "<RequestID>%s</RequestID></Response>" % (code, xml_escape(message),
                                                             secrets.token_hex(8)))

    # ---- IMDSv2 and control ----
    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            tok = secrets.token_hex(16)
            IMDS_TOKENS.add(tok)
            return self.reply(200, tok, "text/plain")
        self.reply(400, "bad request", "text/plain")

    def do_GET(self):
        if self.path == "/_fake/stats":
            with LOCK:
                live = [i["id"] for i in (INSTANCES[x] for x in ORDER)
                        if i["state"] in ("pending", "running")]
                reasons = {i["id"]: i["tags"]["asg:termination-reason"] for i in INSTANCES.values()
                           if "asg:termination-reason" in i["tags"]}
                targets = sorted(iid for (iid, port), t in TARGETS.items() if t["state"] == "healthy")
                hidden = sum(1 for i in INSTANCES.values() if i.get("hidden_until", 0) > time.time())
                body = dict(STATS, live=live, faults_left=sum(f["count"] for f in FAULTS), targets=targets,
                            hidden=hidden,
                            reasons=reasons,
                            templates={i["id"]: i["template"] for i in INSTANCES.values() if i.get("template")},
                            versions={i["id"]: i["template_version"] for i in INSTANCES.values()
                                      if i.get("template_version")},
                            images={i["id"]: i["image"] for i in INSTANCES.values()},
                            pids=[i["pid"] for i in INSTANCES.values() if i["pid"]])
            return self.reply(200, json.dumps(body), "application/json")
        if self.path.startswith("/_fake/user_data/"):
            # What DescribeInstanceAttribute (userData) shows an account's users.
            with LOCK:
                inst = INSTANCES.get(self.path[len("/_fake/user_data/"):])
                data = inst.get("user_data", "") if inst else None
            if data is None:
                return self.reply(404, "no such instance", "text/plain")
            return self.reply(200, data, "text/plain")
        if self.path.startswith("/latest/"):
            if self.headers.get("X-aws-ec2-metadata-token") not in IMDS_TOKENS:
                return self.reply(401, "IMDSv2 token required", "text/plain")
            base = "/latest/meta-data/iam/security-credentials/"
            if self.path == base:
                return self.reply(200, IMDS_ROLE, "text/plain")
            if self.path == base + IMDS_ROLE:
                secret, token = KEYS["ASIAASGIMDS"]
                exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))
                return self.reply(200, json.dumps({"Code": "Success", "Type": "AWS-HMAC",
                                                   "AccessKeyId": "ASIAASGIMDS",
                                                   "SecretAccessKey": secret, "Token": token,
                                                   "Expiration": exp}), "text/plain")
        self.reply(404, "not found", "text/plain")

    # ---- the EC2 Query API ----
    def check_signature(self, body):
        auth = self.headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/(ec2|elasticloadbalancing)"
                         r"/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m or m.group(1) not in KEYS:
            return False
        key, date, region, service, signed, sig = m.groups()
        if service != self.service:
            return False
        secret, token = KEYS[key]
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            return False
        if token and self.headers.get("X-Amz-Security-Token") != token:
            return False
        amz_date = self.headers.get("X-Amz-Date", "")
        if not amz_date.startswith(date):
            return False
        req = AWSRequest(method="POST", url="http://%s/" % self.headers["Host"], data=body,
                         headers={n: self.headers[n] for n in names if n in self.headers})
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(key, secret, token), service, region)
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        return secrets.compare_digest(expected, sig)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/_fake/fault":
            with LOCK:
                FAULTS.append(json.loads(body))
            return self.reply(200, "{}", "application/json")
        if self.path == "/_fake/template":
            t = json.loads(body)
            with LOCK:
                TEMPLATES[t["id"]] = {"name": t["name"], "versions": t["versions"],
                                      "default": t.get("default", 1)}
            return self.reply(200, "{}", "application/json")
        if self.path == "/_fake/kill":
            iid = body.decode()
            with LOCK:
                inst = INSTANCES.get(iid)
            if inst and inst.get("proc"):
                inst["proc"].kill()
            return self.reply(200, "{}", "application/json")
        with LOCK:
            STATS["requests"] += 1
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        action = form.get("Action", "")
        elb = action in ELB_ACTIONS
        self.service, version = ("elasticloadbalancing", "2015-12-01") if elb else ("ec2", "2016-11-15")
        if not self.check_signature(body):
            with LOCK:
                STATS["bad_signatures"] += 1
            return self.error(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
        if form.get("Version") != version:
            return self.error(400, "InvalidParameterValue", "Version must be %s" % version)
        with LOCK:
            STATS["actions"][action] = STATS["actions"].get(action, 0) + 1
            fault = take_fault(action)
        if fault == "throttle":
            return self.error(503, "RequestLimitExceeded", "Request limit exceeded.")
        if fault == "500":
            return self.error(500, "InternalError", "An internal error has occurred")
        if fault == "timeout":
            time.sleep(ARGS.stall)
            return self.error(500, "InternalError", "too late")
        self.fault = fault
        handler = getattr(self, "act_" + action, None)
        if not handler:
            return self.error(400, "InvalidAction", "The action %s is not valid" % action)
        status, xml = handler(form)
        if fault == "500-after-create":
            return self.error(500, "InternalError", "An internal error has occurred")
        if fault in ("timeout-after-create", "lost-and-hidden"):
            time.sleep(ARGS.stall)
        self.reply(status, xml)

    def act_RunInstances(self, form):
        if form.get("MinCount") != "1" or form.get("MaxCount") != "1":
            return 400, self.err_xml("InvalidParameterValue", "asg launches one at a time")
        template = form.get("LaunchTemplate.LaunchTemplateId") or form.get("LaunchTemplate.LaunchTemplateName")
        if not form.get("ImageId") and not template:
            return 400, self.err_xml("MissingParameter", "ImageId")
        token = form.get("ClientToken", "")
        with LOCK:
            if token and token in TOKENS:
                STATS["token_replays"] += 1
                inst = INSTANCES[TOKENS[token]]
            else:
                launched = resolve_template(form) if template else (None, 0, {})
                if launched[2] is None:
                    return 400, self.err_xml(launched[0], launched[1])
                tid, version, data = launched
                iid = "i-" + secrets.token_hex(8) + "f"
                tags = {}
                n = 1
                while "TagSpecification.1.Tag.%d.Key" % n in form:
                    tags[form["TagSpecification.1.Tag.%d.Key" % n]] = form.get(
                        "TagSpecification.1.Tag.%d.Value" % n, "")
                    n += 1
                if template:     # EC2's own tags on an instance launched from a template
                    tags.update({"aws:ec2launchtemplate:id": tid, "aws:ec2launchtemplate:version": str(version)})
                inst = {"id": iid, "state": "pending", "token": token, "tags": tags,
                        "image": form.get("ImageId") or data.get("ImageId", ""), "pid": 0,
                        "type": form.get("InstanceType") or data.get("InstanceType", ""),
                        "template_version": version,
                        "template": "%s@%s" % (template, form.get("LaunchTemplate.Version", "$Default"))
                        if template else "",
                        "launch_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
                INSTANCES[iid] = inst
                ORDER.append(iid)
                if token:
                    TOKENS[token] = iid
                STATS["created"] += 1
                if self.fault == "lost-and-hidden":
                    # As EC2's eventual consistency can: the instance exists
                    # but DescribeInstances does not show it for a while.
                    inst["hidden_until"] = time.time() + ARGS.hide
                user_data = base64.b64decode(form.get("UserData", "")).decode()
                if self.fault == "no-agent":     # an instance whose boot never gets far
                    inst["user_data"] = user_data
                else:
                    start_agent(inst, user_data)
                later(0.3, lambda: set_state(iid, "running"))
            xml = instance_xml(inst)
        return 200, ("<RunInstancesResponse xmlns=\"%s\"><requestId>%s</requestId>"
                     "<reservationId>r-1</reservationId><ownerId>1</ownerId><groupSet/>"
                     "<instancesSet>%s</instancesSet></RunInstancesResponse>"
                     % (NS, secrets.token_hex(8), xml))

    def err_xml(self, code, msg):
        return ("<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors>"
                "<RequestID>x</RequestID></Response>" % (code, xml_escape(msg)))

    # ---- Elastic Load Balancing (v2) ----
    def elb_error(self, code, message):
        return 400, ('<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
                     "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>"
                     % (ELB_NS, code, xml_escape(message), secrets.token_hex(8)))

    def elb_targets(self, form):
        if form.get("TargetGroupArn") != TARGET_GROUP:
            return None, self.elb_error("TargetGroupNotFound", "One or more target groups not found")
        out, n = [], 1
        while "Targets.member.%d.Id" % n in form:
            out.append((form["Targets.member.%d.Id" % n], int(form.get("Targets.member.%d.Port" % n, "0"))))
            n += 1
        if not out:
            return None, self.elb_error("ValidationError", "Targets must not be empty")
        return out, None

    def act_RegisterTargets(self, form):
        targets, err = self.elb_targets(form)
        if err:
            return err
        with LOCK:
            for iid, port in targets:
                inst = INSTANCES.get(iid)
                if not inst or inst["state"] != "running":
                    return self.elb_error("InvalidTarget", "The following targets are not in a running "
                                          "state and cannot be registered: '%s'" % iid)
            for iid, port in targets:
                TARGETS[(iid, port)] = {"state": "healthy"}
                STATS["elb_registered"][iid] = time.time()
        return 200, ('<RegisterTargetsResponse xmlns="%s"><RegisterTargetsResult/><ResponseMetadata>'
                     "<RequestId>r</RequestId></ResponseMetadata></RegisterTargetsResponse>" % ELB_NS)

    def act_DeregisterTargets(self, form):
        targets, err = self.elb_targets(form)
        if err:
            return err
        with LOCK:
            for key in targets:
                t = TARGETS.get(key)
                if t and t["state"] != "draining":
                    t["state"] = "draining"
                    STATS["elb_deregistered"][key[0]] = time.time()
                    later(ARGS.deregistration_delay, lambda k=key: elb_gone(k))
        return 200, ('<DeregisterTargetsResponse xmlns="%s"><DeregisterTargetsResult/><ResponseMetadata>'
                     "<RequestId>r</RequestId></ResponseMetadata></DeregisterTargetsResponse>" % ELB_NS)

    def act_DescribeTargetHealth(self, form):
        if form.get("TargetGroupArn") != TARGET_GROUP:
            return self.elb_error("TargetGroupNotFound", "One or more target groups not found")
        with LOCK:
            members = "".join("<member><Target><Id>%s</Id><Port>%d</Port></Target><HealthCheckPort>%d"
                              "</HealthCheckPort><TargetHealth><State>%s</State></TargetHealth></member>"
                              % (iid, port, port, t["state"]) for (iid, port), t in TARGETS.items())
        return 200, ('<DescribeTargetHealthResponse xmlns="%s"><DescribeTargetHealthResult>'
                     "<TargetHealthDescriptions>%s</TargetHealthDescriptions></DescribeTargetHealthResult>"
                     "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
                     "</DescribeTargetHealthResponse>" % (ELB_NS, members))

    def act_TerminateInstances(self, form):
        ids = [v for k, v in sorted(form.items()) if k.startswith("InstanceId.")]
        items = []
        with LOCK:
            for iid in ids:
                if iid not in INSTANCES:
                    return 400, self.err_xml("InvalidInstanceID.NotFound",
                                             "The instance ID '%s' does not exist" % iid)
            for iid in ids:
                inst = INSTANCES[iid]
                prev = inst["state"]
                if prev in ("pending", "running"):
                    inst["state"] = "shutting-down"
                    STATS["terminated"] += 1
                    STATS["terminated_at"][iid] = time.time()
                    if inst.get("proc"):
                        inst["proc"].terminate()
                    later(0.3, lambda i=iid: set_state(i, "terminated"))
                items.append("<item><instanceId>%s</instanceId><currentState><code>%d</code>"
                             "<name>%s</name></currentState><previousState><code>%d</code>"
                             "<name>%s</name></previousState></item>"
                             % (iid, CODES[inst["state"]], inst["state"], CODES[prev], prev))
        return 200, ("<TerminateInstancesResponse xmlns=\"%s\"><requestId>x</requestId>"
                     "<instancesSet>%s</instancesSet></TerminateInstancesResponse>"
                     % (NS, "".join(items)))

    def act_DescribeInstances(self, form):
        filters = {}
        n = 1
        while "Filter.%d.Name" % n in form:
            vals, k = [], 1
            while "Filter.%d.Value.%d" % (n, k) in form:
                vals.append(form["Filter.%d.Value.%d" % (n, k)])
                k += 1
            filters[form["Filter.%d.Name" % n]] = vals
            n += 1
        page = int(form.get("MaxResults", "1000"))
        if page < 5 or page > 1000:
            return 400, self.err_xml("InvalidParameterValue", "MaxResults must be 5..1000")
        page = min(page, ARGS.page_size)
        start = int(base64.b64decode(form["NextToken"]).decode()) if form.get("NextToken") else 0
        with LOCK:
            match = []
            for iid in ORDER:
                i = INSTANCES[iid]
                if i.get("hidden_until", 0) > time.time():
                    continue
                ok = all((name == "instance-state-name" and i["state"] in vals) or
                         (name.startswith("tag:") and i["tags"].get(name[4:]) in vals)
                         for name, vals in filters.items())
                if ok:
                    match.append(i)
            chunk = match[start:start + page]
            res = "".join("<item><reservationId>r-%d</reservationId><ownerId>1</ownerId><groupSet/>"
                          "<instancesSet>%s</instancesSet></item>" % (k, instance_xml(i))
                          for k, i in enumerate(chunk))
        nxt = ""
        if start + page < len(match):
            nxt = "<nextToken>%s</nextToken>" % base64.b64encode(str(start + page).encode()).decode()
        return 200, ("<DescribeInstancesResponse xmlns=\"%s\"><requestId>x</requestId>"
                     "<reservationSet>%s</reservationSet>%s</DescribeInstancesResponse>"
                     % (NS, res, nxt))

    def act_CreateTags(self, form):
        with LOCK:
            for k, rid in form.items():
                if k.startswith("ResourceId.") and rid in INSTANCES:
                    n = 1
                    while "Tag.%d.Key" % n in form:
                        INSTANCES[rid]["tags"][form["Tag.%d.Key" % n]] = form.get("Tag.%d.Value" % n, "")
                        n += 1
                elif k.startswith("ResourceId."):
                    return 400, self.err_xml("InvalidInstanceID.NotFound", rid)
        return 200, ("<CreateTagsResponse xmlns=\"%s\"><requestId>x</requestId>"
                     "<return>true</return></CreateTagsResponse>" % NS)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--stall", type=float, default=2.0)
    ap.add_argument("--hide", type=float, default=15.0)
    ap.add_argument("--deregistration-delay", type=float, default=1.0)
    ap.add_argument("--state-dir", required=True, help="the instances' own directories go here")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)

    def stop(*_):
        with LOCK:
            for i in INSTANCES.values():
                if i.get("proc") and i["proc"].poll() is None:
                    i["proc"].kill()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
