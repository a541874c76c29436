"""The log agent dashboard (outrigger-agent.json): what every node's outrigger-agent reads, ships and drops."""

from __future__ import annotations

from .grafana import Layout, dashboard, query_var, stat, table, target, timeseries


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
