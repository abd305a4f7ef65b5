# asg — build, run and test. `make run` and `make test` each work as the
# only command on a fresh Debian 12 machine: they install what is missing
# (scripts/install-deps.sh), then build and go.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PYTHON  ?= /usr/bin/python3

# Test hooks (ASG_FAULT) exist only in the sanitized builds, never in the
# release build that make install and make run use.
# SAN=1 builds with AddressSanitizer + UBSan into build/asan; SAN=thread
# with ThreadSanitizer into build/tsan; SAN=fuzz with clang's libFuzzer
# instrumentation into build/fuzz (make fuzz).
ifeq ($(SAN),fuzz)
BUILD   ?= build/fuzz
BINDIR  ?= build/fuzz/bin
SANFLAGS = -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -DASG_TEST_HOOKS
OPT      = -O1
else ifeq ($(SAN),thread)
BUILD   ?= build/tsan
BINDIR  ?= build/tsan/bin
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer -DASG_TEST_HOOKS
OPT      = -O1
else ifeq ($(SAN),1)
BUILD   ?= build/asan
BINDIR  ?= build/asan/bin
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
           -DASG_TEST_HOOKS
OPT      = -O1
else
BUILD   ?= build/release
BINDIR  ?= bin
SANFLAGS =
OPT      = -O2
endif

PKGS    = grpc libprotobuf-c libconfig libcrypto libssl libxml-2.0 libcurl json-c inih libmicrohttpd \
          libnghttp2 libsystemd
# The history's database (history/, report/histq.c).
PKGS   += sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

GEN     = $(BUILD)/gen
# Ours are added to what the environment or the command line gives
# (CFLAGS, CPPFLAGS, LDFLAGS: a package build's hardening from
# dpkg-buildflags), never put in their place. The optimisation comes
# before the user's CFLAGS (their -O0 wins); what the code needs (the
# standard, the includes, the sanitizers) after them.
# Warnings are errors only where we choose the compiler: `make test` (and
# so CI) sets WERROR=-Werror; a user's or a distribution's newer compiler
# warns and builds.
WERROR  ?=
ALL_CFLAGS  = $(OPT) -g $(CPPFLAGS) $(CFLAGS) \
              -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
              -Wall -Wextra $(WERROR) -Wno-missing-field-initializers \
              -I$(GEN) -I. $(SANFLAGS) $(PKG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) -Wl,--as-needed $(SANFLAGS)
# The flags an object was built with: a change (WERROR set, other CFLAGS)
# rebuilds every object instead of mixing old and new ones.
FLAGS_STAMP = $(BUILD)/flags
LIBS    = $(PKG_LIBS) -lm -lpthread -lrt

PROTOS  = asg health
GEN_C   = $(PROTOS:%=$(GEN)/%.pb-c.c)
GEN_H   = $(PROTOS:%=$(GEN)/%.pb-c.h)

LIB_SRC = common/util.c common/proc.c common/config.c common/cron.c common/pki.c common/identity.c common/strbuf.c common/ctlsock.c \
          common/utf8.c common/secret.c \
          shm/table.c shm/tabledir.c shm/migrate.c shm/confseg.c shm/ops.c shm/snapshot.c proto/rpc.c proto/h2probe.c report/render.c report/zero.c report/plot.c \
          agent/walk.c agent/service.c agent/workload.c policy/policy.c policy/zero.c policy/forecast.c policy/schedule.c policy/replay.c provider/provider.c provider/join.c provider/local.c provider/spec.c \
          aws/sigv4.c aws/ec2_xml.c aws/profile_file.c aws/creds.c aws/ec2.c provider/ec2.c provider/exec.c \
          lb/lb.c lb/haproxy.c lb/follow.c lb/elbv2.c ha/etcd.c ha/ha.c
LIB_SRC += common/url.c common/lifecycle_msg.c
# Notifications: the webhooks' config, CloudEvents JSON and their report.
LIB_SRC += common/webhook_cfg.c report/cloudevent.c report/notify_report.c
LIB_SRC += report/histq.c
LIB_SRC += common/suspend.c
# The termination policy's names, which the config's check reads.
LIB_SRC += common/termination.c
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o) $(PROTOS:%=$(BUILD)/gen/%.pb-c.o)
LIB     = $(BUILD)/libasg.a

