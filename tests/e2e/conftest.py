"""Fixtures that start the real processes: the Flask app under gunicorn, outrigger-proxy,
outrigger-agent and Debian's Prometheus, each on a free loopback port, each stopped at teardown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("OUTRIGGER_TOOLS", ROOT / ".tools"))
LOCAL_CONTROLLERS = ROOT / "flux" / "infrastructure" / "local" / "controllers"
TARGET = (ROOT / os.environ.get("CARGO_TARGET_DIR", "target")).resolve()
APP_SRC = ROOT / "apps" / "flask-hello-world" / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> Path:
    path = TARGET / "debug" / name
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", name], cwd=ROOT, check=True)
    return path


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError) as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, port: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


class Procs:
    """Starts processes with their output in files and makes sure none outlives the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, **ports: int) -> Proc:
        log = self.tmp / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=self.tmp)
        proc = Proc(name, popen, log, ports)
        self.procs.append(proc)
        return proc

    def app(self, name: str = "app", drain_delay: float = 0.5) -> Proc:
        port = free_port()
        proc = self.start(
            name,
            [sys.executable, "-m", "flask_hello_world.serve"],
            env={
                "PYTHONPATH": str(APP_SRC),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": "1",
                "DRAIN_DELAY_SECONDS": str(drain_delay),
                "GRACEFUL_TIMEOUT_SECONDS": "10",
                # In the test's folder: a SIGKILLed server cannot remove a dir it made in /tmp.
                "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / f"{name}-metrics"),
            },
            http=port,
        )
        wait_until(f"{name} ready", lambda: http_get(proc.url("http", "/readyz"))[0] == 200)
        return proc

    def proxy(self, app: Proc, name: str = "proxy", extra: list[str] | None = None) -> Proc:
        inbound, admin = free_port(), free_port()
        proc = self.start(
            name,
            [
                str(binary("outrigger-proxy")),
                "--inbound",
                f"127.0.0.1:{inbound}",
                "--app",
                f"127.0.0.1:{app.ports['http']}",
                "--admin",
                f"127.0.0.1:{admin}",
                *(extra or []),
            ],
            http=inbound,
            admin=admin,
        )
        wait_until(f"{name} ready", lambda: http_get(proc.url("admin", "/ready"))[0] == 200)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(signal.SIGKILL if proc.popen.poll() is None else signal.SIGTERM, timeout=5)


@pytest.fixture
def procs() -> Iterator[Procs]:
    tmp = Path(tempfile.mkdtemp(prefix="outrigger-e2e-"))
    p = Procs(tmp)
    try:
        yield p
    finally:
        p.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/tools.sh")
    return path


def skip_or_fail(what: str) -> None:
    """The repository's skip policy (scripts/lib/skip.sh): fail under CI=true, else skip loudly
    and record the skip in $OUTRIGGER_SKIP_LOG for the summary at the end of ``make test``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: a missing tool is a failure; run scripts/tools.sh)")
    print(f"SKIPPED: {what}", file=sys.stderr)
    if log := os.environ.get("OUTRIGGER_SKIP_LOG"):
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"SKIPPED: tests/e2e: {what}\n")
    pytest.skip(what)


def tool(name: str) -> str:
    """A binary of the toolchain (.tools/bin), under the skip policy when it is missing."""
    path = TOOLS / "bin" / name
    if not path.exists():
        skip_or_fail(f"{name} not installed (scripts/tools.sh)")
    return str(path)


def run(argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command from the repository root; its stdout, or a failure with its stderr's tail."""
    out = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, f"{argv[0]} failed: {out.stderr[-2000:]}"
    return out.stdout


def local_chart_and_values(tmp: Path, chart_script: str, release: str, step: str) -> tuple[str, Path]:
    """A chart as the local node gets it (scripts/CHART_SCRIPT packages it from the Go module cache
    into tmp) and the values the local Flux entry gives its HelmRelease, written to a file."""
    env_path = f"{TOOLS / 'bin'}:{os.environ.get('PATH', '')}"
    chart = subprocess.run(
        [str(ROOT / "scripts" / chart_script), str(tmp / "chart")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PATH": env_path},
    )
    if chart.returncode != 0 and "not in the Go module cache" in chart.stderr:
        skip_or_fail(f"{release}'s chart module is not in the Go module cache (scripts/tools.sh {step})")
    assert chart.returncode == 0, chart.stderr
    built = run([tool("kustomize"), "build", str(LOCAL_CONTROLLERS)])
    helm_release = next(
        d
        for d in yaml.safe_load_all(built)
        if d and d["kind"] == "HelmRelease" and d["metadata"]["name"] == release
    )
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump(helm_release["spec"]["values"]), encoding="utf-8")
    return chart.stdout.strip(), values
