"""The node overview dashboard (outrigger-nodes.json): the node_* metrics the outrigger-agent exports."""

from __future__ import annotations

from .grafana import Layout, dashboard, query_var, stat, table, target, timeseries


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
