"""Grafana JSON builders the dashboards are written with: a grid layout that places panels left to
right, panel and target shapes, template variables and the dashboard envelope. Every dashboard
gets the ``$datasource`` variable and its fixed uid."""

from __future__ import annotations

DS = {"type": "prometheus", "uid": "${datasource}"}


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def quantile_targets(buckets: str, by: str, legend: str) -> list[dict]:
    """p50, p95 and p99 of a histogram (``buckets``: its ``_bucket`` selector with range), one
    target each, aggregated ``by`` the given labels plus ``le``."""
    return [
        target(f"histogram_quantile({q}, sum by (le, {by}) (rate({buckets})))", f"p{int(q * 100)} {legend}", ref)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def timeseries(
    title: str,
    targets: list[dict],
    unit: str = "short",
    desc: str = "",
    stack: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict:
    defaults: dict = {
        "unit": unit,
        "custom": {"fillOpacity": 10, "lineWidth": 1, "stacking": {"mode": "normal" if stack else "none"}},
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, expr: str, unit: str, thresholds: list[tuple[str, float | None]], desc: str = "") -> dict:
    steps = [{"color": c, "value": v} for c, v in thresholds]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {
            "defaults": {"unit": unit, "decimals": 2, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def table(title: str, expr: str, desc: str = "") -> dict:
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [{**target(expr, instant=True), "format": "table"}],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}],
        "options": {"showHeader": True},
    }


def query_var(name: str, label: str, query: str, multi: bool = True) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
    }


def datasource_var() -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def dashboard(uid: str, title: str, desc: str, variables: list[dict], layout: Layout) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["outrigger"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["outrigger"], "asDropdown": True, "title": "Outrigger"}],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout.panels,
    }
