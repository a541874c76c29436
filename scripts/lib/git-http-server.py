#!/usr/bin/env python3
"""A Git smart-HTTP server (clone, fetch and push, no auth) for the GitOps repository
that Flux reads from and writes to: each request to http://ADDR:PORT/NAME.git/... runs
`git http-backend` as a CGI over the bare repositories under --root. Flags and their
environment variables: --help. Standard library only, so it runs in any python image.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

COPY_CHUNK = 64 * 1024
# How long a refused request's remaining body is read and dropped (Handler.linger).
LINGER_SECONDS = 5.0
# De-chunked bodies stay in memory up to this size, then go to a temporary file.
SPOOL_IN_MEMORY = 4 * 1024 * 1024
# A repository name: path components of safe characters, none starting with a dot (so no
# `..` and no hidden directories), ending in `.git`.
REPO_RE = re.compile(
    r"^/((?:[A-Za-z0-9_][A-Za-z0-9._-]*/)*[A-Za-z0-9_][A-Za-z0-9._-]*\.git)(/.*)$"
)
# Request headers not passed as HTTP_*: the body's framing is ours (CONTENT_LENGTH is
# set from what was read), and HTTP_PROXY would become the CGI's proxy ("httpoxy").
CGI_HEADERS_DROPPED = {"HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "HTTP_PROXY"}
# Enables push without REMOTE_USER, whatever the repository's own config says;
# safe.directory=* because the repositories are often created by another uid (an init
# container, a volume seeded by root) and git would otherwise refuse them as "dubious
# ownership". Only --root is ever served.
GIT_CONFIG_ENV = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "http.receivepack",
    "GIT_CONFIG_VALUE_0": "true",
    "GIT_CONFIG_KEY_1": "safe.directory",
    "GIT_CONFIG_VALUE_1": "*",
}


class BadRequest(Exception):
    """The request cannot be served; carries the status to answer with."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def log_json(**fields: object) -> None:
    fields = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    # One write per line: lines from concurrent requests must not interleave.
    sys.stderr.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stderr.flush()


