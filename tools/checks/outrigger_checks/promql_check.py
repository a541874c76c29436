"""The PromQL check of charts/outrigger: every expression of the dashboards and the alert rules
goes through Prometheus' own parser (promtool), and every metric name it reads is documented in
docs/metrics.md or listed in known-metrics.txt (kube-prometheus-stack's names)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from . import ROOT
from .failure import fail, fail_all
from .promql import dashboard_exprs, grafana_to_promql, metric_family, metric_names

RULES = ROOT / "charts" / "outrigger" / "files" / "prometheusrule.yaml"
KNOWN = Path(__file__).resolve().parent / "known-metrics.txt"


def metrics_md() -> Path:
    # PLATFORM_METRICS_MD only lets the check be exercised against another file (tests of the check).
    return Path(os.environ.get("PLATFORM_METRICS_MD", ROOT / "docs" / "metrics.md"))


def rule_exprs(rules: Path = RULES) -> list[tuple[str, str]]:
    doc = yaml.safe_load(rules.read_text())
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for g in doc["spec"]["groups"] for r in g["rules"]]


def documented_metrics(md: Path | None = None, known: Path = KNOWN) -> dict[str, str]:
    md = md or metrics_md()
    text = md.read_text()
    found: dict[str, str] = {}
    sections = re.findall(r"<!-- BEGIN (\w+) -->(.*?)<!-- END \1 -->", text, flags=re.S)
    if not sections:
        fail(f"{md}: no <!-- BEGIN x --> ... <!-- END x --> sections")
    for section, body in sections:
        for line in body.splitlines():
            m = re.match(r"\s*\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
            if m:
                found[m.group(1)] = f"docs/metrics.md ({section})"
    for line in known.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            found[line] = known.name
    return found


def undocumented(exprs: list[tuple[str, str]], known: dict[str, str]) -> tuple[list[str], dict[str, int]]:
    """(one error per undocumented metric use, how often each metric name is used)."""
    errors = []
    used: dict[str, int] = {}
    for where, e in exprs:
        for name in sorted(metric_names(grafana_to_promql(e))):
            used[name] = used.get(name, 0) + 1
            # A histogram may be documented by its base name or by any of its series.
            base = metric_family(name)
            family = {name, base, f"{base}_bucket", f"{base}_count", f"{base}_sum"}
            if not family & known.keys():
                errors.append(f"{where}: metric {name} is not documented in docs/metrics.md (nor in {KNOWN.name})")
    return errors, used


def all_exprs() -> list[tuple[str, str]]:
    return [(d.where, d.expr) for d in dashboard_exprs()] + rule_exprs()


def cmd_promql() -> None:
    known = documented_metrics()
    exprs = all_exprs()
    if not exprs:
        fail("no PromQL expressions found")
    # Syntax: every expression goes through Prometheus' own parser (promtool check rules).
    with tempfile.TemporaryDirectory() as tmp:
        rules = {
            "groups": [
                {
                    "name": "dashboards",
                    "rules": [
                        {"record": f"platform_check:expr_{i}", "expr": grafana_to_promql(e)}
                        for i, (_, e) in enumerate(exprs)
                    ],
                }
            ]
        }
        f = Path(tmp) / "exprs.rules.yaml"
        f.write_text(yaml.safe_dump(rules))
        res = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            fail(f"promtool rejected an expression:\n{res.stdout}{res.stderr}")
    errors, used = undocumented(exprs, known)
    fail_all(errors)
    print(f"promql ok: {len(exprs)} expressions parsed by promtool; {len(used)} distinct metric names, all documented")


def cmd_rules_spec(prometheusrule: Path, out: Path) -> None:
    """Writes the PrometheusRule's ``.spec`` as a plain rules file for ``promtool check rules``."""
    doc = yaml.safe_load(prometheusrule.read_text())
    if doc.get("kind") != "PrometheusRule":
        fail(f"{prometheusrule}: kind {doc.get('kind')!r}, expected PrometheusRule")
    out.write_text(yaml.safe_dump(doc["spec"]))
