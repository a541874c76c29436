#!/usr/bin/env python3
"""Decide what release.yml publishes (images and charts), as GitHub Actions matrices.

A component release-please just released is published at its release version. Otherwise an image
whose sources this push changed gets a pre-release X.Y.(Z+1)-rc.<run>: above the current release,
below the next one, so Flux's staging policy (>=0.1.0-0) picks it and production's (>=0.1.0)
ignores it.

usage: release_plan.py RELEASE_PLEASE_OUTPUTS_JSON RUN_NUMBER [CHANGED_FILE...]
Prints `images=<json>` and `charts=<json>` lines (GITHUB_OUTPUT format).
usage: release_plan.py --all
Prints `images=<json>`: every image, unversioned (ci.yml's build matrix, scripts/images.sh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The one table of images, also read by ci.yml (`--all`) and scripts/images.sh:
# image name, release-please path, build context, Dockerfile, build args, path prefixes that change it.
# The three Rust daemons share the root Dockerfile; their build args say which daemon, its OCI
# description and the ports it listens on.
DAEMON_WATCH = ("crates/", "Cargo.lock", "Dockerfile")
IMAGES = [
    ("flask-hello-world", "apps/flask-hello-world", "apps/flask-hello-world",
     "apps/flask-hello-world/Dockerfile", {}, ("apps/flask-hello-world/",)),
    # 4143 mesh inbound, 4191 admin (/live, /ready, /metrics); SIGTERM starts the drain.
    ("outrigger-proxy", "proxy", ".", "Dockerfile",
     {"PACKAGE": "outrigger-proxy", "DESCRIPTION": "Outrigger sidecar data plane", "PORTS": "4143 4191"},
     ("proxy/", *DAEMON_WATCH)),
    # 4192: /metrics (agent and node metrics) and health; SIGTERM flushes and checkpoints.
    ("outrigger-agent", "agent", ".", "Dockerfile",
     {"PACKAGE": "outrigger-agent", "DESCRIPTION": "Outrigger node agent (container logs and node metrics)",
      "PORTS": "4192"},
     ("agent/", *DAEMON_WATCH)),
    # 8443 webhook (HTTPS), 9995 admin (/live, /ready, /metrics).
    ("outrigger-injector", "injector", ".", "Dockerfile",
     {"PACKAGE": "outrigger-injector",
      "DESCRIPTION": "Outrigger sidecar injector (mutating admission webhook)", "PORTS": "8443 9995"},
     ("injector/", *DAEMON_WATCH)),
]  # fmt: skip
CHARTS = [("flask-hello-world", "charts/flask-hello-world"), ("outrigger-sidecar", "charts/outrigger-sidecar")]


def image_entry(name: str, **extra) -> dict:
    """One matrix entry; `build_args` is newline-separated KEY=value, as build-push-action takes it."""
    for image_name, path, context, dockerfile, args, _ in IMAGES:
        if image_name == name:
            entry = {"name": name, "path": path, "context": context, "file": dockerfile}
            return entry | {"build_args": "\n".join(f"{k}={v}" for k, v in args.items())} | extra
    raise KeyError(name)


def plan(rp: dict[str, str], manifest: dict[str, str], run: int, changed: list[str]) -> tuple[dict, dict]:
    def released(path: str) -> str | None:
        if str(rp.get(f"{path}--release_created", "")).lower() == "true":
            return rp[f"{path}--version"]
        return None

    def next_rc(path: str) -> str:
        major, minor, patch = manifest[path].split("-")[0].split(".")
        return f"{major}.{minor}.{int(patch) + 1}-rc.{run}"

    images = []
    for name, path, _, _, _, watch in IMAGES:
        version = released(path)
        if version:
            images.append(image_entry(name, version=version, release=True))
        elif any(f.startswith(watch) for f in changed):
            images.append(image_entry(name, version=next_rc(path), release=False))
    charts = [{"name": n, "path": p, "version": released(p)} for n, p in CHARTS if released(p)]
    return {"include": images}, {"include": charts}


def main() -> int:
    if sys.argv[1:] == ["--all"]:
        print(f"images={json.dumps({'include': [image_entry(name) for name, *_ in IMAGES]})}")
        return 0
    rp = json.loads(sys.argv[1] or "{}")
    run = int(sys.argv[2])
    manifest = json.loads(Path(".release-please-manifest.json").read_text())
    images, charts = plan(rp, manifest, run, sys.argv[3:])
    print(f"images={json.dumps(images)}")
    print(f"charts={json.dumps(charts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
