# vpc-flow-alert: `make demo` to see it work, `make test` to check everything.
# Every target installs what it needs (Python venvs under .venv*, Rust crates through cargo).

SHELL := /bin/bash
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3
VENV := $(ROOT).venv
DEPLOY_VENV := $(ROOT).venv-sam
POLICY_VENV := $(ROOT).venv-policy
CARGO ?= cargo
# Where cargo puts what it builds (CARGO_TARGET_DIR, a config file, or ./target).
TARGET_DIR := $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | $(PYTHON) -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
DEMO_VPC := 10.0.0.0/16,2600:1f18:4a2b:9e00::/56

.PHONY: all build demo test tools lint fmt clippy unit arm64 e2e template events bench bench-ratios measure measure-vrl measure-json soak fuzz policy deny deploy clean-venvs build-VpcFlowAlertFunction

all: build

build:
	$(CARGO) build --release

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

$(DEPLOY_VENV)/.installed: tests/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-deploy.txt
	touch $@

## demo: build, then show the alerts of the sample events with an example configuration.
## `check` runs its inputs in order through one incident store: what the function would send
## for those deliveries. (cargo run finds the binary wherever CARGO_TARGET_DIR puts it.)
RUN := $(CARGO) run --quiet --
demo:
	$(CARGO) build --quiet
	@echo "== a host sweep delivered as AWS delivers it: 12 payloads, one per target's log stream =="
	@echo "== (the incident opens MEDIUM and rises to HIGH; the other 10 deliveries send nothing) =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check events/sweep-*.json 2>/dev/null | grep -E '^(Subject|Text):'
	@echo
	@echo "== the same deliveries, each alone (--per-input): what a function without incidents saw =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check --per-input events/sweep-*.json 2>/dev/null | grep -c '^Subject: \[MEDIUM\]'
	@echo
	@echo "== the same 12 deliveries in one Kinesis batch (organization mode): one HIGH message =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check events/kinesis-sweep.json 2>/dev/null | grep -E '^(Subject|Text):'
	@echo
	@echo "== a port scan split over two deliveries a minute apart: MEDIUM, then HIGH =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check events/scan-split-01.json events/scan-split-02.json
	@echo
	@echo "== replies a network ACL drops: LOW, a misconfiguration, not a probe =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check events/blocked-responses.json | grep -E '^(Subject|Text):'
	@echo
	@echo "== the other samples; the default format =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check events/internal-reject.json events/port-scan.json \
	  events/ipv6.json events/internet-only.json events/control-message.json | grep -E '^(Subject|Text):'
	@echo
	@echo "== as JSON lines (what machines subscribed to the topic receive) =="
	VPC_CIDRS=$(DEMO_VPC) $(RUN) check --output json events/port-scan.json events/ipv6.json
	@echo
	@echo "== direction and flags (flow-direction, tcp-flags): the sender's own interface, a SYN-ACK reply =="
	VPC_CIDRS=$(DEMO_VPC) FLOW_LOG_FORMAT="$$(sed -n 's/^# format: //p' events/records/directions-v5.log)" \
	  $(RUN) check events/directions-v5.json | grep -E '^(Subject|Text):'
	@echo
	@echo "== a custom version-5 format: the source is the pod behind the node (pkt-srcaddr) =="
	VPC_CIDRS=$(DEMO_VPC) FLOW_LOG_FORMAT="$$(sed -n 's/^# format: //p' events/records/custom-v5.log)" \
	  $(RUN) check --output json events/custom-v5.json

## test: formatting, lints, unit, property and integration tests, the end-to-end tests, the
## deployment template (cfn-lint, sam validate, an offline `sam build`), the template's policy
## check (checkov) and the dependency check (cargo deny).
## The formatting is checked first, in a second. Then the builds run side by side: clippy's
## build then the tests' (they share target/debug, so cargo runs one at a time), beside the
## arm64 release build of `sam build` and cargo-deny's. Alone, the tests' build and the release
## build each spent minutes on one core compiling the EC2 client while the other core idled
## (`cargo build --timings`). The tools install (pip, apt) beside them. The end-to-end tests,
## the arm64 tests and the policy check (which rewrites the expanded template) run after them.
## Each step's output shows when it ends; a failed one is marked `***`. (`-j` without a number:
## make sets up no jobserver, which cargo would find closed; each cargo runs as many jobs as
## there are cores.)
test: fmt
	$(MAKE) --no-print-directory -j --output-sync=target tools clippy unit template deny
	$(MAKE) --no-print-directory arm64 e2e policy

