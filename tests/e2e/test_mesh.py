"""The Flask app behind outrigger-proxy, scraped by Debian's real Prometheus: the request counts
that the proxy and the app report must both match what the client sent."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from conftest import Procs, free_port, http_get, need, wait_until


def prom_query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url)
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def test_requests_through_proxy_are_counted_by_proxy_app_and_prometheus(procs: Procs) -> None:
    prometheus = need("prometheus")
    app = procs.app()
    proxy = procs.proxy(app)

    sent = {"/json": 37, "/": 5, "/nope": 3}
    for path, n in sent.items():
        for _ in range(n):
            status, body = http_get(proxy.url("http", path))
            if path == "/json":
                assert status == 200 and json.loads(body) == {"hello": "world"}
            elif path == "/":
                assert status == 200
            else:
                assert status == 404

    port = free_port()
    config = procs.tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: proxy\n    static_configs: [{{targets: ['127.0.0.1:{proxy.ports['admin']}']}}]\n"
        f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{app.ports['http']}']}}]\n"
    )
    procs.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={procs.tmp / 'tsdb'}",
        ],
    )
    total = sum(sent.values())

    def scraped() -> bool:
        # Prometheus answers 503 until its storage is open; only then is the query meaningful.
        if http_get(f"http://127.0.0.1:{port}/-/ready")[0] != 200:
            return False
        up = prom_query(port, "up")
        return len(up) == 2 and all(r["value"][1] == "1" for r in up)

    wait_until("prometheus scraped both targets", scraped, timeout=60)
    # Proxy view: every request the client sent, by status code, and no paths in labels.
    by_code = {
        r["metric"]["status_code"]: float(r["value"][1])
        for r in prom_query(port, 'sum by (status_code) (outrigger_proxy_requests_total{job="proxy"})')
    }
    assert by_code == {"200": 42.0, "404": 3.0}, by_code
    assert sum(by_code.values()) == total
    # App view of the same traffic (the proxy's own /ready probes hit no app endpoint).
    app_json = prom_query(port, 'sum(http_requests_total{job="app",endpoint="/json"})')
    assert float(app_json[0]["value"][1]) == 37.0
    # Latency histogram is populated for every request.
    count = prom_query(port, "sum(outrigger_proxy_request_duration_seconds_count)")
    assert float(count[0]["value"][1]) == total


def test_access_log_has_one_json_line_per_request(procs: Procs) -> None:
    app = procs.app()
    proxy = procs.proxy(app)
    for i in range(10):
        assert http_get(proxy.url("http", f"/json?i={i}"))[0] == 200
    assert proxy.stop() == 0
    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if "status" in json.dumps(entry) and "/json" in json.dumps(entry)]
    assert len(access) == 10, Path(proxy.log).read_text()[-2000:]


def test_rollout_between_two_replicas_loses_no_request(procs: Procs) -> None:
    """A rolling update in miniature: a client that follows HTTP semantics and an endpoint list
    that, like Kubernetes, learns about readiness only by polling /ready. Replica A is terminated
    while load runs; replica B keeps serving. No request may fail."""
    import http.client
    import threading

    app_a, app_b = procs.app("app-a"), procs.app("app-b")
    proxy_a = procs.proxy(app_a, "proxy-a", ["--drain-delay", "1s", "--drain-timeout", "5s"])
    proxy_b = procs.proxy(app_b, "proxy-b", ["--drain-delay", "1s", "--drain-timeout", "5s"])
    replicas = {"a": proxy_a, "b": proxy_b}
    ready = {"a": True, "b": True}
    stop = threading.Event()

    def endpoints_controller() -> None:
        while not stop.is_set():
            for key, proxy in replicas.items():
                try:
                    ready[key] = http_get(proxy.url("admin", "/ready"), timeout=0.5)[0] == 200
                except OSError:
                    ready[key] = False
            time.sleep(0.2)

    failures: list[str] = []
    served = {"a": 0, "b": 0}

    def client() -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        i = 0
        while not stop.is_set():
            candidates = [k for k, ok in ready.items() if ok] or ["b"]
            key = candidates[i % len(candidates)]
            i += 1
            conn = conns.get(key) or http.client.HTTPConnection(
                "127.0.0.1", replicas[key].ports["http"], timeout=5
            )
            conns[key] = conn
            try:
                conn.request("GET", "/json")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures.append(f"{key}: status {resp.status}")
                served[key] += 1
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conns.pop(key, None)
            except (OSError, http.client.HTTPException) as err:
                # A keep-alive connection closed by the server while idle may be retried once,
                # as HTTP clients do for idempotent requests (RFC 9110 §9.2.2).
                conn.close()
                conns.pop(key, None)
                retry = http.client.HTTPConnection("127.0.0.1", replicas[key].ports["http"], timeout=5)
                try:
                    retry.request("GET", "/json")
                    resp = retry.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(f"{key}: status {resp.status} after {err!r}")
                    served[key] += 1
                except (OSError, http.client.HTTPException) as err2:
                    failures.append(f"{key}: {err!r} then {err2!r}")
                finally:
                    retry.close()

    threads = [threading.Thread(target=endpoints_controller)] + [
        threading.Thread(target=client) for _ in range(4)
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)
    before = served["a"]
    exit_code = proxy_a.stop(timeout=20)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert before > 0 and served["b"] > 0
    assert exit_code == 0
    assert failures == [], failures[:10]
