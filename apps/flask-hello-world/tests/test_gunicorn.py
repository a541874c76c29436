"""End-to-end: the real entrypoint (`python -m flask_hello_world.serve`, gunicorn gthread workers)
on a loopback port, driven over real TCP. Timeouts here are hang guards, not timing assertions.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.gunicorn

APP_DIR = Path(__file__).resolve().parents[1]
HANG_GUARD = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        timeout: float = HANG_GUARD,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def log_entries(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def metric(self, name: str, labels: str = "") -> float:
        _, _, body = self.request("/metrics")
        pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
        match = re.search("^" + pattern + "$", body.decode(), re.MULTILINE)
        return float(match.group(1)) if match else 0.0


def start_server(tmp_path: Path, **env_overrides: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(APP_DIR / "src"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "LOG_LEVEL": "info",
        # A HOME the server must not write to (the container's root filesystem is read-only).
        "HOME": str(tmp_path / "home"),
        **env_overrides,
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask_hello_world.serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early ({proc.returncode}):\n{log_path.read_text()}")
        try:
            if server.request("/readyz", timeout=2)[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"server never became ready:\n{log_path.read_text()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=HANG_GUARD)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, DRAIN_DELAY_SECONDS="0")
    yield srv
    stop_server(srv)


def test_every_endpoint_over_real_http(server: Server) -> None:
    status, headers, body = server.request("/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"Hello, World!" in body

    status, headers, body = server.request("/json")
    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert headers["content-type"] == "application/json"

    assert server.request("/healthz")[0] == 200
    assert json.loads(server.request("/readyz")[2]) == {"status": "ready"}
    assert server.request("/delay/0.1")[0] == 200
    assert server.request("/nope")[0] == 404
    assert server.request("/json", method="POST")[0] == 405

    status, headers, body = server.request("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    assert b"# TYPE http_requests_total counter" in body


def test_writes_nothing_outside_tmp(server: Server, tmp_path: Path) -> None:
    # gunicorn >= 24 would open a control socket under $HOME; on a read-only root filesystem that
    # is a crash, so the runner disables it. Only the metrics shard dir and the log may appear.
    assert server.request("/json")[0] == 200
    assert not (tmp_path / "home").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"metrics", "server.log"}


def test_metrics_aggregate_all_workers(server: Server) -> None:
    labels = 'endpoint="/delay/<seconds>",method="GET",status="200"'
    shards = server.log_path.parent / "metrics"
    sent = 0
    # Concurrent bursts on fresh connections until both workers have served traffic (each worker
    # writes its own counter shard); the scrape, answered by one worker, must count them all.
    deadline = time.monotonic() + HANG_GUARD
    while len(list(shards.glob("counter_*.db"))) < 2:
        assert time.monotonic() < deadline, "the kernel never handed a connection to the second worker"
        burst = [threading.Thread(target=server.request, args=("/delay/0.2",)) for _ in range(8)]
        for t in burst:
            t.start()
        for t in burst:
            t.join(HANG_GUARD)
        sent += len(burst)
    assert server.metric("http_requests_total", labels) == sent
    assert (
        server.metric("http_request_duration_seconds_count", 'endpoint="/delay/<seconds>",method="GET"')
        == sent
    )


def test_logs_are_json_lines_with_access_fields(server: Server) -> None:
    server.request("/json", headers={"X-Request-Id": "e2e-req-1"})
    server.request("/healthz")
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        entries = server.log_entries()  # json.loads raises if any line is not JSON
        access = [e for e in entries if e.get("request_id") == "e2e-req-1"]
        if access:
            break
        time.sleep(0.1)
    assert access, server.log_path.read_text()
    assert access[0]["status"] == 200
    assert access[0]["logger"] == "flask_hello_world.access"
    assert any(e["logger"] == "gunicorn.error" for e in entries), "gunicorn's own lines must be JSON too"
    assert not any(e.get("path") == "/healthz" for e in entries), "probes are DEBUG-only"


def _wait_exit(server: Server) -> int:
    try:
        return server.proc.wait(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        pytest.fail(f"server did not exit after SIGTERM:\n{server.log_path.read_text()}")


def test_sigterm_drains_then_finishes_in_flight_and_exits_zero(tmp_path: Path) -> None:
    # Drain window 2 s; the in-flight request takes 3 s, so it is still running when the listener
    # closes and must nevertheless complete with 200.
    srv = start_server(tmp_path, DRAIN_DELAY_SECONDS="2", GRACEFUL_TIMEOUT_SECONDS="15")
    try:
        result: dict[str, object] = {}

        def slow_call() -> None:
            try:
                status, _, body = srv.request("/delay/3")
                result["status"], result["body"] = status, json.loads(body)
            except OSError as err:  # recorded, asserted below
                result["error"] = repr(err)

        worker = threading.Thread(target=slow_call)
        worker.start()
        deadline = time.monotonic() + HANG_GUARD
        while srv.metric("http_requests_in_flight") < 2:  # the /delay call plus this scrape
            assert time.monotonic() < deadline, "slow request never became in-flight"
            time.sleep(0.05)

        srv.proc.send_signal(signal.SIGTERM)

        # Drain window: readiness fails, liveness and real traffic are still served.
        deadline = time.monotonic() + HANG_GUARD
        while True:
            status, _, body = srv.request("/readyz")
            if status == 503:
                break
            assert time.monotonic() < deadline, "readiness never turned false after SIGTERM"
            time.sleep(0.05)
        assert json.loads(body) == {"status": "draining"}
        assert srv.request("/healthz")[0] == 200
        assert srv.request("/json")[0] == 200

        assert _wait_exit(srv) == 0
        worker.join(timeout=HANG_GUARD)
        assert result == {"status": 200, "body": {"delay": 3.0}}

        with pytest.raises(ConnectionRefusedError):
            srv.request("/healthz", timeout=2)

        messages = [str(e["msg"]) for e in srv.log_entries()]
        assert any(m.startswith("SIGTERM received: readiness is now false") for m in messages)
        assert any(m.startswith("Drain delay over") for m in messages)
    finally:
        stop_server(srv)


def test_second_sigterm_skips_the_rest_of_the_drain(tmp_path: Path) -> None:
    srv = start_server(tmp_path, DRAIN_DELAY_SECONDS="600")
    try:
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + HANG_GUARD
        while srv.request("/readyz")[0] != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        srv.proc.send_signal(signal.SIGTERM)
        assert _wait_exit(srv) == 0  # far sooner than the 600 s drain window
    finally:
        stop_server(srv)


def test_invalid_configuration_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flask_hello_world.serve"],
        env={
            **os.environ,
            "PYTHONPATH": str(APP_DIR / "src"),
            "PORT": "eighty",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid configuration: PORT='eighty' is not an integer" in proc.stderr


def test_a_metrics_dir_it_made_itself_is_removed_on_exit(tmp_path: Path) -> None:
    # Without PROMETHEUS_MULTIPROC_DIR the server makes its own under TMPDIR; once it has exited
    # nothing of it may be left (each run used to leave one behind in /tmp).
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    srv = start_server(tmp_path, PROMETHEUS_MULTIPROC_DIR="", TMPDIR=str(tmp), DRAIN_DELAY_SECONDS="0")
    try:
        made = list(tmp.glob("prometheus-multiproc-*"))
        assert len(made) == 1, made
        assert srv.request("/")[0] == 200
        assert any(made[0].glob("*.db")), "the workers write their shards there"
        srv.proc.send_signal(signal.SIGTERM)
        assert _wait_exit(srv) == 0
    finally:
        stop_server(srv)
    assert list(tmp.iterdir()) == []
