"""In-process tests of routes, probes, metrics labels and request ids (Flask test client)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from flask_hello_world import lifecycle
from flask_hello_world.logging_json import JsonFormatter


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_index_is_html(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert b"<h1>Hello, World!</h1>" in resp.data


@pytest.mark.parametrize("path", ["/json", "/json/"])
def test_json(client: FlaskClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.get_json() == {"hello": "world"}


def test_healthz(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert (resp.status_code, resp.get_json()) == (200, {"status": "ok"})


def test_readyz_flips_when_draining_but_liveness_does_not(client: FlaskClient) -> None:
    assert client.get("/readyz").status_code == 200
    lifecycle.set_draining()
    resp = client.get("/readyz")
    assert (resp.status_code, resp.get_json()) == (503, {"status": "draining"})
    assert client.get("/healthz").status_code == 200
    assert client.get("/json").status_code == 200


@pytest.mark.parametrize("bad", ["abc", "-1", "10.5", "nan", "inf", "1e9"])
def test_delay_rejects_bad_values(client: FlaskClient, bad: str) -> None:
    resp = client.get(f"/delay/{bad}")
    assert resp.status_code == 400
    assert "delay must be" in resp.get_json()["error"]


def test_delay_zero(client: FlaskClient) -> None:
    resp = client.get("/delay/0")
    assert (resp.status_code, resp.get_json()) == (200, {"delay": 0.0})


def test_unknown_path_is_json_404_with_bounded_label(client: FlaskClient) -> None:
    before = sample("http_requests_total", method="GET", endpoint="unmatched", status="404")
    resp = client.get("/no/such/page/12345")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "not found"}
    after = sample("http_requests_total", method="GET", endpoint="unmatched", status="404")
    assert after == before + 1


def test_wrong_method_is_405_and_odd_methods_collapse_to_other(client: FlaskClient) -> None:
    # No rule matched the method, so the route label is the bounded "unmatched" too.
    before = sample("http_requests_total", method="other", endpoint="unmatched", status="405")
    resp = client.open("/json", method="BREW")
    assert resp.status_code == 405
    assert resp.get_json() == {"error": "method not allowed"}
    assert sample("http_requests_total", method="other", endpoint="unmatched", status="405") == before + 1


def test_red_metrics_count_and_time_by_route(client: FlaskClient) -> None:
    labels = {"method": "GET", "endpoint": "/json"}
    count_before = sample("http_requests_total", status="200", **labels)
    hist_before = sample("http_request_duration_seconds_count", **labels)
    for _ in range(3):
        client.get("/json")
    assert sample("http_requests_total", status="200", **labels) == count_before + 3
    assert sample("http_request_duration_seconds_count", **labels) == hist_before + 3
    body = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="/json",method="GET",status="200"}' in body
    assert "# TYPE http_request_duration_seconds histogram" in body
    assert "flask_hello_world_build_info" in body


def test_request_id_is_propagated_or_generated(client: FlaskClient) -> None:
    assert client.get("/json", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = client.get("/json").headers["X-Request-Id"]
    assert len(generated) == 32
    oversized = client.get("/json", headers={"X-Request-Id": "x" * 500}).headers["X-Request-Id"]
    assert oversized != "x" * 500
    assert len(oversized) == 32


def test_access_log_is_one_json_object_per_request(client: FlaskClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flask_hello_world.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.get("/json", headers={"X-Request-Id": "log-test"})
        client.get("/healthz")  # probe traffic is DEBUG: filtered at INFO
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == "request"
    assert entry["level"] == "info"
    assert entry["path"] == "/json"
    assert entry["endpoint"] == "/json"
    assert entry["status"] == 200
    assert entry["request_id"] == "log-test"
    assert entry["duration_ms"] >= 0
    assert entry["ts"].endswith("+00:00")


def test_json_formatter_includes_exceptions() -> None:
    logger = logging.getLogger("test.exc")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logger.makeRecord("test.exc", logging.ERROR, __file__, 1, "failed", None, None)
        import sys  # noqa: PLC0415

        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "failed"
    assert "RuntimeError: boom" in entry["exc"]
