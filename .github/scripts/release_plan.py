#!/usr/bin/env python3
"""Decide what release.yml publishes (images and charts), as GitHub Actions matrices.

A component release-please just released is published at its release version. Otherwise an image
whose sources this push changed gets a pre-release X.Y.(Z+1)-rc.<run>: above the current release,
below the next one, so Flux's staging policy (>=0.1.0-0) picks it and production's (>=0.1.0)
ignores it.

usage: release_plan.py RELEASE_PLEASE_OUTPUTS_JSON RUN_NUMBER [CHANGED_FILE...]
Prints `images=<json>` and `charts=<json>` lines (GITHUB_OUTPUT format).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# image name, release-please path, build context, Dockerfile, path prefixes that change it
IMAGES = [
    ("flask-hello-world", "apps/flask-hello-world", "apps/flask-hello-world",
     "apps/flask-hello-world/Dockerfile", ("apps/flask-hello-world/",)),
    ("outrigger-proxy", "proxy", ".", "proxy/Dockerfile", ("proxy/", "crates/", "Cargo.lock")),
    ("outrigger-agent", "agent", ".", "agent/Dockerfile", ("agent/", "crates/", "Cargo.lock")),
    ("outrigger-injector", "injector", ".", "injector/Dockerfile", ("injector/", "crates/", "Cargo.lock")),
]  # fmt: skip
CHARTS = [("flask-hello-world", "charts/flask-hello-world"), ("outrigger-sidecar", "charts/outrigger-sidecar")]


def plan(rp: dict[str, str], manifest: dict[str, str], run: int, changed: list[str]) -> tuple[dict, dict]:
    def released(path: str) -> str | None:
        if str(rp.get(f"{path}--release_created", "")).lower() == "true":
            return rp[f"{path}--version"]
        return None

    def next_rc(path: str) -> str:
        major, minor, patch = manifest[path].split("-")[0].split(".")
        return f"{major}.{minor}.{int(patch) + 1}-rc.{run}"

    images = []
    for name, path, context, dockerfile, watch in IMAGES:
        version = released(path)
        if version:
            images.append({"name": name, "version": version, "context": context, "file": dockerfile, "release": True})
        elif any(f.startswith(watch) for f in changed):
            images.append(
                {"name": name, "version": next_rc(path), "context": context, "file": dockerfile, "release": False}
            )
    charts = [{"name": n, "path": p, "version": released(p)} for n, p in CHARTS if released(p)]
    return {"include": images}, {"include": charts}


def main() -> int:
    rp = json.loads(sys.argv[1] or "{}")
    run = int(sys.argv[2])
    manifest = json.loads(Path(".release-please-manifest.json").read_text())
    images, charts = plan(rp, manifest, run, sys.argv[3:])
    print(f"images={json.dumps(images)}")
    print(f"charts={json.dumps(charts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
