"""The Flask application: routes, probes, metrics and access logging."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from flask import Flask, Response, g, jsonify, render_template, request

from flask_hello_world import __version__, lifecycle, metrics

ACCESS_LOG = logging.getLogger("flask_hello_world.access")
# Probe and scrape traffic is logged at DEBUG so it does not drown real requests.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_REQUEST_ID_LEN = 128
# /delay/<s> (as in podinfo) simulates slow work for drain, timeout and retry demos; capped.
MAX_DELAY_SECONDS = 10.0


def _request_id() -> str:
    """Reuse a sane incoming X-Request-Id (set by the proxy or a client), otherwise mint one."""
    incoming = request.headers.get("X-Request-Id", "")
    if 0 < len(incoming) <= MAX_REQUEST_ID_LEN and incoming.isprintable():
        return incoming
    return uuid.uuid4().hex


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False
    version = os.environ.get("APP_VERSION", __version__)
    hostname = socket.gethostname()
    metrics.BUILD_INFO.labels(version=version).set(1)

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.request_id = _request_id()
        metrics.IN_FLIGHT.inc()

    @app.after_request
    def _observe(response: Response) -> Response:
        elapsed = time.perf_counter() - g.start
        # The matched route template (not the raw path) keeps label cardinality bounded.
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = metrics.normalise_method(request.method)
        metrics.REQUESTS.labels(method=method, endpoint=endpoint, status=str(response.status_code)).inc()
        metrics.DURATION.labels(method=method, endpoint=endpoint).observe(elapsed)
        response.headers["X-Request-Id"] = g.request_id
        level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
        ACCESS_LOG.log(
            level,
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "endpoint": endpoint,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "remote_addr": request.remote_addr,
                "user_agent": request.user_agent.string,
                "request_id": g.request_id,
            },
        )
        return response

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        # teardown runs even when a view raised, so the gauge never leaks.
        if "start" in g:
            metrics.IN_FLIGHT.dec()

    @app.get("/")
    def index() -> str:
        return render_template("index.html", version=version, hostname=hostname)

    @app.get("/json", strict_slashes=False)
    def hello_json() -> Response:
        return jsonify(hello="world")

    @app.get("/delay/<seconds>")
    def delay(seconds: str) -> tuple[Response, int]:
        try:
            wait = float(seconds)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= MAX_DELAY_SECONDS:  # also rejects nan and inf
            return jsonify(error=f"delay must be a number of seconds in 0..{MAX_DELAY_SECONDS:g}"), 400
        time.sleep(wait)
        return jsonify(delay=wait), 200

    @app.get("/healthz")
    def healthz() -> Response:
        # Liveness stays green while draining: restarting a draining pod would drop in-flight work.
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        if lifecycle.is_draining():
            return jsonify(status="draining"), 503
        return jsonify(status="ready"), 200

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.errorhandler(404)
    def not_found(_err: Exception) -> tuple[Response, int]:
        return jsonify(error="not found"), 404

    @app.errorhandler(405)
    def method_not_allowed(_err: Exception) -> tuple[Response, int]:
        return jsonify(error="method not allowed"), 405

    return app