def read_chunked(rfile: BinaryIO, limit: int) -> tuple[BinaryIO, int]:
    """De-chunks a `Transfer-Encoding: chunked` body into a spool file, at most `limit`
    bytes. Spooled, not streamed: the limit holds before git sees any of a push,
    and http-backend gets a CONTENT_LENGTH."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (returned)
    total = 0
    try:
        while True:
            line = rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST, "truncated or overlong chunk size line"
                )
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(HTTPStatus.BAD_REQUEST, "bad chunk size") from None
            if size < 0:
                raise BadRequest(HTTPStatus.BAD_REQUEST, "bad chunk size")
            if size == 0:
                break
            total += size
            if total > limit:
                raise BadRequest(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes"
                )
            while size:
                data = rfile.read(min(size, COPY_CHUNK))
                if not data:
                    raise BadRequest(
                        HTTPStatus.BAD_REQUEST, "body ended inside a chunk"
                    )
                spool.write(data)
                size -= len(data)
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest(HTTPStatus.BAD_REQUEST, "chunk not followed by CRLF")
        # Trailers are allowed by the encoding; http-backend has no use for them.
        for _ in range(100):
            line = rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                break
        else:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "too many trailer lines")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, total


def feed(src: BinaryIO, dst: BinaryIO, length: int, errors: list[str]) -> None:
    """Copies `length` bytes of the request body into the CGI's stdin. Runs in its own
    thread: a CGI that writes before it has read everything must not deadlock us."""
    try:
        while length > 0:
            data = src.read(min(length, COPY_CHUNK))
            if not data:
                errors.append(f"request body ended {length} bytes early")
                break
            dst.write(data)
            length -= len(data)
    except OSError as err:  # the client went away, or the CGI exited before reading it
        errors.append(f"request body: {err}")
    finally:
        with contextlib.suppress(OSError):
            dst.close()


def read_cgi_headers(out: BinaryIO) -> tuple[int, str, list[tuple[str, str]]]:
    status, reason, headers = 200, "OK", []
    while True:
        line = out.readline(65536)
        if not line:
            raise BadRequest(
                HTTPStatus.BAD_GATEWAY, "git http-backend ended without a response"
            )
        line = line.rstrip(b"\r\n")
        if not line:
            return status, reason, headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest(
                HTTPStatus.BAD_GATEWAY, "git http-backend wrote a malformed header"
            )
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code) if code.isdigit() else 502
        else:
            headers.append((name, value))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: git and go-git reuse the connection
    server_version = "outrigger-git-http"
    # The version a bad request line is answered in: the base's HTTP/0.9 would send the
    # 400 page without a status line, and no client here speaks 0.9.
    default_request_version = "HTTP/1.0"
    server: GitHTTPServer

    def setup(self) -> None:
        self.timeout = self.server.cfg.timeout
        super().setup()

    def handle_expect_100(self) -> bool:
        # Refuse an oversized push before the client sends it, not after.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.cfg.max_body:
            self.start = time.monotonic()
            self.fail(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body over {self.server.cfg.max_body} bytes",
            )
            return False
        return super().handle_expect_100()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # finish_log writes the one line per request, with more in it

    def log_message(self, format: str, *args: object) -> None:
        # Only the base class's own errors come here (malformed request lines and the
        # like); requests are logged by finish_log.
        log_json(event="http_error", client=self.client_address[0], msg=format % args)

    def fail(self, status: HTTPStatus, reason: str, **extra: object) -> None:
        body = f"{status.value} {status.phrase}: {reason}\n".encode()
        # The body of a refused request may still be on the wire: the connection cannot
        # be reused.
        self.close_connection = True
        self.send_response(status.value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.finish_log(status.value, len(body), error=reason, **extra)
        if self.command == "POST":
            self.linger()

    def linger(self) -> None:
        """Reads and drops what the client still sends, for a few seconds, after a
        refusal: closing with unread data makes the kernel reset the connection, and a
        client still uploading (curl, for git) reports "Broken pipe", not our 413."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline = time.monotonic() + LINGER_SECONDS
            while time.monotonic() < deadline and self.connection.recv(COPY_CHUNK):
                pass

    def finish_log(self, status: int, sent: int, **extra: object) -> None:
        log_json(
            method=self.command,
            path=self.path,
            status=status,
            bytes=sent,
            ms=round((time.monotonic() - self.start) * 1000, 1),
            client=self.client_address[0],
            **extra,
        )

    def serve(self) -> None:
        self.start = time.monotonic()
        self.response_started = False
        self.chunked = False
        with self.server.tracker:
            try:
                self.route()
            except BadRequest as err:
                self.fail(err.status, err.reason)
            except (BrokenPipeError, ConnectionResetError, TimeoutError) as err:
                self.close_connection = True
                self.finish_log(499, 0, error=f"client connection: {err!r}")
            except Exception as err:  # noqa: BLE001 (a bug costs one request, not the server)
                log_json(event="internal_error", path=self.path, error=repr(err))
                self.close_connection = True
                if not self.response_started:
                    with contextlib.suppress(OSError):
                        self.fail(
                            HTTPStatus.INTERNAL_SERVER_ERROR,
                            "internal error (see the server log)",
                        )
            # Shutting down: no further requests on a kept-alive connection.
            if self.server.stopping.is_set():
                self.close_connection = True

    do_GET = do_POST = do_HEAD = serve

    def route(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path == "/healthz":
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.finish_log(200, len(body))
            return
        m = REPO_RE.match(path)
        if not m or "\x00" in path:
            raise BadRequest(
                HTTPStatus.NOT_FOUND, "not a repository path (/NAME.git/...)"
            )
        repo = self.server.cfg.root / m.group(1)
        # resolve(): a symlink under --root must not lead out of it.
        if not repo.is_dir() or not repo.resolve().is_relative_to(self.server.cfg.root):
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no repository {m.group(1)}")
        body, length = self.request_body()
        try:
            self.run_cgi(path, url.query, body, length)
        finally:
            if body is not self.rfile:
                body.close()

    def request_body(self) -> tuple[BinaryIO, int]:
        te = self.headers.get("Transfer-Encoding", "").strip().lower()
        cl = self.headers.get("Content-Length")
        if te:
            if te != "chunked":
                raise BadRequest(
                    HTTPStatus.NOT_IMPLEMENTED, f"Transfer-Encoding {te!r}"
                )
            if cl is not None:
                # RFC 9112 6.1: both at once is how requests get smuggled; refuse.
                raise BadRequest(
                    HTTPStatus.BAD_REQUEST, "both Transfer-Encoding and Content-Length"
                )
            self.chunked = True
            return read_chunked(self.rfile, self.server.cfg.max_body)
        if cl is None:
            return self.rfile, 0
        if not cl.strip().isdigit():
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad Content-Length {cl!r}")
        length = int(cl)
        if length > self.server.cfg.max_body:
            raise BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body over {self.server.cfg.max_body} bytes",
            )
        return self.rfile, length

    def cgi_env(self, path: str, query: str, length: int) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": str(self.server.server_port),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROJECT_ROOT": str(self.server.cfg.root),
            # Serve every repository under --root, without git-daemon-export-ok files.
            "GIT_HTTP_EXPORT_ALL": "1",
            **GIT_CONFIG_ENV,
        }
        if self.command == "POST":
            env["CONTENT_LENGTH"] = str(length)
        if ctype := self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = ctype  # also passed as HTTP_CONTENT_TYPE: harmless
        # Git-Protocol (v2), Content-Encoding (gzip, inflated by http-backend) and the
        # rest.
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in CGI_HEADERS_DROPPED:
                env[key] = value
        return env

    def run_cgi(self, path: str, query: str, body: BinaryIO, length: int) -> None:
        feed_errors: list[str] = []
        with tempfile.TemporaryFile() as err_file:
            proc = subprocess.Popen(
                [self.server.cfg.backend],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err_file,
                env=self.cgi_env(path, query, length),
                cwd=self.server.cfg.root,
            )
            feeder = threading.Thread(
                target=feed, args=(body, proc.stdin, length, feed_errors), daemon=True
            )
            feeder.start()
            sent, status, done, bad = 0, 502, False, None
            try:
                status, reason, headers = read_cgi_headers(proc.stdout)
                sent = self.relay(proc.stdout, status, reason, headers)
                done = True
            except BadRequest as err:
                bad = err
            finally:
                # Stops a CGI whose output nobody reads any more (client gone, bad
                # output).
                if not done and proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                rc = proc.wait()
                feeder.join(timeout=5)
                err_file.seek(0)
                stderr = err_file.read(4096).decode("utf-8", "replace").strip()
        extra: dict[str, object] = {"req_bytes": length}
        if self.chunked:
            extra["req_chunked"] = True
        if rc:
            extra["cgi_exit"] = rc
        if stderr:
            extra["cgi_stderr"] = stderr
        if feed_errors:
            extra["body_error"] = "; ".join(feed_errors)
            self.close_connection = True
        if bad is not None:
            self.fail(bad.status, bad.reason, **extra)
        else:
            self.finish_log(status, sent, **extra)

    def relay(
        self, out: BinaryIO, status: int, reason: str, headers: list[tuple[str, str]]
    ) -> int:
        """Sends the CGI's response. Without a Content-Length from the CGI the body goes
        out chunked (HTTP/1.1) so the connection stays reusable, or until close."""
        has_length = any(name.lower() == "content-length" for name, _ in headers)
        chunked = (
            not has_length
            and self.request_version == "HTTP/1.1"
            and self.command != "HEAD"
        )
        self.send_response(status, reason or None)
        for name, value in headers:
            if name.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not has_length:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self.response_started = True
        sent = 0
        while data := out.read1(COPY_CHUNK):
            if self.command == "HEAD":
                continue
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            sent += len(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return sent


class Tracker:
    """Counts requests in progress: shutdown waits for them (an interrupted push is a
    failed reconcile for Flux), not for idle keep-alive connections."""

    def __init__(self) -> None:
        self.active = 0
        self.cond = threading.Condition()

    def __enter__(self) -> None:
        with self.cond:
            self.active += 1

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def drain(self, grace: float) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.active == 0, timeout=grace)
            return self.active


