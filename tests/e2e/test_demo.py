"""The README's first command, `make demo` (scripts/demo.sh), run for real: it passes when the
proxy drains cleanly, and it must FAIL when requests fail during the drain — a demo that counts
"no response" (curl's 000) as success could never show a failure."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT, free_port


def run_demo(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEMO_APP_PORT": str(free_port()),
        "DEMO_INBOUND_PORT": str(free_port()),
        "DEMO_ADMIN_PORT": str(free_port()),
        "DEMO_SINK_PORT": str(free_port()),
        "DEMO_AGENT_PORT": str(free_port()),
        "DEMO_DURATION": "1",
        **overrides,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


def test_demo_drains_with_zero_failed_requests() -> None:
    r = run_demo()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo done: zero failed requests" in r.stdout
    assert "failed: 0" in r.stdout
    assert "proxy exit status: 0" in r.stdout


def test_demo_fails_when_the_proxy_stops_accepting_during_the_drain() -> None:
    # No drain delay: the proxy stops accepting at SIGTERM while the clients still send for
    # 0.5 s, so those requests get no response at all. The demo must report them and exit 1.
    r = run_demo(DEMO_DRAIN_DELAY="0s")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo: something failed" in r.stdout
    assert "(000 = no response)" in r.stdout
    assert "demo done" not in r.stdout