CONTROLLER_SRC = controller/controller.c controller/evaluate.c controller/plan.c controller/rows.c \
                 controller/calls.c controller/reconcile.c controller/balancer.c controller/requests.c \
                 controller/takeover.c controller/admit.c controller/lb_table.c \
                 controller/rollout.c controller/rollout_plan.c controller/plan_steps.c \
                 controller/ha_rollout.c controller/lifecycle.c controller/lifecycle_rows.c
ASGD_SRC  = supervisor/asgd.c supervisor/notify.c monitor_s/monitor.c monitor_s/relay.c $(CONTROLLER_SRC) status/status.c status/rollout_api.c status/lifecycle_api.c
AGENT_SRC = agent/agent.c
CTL_SRC   = asgctl/asgctl.c asgctl/login.c asgctl/api.c asgctl/act.c asgctl/rollout.c asgctl/lifecycle.c
CTL_SRC  += asgctl/history.c
# The history role (history/) and its API.
HISTORY_SRC = history/history.c history/store.c history/activity.c
ASGD_SRC += $(HISTORY_SRC) status/history_api.c
ASGD_SRC += status/suspend_api.c
CTL_SRC  += asgctl/ops.c

PROGRAMS = $(BINDIR)/asgd $(BINDIR)/asg-agent $(BINDIR)/asgctl
# The balancer's weights (on a line of their own: others add to the list above).
CONTROLLER_SRC += controller/weights.c
# The notifier role (webhook/notify.h).
ASGD_SRC += webhook/notify.c status/notify_api.c
CONTROLLER_SRC += controller/suspend.c
# Operators' controls on an instance: protection, standby (issue 30).
CONTROLLER_SRC += controller/instance_ops.c controller/victim.c
ASGD_SRC += status/instance_api.c
CTL_SRC += asgctl/instance.c

UNIT_SRC = tests/check_main.c tests/check_table.c tests/check_walk.c \
           tests/check_config.c tests/check_policy.c tests/check_rpc.c \
           tests/check_sigv4.c tests/check_ec2_xml.c \
           tests/check_creds.c tests/check_controller.c tests/check_admit.c tests/check_lb.c tests/check_schedule.c \
           tests/check_text.c tests/check_exec.c tests/check_layout.c tests/check_layout_cfg.c \
           tests/check_migrate.c tests/check_plan.c tests/check_notify.c tests/check_rollout.c tests/check_rollout_api.c \
           tests/check_ha_rollout.c tests/check_lifecycle.c
UNIT_SRC += tests/check_notify_ce.c
UNIT_SRC += tests/check_history.c
UNIT_SRC += tests/check_suspend.c
# Protection, standby, the termination policy (issue 30).
UNIT_SRC += tests/check_ops.c
UNIT_BIN = $(BUILD)/tests/check_unit


.PHONY: install-man man-keys install-units check deb deb-test FORCE
.PHONY: layout tsan tsan-run all run test test-all deps test-deps bench bench-deps bench-bin fuzz fuzz-run fuzz-replay chaos clean install unit integration asan-test help
.SECONDARY: $(GEN_C) $(GEN_H)

# Test tools: built beside the unit tests, for the integration tests;
# never installed.
TEST_TOOLS = $(BUILD)/tests/tablefmt

all: $(PROGRAMS) $(TEST_TOOLS)

help:
	@echo "make run      install what is missing, build, start a manager with local agents"
	@echo "make test     install, build, every test (release, ASan+UBSan, threaded ones under TSan)"
	@echo "make bench    benchmarks beside h2load, failure timings, policy replay (one table)"
	@echo "make chaos    the long chaos run (50 agents, 100 role kills)"
	@echo "make tsan     every integration test under ThreadSanitizer"
	@echo "make fuzz     libFuzzer on every target for FUZZ_SECONDS (default 60)"
	@echo "make check    build and run the unit tests and house rules, installing nothing (a package build's test)"
	@echo "make deb      the Debian package, in build/deb (needs the Build-Depends: apt-get build-dep ./)"
	@echo "make all | install PREFIX=... DESTDIR=... | clean"

