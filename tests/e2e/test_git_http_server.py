"""scripts/lib/git-http-server.py, the Git smart-HTTP server Flux clones from and pushes to, driven
by the real git client: clone, push (small, and large enough that git sends it chunked), fetch
from a second clone, a gzipped request; and the server's refusals: 404, 413, 400, a reset
connection logged as JSON, and SIGTERM answering the request in flight before exit 0."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Proc, Procs, free_port, http_get, need, wait_until

SERVER = ROOT / "scripts" / "lib" / "git-http-server.py"


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture(autouse=True)
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("git")
    # The user's and the machine's git config must not change what the client sends.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "e2e")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "e2e@example.invalid")


def start_server(procs: Procs, root: Path, *extra: str) -> Proc:
    port = free_port()
    argv = [sys.executable, str(SERVER), "--listen", f"127.0.0.1:{port}", "--root", str(root), *extra]
    proc = procs.start("git-http", argv, http=port)
    wait_until("git-http-server /healthz", lambda: http_get(proc.url("http", "/healthz"))[0] == 200)
    return proc


def bare_repo(procs: Procs, name: str = "fleet.git") -> Path:
    root = procs.tmp / "repos"
    git("init", "-q", "--bare", "-b", "main", str(root / name))
    return root


def request_log(proc: Proc) -> list[dict]:
    """The server's per-request JSON lines (every stderr line must be JSON)."""
    lines = [json.loads(line) for line in proc.log.read_text().splitlines() if line.strip()]
    return [line for line in lines if "method" in line]


def commit_file(repo: Path, name: str, data: bytes, message: str) -> str:
    (repo / name).write_bytes(data)
    git("add", name, cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def test_clone_push_and_fetch_through_the_server(procs: Procs) -> None:
    root = bare_repo(procs)
    server = start_server(procs, root)
    url = server.url("http", "/fleet.git")
    a, b = procs.tmp / "a", procs.tmp / "b"

    git("clone", "-q", url, str(a))
    first = commit_file(a, "kustomization.yaml", b"resources: []\n", "first")
    git("push", "-q", "origin", "HEAD:main", cwd=a)
    assert git("rev-parse", "main", cwd=root / "fleet.git").stdout.strip() == first

    git("clone", "-q", url, str(b))
    assert git("rev-parse", "HEAD", cwd=b).stdout.strip() == first

    # Incompressible and far over http.postBuffer: git streams the pack with
    # Transfer-Encoding: chunked, the path Flux's image-automation pushes can take too.
    big = commit_file(a, "blob.bin", os.urandom(2 * 1024 * 1024), "big")
    git("-c", "http.postBuffer=1024", "push", "-q", "origin", "HEAD:main", cwd=a)
    assert git("rev-parse", "main", cwd=root / "fleet.git").stdout.strip() == big

    git("fetch", "-q", "origin", cwd=b)
    assert git("rev-parse", "origin/main", cwd=b).stdout.strip() == big
    git("merge", "-q", "--ff-only", "origin/main", cwd=b)
    assert (b / "blob.bin").read_bytes() == (a / "blob.bin").read_bytes()

    log = request_log(server)
    pushes = [r for r in log if r["path"].endswith("/git-receive-pack") and r["status"] == 200]
    chunked = [r for r in pushes if r.get("req_chunked")]
    assert chunked, f"no chunked push reached the server: {pushes}"
    assert chunked[-1]["req_bytes"] > 2 * 1024 * 1024
    for r in log:
        assert {"method", "path", "status", "bytes", "ms"} <= r.keys(), r
    assert git("fsck", "--strict", cwd=root / "fleet.git").returncode == 0


def test_missing_repository_and_unknown_paths_are_404(procs: Procs) -> None:
    root = bare_repo(procs)
    server = start_server(procs, root)
    for path in (
        "/missing.git/info/refs?service=git-upload-pack",
        "/",
        "/fleet",
        "/fleet.git",
        "/../repos/fleet.git/info/refs?service=git-upload-pack",
        "/.hidden.git/info/refs",
    ):
        status, body = http_get(server.url("http", path))
        assert status == 404, (path, status, body)
        assert b"Traceback" not in body
    # The real client sees the same.
    r = git("ls-remote", server.url("http", "/missing.git"), check=False)
    assert r.returncode != 0
    assert "not found" in r.stderr.lower() or "404" in r.stderr, r.stderr
    # A repository path outside --root by a symlink is not served either.
    outside = procs.tmp / "outside.git"
    git("init", "-q", "--bare", str(outside))
    (root / "link.git").symlink_to(outside)
    assert http_get(server.url("http", "/link.git/info/refs?service=git-upload-pack"))[0] == 404
    assert http_get(server.url("http", "/fleet.git/info/refs?service=git-upload-pack"))[0] == 200


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_oversized_bodies_are_413(procs: Procs) -> None:
    root = bare_repo(procs)
    server = start_server(procs, root, "--max-body", "65536")
    port = server.ports["http"]
    path = "/fleet.git/git-receive-pack"
    ctype = {"Content-Type": "application/x-git-receive-pack-request"}

    status, body = post(port, path, b"0" * 70000, {**ctype, "Content-Length": "70000"})
    assert status == 413, body
    # Chunked: the limit counts de-chunked bytes.
    chunks = b"".join(b"%x\r\n%s\r\n" % (8192, b"0" * 8192) for _ in range(9)) + b"0\r\n\r\n"
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    with raw:
        raw.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype['Content-Type']}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + chunks
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")

    # A client that sends its whole oversized body before it reads still gets the 413:
    # closing with unread data would reset the connection and lose the answer.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        body = b"0" * (4 * 1024 * 1024)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            raw.sendall(head.encode() + body)
            answer = raw.recv(4096)
        except OSError as err:
            answer = repr(err).encode()
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]

    # The real client: a push over the limit fails and changes nothing.
    work = procs.tmp / "w"
    git("clone", "-q", server.url("http", "/fleet.git"), str(work))
    commit_file(work, "blob.bin", os.urandom(200 * 1024), "too big")
    r = git("-c", "http.postBuffer=1024", "push", "origin", "HEAD:main", cwd=work, check=False)
    assert r.returncode != 0
    assert "413" in r.stderr, r.stderr
    assert git("rev-parse", "--verify", "-q", "main", cwd=root / "fleet.git", check=False).returncode != 0
    # Under the limit the same server accepts a push.
    small = procs.tmp / "s"
    git("clone", "-q", server.url("http", "/fleet.git"), str(small))
    commit_file(small, "a.txt", b"a\n", "small")
    git("push", "-q", "origin", "HEAD:main", cwd=small)
    statuses = [r["status"] for r in request_log(server) if r["path"] == path]
    assert statuses.count(413) >= 2, statuses


