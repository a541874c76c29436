"""Shared inputs of the checkers' tests: the repository's own files, copied when a test breaks
them on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from outrigger_checks import ROOT


@pytest.fixture
def dashboards_copy(tmp_path: Path) -> Path:
    """A copy of charts/outrigger/dashboards that a test may break."""
    out = tmp_path / "dashboards"
    shutil.copytree(ROOT / "charts" / "outrigger" / "dashboards", out)
    return out
