"""Tests of scripts/lib/host-snapshot.sh's host_diff, run by a real bash on snapshot files: what
the local cluster leaves behind is a difference, a host cgroup that went away meanwhile is not.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BEFORE = """\
## iptables
-A INPUT -j ACCEPT
## mounts
proc /proc proc
## cgroups
/sys/fs/cgroup/memory
/sys/fs/cgroup/memory/job-a
/sys/fs/cgroup/memory/job-b
## processes of the state dir
"""


def host_diff(tmp_path: Path, after: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "before").write_text(BEFORE)
    (tmp_path / "after").write_text(after)
    script = f"source {ROOT}/scripts/lib/host-snapshot.sh; host_diff {tmp_path}/before {tmp_path}/after"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=False
    )


def test_the_same_host_is_no_difference(tmp_path: Path) -> None:
    assert host_diff(tmp_path, BEFORE).returncode == 0


def test_a_cgroup_that_went_away_is_no_difference(tmp_path: Path) -> None:
    r = host_diff(tmp_path, BEFORE.replace("/sys/fs/cgroup/memory/job-b\n", ""))
    assert r.returncode == 0, r.stdout


def test_a_new_cgroup_is_a_difference(tmp_path: Path) -> None:
    r = host_diff(
        tmp_path, BEFORE.replace("job-b\n", "job-b\n/sys/fs/cgroup/memory/kubepods\n")
    )
    assert r.returncode == 1
    assert "+/sys/fs/cgroup/memory/kubepods" in r.stdout


def test_a_removed_rule_or_mount_is_a_difference(tmp_path: Path) -> None:
    for gone in ("-A INPUT -j ACCEPT\n", "proc /proc proc\n"):
        r = host_diff(tmp_path, BEFORE.replace(gone, ""))
        assert r.returncode == 1, gone
        assert "-" + gone.strip() in r.stdout


def test_a_left_process_is_a_difference(tmp_path: Path) -> None:
    r = host_diff(tmp_path, BEFORE + "1234 kubelet --root-dir /tmp/outrigger-cluster\n")
    assert r.returncode == 1
