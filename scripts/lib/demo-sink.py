"""A tiny Loki-compatible push sink for the demo: accepts Loki JSON pushes and appends one JSON
line per entry (labels + line) to a file. Usage: demo-sink.py PORT OUT_FILE."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, OUT = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 404)
        self.end_headers()

    def do_POST(self) -> None:
        push = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with open(OUT, "a", encoding="utf-8") as out:
            for stream in push.get("streams", []):
                out.writelines(
                    json.dumps(
                        {"labels": stream.get("stream", {}), "ts": ts, "line": line}
                    )
                    + "\n"
                    for ts, line, *_ in stream.get("values", [])
                )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