deps:
	@./scripts/install-deps.sh

test-deps:
	@./scripts/install-deps.sh --test

# Each entry point installs first, then re-runs make so that pkg-config is
# asked again with the packages in place.
run: deps
	@$(MAKE) --no-print-directory all
	@echo "asgd: starting in the foreground with etc/asg.cfg (Ctrl-C drains and stops)."
	@echo "      the dashboard: open the one-time login link printed below (another: bin/asgctl -c etc/asg.cfg dashboard)"
	@echo "      in another terminal: bin/asgctl -c etc/asg.cfg status ; bin/asgctl -c etc/asg.cfg load all 90"
	exec $(BINDIR)/asgd -f -c etc/asg.cfg

test: test-deps
	@$(MAKE) --no-print-directory test-all WERROR=-Werror

# What a package build runs (dh_auto_test): build and test in the tree,
# installing nothing and asking apt for nothing; the release build's
# house rules and Check units, which need only the Build-Depends. The
# integration tests need daemons (haproxy, etcd, a browser): make test.
check: all unit-bin
	@$(MAKE) --no-print-directory layout unit

# The builds use every core (the tests pace themselves: run.py).
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test-all:
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all unit-bin
	@$(MAKE) --no-print-directory layout unit integration deb-test
	@echo "== the same suite under AddressSanitizer + UBSan =="
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) SAN=1 all unit-bin
	@$(MAKE) --no-print-directory SAN=1 unit integration
	@echo "== the threaded roles under ThreadSanitizer =="
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) SAN=thread all
	@$(MAKE) --no-print-directory SAN=thread tsan-run TSAN_ONLY="$(TSAN_TESTS)"

unit-bin: $(UNIT_BIN)

# The house rules of docs/architecture.md (layers, provider kinds, calls, function lengths),
# on the sources and the build's objects.
layout: all
	$(PYTHON) tests/layout.py $(BUILD)

# Each Check test is bounded: 60 s (its default of 4 s is too tight for a
# sanitized build on a busy 2-core machine).
unit: $(UNIT_BIN) fuzz-replay
	ASG_BIN=$(BINDIR) ASAN_OPTIONS=detect_leaks=1 CK_DEFAULT_TIMEOUT=60 $(UNIT_BIN)