lint: fmt clippy

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

## arm64: the byte classes' NEON code (what the function runs on Graviton) tested on aarch64,
## under qemu: qemu-user and the arm64 C library from Debian's packages, zig from the SAM venv
## (cargo-lambda's) as the linker. Only that small crate is built for aarch64.
QEMU := /usr/bin/qemu-aarch64-static
ARM64_LIBC := /usr/aarch64-linux-gnu
ARM64_PACKAGES := qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross
# Debian's packages need root: sudo asks for it when make runs as another user.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Waits for a package manager already running (a machine's first minutes) instead of failing.
APT_GET := $(SUDO) apt-get -o DPkg::Lock::Timeout=300
$(QEMU) $(ARM64_LIBC)/lib/ld-linux-aarch64.so.1:
	$(APT_GET) install -y -q $(ARM64_PACKAGES) || \
	  ($(APT_GET) update -q && $(APT_GET) install -y -q $(ARM64_PACKAGES))

arm64: $(DEPLOY_VENV)/.installed $(QEMU) $(ARM64_LIBC)/lib/ld-linux-aarch64.so.1
	rustup target add aarch64-unknown-linux-gnu
	$(CARGO) clippy -p byteclass --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
	PATH="$(DEPLOY_VENV)/bin:$$PATH" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$(ROOT)tests/arm64/zig-cc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$(QEMU) QEMU_LD_PREFIX=$(ARM64_LIBC) \
	  $(CARGO) test -p byteclass --target aarch64-unknown-linux-gnu

## tools: what the tests run besides cargo: the venvs and the arm64 packages (the targets that
## use them install them too; `make test` installs them all at once, beside the builds). Only
## qemu is named: its install brings the arm64 C library too, in one apt run.
tools: $(VENV)/.installed $(DEPLOY_VENV)/.installed $(POLICY_VENV)/.installed $(QEMU)

## e2e runs the binary `cargo test` builds (with the dev-dependencies' features): `cargo build`
## would resolve features apart and compile the SDK crates a second time.
e2e: $(VENV)/.installed
	$(CARGO) test --no-run --quiet
	VPC_FLOW_ALERT_BIN=$(TARGET_DIR)/debug/vpc-flow-alert $(VENV)/bin/python -m pytest -q tests/e2e

export SAM_CLI_TELEMETRY := 0
SAM := $(DEPLOY_VENV)/bin/sam
AWS_DEFAULT_REGION ?= us-east-1
export AWS_DEFAULT_REGION

## template: the templates as written (cfn-lint, sam validate; member.yaml for member accounts),
## then as deployed: expanded by the SAM translator offline into .aws-sam/expanded.json, its
## roles checked for actions on `*`, and cfn-lint with informational checks on it; each Mode
## (subscription, organization, s3) with its conditions evaluated (tests/deployed/test_modes.py);
## then an offline `sam build`.
## The guided deploy is driven through its prompts against moto (tests/deployed/test_guided.py).
EXPANDED := .aws-sam/expanded.json
template: $(DEPLOY_VENV)/.installed $(VENV)/.installed
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml member.yaml
	$(DEPLOY_VENV)/bin/python tests/deployed/check_deployed.py $(EXPANDED)
	$(DEPLOY_VENV)/bin/cfn-lint --include-checks I -- $(EXPANDED)
	SAM=$(SAM) $(VENV)/bin/python -m pytest -q tests/deployed
	$(SAM) validate --lint
	$(SAM) build --build-in-source
	file .aws-sam/build/VpcFlowAlertFunction/bootstrap
	file .aws-sam/build/VpcFlowAlertFunction/bootstrap | grep -q 'ARM aarch64'

$(POLICY_VENV)/.installed: tests/requirements-policy.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-policy.txt
	touch $@

## policy: checkov's CloudFormation checks, offline, on the template and on its expansion (what
## is deployed); every finding is fixed or justified where it is skipped (Metadata: checkov:
## skip in template.yaml).
policy: $(POLICY_VENV)/.installed $(DEPLOY_VENV)/.installed
	$(DEPLOY_VENV)/bin/python tests/deployed/check_deployed.py $(EXPANDED)
	$(POLICY_VENV)/bin/checkov -f template.yaml -f member.yaml -f $(EXPANDED) --framework cloudformation --skip-download --compact --quiet

