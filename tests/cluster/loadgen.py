#!/usr/bin/env python3
"""Fixed-rate HTTP load for the cluster end-to-end tests: half the requests on keep-alive
connections, half each on a new connection, until a stop file appears or a deadline passes.

Every request counts: a 2xx is a success; any other status, a connection error, a reset, a
timeout or a malformed answer is a failure and is counted by kind. The result is one JSON object
on stdout (and in --out): counts per status and per error kind, requests sent, the rate achieved,
latency percentiles, and the first failures with their time offsets, so a test can say exactly
what failed and when. Standard library only: it runs inside the cluster's network namespace.

usage: loadgen.py --url http://10.242.0.20/ --rate 200 [--duration 60 | --stop-file F] [--out F]
                  [--host NAME]   (the Host header, for a gateway that routes by hostname)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


class Tally:
    """Thread-safe counts shared by the workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.failures: list[dict[str, object]] = []
        self.sent = 0
        # Requests started and not yet recorded: any still open when the run gives up on its
        # workers count as failures, never as nothing.
        self.in_flight = 0

    def start(self) -> float:
        with self.lock:
            self.in_flight += 1
        return time.monotonic()

    def record(self, started: float, t0: float, status: int | None, error: str | None, mode: str) -> None:
        took = time.monotonic() - started
        with self.lock:
            self.in_flight -= 1
            self.sent += 1
            if status is not None:
                self.status[str(status)] += 1
            if error is not None:
                self.errors[error] += 1
            ok = error is None and status is not None and 200 <= status < 300
            if ok:
                self.latencies.append(took)
            elif len(self.failures) < 50:
                self.failures.append(
                    {"at_s": round(started - t0, 3), "mode": mode, "status": status, "error": error}
                )


def classify(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ConnectionResetError):
        return "connection_reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed_without_response"
    if isinstance(exc, http.client.HTTPException):
        return "bad_response"
    if isinstance(exc, OSError):
        return f"os_error_{exc.errno}"
    return type(exc).__name__


def worker(
    url: str,
    interval: float,
    keepalive: bool,
    offset: float,
    t0: float,
    stop: threading.Event,
    deadline: float,
    tally: Tally,
    timeout: float,
    host_header: str | None = None,
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    mode = "keepalive" if keepalive else "new_connection"
    headers = {} if keepalive else {"Connection": "close"}
    if host_header:
        headers["Host"] = host_header
    conn: http.client.HTTPConnection | None = None
    next_at = t0 + offset
    while not stop.is_set():
        now = time.monotonic()
        if now >= deadline:
            break
        if next_at > now:
            time.sleep(min(next_at - now, 0.05))
            continue
        next_at += interval
        started = tally.start()
        status: int | None = None
        error: str | None = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            if not keepalive or resp.will_close:
                conn.close()
                conn = None
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            error = classify(exc)
            if conn is not None:
                conn.close()
            conn = None
        tally.record(started, t0, status, error, mode)
    if conn is not None:
        conn.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return round(sorted_values[i] * 1000, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second in total")
    ap.add_argument("--workers", type=int, default=16, help="half keep-alive, half new connections")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds at most")
    ap.add_argument("--stop-file", help="stop when this file exists")
    ap.add_argument("--ready-file", help="created once the workers run")
    ap.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    ap.add_argument("--out", help="also write the JSON result here")
    ap.add_argument("--host", help="Host header of every request (default: the URL's host)")
    args = ap.parse_args()
    if args.workers < 2 or args.workers % 2:
        ap.error("--workers must be an even number >= 2")
    per_worker = args.rate / args.workers
    interval = 1.0 / per_worker
    tally = Tally()
    stop = threading.Event()
    t0 = time.monotonic()
    deadline = t0 + args.duration
    threads = [
        threading.Thread(
            target=worker,
            args=(
                args.url,
                interval,
                i % 2 == 0,
                interval * i / args.workers,
                t0,
                stop,
                deadline,
                tally,
                args.timeout,
                args.host,
            ),
            daemon=True,
        )
        for i in range(args.workers)
    ]
    for t in threads:
        t.start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    while time.monotonic() < deadline:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        time.sleep(0.05)
    stop.set()
    # The load window ends here: no request starts after it. The rate is over this window only;
    # waiting below for requests still in flight (up to a timeout each) sends nothing.
    elapsed = time.monotonic() - t0
    give_up = time.monotonic() + 3 * args.timeout + 2  # connect, send and read may each time out
    for t in threads:
        t.join(timeout=max(0.0, give_up - time.monotonic()))
    with tally.lock:
        if tally.in_flight:
            tally.errors["unfinished"] += tally.in_flight
            tally.sent += tally.in_flight
            tally.in_flight = 0
    lat = sorted(tally.latencies)
    ok = sum(n for s, n in tally.status.items() if s.startswith("2"))
    result = {
        "url": args.url,
        "host": args.host,
        "seconds": round(elapsed, 2),
        "target_rate": args.rate,
        "achieved_rate": round(tally.sent / elapsed, 1) if elapsed else 0.0,
        "sent": tally.sent,
        "succeeded": ok,
        "failed": tally.sent - ok,
        "status": dict(sorted(tally.status.items())),
        "errors": dict(sorted(tally.errors.items())),
        "latency_ms": {
            "p50": percentile(lat, 0.5),
            "p99": percentile(lat, 0.99),
            "max": percentile(lat, 1.0),
        },
        "first_failures": tally.failures,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
