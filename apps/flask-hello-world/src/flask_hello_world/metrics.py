"""RED metrics (rate, errors, duration) in the names fixed by docs/metrics.md.

Under gunicorn every worker is a separate process, so prometheus_client runs in multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, set up by the runner) and `/metrics` aggregates all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Methods outside this set collapse into "other" so a client cannot mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by method, matched route and status code.",
    ["method", "endpoint", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to response returned by the app, by method and matched route.",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "Requests currently being handled (summed over workers).",
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "flask_hello_world_build_info",
    "Always 1; the version label carries the running app version.",
    ["version"],
    multiprocess_mode="max",
)


def normalise_method(method: str) -> str:
    upper = method.upper()
    return upper if upper in KNOWN_METHODS else "other"


def render() -> tuple[bytes, str]:
    """Exposition text for all workers (multiprocess) or this process (tests, flask run)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
