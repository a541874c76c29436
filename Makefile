# Outrigger: one entry point for people and CI. Every install step lives in scripts/.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
CARGO ?= cargo
CHECKS := $(sort $(wildcard scripts/check-*.sh))

.PHONY: help tools demo test lint lint-rust test-rust checks bench bench-proxy bench-agent images clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

tools: ## install the pinned toolchain into .tools/ (idempotent)
	scripts/tools.sh

demo: ## build, then run the local loopback demo (no cluster, no cloud, no root)
	scripts/tools.sh python
	scripts/demo.sh

test: tools lint-rust test-rust checks ## everything CI runs: lint, unit + integration tests, manifest checks
	@echo "make test: all green"

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

images: ## build every container image here with podman (scripts/images.sh), then run each one
	scripts/images.sh build
	scripts/images.sh check

clean: ## remove build output (keeps .tools/)
	$(CARGO) clean
