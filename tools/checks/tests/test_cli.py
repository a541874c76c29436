"""The command line scripts/check-*.sh call: tools/checks/outrigger-checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from outrigger_checks import ROOT

CLI = ROOT / "tools" / "checks" / "outrigger-checks"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    # The wrapper runs the python3 on PATH: put this interpreter's first.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, check=False, env={"PATH": path, **env})


def test_a_passing_check_prints_its_summary() -> None:
    r = run("dashboards")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dashboards ok: 4 files")


def test_a_failing_check_prints_fail_lines_and_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("kind: ClusterRole\nrules: []\n")
    r = run("invariants", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith("FAIL: bad.yaml: ClusterRole must grant get/list/watch on pods only")


def test_bad_usage_lists_the_subcommands() -> None:
    r = run("no-such-check")
    assert r.returncode == 1
    assert "FAIL: bad usage: no-such-check" in r.stderr
    assert "dashboards-gen [--check]" in r.stderr


def test_generators_in_check_mode_agree_with_the_committed_files() -> None:
    for args in (["dashboards-gen", "--check"], ["tfdocs", "--check"]):
        r = run(*args)
        assert r.returncode == 0, r.stderr
