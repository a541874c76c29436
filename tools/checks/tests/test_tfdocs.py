"""terraform/README.md's generated reference tables (outrigger_checks.tfdocs)."""

from __future__ import annotations

from pathlib import Path

from outrigger_checks.tfdocs import README, cmd_tfdocs


def test_the_committed_readme_is_current() -> None:
    assert cmd_tfdocs(check=True) == 0


def test_a_stale_readme_is_caught_and_regenerated(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    text = README.read_text()
    marker = "<!-- END_TF_DOCS modules/doks -->"
    readme.write_text(text.replace(marker, "| stale | row |\n" + marker))
    assert cmd_tfdocs(check=True, readme_path=readme) == 1
    assert "out of date" in capsys.readouterr().err
    assert cmd_tfdocs(check=False, readme_path=readme) == 0
    assert readme.read_text() == text


def test_missing_markers_fail(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text().replace("<!-- BEGIN_TF_DOCS bootstrap -->", ""))
    assert cmd_tfdocs(check=True, readme_path=readme) == 1
