#!/usr/bin/env bash
# Cross-component end-to-end tests: the real Flask app, outrigger-proxy, outrigger-agent and
# Debian's Prometheus on loopback, plus the GitOps pieces (scripts/lib/git-http-server.py with the
# real git client, sops + age) (tests/e2e). Builds the binaries first if needed.
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"
echo "check-e2e: building outrigger-proxy and outrigger-agent"
cargo build --locked -q -p outrigger-proxy -p outrigger-agent
echo "check-e2e: ruff on tests/ and the helper servers in scripts/lib"
ruff check tests scripts/lib/*.py
ruff format --check tests scripts/lib/*.py
echo "check-e2e: pytest tests/e2e"
python -m pytest -q -p no:cacheprovider tests/e2e