class GitHTTPServer(ThreadingHTTPServer):
    # Idle keep-alive connections must not hold up exit; running requests are waited for
    # by Tracker.
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], cfg: argparse.Namespace) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.cfg = cfg
        self.tracker = Tracker()
        self.stopping = threading.Event()
        super().__init__(addr, Handler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # Errors outside a request (a client resetting a kept-alive connection): one JSON
        # line, not socketserver's traceback on stderr.
        log_json(
            event="connection_error",
            client=client_address[0],
            error=repr(sys.exc_info()[1]),
        )


def default_backend() -> str:
    git = shutil.which("git")
    if git:
        exec_path = subprocess.run(
            [git, "--exec-path"], capture_output=True, text=True, check=False
        ).stdout
        candidate = Path(exec_path.strip()) / "git-http-backend"
        if exec_path.strip() and candidate.exists():
            return str(candidate)
    return "/usr/lib/git-core/git-http-backend"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="git-http-server.py",
        description="Git smart-HTTP server (clone, fetch, push; no auth) over the bare "
        "repositories under --root, at http://HOST:PORT/NAME.git; /healthz: 200. "
        "Runs `git http-backend` per request. One JSON log line per request on stderr. "
        "SIGTERM/SIGINT: stop accepting, let running requests finish, exit 0. "
        "Each flag has an environment variable; the flag wins.",
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=env("GIT_HTTP_LISTEN", "127.0.0.1:8080"),
        help="HOST:PORT to listen on; port 0 picks a free one, named in the log "
        "(env GIT_HTTP_LISTEN, default %(default)s)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        type=Path,
        default=env("GIT_HTTP_ROOT"),
        help="where the bare repositories NAME.git are (env GIT_HTTP_ROOT, required)",
    )
    p.add_argument(
        "--max-body",
        metavar="BYTES",
        type=int,
        default=env("GIT_HTTP_MAX_BODY", str(256 * 1024 * 1024)),
        help="largest request body in bytes (de-chunked, still gzipped); larger ones "
        "get 413 (env GIT_HTTP_MAX_BODY, default %(default)s = 256 MiB)",
    )
    p.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=env("GIT_HTTP_TIMEOUT", "300"),
        help="seconds a client connection may sit idle or stall "
        "(env GIT_HTTP_TIMEOUT, default %(default)s)",
    )
    p.add_argument(
        "--grace",
        metavar="SECONDS",
        type=float,
        default=env("GIT_HTTP_GRACE", "20"),
        help="seconds SIGTERM waits for running requests "
        "(env GIT_HTTP_GRACE, default %(default)s)",
    )
    p.add_argument(
        "--backend",
        metavar="PATH",
        default=env("GIT_HTTP_BACKEND") or default_backend(),
        help="the git-http-backend to run (env GIT_HTTP_BACKEND, default from "
        "`git --exec-path`: %(default)s)",
    )
    cfg = p.parse_args(
        argv,
    )
    if cfg.root is None:
        p.error("--root (or GIT_HTTP_ROOT) is required")
    if not cfg.root.is_dir():
        p.error(f"--root {cfg.root} is not a directory")
    cfg.root = cfg.root.resolve()
    if cfg.max_body < 0:
        p.error("--max-body must be >= 0")
    if not os.access(cfg.backend, os.X_OK):
        p.error(f"git http-backend not found or not executable: {cfg.backend}")
    try:
        cfg.listen_addr = parse_listen(cfg.listen)
    except argparse.ArgumentTypeError as err:
        p.error(str(err))
    return cfg


def main(argv: list[str]) -> int:
    cfg = parse_args(argv)
    try:
        server = GitHTTPServer(cfg.listen_addr, cfg)
    except OSError as err:
        log_json(event="listen_failed", listen=cfg.listen, error=str(err))
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        if server.stopping.is_set():
            return
        server.stopping.set()
        log_json(event="stopping", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, which runs in this very
        # thread: call it from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    log_json(event="listening", addr=f"{host}:{port}", port=port, root=str(cfg.root))
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    left = server.tracker.drain(cfg.grace)
    log_json(event="stopped", unfinished_requests=left)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
