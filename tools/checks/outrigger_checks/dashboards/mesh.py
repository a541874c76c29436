"""The service-mesh dashboard (outrigger-mesh.json): golden signals of every meshed workload from the sidecars' outrigger_proxy_* metrics."""

from __future__ import annotations

from .grafana import Layout, dashboard, quantile_targets, query_var, stat, table, target, timeseries


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
            quantile_targets(
                f"outrigger_proxy_request_duration_seconds_bucket{{{sel}}}{rate}", "workload", "{{workload}}"
            ),
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Latency to response headers",
            quantile_targets(
                f"outrigger_proxy_response_headers_duration_seconds_bucket{{{sel}}}{rate}", "workload", "{{workload}}"
            ),
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
