#!/usr/bin/env python3
"""A stand-in for Alertmanager's alert API on the local node (make gitops-e2e): Flux's
notification-controller posts its alerts here (Provider type alertmanager), and each POST is kept as
one JSON line {"received": unix seconds, "path": ..., "body": parsed JSON} in OUT_FILE, which the
test reads. GET /ready answers 200. Bodies over 1 MiB get 413, non-JSON bodies 400.

Usage: alert-receiver.py HOST PORT OUT_FILE"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
# How much of a refused body is read and dropped before closing, and for how long at most.
MAX_DISCARD = 16 << 20
DISCARD_SECONDS = 5
HOST, PORT, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.answer(200 if self.path == "/ready" else 404)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.answer(411)
            return
        if length < 0 or length > MAX_BODY:
            # Closing at once would reset a client still sending the body before it reads the
            # 413: read and drop what it declared (bounded), then close.
            self.close_connection = True
            self.answer(413)
            self.discard(length)
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self.answer(400)
            return
        line = json.dumps({"received": time.time(), "path": self.path, "body": body})
        with LOCK, open(OUT, "a", encoding="utf-8") as out:
            out.write(line + "\n")
        self.answer(200)

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def discard(self, length: int) -> None:
        left = min(length, MAX_DISCARD)
        self.connection.settimeout(DISCARD_SECONDS)
        try:
            while left > 0:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            return

    def log_message(self, *args: object) -> None:
        pass


server = ThreadingHTTPServer((HOST, PORT), Handler)
# shutdown() waits for serve_forever to return, so it must run off the main thread.
signal.signal(
    signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start()
)
server.serve_forever()
