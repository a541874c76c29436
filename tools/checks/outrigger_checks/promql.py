"""PromQL as the dashboards hold it: every expression of every Grafana dashboard (panel targets,
nested panels and the ``label_values(...)`` queries of its variables), Grafana's template
variables replaced by values Prometheus accepts, and the metric names an expression reads.

Standard library only: tests/cluster/e2e.py imports this module to run the same expressions
against the cluster's Prometheus, on a host that has no tools venv.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from . import ROOT
from .failure import fail

DASHBOARDS = ROOT / "charts" / "outrigger" / "dashboards"
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
}
LABEL_VALUES = re.compile(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)\s*")


class DashboardExpr(NamedTuple):
    """One expression of a dashboard: ``source`` is ``panel 'Title' A`` or ``variable name``."""

    dashboard: str
    source: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} {self.source}"


def dashboard_exprs(directory: Path = DASHBOARDS) -> list[DashboardExpr]:
    """Every expression of every ``*.json`` dashboard in ``directory``; a variable whose query is
    not ``label_values(EXPR, label)`` fails (its expression could not be checked)."""
    out: list[DashboardExpr] = []
    for f in sorted(Path(directory).glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))

        def walk(panels: list[dict], fname: str) -> None:
            for p in panels:
                for t in p.get("targets") or []:
                    if t.get("expr"):
                        out.append(DashboardExpr(fname, f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
                walk(p.get("panels") or [], fname)

        walk(d.get("panels") or [], f.name)
        for v in (d.get("templating") or {}).get("list") or []:
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = LABEL_VALUES.fullmatch(q or "")
            if v.get("type") == "query" and m:
                out.append(DashboardExpr(f.name, f"variable {v['name']}", m.group(1)))
            elif v.get("type") == "query":
                fail(f"{f.name} variable {v['name']}: unsupported query {q!r}")
    return out


def grafana_to_promql(expr: str, rate_interval: str = "5m") -> str:
    """Replaces Grafana's template variables with values Prometheus accepts: interval variables
    by durations, every other variable by ``.*`` (the dashboards' "All")."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", "1m").replace("$__range", "1h")
    # ${1} inside label_replace() is Prometheus syntax, not a Grafana variable: keep it.
    expr = re.sub(r"\$\{([a-zA-Z_]\w*)\}", ".*", expr)
    return re.sub(r"\$([a-zA-Z_]\w*)", ".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (selectors, bare names and ``__name__`` matchers)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    names = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges / subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def metric_family(name: str) -> str:
    """A histogram series' base name (``x_bucket``/``x_count``/``x_sum`` -> ``x``)."""
    return re.sub(r"_(bucket|count|sum)$", "", name)