## deny: licenses, bans and sources of every dependency (deny.toml says why each exception
## exists); advisories too when the RustSec database can be fetched. cargo-deny is installed
## built for a short build, not a fast binary (no link-time optimisation, opt-level 1): it
## checks this lock file in about a second either way, and installs in 2.3 min instead of 3.7.
deny:
	command -v cargo-deny >/dev/null || \
	  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=1 $(CARGO) install cargo-deny --locked
	$(CARGO) deny check licenses bans sources
	if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then \
	  $(CARGO) deny check advisories; \
	else echo "deny: the RustSec advisory database is unreachable; advisories not checked"; fi

## build-VpcFlowAlertFunction: what `sam build` runs (BuildMethod: makefile). Cross-compiles
## the release binary for arm64 without Docker (cargo-lambda with zig) and installs it as
## `bootstrap`. It builds in this repository, reusing its target/ directory.
build-VpcFlowAlertFunction: $(DEPLOY_VENV)/.installed
	rustup target add aarch64-unknown-linux-gnu
	cd $(ROOT) && PATH="$(DEPLOY_VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --bin vpc-flow-alert
	cp $(TARGET_DIR)/lambda/vpc-flow-alert/bootstrap "$(ARTIFACTS_DIR)/bootstrap"

## deploy: build, then deploy with SAM, asking for the parameters the first time.
deploy: $(DEPLOY_VENV)/.installed
	$(SAM) build --build-in-source
	$(SAM) deploy --guided

## events: regenerate events/*.json from the readable records in events/records/.
events:
	$(CARGO) run --quiet --example make_events

## measure: release binary size, init time and peak memory, as reported in the README.
measure: $(VENV)/.installed
	$(CARGO) build --release
	VPC_FLOW_ALERT_BIN=$(TARGET_DIR)/release/vpc-flow-alert $(VENV)/bin/python tests/e2e/measure.py

## measure-vrl: Vector's VRL (the vrl crate, built apart in benches/vrl-peer: about 15 minutes
## the first time) doing the same filter on the same S3 files as `check`, as reported in the README.
measure-vrl: $(VENV)/.installed
	$(CARGO) build --release
	$(CARGO) build --release --manifest-path benches/vrl-peer/Cargo.toml --target-dir $(TARGET_DIR)/vrl-peer
	VPC_FLOW_ALERT_BIN=$(TARGET_DIR)/release/vpc-flow-alert VRL_PEER_BIN=$(TARGET_DIR)/vrl-peer/release/vrl-peer $(VENV)/bin/python tests/e2e/vrl_peer.py

## measure-json: general JSON parsers (serde_json, sonic-rs, simd-json; built apart in
## benches/json-peer) reading the benchmark's decoded CloudWatch documents, beside the
## benchmark's own CloudWatch rows (the project reading the same documents) in the same run.
JSON_DOCUMENTS := $(TARGET_DIR)/json-peer/documents
measure-json:
	mkdir -p $(JSON_DOCUMENTS)
	$(CARGO) build --release --manifest-path benches/json-peer/Cargo.toml --target-dir $(TARGET_DIR)/json-peer
	PIPELINE_DOCUMENTS=$(JSON_DOCUMENTS) $(CARGO) bench --bench pipeline -- cloudwatch/
	$(TARGET_DIR)/json-peer/release/json-peer $(JSON_DOCUMENTS)/*.json

## soak: thousands of invocations of the release binary against moto's SNS while faults are
## injected; checks that every alert is delivered or its event dead-lettered (a few minutes).
SOAK_INVOCATIONS ?= 2000
soak: $(VENV)/.installed
	$(CARGO) build --release
	VPC_FLOW_ALERT_BIN=$(TARGET_DIR)/release/vpc-flow-alert SOAK_INVOCATIONS=$(SOAK_INVOCATIONS) $(VENV)/bin/python tests/e2e/soak.py

## fuzz: each cargo-fuzz target for FUZZ_SECONDS, from the committed seeds (fuzz/seeds/).
## cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := decode_event format_parse record_parse
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=512 || exit 1; \
	done

## bench: criterion benchmarks of the pipeline (not part of `make test`).
bench:
	$(CARGO) bench --bench pipeline

## bench-ratios: the same workloads against their floors in pairs run back to back (15
## rounds), the median and range of the pairs' ratios: both sides of a ratio measured seconds
## apart, not minutes apart as criterion's rows are.
bench-ratios:
	PIPELINE_PAIRED=15 $(CARGO) bench --bench pipeline

clean-venvs:
	rm -rf $(VENV) $(DEPLOY_VENV) $(POLICY_VENV)
