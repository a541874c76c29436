"""outrigger_checks.promql on the committed dashboards, and on broken ones it must reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outrigger_checks import ROOT
from outrigger_checks.failure import CheckFailed
from outrigger_checks.promql import dashboard_exprs, grafana_to_promql, metric_family, metric_names


def test_every_dashboard_contributes_panel_and_variable_queries() -> None:
    exprs = dashboard_exprs()
    boards = {e.dashboard for e in exprs}
    assert boards == {"outrigger-mesh.json", "outrigger-agent.json", "outrigger-nodes.json", "outrigger-gateway.json"}
    for board in boards:
        sources = [e.source for e in exprs if e.dashboard == board]
        assert any(s.startswith("panel ") for s in sources), board
    # Each query variable of each dashboard yields its label_values() expression.
    want = 0
    for f in (ROOT / "charts" / "outrigger" / "dashboards").glob("*.json"):
        want += sum(1 for v in json.loads(f.read_text())["templating"]["list"] if v["type"] == "query")
    variables = [e for e in exprs if e.source.startswith("variable ")]
    assert len(variables) == want > 0
    assert all("label_values" not in e.expr and e.expr.strip() for e in variables)
    assert any(e.where == "outrigger-mesh.json variable namespace" for e in variables)


def test_a_variable_query_that_cannot_be_checked_is_rejected(dashboards_copy: Path) -> None:
    f = dashboards_copy / "outrigger-nodes.json"
    board = json.loads(f.read_text())
    var = next(v for v in board["templating"]["list"] if v["type"] == "query")
    var["query"] = {"query": "query_result(up)", "refId": "x"}
    f.write_text(json.dumps(board))
    with pytest.raises(CheckFailed, match="unsupported query 'query_result"):
        dashboard_exprs(dashboards_copy)


def test_nested_panels_of_collapsed_rows_are_read(tmp_path: Path) -> None:
    board = {
        "panels": [
            {"type": "row", "title": "r", "panels": [{"title": "inner", "targets": [{"refId": "B", "expr": "up"}]}]}
        ]
    }
    (tmp_path / "x.json").write_text(json.dumps(board))
    assert [(e.where, e.expr) for e in dashboard_exprs(tmp_path)] == [("x.json panel 'inner' B", "up")]


def test_grafana_variables_become_promql() -> None:
    expr = 'sum(rate(x{ns=~"$namespace", w=~"${workload}"}[$__rate_interval])) [$__range] $__interval'
    assert grafana_to_promql(expr) == 'sum(rate(x{ns=~".*", w=~".*"}[5m])) [1h] 1m'
    assert grafana_to_promql("rate(x[$__rate_interval])", rate_interval="1m") == "rate(x[1m])"
    # ${1} is label_replace()'s capture group, not a Grafana variable.
    assert (
        grafana_to_promql('label_replace(x, "c", "${1}xx", "s", "(.)..")')
        == 'label_replace(x, "c", "${1}xx", "s", "(.)..")'
    )


def test_metric_names_skip_functions_keywords_labels_and_strings() -> None:
    names = metric_names(
        'sum by (le) (rate(foo_bucket{a="b", c=~"x|y"}[5m])) / on (a) group_left (z) '
        'bar_total offset 5m and ignoring (q) count(baz{__name__!="q"}) > bool 1e3'
    )
    assert names == {"foo_bucket", "bar_total", "baz"}
    assert metric_names('count({__name__="up"})') == {"up"}


def test_metric_family_strips_histogram_suffixes() -> None:
    assert metric_family("x_seconds_bucket") == "x_seconds"
    assert metric_family("x_seconds_count") == "x_seconds"
    assert metric_family("x_total") == "x_total"
