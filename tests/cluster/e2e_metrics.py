"""The metrics test of tests/cluster/e2e.py: golden metrics of every meshed pod, the agent's node
metrics, the injector and app targets, and every expression of every Grafana dashboard of
charts/outrigger (panel queries and the variables' label_values() queries, read by the same
outrigger_checks.promql code the PromQL check uses) run against this Prometheus."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from e2e_api import Api, meshed, ready

# outrigger_checks.promql is standard library only, so the node's plain python3 can import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "checks"))
from outrigger_checks.promql import dashboard_exprs, grafana_to_promql, metric_family, metric_names

# Grafana's rate interval here: 4 x the 5 s scrape interval, rounded up.
RATE_INTERVAL = "1m"


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]


# Dashboard queries that need kube-state-metrics, which the cluster e2e does not run: reported as
# a known gap there, not as data. Where it runs (--kube-state-metrics: the GitOps entry's
# kube-prometheus-stack), they must return data like any other.
KSM = re.compile(r"\bkube_[a-z_]+")
# The scrape jobs that must have a target up: those of Debian's Prometheus fed by
# `e2e.py targets` (the cluster e2e); the GitOps e2e names the in-cluster Prometheus's (--jobs).
DEFAULT_JOBS = ["outrigger-agent", "outrigger-injector", "kubernetes-pods", "outrigger-proxy"]


def dashboard_queries(directory: str) -> list[tuple[str, str, str]]:
    """(dashboard file, panel or variable, PromQL with Grafana's variables at "All") of every
    expression of every dashboard in ``directory``."""
    return [
        (e.dashboard, e.source, grafana_to_promql(e.expr, rate_interval=RATE_INTERVAL))
        for e in dashboard_exprs(Path(directory))
    ]


def query_status(
    q: str, result: list, error: str | None, kube_state_metrics: bool, known_empty: Callable[[str], bool]
) -> str:
    """What a dashboard query's answer means: `data`; `error`; empty, `needs_kube_state_metrics`
    where kube-state-metrics does not run and the query reads it; `no_events` when every metric it
    reads is ``known_empty`` (has series, or is a labeled event family with no event yet);
    else `no_data`, a failure."""
    names = metric_names(q)
    if error:
        return "error"
    if result:
        return "data"
    if KSM.search(q) and not kube_state_metrics:
        return "needs_kube_state_metrics"
    if names and all(known_empty(n) for n in names):
        return "no_events"
    return "no_data"


def labeled_families(metrics_md: str) -> set[str]:
    """Metrics docs/metrics.md documents with labels: their series appear only with the first
    event of a label set (prometheus-client exports nothing, not even HELP/TYPE, for an empty
    family). Unlabeled metrics always have a series once their exporter is scraped."""
    out = set()
    for row in Path(metrics_md).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 4 and cells[1].startswith("`") and cells[3] not in ("", "—", "-"):
            out.add(cells[1].strip("`").split("{")[0])
    return out


def cmd_metrics(args: argparse.Namespace) -> int:
    api, prom = Api(args.api, args.pki), Prom(args.prom)
    checks: list[dict] = []
    meshed_pods = [p for p in api.pods() if ready(p) and meshed(p)]
    golden = [
        "outrigger_proxy_requests_total",
        "outrigger_proxy_request_duration_seconds_count",
        "outrigger_proxy_response_headers_duration_seconds_count",
        "outrigger_proxy_requests_in_flight",
        "outrigger_proxy_open_connections",
    ]
    node = [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "outrigger_agent_lines_read_total",
        "outrigger_agent_build_info",
    ]
    # Scrapes lag pod changes by a few seconds (target refresh + 5 s scrape interval).
    deadline = time.monotonic() + args.wait
    while True:
        checks = []
        for pod in meshed_pods:
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            for m in golden:
                n = len(prom.query(f'{m}{{job="outrigger-proxy", namespace="{ns}", pod="{name}"}}'))
                checks.append({"check": f"{m} of {ns}/{name}", "series": n, "ok": n > 0})
        for m in node:
            n = len(prom.query(f'{m}{{job="outrigger-agent"}}'))
            checks.append({"check": f"{m} (agent)", "series": n, "ok": n > 0})
        for job in args.jobs.split(",") if args.jobs else DEFAULT_JOBS:
            up = prom.query(f'up{{job="{job}"}} == 1')
            checks.append({"check": f"up{{job={job}}} == 1", "series": len(up), "ok": len(up) > 0})
        if not args.no_injection:
            n = len(prom.query('outrigger_injector_admissions_total{result="injected"}'))
            checks.append(
                {"check": "outrigger_injector_admissions_total{result=injected}", "series": n, "ok": n > 0}
            )
        if all(c["ok"] for c in checks) or time.monotonic() > deadline:
            break
        time.sleep(3)

    # Every dashboard query: data; or empty because each metric it reads either has series here
    # or is a documented labeled event family with no event yet (`no_events`, listed); or a
    # kube-state-metrics gap. Anything else is a failure.
    events = labeled_families(args.metrics_md)
    queries = []
    for board, source, q in dashboard_queries(args.dashboards):
        try:
            result = prom.query(q)
            error = None
        except Exception as e:  # noqa: BLE001 - a bad query is a failure, reported as such
            result, error = [], str(e)
        status = query_status(
            q,
            result,
            error,
            kube_state_metrics=args.kube_state_metrics,
            known_empty=lambda n: (
                metric_family(n) in events or bool(prom.query(f'count({{__name__="{n}"}})'))
            ),
        )
        queries.append(
            {
                "dashboard": board,
                "panel": source,
                "query": q,
                "status": status,
                "series": len(result),
                "error": error,
            }
        )
    by_status = Counter(q["status"] for q in queries)
    failed = [q for q in queries if q["status"] in ("error", "no_data")]
    result = {
        "name": "metrics",
        "pass": all(c["ok"] for c in checks) and not failed,
        "meshed_pods": [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in meshed_pods],
        "checks_failed": [c for c in checks if not c["ok"]],
        "checks_passed": sum(1 for c in checks if c["ok"]),
        "dashboard_queries": dict(by_status),
        "dashboard_failures": failed,
        "dashboard_known_gaps": [q["query"] for q in queries if q["status"] == "needs_kube_state_metrics"],
        "dashboard_no_events": [q["query"] for q in queries if q["status"] == "no_events"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