# ---- fuzzing ----
# Each target in tests/fuzz/fuzz_NAME.c; tests/fuzz/corpus/NAME holds its
# seeds and every input that ever crashed it. `make test` replays them all
# (tests/fuzz/replay.c, no libFuzzer needed); `make fuzz` runs libFuzzer on
# each for FUZZ_SECONDS.
FUZZ_TARGETS = config ec2_xml sigv4 agent_rpc monitor_rpc haproxy_stat h2_frames
FUZZ_SECONDS ?= 60
FUZZ_OBJS = $(BUILD)/monitor_s/monitor.o $(BUILD)/monitor_s/relay.o
EC2_SAMPLES = $(wildcard ../shared/testdata/aws/ec2-responses/*/)

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay.c $(FUZZ_OBJS) $(LIB) $(ALL_LDFLAGS) $(LIBS)

LSAN_SUPP = LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
	@for t in $(FUZZ_TARGETS); do $(LSAN_SUPP) $(BUILD)/fuzz/replay_$$t tests/fuzz/corpus/$$t || exit 1; done

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIB) $(ALL_LDFLAGS) $(LIBS)

fuzz: test-deps
	@./scripts/install-deps.sh --fuzz
	@$(MAKE) --no-print-directory SAN=fuzz CC=clang fuzz-run

fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/corpus/$$t $(BUILD)/crashes/$$t; \
	  extra=; [ $$t = ec2_xml ] && extra="$(EC2_SAMPLES)"; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(LSAN_SUPP) $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/crashes/$$t/ $(BUILD)/corpus/$$t tests/fuzz/corpus/$$t $$extra \
	    2>&1 | grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done" ; \
	  if ls $(BUILD)/crashes/$$t/* >/dev/null 2>&1; then echo "CRASH in $$t: $(BUILD)/crashes/$$t"; exit 1; fi; \
	done

integration: all
	ASG_BIN=$(BINDIR) ASG_ARTIFACTS=$(BUILD) $(PYTHON) tests/integration/run.py --chaos-short

# ThreadSanitizer: gRPC, MHD and OpenSSL are not instrumented, so only
# races that our own code takes part in are reported. `make test` runs the
# tests whose threads share our state (the status role's HTTP threads and
# reloads, the monitor's gRPC handlers, the agent's RPC and service-check
# threads);
# `make tsan` runs every integration test.
TSAN_TESTS = status_serves_through_reloads status_api_actions_go_through_the_controller \
	status_api_reads_and_refuses_bad_input metrics_parsed_by_prometheus_client \
	swarm_hosts_many_agents_that_register_answer_and_leave mutual_tls_by_default_binds_every_identity \
	garbage_stalls_and_floods_do_not_hurt_the_manager agent_registers_with_backoff_and_deregisters \
	agent_runs_the_operators_service agent_checks_its_service_over_http agent_checks_an_https_service_with_its_ca \
	stranger_cannot_use_the_api_by_default operator_gets_through_a_connection_flood
TSAN_ENV = TSAN_OPTIONS="ignore_noninstrumented_modules=1 second_deadlock_stack=1"

tsan: test-deps
	@$(MAKE) --no-print-directory SAN=thread all
	@$(MAKE) --no-print-directory SAN=thread tsan-run TSAN_ONLY=

tsan-run:
	ASG_BIN=$(BINDIR) ASG_ARTIFACTS=$(BUILD) $(TSAN_ENV) $(PYTHON) tests/integration/run.py $(TSAN_ONLY)

# The long chaos run: 100 role kills and the rest, on 50 agents.
# ---- benchmarks: one table, and build/bench/results.json ----
BENCH_BIN = $(BUILD)/bench/snapshot_bench $(BUILD)/bench/probe_load

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(ALL_LDFLAGS) $(LIBS)

bench: bench-deps
	@$(MAKE) --no-print-directory all bench-bin
	ASG_BIN=$(BINDIR) $(PYTHON) bench/bench.py

bench-deps:
	@./scripts/install-deps.sh --bench

bench-bin: $(BENCH_BIN)

# In the sanitized build: it alone has the test hook that kills a role
# holding the table lock, and it checks memory on the way.
chaos: test-deps
	@$(MAKE) --no-print-directory SAN=1 all
	ASG_BIN=build/asan/bin $(PYTHON) tests/integration/chaos.py

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

FORCE:

$(BUILD)/gen/%.pb-c.o: $(GEN)/%.pb-c.c $(GEN_H) $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c $(GEN_H) $(wildcard */*.h) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

