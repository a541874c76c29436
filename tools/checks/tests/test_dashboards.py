"""The dashboard generator and the structure check (outrigger_checks.dashboards) on the committed
files, and on copies broken the ways the check must catch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outrigger_checks.dashboards import DASHBOARDS, check_structure, render, stale_files
from outrigger_checks.dashboards.grafana import Layout
from outrigger_checks.failure import CheckFailed


def test_committed_dashboards_are_what_the_generator_writes(dashboards_copy: Path) -> None:
    assert stale_files() == []
    (dashboards_copy / "outrigger-agent.json").write_text("{}\n")
    assert stale_files(dashboards_copy) == [str(dashboards_copy / "outrigger-agent.json")]


def test_rendering_is_deterministic() -> None:
    for fn in DASHBOARDS.values():
        assert render(fn) == render(fn)


def test_committed_dashboards_have_their_stable_uids() -> None:
    assert check_structure() == ["outrigger-agent", "outrigger-gateway", "outrigger-mesh", "outrigger-nodes"]


def _edit(directory: Path, name: str, change) -> None:
    f = directory / name
    board = json.loads(f.read_text())
    change(board)
    f.write_text(json.dumps(board))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(uid="renamed"), "expected the stable uid 'outrigger-mesh'"),
        (lambda b: b["panels"][2].update(id=b["panels"][1]["id"]), "panel ids must be present and unique"),
        (lambda b: b["panels"][1].update(targets=[]), "has no query"),
        (lambda b: b["templating"].update(list=b["templating"]["list"][1:]), "needs a $datasource variable"),
        (lambda b: b.update(panels=[]), "needs a title and panels"),
    ],
)
def test_broken_dashboards_are_rejected(dashboards_copy: Path, change, message: str) -> None:
    _edit(dashboards_copy, "outrigger-mesh.json", change)
    with pytest.raises(CheckFailed, match=message.replace("$", r"\$")):
        check_structure(dashboards_copy)


def test_an_extra_or_invalid_dashboard_file_is_rejected(dashboards_copy: Path) -> None:
    (dashboards_copy / "outrigger-nodes.json").write_text("{ not json")
    with pytest.raises(CheckFailed, match="not JSON"):
        check_structure(dashboards_copy)
    (dashboards_copy / "extra.json").write_text("{}")
    with pytest.raises(CheckFailed, match="expected exactly"):
        check_structure(dashboards_copy)


def test_layout_wraps_panels_onto_the_next_row() -> None:
    lay = Layout()
    lay.row("r")
    lay.add({}, 16, 8)
    lay.add({}, 16, 5)
    row, first, second = lay.panels
    assert [p["id"] for p in lay.panels] == [1, 2, 3]
    assert first["gridPos"] == {"h": 8, "w": 16, "x": 0, "y": 1}
    assert second["gridPos"] == {"h": 5, "w": 16, "x": 0, "y": 9}
    assert row["gridPos"]["w"] == 24