def pkt(line: str) -> bytes:
    return f"{len(line) + 4:04x}{line}".encode()


def test_gzip_request_bodies_reach_http_backend_as_gzip(procs: Procs) -> None:
    # git gzips fetch negotiations over 1 KiB; http-backend inflates them when it is told
    # the Content-Encoding, so the server must pass that header through untouched.
    root = bare_repo(procs)
    server = start_server(procs, root)
    work = procs.tmp / "w"
    git("clone", "-q", server.url("http", "/fleet.git"), str(work))
    sha = commit_file(work, "a.txt", b"a\n", "one")
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    want = pkt(f"want {sha}\n") + b"0000" + pkt("done\n")
    headers = {"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"}
    status, body = post(server.ports["http"], "/fleet.git/git-upload-pack", gzip.compress(want), headers)
    assert status == 200, body
    assert body.startswith(b"0008NAK\n") and b"PACK" in body, body[:200]


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_bad_requests_are_400_without_a_traceback(procs: Procs) -> None:
    root = bare_repo(procs)
    server = start_server(procs, root)
    port = server.ports["http"]
    path = "/fleet.git/git-receive-pack"
    bad = [
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
        "GET /fleet.git/info/refs HTTP/1.1 extra\r\n\r\n",
        "NONSENSE\r\n\r\n",
    ]
    for req in bad:
        resp = raw_request(port, req.encode())
        assert resp.startswith(b"HTTP/1.") and resp.split(b" ", 2)[1] == b"400", (req, resp[:300])
        assert b"Traceback" not in resp
    # The server still serves after all that.
    assert http_get(server.url("http", "/fleet.git/info/refs?service=git-upload-pack"))[0] == 200
    assert "Traceback" not in server.log.read_text()


def test_a_reset_connection_is_one_json_line(procs: Procs) -> None:
    server = start_server(procs, bare_repo(procs))
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        # The whole response, body included: a reset while the server is still writing it is
        # a failed request (logged as such), not the reset between requests this test is about.
        resp = http.client.HTTPResponse(s)
        resp.begin()
        assert resp.status == 200
        resp.read()
        # Close with RST while the server waits for the next request on this connection.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until("the reset to be logged", lambda: "connection_error" in server.log.read_text())
    assert http_get(server.url("http", "/healthz"))[0] == 200
    request_log(server)  # every line is JSON: no traceback


def test_sigterm_finishes_the_running_request_and_exits_0(procs: Procs) -> None:
    root = bare_repo(procs)
    server = start_server(procs, root)
    port = server.ports["http"]
    # An idle keep-alive connection must not hold up the exit.
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read() == b"ok\n"
    # A request whose body is still on its way when SIGTERM comes (git's empty push probe,
    # a flush packet) is answered before the server exits.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as running:
        running.sendall(
            b"POST /fleet.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 4\r\n\r\n"
        )
        time.sleep(0.5)  # the server has read the headers and waits for the body
        server.popen.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.popen.poll() is None, "exited with a request running"
        running.sendall(b"0000")
        assert running.recv(4096).startswith(b"HTTP/1.1 200 ")
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    idle.close()
    lines = [json.loads(line) for line in server.log.read_text().splitlines()]
    events = [line.get("event") or f"{line['method']} {line['status']}" for line in lines]
    assert events[-3:] == ["stopping", "POST 200", "stopped"], events
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