# The dashboard page, embedded as one C string (no build step at run time).
$(GEN)/dashboard_html.c: status/dashboard.html
	@mkdir -p $(GEN)
	{ echo 'const char dashboard_html[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(BUILD)/gen/dashboard_html.o: $(GEN)/dashboard_html.c $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BINDIR)/asgd: $(ASGD_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/dashboard_html.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BINDIR)/asg-agent: $(AGENT_SRC:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BINDIR)/asgctl: $(CTL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%.o: tests/%.c $(GEN_H) $(wildcard */*.h) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(UNIT_BIN): $(UNIT_SRC:%.c=$(BUILD)/%.o) $(CONTROLLER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/history/activity.o $(BUILD)/history/store.o $(BUILD)/status/rollout_api.o $(BUILD)/status/lifecycle_api.o $(BUILD)/status/suspend_api.o $(BUILD)/supervisor/notify.o $(BUILD)/monitor_s/monitor.o $(BUILD)/monitor_s/relay.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/tablefmt: $(BUILD)/tests/tablefmt.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Every path under PREFIX but the configuration (/etc, as the programs
# look for it there): with PREFIX=/usr/local the units, users and
# directories go to /usr/local/lib/{systemd/system,sysusers.d,tmpfiles.d},
# which systemd reads; a package build passes PREFIX=/usr.
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
DOCDIR      ?= $(PREFIX)/share/doc/asg
SUBST = sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@BINDIR@|$(PREFIX)/bin|g' \
            -e 's|@DOCDIR@|$(DOCDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR)/asg
	install -m 0755 $(BINDIR)/asg-agent $(BINDIR)/asgctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BINDIR)/asgd $(DESTDIR)$(PREFIX)/sbin/
	test -e $(DESTDIR)$(SYSCONFDIR)/asg/asg.cfg || install -m 0644 etc/asg.cfg $(DESTDIR)$(SYSCONFDIR)/asg/asg.cfg
	install -d $(DESTDIR)$(SYSCONFDIR)/init.d $(DESTDIR)$(UNITDIR)
	$(SUBST) scripts/asgd.init > $(DESTDIR)$(SYSCONFDIR)/init.d/asgd
	chmod 0755 $(DESTDIR)$(SYSCONFDIR)/init.d/asgd
	@$(MAKE) --no-print-directory install-units

# The systemd units, the asg user and its directories, and the pages their
# Documentation= names (no build: tests/integration/t_systemd.py rates the
# installed asgd.service with systemd-analyze security).
install-units:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)
	for u in scripts/*.service; do $(SUBST) $$u > $(DESTDIR)$(UNITDIR)/$${u#scripts/} || exit 1; done
	install -m 0644 scripts/asg.sysusers $(DESTDIR)$(SYSUSERSDIR)/asg.conf
	install -m 0644 scripts/asg.tmpfiles $(DESTDIR)$(TMPFILESDIR)/asg.conf
	install -m 0644 README.md docs/systemd.md $(DESTDIR)$(DOCDIR)/

# The man pages and asgctl's bash completion, with make install. The key
# reference in asg.cfg(5) is made from asgd -k: make man-keys after a key
# changes (tests/integration/t_man.py fails until then).
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
MAN8 = man/asgd.8 man/asg-agent.8 man/asgctl.8
MAN5 = man/asg.cfg.5

install: install-man

install-man:
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 scripts/asgctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/asgctl

man-keys: $(BINDIR)/asgd
	$(PYTHON) scripts/man-keys.py $(BINDIR)/asgd

# The Debian package (debian/), built from a copy of the tree in
# DEB_DIR so that the build's files stay out of the tree; the .deb and
# its .buildinfo/.changes land in DEB_DIR. Needs the Build-Depends
# (apt-get build-dep ./), nothing else; DEB_BUILD_OPTIONS applies
# (nocheck: skip make check).
DEB_DIR  ?= build/deb
DEB_JOBS ?= auto
# make check's AWS samples live beside the tree, not in it (nor in the copy).
ASG_TESTDATA ?= $(abspath ../shared/testdata)
ASG_VERSION := $(shell sed -n 's/^\#define ASG_VERSION "\(.*\)"/\1/p' common/util.h)

deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/asg-$(ASG_VERSION)
	tar -c --exclude=./build --exclude=./bin --exclude=./.git --exclude=./$(DEB_DIR) -f - . | \
	  tar -x -C $(DEB_DIR)/asg-$(ASG_VERSION)
	cd $(DEB_DIR)/asg-$(ASG_VERSION) && ASG_TESTDATA=$(ASG_TESTDATA) dpkg-buildpackage -us -uc -b -J$(DEB_JOBS)
	@ls $(DEB_DIR)/*.deb

# The package built, linted, checked for the hardening, installed and
# purged in a throw-away root (tests/deb.py). About 2 minutes on 2 cores
# (a release build with the package's flags), bounded at 15.
deb-test:
	$(PYTHON) tests/deb.py $(BUILD)/deb-test

clean:
	rm -rf build bin
