"""tests/cluster/e2e.py rollout: one rollout test's result from its load reports, with and without
the leg through the gateway; zero failures is required of the sidecar and of the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[2] / "tests" / "cluster" / "e2e.py"


def run_report(failed: int, rate: float = 200) -> dict:
    return {"sent": 6000, "succeeded": 6000 - failed, "failed": failed, "achieved_rate": rate, "seconds": 30,
            "status": {"200": 6000 - failed}, "errors": {}, "latency_ms": {}, "first_failures": []}  # fmt: skip


def rollout(tmp_path: Path, sidecar: dict, baseline: dict, gateway: dict | None) -> dict:
    args = [
        sys.executable,
        str(E2E),
        "rollout",
        "--name",
        "rollout-restart",
        "--rate",
        "200",
        "--zero-failures",
    ]
    for leg, report in (("sidecar", sidecar), ("baseline", baseline), ("gateway", gateway)):
        if report is not None:
            (tmp_path / f"{leg}.json").write_text(json.dumps(report))
            args += [f"--{leg}", str(tmp_path / f"{leg}.json")]
    args += ["--out", str(tmp_path / "out.json")]
    subprocess.run(args, check=True)
    return json.loads((tmp_path / "out.json").read_text())


def test_without_a_gateway_leg_the_result_is_as_before(tmp_path: Path) -> None:
    r = rollout(tmp_path, run_report(0), run_report(7), None)
    assert r["pass"] is True and "gateway" not in r and r["goal"] == "sidecar: zero failed requests"


def test_the_gateway_leg_must_have_zero_failures(tmp_path: Path) -> None:
    ok = rollout(tmp_path, run_report(0), run_report(7), run_report(0))
    assert ok["pass"] is True and ok["gateway"]["failed"] == 0
    assert ok["goal"] == "sidecar and gateway: zero failed requests"
    bad = rollout(tmp_path, run_report(0), run_report(0), run_report(3))
    assert bad["pass"] is False and bad["problems"] == ["gateway: 3 failed requests"]


def test_a_gateway_leg_below_the_rate_fails(tmp_path: Path) -> None:
    r = rollout(tmp_path, run_report(0), run_report(0), run_report(0, rate=100))
    assert r["pass"] is False and r["problems"] == [
        "gateway: 100 req/s, below the 200.0 req/s the test needs"
    ]
