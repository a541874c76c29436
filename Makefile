# Outrigger: one entry point for people and CI. Install steps: tools/install/ (via scripts/tools.sh);
# checks: scripts/check-*.sh; docs/tools.md has the table of what runs in which tier.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
CARGO ?= cargo
CHECKS := $(sort $(wildcard scripts/check-*.sh))
# Every skipped test or check appends a line here (scripts/lib/skip.sh and the Rust and Python
# equivalents); `make test` prints the list at its end. Under CI=true a skip is a failure instead.
export OUTRIGGER_SKIP_LOG ?= $(CURDIR)/target/skipped.txt

.PHONY: help tools demo test skip-log-reset lint lint-rust test-rust checks fresh-check bench bench-proxy bench-agent images clean cluster-up cluster-down cluster-e2e gitops-e2e gateway-conformance

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

tools: ## install the pinned toolchain into .tools/ (idempotent)
	scripts/tools.sh

demo: ## build, then run the local loopback demo (no cluster, no cloud, no root)
	scripts/tools.sh python
	scripts/demo.sh

test: skip-log-reset tools lint-rust test-rust checks cluster-e2e ## everything CI runs: lint, unit + integration tests, manifest checks, the local-cluster e2e
	@if [[ -s "$(OUTRIGGER_SKIP_LOG)" ]]; then \
	  echo "make test: what did not run (also in $(OUTRIGGER_SKIP_LOG)):"; \
	  sort -u "$(OUTRIGGER_SKIP_LOG)" | sed 's/^/  /'; \
	else echo "make test: nothing skipped"; fi
	@echo "make test: all green"

skip-log-reset:
	@mkdir -p "$(dir $(OUTRIGGER_SKIP_LOG))" && : >"$(OUTRIGGER_SKIP_LOG)"

fresh-check: ## clone HEAD to a temp folder, run .ci/run there with an empty toolchain dir; fails on any SKIPPED
	scripts/fresh-check.sh $(FRESH_CHECK_ARGS)

lint: tools lint-rust checks ## formatting, clippy and every manifest/chart/terraform/workflow check

lint-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust:
	$(CARGO) test --workspace --locked

checks:
	@set -e; for c in $(CHECKS); do echo "==> $$c"; bash "$$c"; done

bench: bench-proxy bench-agent ## run every benchmark (not part of test)

bench-proxy: tools
	bench/proxy.sh
	bench/proxy-instructions.sh
	bench/proxy-footprint.sh
	bench/proxy-syscalls.sh

bench-agent: tools
	bench/agent.sh

cluster-up: ## start the local single-node Kubernetes cluster (root; docs/cluster.md)
	scripts/tools.sh apt cluster
	scripts/cluster.sh up

cluster-down: ## stop the local cluster and remove everything it created (idempotent)
	scripts/cluster.sh down

# The last step of `make test` (root; without root it is skipped, and under CI=true that fails).
# Writes target/cluster-e2e/summary.json; the Gateway API conformance suite and the GitOps loop run
# after the other tests even when one of them failed, and add theirs under "gateway_conformance" and
# "gitops".
cluster-e2e: ## up, build images, helm install, end-to-end tests (rollouts under load, logs, metrics), down; then gateway-conformance and gitops-e2e (root; docs/cluster.md)
	scripts/tools.sh apt go cluster flux certmanager gateway loki monitoring
	rc=0; scripts/cluster-e2e.sh || rc=$$?; scripts/gateway-conformance.sh || rc=1; scripts/gitops-e2e.sh || rc=1; exit $$rc

gitops-e2e: ## Flux on the local node reconciles flux/clusters/local from a local Git server; a commit becomes a zero-failure rollout (root; docs/cluster.md)
	scripts/tools.sh apt go cluster flux certmanager loki monitoring
	scripts/gitops-e2e.sh

gateway-conformance: ## the Gateway API conformance suite (GATEWAY-HTTP) against outrigger-proxy gateway on the local node; report in target/cluster-e2e (root; docs/gateway.md)
	scripts/tools.sh apt go cluster gateway
	scripts/gateway-conformance.sh

images: ## build every container image here with podman (scripts/images.sh), then run each one
	scripts/images.sh build
	scripts/images.sh check

clean: ## remove build output (keeps .tools/)
	$(CARGO) clean
