#!/usr/bin/env python3
"""Generates the Grafana dashboards of charts/outrigger/dashboards/*.json.

The JSON files are committed (the chart and the Flux tree read them); this script is their source.
`platform-dashboards.py --check` fails when a committed file differs from what it would generate,
so the files never drift from this definition. Uids are fixed strings: links and bookmarks to a
dashboard survive re-imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "charts" / "outrigger" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def timeseries(
    title: str,
    targets: list[dict],
    unit: str = "short",
    desc: str = "",
    stack: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict:
    defaults: dict = {
        "unit": unit,
        "custom": {"fillOpacity": 10, "lineWidth": 1, "stacking": {"mode": "normal" if stack else "none"}},
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, expr: str, unit: str, thresholds: list[tuple[str, float | None]], desc: str = "") -> dict:
    steps = [{"color": c, "value": v} for c, v in thresholds]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {
            "defaults": {"unit": unit, "decimals": 2, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def table(title: str, expr: str, desc: str = "") -> dict:
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [{**target(expr, instant=True), "format": "table"}],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}],
        "options": {"showHeader": True},
    }


def query_var(name: str, label: str, query: str, multi: bool = True) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
    }


def datasource_var() -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def dashboard(uid: str, title: str, desc: str, variables: list[dict], layout: Layout) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["outrigger"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["outrigger"], "asDropdown": True, "title": "Outrigger"}],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout.panels,
    }


def mesh() -> dict:
    # job="outrigger-proxy" = the chart's PodMonitor, the only scrape that adds the workload label.
    sel = 'job="outrigger-proxy", namespace=~"$namespace", workload=~"$workload"'
    req = f"outrigger_proxy_requests_total{{{sel}}}"
    rate = "[$__rate_interval]"
    # 1 - 5xx/all, with "or all * 0" so "never a 5xx" reads 100 % and "only 5xx" reads 0 %.
    errors = f'sum by (namespace, workload) (rate(outrigger_proxy_requests_total{{{sel}, status_code=~"5.."}}{rate}))'
    total = f"sum by (namespace, workload) (rate({req}{rate}))"
    success = f"1 - (({errors} or {total} * 0) / {total})"
    lay = Layout()
    lay.row("Golden signals")
    lay.add(
        stat(
            "Success rate (non-5xx)",
            f'1 - ((sum(rate(outrigger_proxy_requests_total{{{sel}, status_code=~"5.."}}{rate})) or vector(0))'
            f" / sum(rate({req}{rate})))",
            "percentunit",
            [("red", None), ("orange", 0.99), ("green", 0.999)],
            "Share of requests the selected sidecars answered without a 5xx.",
        ),
        6,
        5,
    )
    lay.add(stat("Requests / s", f"sum(rate({req}{rate}))", "reqps", [("blue", None)]), 6, 5)
    lay.add(
        stat(
            "p99 latency",
            f"histogram_quantile(0.99, sum by (le) (rate(outrigger_proxy_request_duration_seconds_bucket{{{sel}}}{rate})))",
            "s",
            [("green", None), ("orange", 0.25), ("red", 0.5)],
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "TLS share of open connections",
            f'sum(outrigger_proxy_open_connections{{{sel}, tls="true"}}) / sum(outrigger_proxy_open_connections{{{sel}}})',
            "percentunit",
            [("orange", None), ("green", 0.99)],
        ),
        6,
        5,
    )
    lay.add(
        timeseries(
            "Success rate by workload",
            [target(success, "{{namespace}}/{{workload}}")],
            "percentunit",
            "Non-5xx responses / all responses.",
            maximum=1,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Requests / s by status class",
            [
                target(
                    f'sum by (class) (label_replace(rate({req}{rate}), "class", "${{1}}xx", "status_code", "([1-5]).."))',
                    "{{class}}",
                )
            ],
            "reqps",
            "Responses grouped 1xx..5xx.",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Latency to end of body",
            [
                target(
                    f"histogram_quantile({q}, sum by (le, workload) (rate(outrigger_proxy_request_duration_seconds_bucket{{{sel}}}{rate})))",
                    f"p{int(q * 100)} {{{{workload}}}}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Latency to response headers",
            [
                target(
                    f"histogram_quantile({q}, sum by (le, workload) (rate(outrigger_proxy_response_headers_duration_seconds_bucket{{{sel}}}{rate})))",
                    f"p{int(q * 100)} {{{{workload}}}}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Requests by method", [target(f"sum by (method) (rate({req}{rate}))", "{{method}}")], "reqps", stack=True
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "In-flight requests",
            [target(f"sum by (workload) (outrigger_proxy_requests_in_flight{{{sel}}})", "{{workload}}")],
        ),
        12,
        8,
    )
    lay.row("Retries and proxy-generated responses")
    lay.add(
        timeseries(
            "Retries / s by reason",
            [
                target(
                    f"sum by (workload, reason) (rate(outrigger_proxy_retries_total{{{sel}}}{rate}))",
                    "{{workload}} {{reason}}",
                )
            ],
            "ops",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Skipped retries / s by reason",
            [
                target(
                    f"sum by (workload, reason) (rate(outrigger_proxy_retries_skipped_total{{{sel}}}{rate}))",
                    "{{workload}} {{reason}}",
                )
            ],
            "ops",
            "non_idempotent, body_too_large, budget_exhausted: failures that were not retried.",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Proxy-generated responses / s by reason",
            [
                target(
                    f"sum by (workload, reason) (rate(outrigger_proxy_local_responses_total{{{sel}}}{rate}))",
                    "{{workload}} {{reason}}",
                )
            ],
            "ops",
            "Answers the proxy produced instead of the app: 502 app_error/connect_refused, 504 timeouts, 413/431 limits.",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Certificate reloads",
            [
                target(
                    f"sum by (workload, result) (increase(outrigger_proxy_tls_cert_reloads_total{{{sel}}}{rate}))",
                    "{{workload}} {{result}}",
                )
            ],
            "short",
            "TLS certificate/key reloads after a file change (cert-manager renewals); errors keep the old certificate.",
        ),
        12,
        8,
    )
    lay.row("Connections and draining")
    lay.add(
        timeseries(
            "Open connections by protocol / TLS",
            [target(f"sum by (protocol, tls) (outrigger_proxy_open_connections{{{sel}}})", "{{protocol}} tls={{tls}}")],
            stack=True,
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "New connections / s",
            [
                target(
                    f"sum by (protocol, tls) (rate(outrigger_proxy_connections_total{{{sel}}}{rate}))",
                    "{{protocol}} tls={{tls}}",
                )
            ],
            "cps",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "TLS handshake errors / s",
            [
                target(
                    f"sum by (reason) (rate(outrigger_proxy_tls_handshake_errors_total{{{sel}}}{rate}))", "{{reason}}"
                )
            ],
            "ops",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Draining pods and their connections",
            [
                target(f"sum by (workload) (outrigger_proxy_draining{{{sel}}})", "draining pods {{workload}}", "A"),
                target(
                    f"sum by (workload) (outrigger_proxy_draining_connections{{{sel}}})",
                    "connections still open {{workload}}",
                    "B",
                ),
            ],
            desc="During a rollout: pods that received SIGTERM and the connections they are still finishing.",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Body throughput",
            [
                target(
                    f"sum by (workload) (rate(outrigger_proxy_request_bytes_total{{{sel}}}{rate}))",
                    "in {{workload}}",
                    "A",
                ),
                target(
                    f"sum by (workload) (rate(outrigger_proxy_response_bytes_total{{{sel}}}{rate}))",
                    "out {{workload}}",
                    "B",
                ),
            ],
            "Bps",
        ),
        12,
        8,
    )
    lay.row("Versions")
    lay.add(
        table("Proxy versions", f"count by (namespace, workload, version) (outrigger_proxy_build_info{{{sel}}})"), 24, 6
    )
    return dashboard(
        "outrigger-mesh",
        "Outrigger / Mesh golden signals",
        "Per-workload success rate, traffic, latency, retries, TLS and draining from the outrigger-proxy sidecars.",
        [
            query_var(
                "namespace",
                "Namespace",
                'label_values(outrigger_proxy_requests_total{job="outrigger-proxy"}, namespace)',
            ),
            query_var(
                "workload",
                "Workload",
                'label_values(outrigger_proxy_requests_total{job="outrigger-proxy", namespace=~"$namespace"}, workload)',
            ),
        ],
        lay,
    )


def agent() -> dict:
    sel = 'job="outrigger-agent", node=~"$node"'
    rate = "[$__rate_interval]"
    lay = Layout()
    lay.row("Throughput")
    lay.add(
        timeseries(
            "Lines / s read and sent",
            [
                target(f"sum by (node) (rate(outrigger_agent_lines_read_total{{{sel}}}{rate}))", "read {{node}}", "A"),
                target(
                    f"sum by (node, sink) (rate(outrigger_agent_lines_sent_total{{{sel}}}{rate}))",
                    "sent {{sink}} {{node}}",
                    "B",
                ),
            ],
            "short",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Bytes / s read and sent",
            [
                target(f"sum by (node) (rate(outrigger_agent_bytes_read_total{{{sel}}}{rate}))", "read {{node}}", "A"),
                target(
                    f"sum by (node, sink) (rate(outrigger_agent_bytes_sent_total{{{sel}}}{rate}))",
                    "sent {{sink}} {{node}}",
                    "B",
                ),
            ],
            "Bps",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Batches / s",
            [target(f"sum by (sink) (rate(outrigger_agent_batches_total{{{sel}}}{rate}))", "{{sink}}")],
            "ops",
        ),
        12,
        8,
    )
    lay.add(
        timeseries("Open files", [target(f"max by (node) (outrigger_agent_open_files{{{sel}}})", "{{node}}")]), 12, 8
    )
    lay.add(
        timeseries(
            "Pod metadata cache",
            [
                target(f"max by (node) (outrigger_agent_kube_pods{{{sel}}})", "pods {{node}}", "A"),
                target(
                    f"max by (node) (outrigger_agent_kube_deleted_pods{{{sel}}})",
                    "deleted, still draining {{node}}",
                    "B",
                ),
            ],
            desc="Pods of the node known from the API watch; deleted ones stay until their files are fully read.",
        ),
        24,
        6,
    )
    lay.row("Lag (written by the kubelet, not yet acknowledged by the sink)")
    lay.add(
        timeseries("Lag (seconds)", [target(f"max by (node) (outrigger_agent_lag_seconds{{{sel}}})", "{{node}}")], "s"),
        8,
        8,
    )
    lay.add(
        timeseries("Lag (bytes)", [target(f"max by (node) (outrigger_agent_lag_bytes{{{sel}}})", "{{node}}")], "bytes"),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Checkpoint age",
            [target(f"max by (node) (outrigger_agent_checkpoint_age_seconds{{{sel}}})", "{{node}}")],
            "s",
        ),
        8,
        8,
    )
    lay.row("Errors and loss")
    lay.add(
        timeseries(
            "Send errors / s by kind",
            [
                target(
                    f"sum by (sink, kind) (rate(outrigger_agent_send_errors_total{{{sel}}}{rate}))", "{{sink}} {{kind}}"
                )
            ],
            "ops",
            stack=True,
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Retries / s",
            [target(f"sum by (sink) (rate(outrigger_agent_retries_total{{{sel}}}{rate}))", "{{sink}}")],
            "ops",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Rejected lines / s (400 from the sink)",
            [target(f"sum by (sink) (rate(outrigger_agent_rejected_lines_total{{{sel}}}{rate}))", "{{sink}}")],
            "ops",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Rotation loss (bytes / s)",
            [target(f"sum by (node) (rate(outrigger_agent_rotation_lost_bytes_total{{{sel}}}{rate}))", "{{node}}")],
            "Bps",
            "Bytes the kubelet rotated away before the agent read them. Should be zero.",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Malformed lines / s (shipped raw)",
            [target(f"sum by (format) (rate(outrigger_agent_malformed_lines_total{{{sel}}}{rate}))", "{{format}}")],
            "ops",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Truncated lines / s",
            [target(f"sum by (node) (rate(outrigger_agent_truncated_lines_total{{{sel}}}{rate}))", "{{node}}")],
            "ops",
        ),
        8,
        8,
    )
    lay.row("Fleet")
    lay.add(stat("Agents up", 'sum(up{job="outrigger-agent"})', "short", [("red", None), ("green", 1)]), 6, 5)
    lay.add(
        stat(
            "Nodes without a ready agent",
            'sum(kube_daemonset_status_desired_number_scheduled{daemonset=~".*outrigger-agent"})'
            ' - sum(kube_daemonset_status_number_ready{daemonset=~".*outrigger-agent"})',
            "short",
            [("green", None), ("red", 1)],
        ),
        6,
        5,
    )
    lay.add(table("Agent versions", f"count by (version) (outrigger_agent_build_info{{{sel}}})"), 12, 5)
    return dashboard(
        "outrigger-agent",
        "Outrigger / Node agent",
        "Log shipping by the outrigger-agent DaemonSet: throughput, lag, errors and loss per node.",
        [query_var("node", "Node", 'label_values(outrigger_agent_build_info{job="outrigger-agent"}, node)')],
        lay,
    )


def nodes() -> dict:
    sel = 'job="outrigger-agent", node=~"$node"'
    rate = "[$__rate_interval]"
    fs = f'{sel}, fstype!~"tmpfs|overlay|squashfs|nsfs|proc|sysfs"'
    lay = Layout()
    lay.row("Cluster")
    lay.add(stat("Nodes", "count(kube_node_info)", "short", [("blue", None)]), 6, 5)
    lay.add(stat("Pods", "count(kube_pod_info)", "short", [("blue", None)]), 6, 5)
    lay.add(
        stat(
            "CPU busy (cluster)",
            f'1 - avg(rate(node_cpu_seconds_total{{{sel}, mode="idle"}}{rate}))',
            "percentunit",
            [("green", None), ("orange", 0.7), ("red", 0.9)],
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Memory used (cluster)",
            f"1 - sum(node_memory_MemAvailable_bytes{{{sel}}}) / sum(node_memory_MemTotal_bytes{{{sel}}})",
            "percentunit",
            [("green", None), ("orange", 0.75), ("red", 0.9)],
        ),
        6,
        5,
    )
    lay.row("Per node")
    lay.add(
        timeseries(
            "CPU busy",
            [target(f'1 - avg by (node) (rate(node_cpu_seconds_total{{{sel}, mode="idle"}}{rate}))', "{{node}}")],
            "percentunit",
            maximum=1,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "CPU by mode",
            [target(f'sum by (mode) (rate(node_cpu_seconds_total{{{sel}, mode!="idle"}}{rate}))', "{{mode}}")],
            "short",
            "Cores busy per mode, summed over the selected nodes.",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Memory used",
            [target(f"1 - node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}}", "{{node}}")],
            "percentunit",
            maximum=1,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Memory breakdown",
            [
                target(
                    f"sum(node_memory_MemTotal_bytes{{{sel}}}) - sum(node_memory_MemFree_bytes{{{sel}}})"
                    f" - sum(node_memory_Buffers_bytes{{{sel}}}) - sum(node_memory_Cached_bytes{{{sel}}})",
                    "used",
                    "A",
                ),
                target(f"sum(node_memory_Buffers_bytes{{{sel}}})", "buffers", "B"),
                target(f"sum(node_memory_Cached_bytes{{{sel}}})", "cached", "C"),
                target(f"sum(node_memory_MemFree_bytes{{{sel}}})", "free", "D"),
            ],
            "bytes",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Load average",
            [
                target(f"node_load1{{{sel}}}", "1m {{node}}", "A"),
                target(f"node_load5{{{sel}}}", "5m {{node}}", "B"),
                target(f"node_load15{{{sel}}}", "15m {{node}}", "C"),
            ],
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Filesystem used",
            [
                target(
                    f"1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
                    "{{node}} {{mountpoint}}",
                )
            ],
            "percentunit",
            maximum=1,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Network",
            [
                target(
                    f'sum by (node) (rate(node_network_receive_bytes_total{{{sel}, device!~"lo|veth.*|lxc.*"}}{rate}))',
                    "rx {{node}}",
                    "A",
                ),
                target(
                    f'-sum by (node) (rate(node_network_transmit_bytes_total{{{sel}, device!~"lo|veth.*|lxc.*"}}{rate}))',
                    "tx {{node}}",
                    "B",
                ),
            ],
            "Bps",
            "Receive up, transmit down (negated).",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Disk throughput",
            [
                target(f"sum by (node) (rate(node_disk_read_bytes_total{{{sel}}}{rate}))", "read {{node}}", "A"),
                target(f"-sum by (node) (rate(node_disk_written_bytes_total{{{sel}}}{rate}))", "write {{node}}", "B"),
            ],
            "Bps",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Disk busy",
            [
                target(
                    f"max by (node, device) (rate(node_disk_io_time_seconds_total{{{sel}}}{rate}))",
                    "{{node}} {{device}}",
                )
            ],
            "percentunit",
            maximum=1,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Uptime", [target(f"node_time_seconds{{{sel}}} - node_boot_time_seconds{{{sel}}}", "{{node}}")], "s"
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Allocatable per node (kube-state-metrics)",
            'sum by (node, resource) (kube_node_status_allocatable{resource=~"cpu|memory|pods"})',
        ),
        24,
        7,
    )
    return dashboard(
        "outrigger-nodes",
        "Outrigger / Node overview",
        "Node CPU, memory, load, filesystems, network and disks from the node_* metrics the outrigger-agent exports.",
        [query_var("node", "Node", 'label_values(node_boot_time_seconds{job="outrigger-agent"}, node)')],
        lay,
    )


DASHBOARDS = {"outrigger-mesh.json": mesh, "outrigger-agent.json": agent, "outrigger-nodes.json": nodes}


def render(fn) -> str:
    return json.dumps(fn(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    args = ap.parse_args()
    stale = []
    for name, fn in DASHBOARDS.items():
        path = OUT / name
        text = render(fn)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run scripts/lib/platform-dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
