# pflab.netfilter: `make report` runs the experiments, `make test` runs every test.
# Both install what is missing first (OS packages, .venv, collection link).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The controller runs on the system Python 3.11 of Debian 12 (ansible-core 2.19, .venv).
PYTHON ?= /usr/bin/python3
VENV ?= $(CURDIR)/.venv
BIN = $(VENV)/bin
# make test runs units, integration and sanity once more on the newest ansible-core, which
# needs Python >= 3.12: the newest such Python here (the system's, then pyenv's), in .venv-newest.
NEWEST_PYTHON ?= $(shell for p in $(wildcard /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9] \
	$(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3); do \
	"$$p" -c 'import sys, venv; print("%d.%03d" % sys.version_info[1:3], sys.executable)' 2>/dev/null; \
	done | sort -rn | head -n1 | cut -d' ' -f2)
NEWEST_VENV := $(CURDIR)/.venv-newest
MIN_KERNEL := 5.4
# chromium and fonts-liberation: the report's test opens report.html in headless Chromium;
# shellcheck: ansible-test sanity checks the shell scripts with it. bpftool: filter_facts lists BPF attachments.
# openvswitch-switch and ethtool: the layers suite's bridged labs run a switch of their own (the package's
# own service is not used; Debian starts it where systemd runs).
APT_PACKAGES := iptables nftables netcat-openbsd iproute2 util-linux procps git \
	python3 python3-venv python3-apt python3-pyroute2 python3-nftables \
	chromium fonts-liberation shellcheck bpftool openvswitch-switch ethtool
REPORT_DIR ?= $(CURDIR)/report
COLLECTION_LINK := .collections/ansible_collections/pflab/netfilter
SANITY_TREE := build/sanity/ansible_collections/pflab/netfilter

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE := 1
export PATH := $(BIN):$(PATH)

.PHONY: help setup preflight packages venv collection report matrix test test-newest unit integration molecule sanity lint bench bench-suites bench-audit bench-verdict bench-layers screenshots clean

help:
	@echo "make report  - install what is missing, run the article's experiments and the layers suite (XDP, tc,"
	@echo "               nftables netdev, Open vSwitch), write ./report/<run>/report.html for each"
	@echo "make matrix  - the order matrix (25 variants of the experiments), report in ./report/"
	@echo "make test    - install what is missing, run unit, integration, molecule, sanity and lint tests,"
	@echo "               then unit, integration and sanity again on the newest ansible-core"
	@echo "make bench   - time the rule modules against ansible.builtin.iptables and raw restores"
	@echo "make bench-suites - time make report, the layers suite, the matrix and a 20-host fleet against plain"
	@echo "                    shell scripts (installs clang for the scripts)"
	@echo "make bench-audit  - time filter_facts on 10,000 + 10,000 rules and the audit of 20 hosts"
	@echo "make bench-verdict - time flow_verdict per host and per flow on up to 10,000 rules"
	@echo "make bench-layers - time the layers suite against a plain shell script (installs clang for the script)"
	@echo "make screenshots  - retake the README's pictures from report/latest/report.html"
	@echo "make clean   - remove .venv, .venv-newest, .collections, build/ and report/"

setup: preflight packages venv collection

preflight:
	@[ "$$(id -u)" = 0 ] || { echo "pflab: run as root: labs create network namespaces and read /dev/kmsg" >&2; exit 1; }
	@k=$$(uname -r); v=$${k%%-*}; \
	if [ "$$(printf '%s\n%s\n' "$(MIN_KERNEL)" "$$v" | sort -V | head -n1)" != "$(MIN_KERNEL)" ]; then \
	  echo "pflab: kernel $$k is older than $(MIN_KERNEL)" >&2; exit 1; fi; \
	echo "pflab: root on kernel $$k (>= $(MIN_KERNEL))"

