#!/usr/bin/env bash
# PromQL in charts/outrigger (dashboards and alert rules):
#   promtool check rules on the PrometheusRule's groups; promtool test rules (alert unit tests:
#   each alert fires on bad input and stays quiet on good input); every expression of every
#   dashboard parsed by promtool, and every metric name it references must be documented in
#   docs/metrics.md (or, for kube-prometheus-stack names, in tools/checks/outrigger_checks/known-metrics.txt).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
CHECK_NAME=check-promql
# shellcheck source=scripts/lib/platform-common.sh
source "$OUTRIGGER_ROOT/scripts/lib/platform-common.sh"

require python3 promtool
chart="$OUTRIGGER_ROOT/charts/outrigger"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "promtool check rules (charts/outrigger/files/prometheusrule.yaml .spec)"
"$PLATFORM_CHECKS" rules-spec "$chart/files/prometheusrule.yaml" "$work/outrigger.rules.yaml"
promtool check rules "$work/outrigger.rules.yaml"

say "promtool test rules (charts/outrigger/tests/prometheusrule-test.yaml)"
cp "$chart/tests/prometheusrule-test.yaml" "$work/"
promtool test rules "$work/prometheusrule-test.yaml"

say "dashboard and rule expressions: promtool parse + metric names vs docs/metrics.md"
"$PLATFORM_CHECKS" promql

say "self-test: a metric missing from docs/metrics.md must fail the check"
grep -v '^| `outrigger_proxy_requests_total' "$OUTRIGGER_ROOT/docs/metrics.md" >"$work/metrics.md"
if PLATFORM_METRICS_MD="$work/metrics.md" "$PLATFORM_CHECKS" promql >/dev/null 2>&1; then
  echo "check-promql: accepted dashboards that use an undocumented metric" >&2
  exit 1
fi
say "ok"
