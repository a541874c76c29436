"""The gateway dashboard (outrigger-gateway.json): traffic, errors and latency per HTTPRoute, and
the endpoints the gateway balances over per backend, from `outrigger-proxy gateway`'s
outrigger_gateway_* metrics (docs/metrics.md)."""

from __future__ import annotations

from .grafana import Layout, dashboard, quantile_targets, query_var, stat, target, timeseries


def gateway() -> dict:
    # job="outrigger-proxy": the chart's PodMonitor scrapes the gateway pods by the same admin port
    # name as the sidecars; workload = the gateway Deployment.
    sel = 'job="outrigger-proxy", workload=~"$gateway", route=~"$route"'
    bsel = 'job="outrigger-proxy", workload=~"$gateway"'
    req = f"outrigger_gateway_requests_total{{{sel}}}"
    rate = "[$__rate_interval]"
    errors = f'sum by (route) (rate(outrigger_gateway_requests_total{{{sel}, code=~"5.."}}{rate}))'
    total = f"sum by (route) (rate({req}{rate}))"
    lay = Layout()
    lay.row("Routes")
    lay.add(
        stat(
            "Success rate (non-5xx)",
            f'1 - ((sum(rate(outrigger_gateway_requests_total{{{sel}, code=~"5.."}}{rate})) or vector(0))'
            f" / sum(rate({req}{rate})))",
            "percentunit",
            [("red", None), ("orange", 0.99), ("green", 0.999)],
            "Share of the selected routes' requests the gateway answered without a 5xx.",
        ),
        6,
        5,
    )
    lay.add(stat("Requests / s", f"sum(rate({req}{rate}))", "reqps", [("blue", None)]), 6, 5)
    lay.add(
        stat(
            "p99 latency",
            f"histogram_quantile(0.99, sum by (le) (rate(outrigger_gateway_request_duration_seconds_bucket{{{sel}}}{rate})))",
            "s",
            [("green", None), ("orange", 0.25), ("red", 0.5)],
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Backends without a ready endpoint",
            f'count(max by (backend) (outrigger_gateway_backend_endpoints{{{bsel}, state="ready"}}) == 0) or vector(0)',
            "short",
            [("green", None), ("red", 1)],
            "Backends every request to which is answered 503 (alert OutriggerGatewayBackendNoReadyEndpoints).",
        ),
        6,
        5,
    )
    lay.add(
        timeseries(
            "5xx ratio by route",
            [target(f"({errors} or {total} * 0) / {total}", "{{route}}")],
            "percentunit",
            "5xx / all per route (alert OutriggerGatewayRoute5xxHigh above 1 %).",
            minimum=0,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Requests / s by route and code",
            [target(f"sum by (route, code) (rate({req}{rate}))", "{{route}} {{code}}")],
            "reqps",
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Latency by route",
            quantile_targets(f"outrigger_gateway_request_duration_seconds_bucket{{{sel}}}{rate}", "route", "{{route}}"),
            "s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Requests / s by backend",
            [target(f"sum by (backend) (rate({req}{rate}))", "{{backend}}")],
            "reqps",
            "Weighted backendRefs: the split the gateway applied.",
            stack=True,
        ),
        12,
        8,
    )
    lay.row("Endpoints and routing table")
    lay.add(
        timeseries(
            "Endpoints by backend and state",
            [
                target(
                    f"max by (backend, state) (outrigger_gateway_backend_endpoints{{{bsel}}})",
                    "{{backend}} {{state}}",
                )
            ],
            "short",
            "From EndpointSlices: ready endpoints get new requests; terminating ones only finish theirs.",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Endpoint ejections / s",
            [
                target(
                    f"sum by (backend) (rate(outrigger_gateway_endpoint_ejections_total{{{bsel}}}{rate}))",
                    "{{backend}}",
                )
            ],
            "ops",
            "Outlier detection: endpoints taken out for a backoff after consecutive 5xx or connect errors.",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Routing-table updates / s by pod",
            [
                target(
                    f"sum by (pod) (rate(outrigger_gateway_table_updates_total{{{bsel}}}{rate}))",
                    "{{pod}}",
                )
            ],
            "ops",
            "Rebuilds applied after Gateway API, Service, EndpointSlice or Secret changes.",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "In-flight requests by pod",
            [target(f"sum by (pod) (outrigger_proxy_requests_in_flight{{{bsel}}})", "{{pod}}")],
        ),
        12,
        8,
    )
    return dashboard(
        "outrigger-gateway",
        "Outrigger / Gateway",
        "Per-route traffic, 5xx and latency, and per-backend endpoints, from outrigger-proxy in gateway mode.",
        [
            query_var(
                "gateway",
                "Gateway",
                'label_values(outrigger_gateway_table_updates_total{job="outrigger-proxy"}, workload)',
            ),
            query_var(
                "route",
                "Route",
                'label_values(outrigger_gateway_requests_total{job="outrigger-proxy", workload=~"$gateway"}, route)',
            ),
        ],
        lay,
    )
