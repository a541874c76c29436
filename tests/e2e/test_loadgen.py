"""tests/cluster/loadgen.py, the cluster e2e's load generator, against real servers on loopback:
it must count successes, and it must count every kind of failure (a status, a refused connection,
a connection closed without an answer), or a zero-failure rollout would prove nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import ROOT, free_port

LOADGEN = ROOT / "tests" / "cluster" / "loadgen.py"


def serve(status: int, before_answer: Callable[[], bool] | None = None) -> ThreadingHTTPServer:
    """A loopback server answering every GET with `status`, unless `before_answer` (called first
    in the request's thread) returns False: then that request gets no answer at all."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if before_answer is not None and not before_answer():
                return
            body = b"ok\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load(url: str, seconds: float = 2.0, rate: float = 100.0, extra: tuple[str, ...] = ()) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            "--url",
            url,
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--timeout",
            "2",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_all_succeed_against_a_healthy_server() -> None:
    server = serve(200)
    try:
        r = load(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
    assert r["failed"] == 0, r
    assert r["status"] == {"200": r["sent"]}
    # A fixed rate, not a flood: about rate x seconds requests.
    assert 120 <= r["sent"] <= 210, r


def test_host_names_the_route_on_every_connection() -> None:
    # A gateway routes by the Host header: here only "hello.example" gets a 200, anything else 404,
    # so every request, keep-alive or new connection, must carry it.
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            body = b"ok\n"
            self.send_response(200 if self.headers.get("Host") == "hello.example" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = load(f"http://127.0.0.1:{server.server_port}/", seconds=1.0, extra=("--host", "hello.example"))
        plain = load(f"http://127.0.0.1:{server.server_port}/", seconds=0.5)
    finally:
        server.shutdown()
    assert r["failed"] == 0 and r["status"] == {"200": r["sent"]} and r["host"] == "hello.example", r
    assert plain["status"] == {"404": plain["sent"]} and plain["host"] is None, plain
    assert set(hosts) == {"hello.example", f"127.0.0.1:{server.server_port}"}


def test_statuses_are_failures() -> None:
    server = serve(503)
    try:
        r = load(f"http://127.0.0.1:{server.server_port}/", seconds=1.0)
    finally:
        server.shutdown()
    assert r["succeeded"] == 0 and r["failed"] == r["sent"] > 0, r
    assert r["status"] == {"503": r["sent"]}


def test_refused_connections_are_failures() -> None:
    r = load(f"http://127.0.0.1:{free_port()}/", seconds=1.0)
    assert r["succeeded"] == 0 and r["failed"] == r["sent"] > 0, r
    assert r["errors"] == {"connection_refused": r["sent"]}, r


def test_a_connection_closed_without_an_answer_is_a_failure() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def accept_and_close() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(4096)
            conn.close()

    t = threading.Thread(target=accept_and_close, daemon=True)
    t.start()
    try:
        r = load(f"http://127.0.0.1:{listener.getsockname()[1]}/", seconds=1.0)
    finally:
        stop.set()
        t.join()
        listener.close()
    assert r["succeeded"] == 0 and r["failed"] == r["sent"] > 0, r
    assert set(r["errors"]) <= {"closed_without_response", "connection_reset"}, r


def test_a_request_hanging_at_the_end_is_a_failure_and_not_a_slower_rate() -> None:
    # One request, 2 s into a 2.5 s run, gets no answer until after the client's 2 s timeout: it
    # is still in flight when the run stops (until about 4 s). It must count as a timeout, and waiting for it must
    # not count as load time (the rate was once computed over the wait too, and a rollout whose
    # last request hung looked like a load generator that could not keep up).
    hung = threading.Event()
    started = threading.Event()
    t0: list[float] = []

    pick = threading.Lock()  # requests run in threads of their own: exactly one may hang

    def hang_once_after_two_seconds() -> bool:
        with pick:
            if not t0:
                t0.append(time.monotonic())
            this_one = time.monotonic() - t0[0] > 2.0 and not started.is_set()
            if this_one:
                started.set()
        if this_one:
            hung.wait(5)
        return not this_one

    server = serve(200, hang_once_after_two_seconds)
    try:
        r = load(f"http://127.0.0.1:{server.server_port}/", seconds=2.5)
    finally:
        hung.set()
        server.shutdown()
    assert started.is_set()
    assert r["errors"] == {"timeout": 1}, r
    assert r["failed"] == 1, r
    # The window is 2.5 s; counting the wait for the hung request would make it about 4.
    assert r["seconds"] < 3.2, r
    assert r["achieved_rate"] >= 90, r
