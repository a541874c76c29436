#!/usr/bin/env python3
"""Helpers of scripts/cluster-e2e.sh (standard library only, like the one module they import from
tools/checks, outrigger_checks.promql; the subcommands that talk to the cluster run inside the
node's network namespace, where the API server and pod IPs are reachable). This file is the
command line; the work is in e2e_api.py (targets, proxy-requests), e2e_metrics.py, e2e_logs.py
and e2e_results.py (rollout, summary).

  targets   Prometheus file_sd targets from the API server's pod list, rewritten every few
            seconds: Debian's prometheus is built without kubernetes_sd, so this stands in for it
            with the relabelings of charts/outrigger's PodMonitor/ServiceMonitor (job, namespace,
            pod, container, node, workload).
  proxy-requests  sum of outrigger_proxy_requests_total of every meshed pod of a namespace,
            read from each sidecar's admin port (service-through-sidecar test).
  metrics   the metrics test: golden metrics of every meshed pod, the agent's node metrics, the
            injector and app targets, and every Grafana dashboard expression of charts/outrigger
            (panel queries and variable queries) run against this Prometheus.
  logs      the logs test: the logger pod's numbered lines and every stdout line of the app pods
            still running (their CRI log files) reach the sink exactly once, with labels.
  rollout   one rollout test's result from the sidecar and baseline load reports.
  summary   summary.json from the per-test results, one line per test on stdout; exit 1 on any
            failure.
"""

from __future__ import annotations

import argparse
import sys

from e2e_api import cmd_proxy_requests, cmd_targets
from e2e_logs import cmd_logs
from e2e_metrics import cmd_metrics
from e2e_results import cmd_rollout, cmd_summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def api_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api", default="https://10.240.0.10:6443")
        p.add_argument("--pki", required=True)

    p = sub.add_parser("targets")
    api_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--once", action="store_true")
    p.set_defaults(fn=cmd_targets)

    p = sub.add_parser("proxy-requests")
    api_args(p)
    p.add_argument("--namespace", required=True)
    p.add_argument("--selector", default="")
    p.set_defaults(fn=cmd_proxy_requests)

    p = sub.add_parser("metrics")
    api_args(p)
    p.add_argument("--prom", default="http://127.0.0.1:9090")
    p.add_argument("--dashboards", required=True)
    p.add_argument("--metrics-md", required=True, help="docs/metrics.md")
    p.add_argument(
        "--no-injection",
        action="store_true",
        help="no pod here is injected by the webhook (the GitOps entry's apps carry the sidecar from their charts)",
    )
    p.add_argument(
        "--jobs",
        default="",
        help="comma-separated scrape jobs that must have a target up (default: the cluster e2e's)",
    )
    p.add_argument(
        "--kube-state-metrics",
        action="store_true",
        help="kube-state-metrics runs: its dashboard queries must return data (no known gap)",
    )
    p.add_argument("--wait", type=float, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_metrics)

    p = sub.add_parser("logs")
    api_args(p)
    p.add_argument("--sink", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--logger-pod", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--log-root", required=True)
    p.add_argument("--wait", type=float, default=60)
    p.add_argument("--agent-restart", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_logs)

    p = sub.add_parser("rollout")
    p.add_argument("--name", required=True)
    p.add_argument("--sidecar", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--gateway", default="", help="load report of the same rollout through the gateway")
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--zero-failures", action="store_true")
    p.add_argument("--extra", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_rollout)

    p = sub.add_parser("summary")
    p.add_argument("--dir", required=True)
    p.add_argument("--order", default="")
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_summary)

    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
