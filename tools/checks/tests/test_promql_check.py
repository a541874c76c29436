"""The metric-name half of the PromQL check (outrigger_checks.promql_check) on the real docs,
dashboards and rules; promtool's half runs in scripts/check-promql.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from outrigger_checks import ROOT
from outrigger_checks.failure import CheckFailed
from outrigger_checks.promql_check import RULES, all_exprs, cmd_rules_spec, documented_metrics, rule_exprs, undocumented

METRICS_MD = ROOT / "docs" / "metrics.md"


def test_every_metric_the_dashboards_and_rules_read_is_documented() -> None:
    errors, used = undocumented(all_exprs(), documented_metrics(METRICS_MD))
    assert errors == []
    assert "outrigger_proxy_requests_total" in used


def test_a_metric_missing_from_the_docs_is_reported(tmp_path: Path) -> None:
    md = tmp_path / "metrics.md"
    md.write_text(
        "".join(
            line
            for line in METRICS_MD.read_text().splitlines(keepends=True)
            if not line.startswith("| `outrigger_proxy_requests_total")
        )
    )
    errors, _ = undocumented(all_exprs(), documented_metrics(md))
    assert errors
    assert all("outrigger_proxy_requests_total is not documented" in e for e in errors)


def test_the_environment_can_point_the_check_at_another_metrics_md(tmp_path: Path, monkeypatch) -> None:
    md = tmp_path / "metrics.md"
    md.write_text("<!-- BEGIN x -->\n| `only_this` | counter |\n<!-- END x -->\n")
    monkeypatch.setenv("PLATFORM_METRICS_MD", str(md))
    known = documented_metrics()
    assert known["only_this"] == "docs/metrics.md (x)"
    assert "outrigger_proxy_requests_total" not in known


def test_metrics_md_without_marked_sections_is_rejected(tmp_path: Path) -> None:
    md = tmp_path / "metrics.md"
    md.write_text("| `a_metric` | counter |\n")
    with pytest.raises(CheckFailed, match="no <!-- BEGIN x -->"):
        documented_metrics(md)


def test_rule_expressions_are_named_by_their_alert() -> None:
    exprs = rule_exprs()
    assert exprs
    assert all(where.startswith("rule ") and expr for where, expr in exprs)


def test_rules_spec_writes_the_groups_and_rejects_other_kinds(tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    cmd_rules_spec(RULES, out)
    assert yaml.safe_load(out.read_text())["groups"]
    bad = tmp_path / "cm.yaml"
    bad.write_text("kind: ConfigMap\nspec: {}\n")
    with pytest.raises(CheckFailed, match="expected PrometheusRule"):
        cmd_rules_spec(bad, out)
