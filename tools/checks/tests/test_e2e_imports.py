"""tests/cluster/e2e.py runs every dashboard expression against the cluster's Prometheus through
outrigger_checks.promql, on the node's plain python3 (no tools venv): its modules must import
with the standard library alone and see the same expressions as the PromQL check."""

from __future__ import annotations

import json
import subprocess
import sys

from outrigger_checks import ROOT
from outrigger_checks.promql import dashboard_exprs

CLUSTER = ROOT / "tests" / "cluster"
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import e2e, e2e_metrics
queries = e2e_metrics.dashboard_queries(sys.argv[2])
third_party = sorted(m for m in ("yaml", "pytest") if m in sys.modules)
print(json.dumps({"queries": queries, "third_party": third_party}))
"""


def probe() -> dict:
    # -S: no site-packages, as on a host without the venv; -I: nothing from the environment.
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(CLUSTER), str(ROOT / "charts/outrigger/dashboards")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_e2e_imports_with_the_standard_library_only() -> None:
    assert probe()["third_party"] == []


def test_e2e_queries_every_dashboard_expression_including_variables() -> None:
    queries = probe()["queries"]
    assert len(queries) == len(dashboard_exprs())
    sources = [source for _, source, _ in queries]
    assert any(s.startswith("variable ") for s in sources)
    assert any(s.startswith("panel ") for s in sources)
    for _, _, q in queries:
        assert "$" not in q.replace("${1}", ""), q
    # The cluster scrapes every 5 s: its rate interval is 1m, not the 5m the static check assumes.
    assert any("[1m]" in q for _, _, q in queries)


def test_kube_state_metrics_queries_are_a_gap_only_where_it_does_not_run() -> None:
    # make cluster-e2e has no kube-state-metrics: its empty kube_* queries are a known gap there.
    # make gitops-e2e runs it (--kube-state-metrics): the same empty answer is a failure.
    sys.path.insert(0, str(CLUSTER))
    try:
        import e2e_metrics
    finally:
        sys.path.remove(str(CLUSTER))
    q = "count(kube_node_info)"

    def status(**kw):
        return e2e_metrics.query_status(q, **kw, known_empty=lambda _n: False)

    assert status(result=[], error=None, kube_state_metrics=False) == "needs_kube_state_metrics"
    assert status(result=[], error=None, kube_state_metrics=True) == "no_data"
    assert status(result=[{"value": [0, "1"]}], error=None, kube_state_metrics=True) == "data"
    assert status(result=[], error="bad", kube_state_metrics=False) == "error"
    # The agent's own outrigger_agent_kube_* metrics are not kube-state-metrics'.
    assert (
        e2e_metrics.query_status(
            "sum(outrigger_agent_kube_pods)", [], None, kube_state_metrics=False, known_empty=lambda _n: True
        )
        == "no_events"
    )
