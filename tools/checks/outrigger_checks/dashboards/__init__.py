"""The Grafana dashboards of charts/outrigger/dashboards/*.json: their source and their checks.

The JSON files are committed (the chart and the Flux tree read them); the modules of this package
are their source. ``generate(check=True)`` fails when a committed file differs from what would be
generated, so the files never drift from this definition. Uids are fixed strings: links and
bookmarks to a dashboard survive re-imports. ``cmd_dashboards`` checks the committed files' shape.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import ROOT
from ..failure import fail
from .agent import agent
from .gateway import gateway
from .mesh import mesh
from .nodes import nodes

OUT = ROOT / "charts" / "outrigger" / "dashboards"
DASHBOARDS = {
    "outrigger-mesh.json": mesh,
    "outrigger-agent.json": agent,
    "outrigger-nodes.json": nodes,
    "outrigger-gateway.json": gateway,
}
# The stable uid of each dashboard file.
UIDS = {name: name.removesuffix(".json") for name in DASHBOARDS}


def render(fn) -> str:
    return json.dumps(fn(), indent=2, sort_keys=False) + "\n"


def stale_files(out: Path = OUT) -> list[str]:
    """The dashboard files under ``out`` that differ from (or are missing for) their source."""
    stale = []
    for name, fn in DASHBOARDS.items():
        path = out / name
        if not path.exists() or path.read_text() != render(fn):
            stale.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    return stale


def generate(check: bool) -> int:
    if check:
        stale = stale_files()
        if stale:
            print(
                "out of date (run tools/checks/outrigger-checks dashboards-gen): " + ", ".join(stale), file=sys.stderr
            )
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in DASHBOARDS.items():
        path = OUT / name
        path.write_text(render(fn))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def check_structure(directory: Path = OUT) -> list[str]:
    """Dashboards parse as JSON, have the expected stable uids, a title, panels with unique ids
    and a query each, and a ``$datasource`` variable. Returns the uids."""
    files = sorted(directory.glob("*.json"))
    if {f.name for f in files} != set(UIDS):
        fail(f"dashboards: expected exactly {sorted(UIDS)}, found {[f.name for f in files]}")
    uids = set()
    for f in files:
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            fail(f"{f.name}: not JSON: {e}")
        uid = d.get("uid")
        if uid != UIDS[f.name]:
            fail(f"{f.name}: uid {uid!r}, expected the stable uid {UIDS[f.name]!r}")
        if uid in uids:
            fail(f"{f.name}: duplicate uid {uid}")
        uids.add(uid)
        if not d.get("title") or not isinstance(d.get("panels"), list) or not d["panels"]:
            fail(f"{f.name}: needs a title and panels")
        ids = [p.get("id") for p in d["panels"]]
        if len(ids) != len(set(ids)) or None in ids:
            fail(f"{f.name}: panel ids must be present and unique")
        for p in d["panels"]:
            if p.get("type") != "row" and not p.get("targets"):
                fail(f"{f.name}: panel {p.get('title')!r} has no query")
        if "datasource" not in [v.get("name") for v in d.get("templating", {}).get("list", [])]:
            fail(f"{f.name}: needs a $datasource variable")
    return sorted(uids)


def cmd_dashboards() -> None:
    uids = check_structure()
    print(f"dashboards ok: {len(uids)} files, uids {uids}")
