"""The proxy's access log, written to disk the way the kubelet writes container logs (CRI format),
tailed by outrigger-agent and pushed to a Loki-compatible sink: every line arrives exactly once,
in order, with the pod's labels."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import Procs, binary, free_port, http_get, wait_until


class LokiSink:
    """Accepts Loki JSON pushes (`{"streams":[{"stream":{...},"values":[[ts, line], ...]}]}`)."""

    def __init__(self) -> None:
        self.entries: list[tuple[dict, str]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                push = json.loads(body)
                with sink.lock:
                    for stream in push["streams"]:
                        for value in stream["values"]:
                            sink.entries.append((stream["stream"], value[1]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/loki/api/v1/push"

    def close(self) -> None:
        self.server.shutdown()


def cri_line(stream: str, msg: str) -> str:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return f"{ts} {stream} F {msg}\n"


def test_proxy_access_log_reaches_loki_through_agent(procs: Procs) -> None:
    app = procs.app()
    proxy = procs.proxy(app)
    for i in range(25):
        assert http_get(proxy.url("http", f"/json?n={i}"))[0] == 200
    assert proxy.stop() == 0
    access = [line for line in proxy.log.read_text().splitlines() if line.startswith("{") and "/json" in line]
    assert len(access) == 25

    # Lay the lines out as the kubelet would for container "outrigger-proxy" of a pod.
    log_root = procs.tmp / "pods"
    container_dir = log_root / "shop_web-5d8f_0c2d7a1e-1111-2222-3333-444455556666" / "outrigger-proxy"
    container_dir.mkdir(parents=True)
    (container_dir / "0.log").write_text("".join(cri_line("stdout", line) for line in access))

    sink = LokiSink()
    try:
        agent = procs.start(
            "agent",
            [
                str(binary("outrigger-agent")),
                "--log-root",
                str(log_root),
                "--state-dir",
                str(procs.tmp / "state"),
                "--loki-url",
                sink.url,
                "--loki-encoding",
                "json",
                "--metrics",
                f"127.0.0.1:{free_port()}",
                "--node-name",
                "node-e2e",
                "--kube-metadata",
                "off",
            ],
        )

        def all_arrived() -> bool:
            with sink.lock:
                return len(sink.entries) >= len(access)

        wait_until("agent shipped every line", all_arrived, timeout=60)
        assert agent.stop() == 0
        with sink.lock:
            got = list(sink.entries)
        assert [line for _, line in got] == access, "lines lost, duplicated or reordered"
        labels = got[0][0]
        assert labels["namespace"] == "shop"
        assert labels["pod"] == "web-5d8f"
        assert labels["container"] == "outrigger-proxy"
        assert labels["node"] == "node-e2e"
        assert labels["stream"] == "stdout"
        assert Path(procs.tmp / "state").exists()
    finally:
        sink.close()