packages:
	@command -v dpkg-query >/dev/null || { echo "pflab: no apt here; install by hand: $(APT_PACKAGES)" >&2; exit 1; }
	@missing=$$(for p in $(APT_PACKAGES); do echo "$$p"; done | sort -u | comm -23 - <(dpkg-query -W \
	  -f='$${db:Status-Status} $${Package}\n' $(APT_PACKAGES) 2>/dev/null | awk '$$1 == "installed" { print $$2 }' | sort -u)); \
	if [ -n "$$missing" ]; then \
	  echo "pflab: installing OS packages:" $$missing; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "pflab: OS packages present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@echo "pflab: installing the pinned controller tools into $(VENV)"
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>&1 | { grep -v 'is ignored' || true; }
	@$(BIN)/python -m pip install -q -r requirements.txt 2>&1 | { grep -v 'is ignored' || true; }
	@touch $@

collection:
	@if [ "$$(readlink $(COLLECTION_LINK) 2>/dev/null)" != "$(CURDIR)" ]; then \
	  mkdir -p $(dir $(COLLECTION_LINK)); ln -sfn $(CURDIR) $(COLLECTION_LINK); \
	  echo "pflab: linked the checkout as pflab.netfilter in $(COLLECTION_LINK)"; fi

report: setup
	@echo "pflab: running playbooks/report.yml (the article suite and the layers suite) against the default inventory"
	ansible-playbook playbooks/report.yml -e report_dir=$(REPORT_DIR)

matrix: setup
	ansible-playbook playbooks/matrix.yml -e report_dir=$(REPORT_DIR)

test: setup unit integration molecule sanity lint test-newest
	@echo "pflab: all tests passed"

# The second controller: units, integration and sanity on the newest ansible-core. The
# property tests run 500 cases a module on the first controller and 100 on this one.
test-newest:
	@python="$(NEWEST_PYTHON)"; if [ -z "$$python" ]; then \
	  echo "pflab: SKIPPED the tests on the newest ansible-core: no Python >= 3.12 found (set NEWEST_PYTHON)"; \
	else \
	  PFLAB_PROPERTY_EXAMPLES=100 $(MAKE) --no-print-directory venv unit integration sanity VENV=$(NEWEST_VENV) \
	    PYTHON="$$python"; fi

unit:
	@echo "pflab: unit tests on $$(ansible --version | head -n1), Python $$(python -c 'import platform; print(platform.python_version())')"
	pytest -q tests/unit

integration:
	@echo "pflab: integration tests on real network namespaces"
	pytest -q tests/integration

molecule:
	@echo "pflab: molecule test of every scenario in molecule/"
	molecule test --all

# ansible-test must run from a path ending in ansible_collections/pflab/netfilter,
# so it runs on a copy of the tracked and new files, made a git work tree of its
# own (else ansible-test sees the checkout's .gitignore and skips everything).
sanity:
	@echo "pflab: ansible-test sanity"
	@rm -rf build/sanity; mkdir -p $(SANITY_TREE)
	@git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do \
	  [ ! -e "$$f" ] || printf '%s\0' "$$f"; done | xargs -0 cp --parents -t $(SANITY_TREE)
	@cd $(SANITY_TREE) && git init -q && git add -A
	@$(BIN)/python tests/sanity/offline_get_pip.py
	cd $(SANITY_TREE) && ansible-test sanity --python "$$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
	  --requirements --color no

lint:
	@echo "pflab: ansible-lint (production profile, offline)"
	ansible-lint

bench: setup
	@echo "pflab: benchmark of the rule modules (several minutes: the ansible.builtin.iptables loop is slow)"
	python bench/rules.py

bench-suites: setup
	@command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends clang; }
	python bench/suites.py

bench-audit: setup
	python bench/audit.py

bench-verdict: setup
	python bench/verdict.py

# The floor of the layers suite loads eBPF objects built with clang: installed here, never on targets.
bench-layers: setup
	@command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends clang; }
	python bench/layers.py

screenshots: setup
	python docs/screenshot.py $(REPORT_DIR)/latest/report.html docs/images

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .collections build report
