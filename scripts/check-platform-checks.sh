#!/usr/bin/env bash
# The platform checkers themselves (tools/checks: the outrigger_checks package and its
# outrigger-checks entry point, which check-flux/-charts-platform/-promql/-terraform.sh run):
# the entry point through shellcheck, ruff lint + format, then their pytest suite (real charts,
# dashboards, rules, Flux and Terraform files, and broken copies each check must reject).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT/tools/checks"
for tool in shellcheck ruff pytest; do
  command -v "$tool" >/dev/null || { echo "check-platform-checks: $tool not installed (run scripts/tools.sh)" >&2; exit 1; }
done
echo "check-platform-checks: shellcheck tools/checks/outrigger-checks"
shellcheck -x outrigger-checks
echo "check-platform-checks: ruff tools/checks"
ruff check --no-cache .
ruff format --no-cache --check .
echo "check-platform-checks: pytest tools/checks/tests"
pytest -q -p no:cacheprovider
