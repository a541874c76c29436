"""Kubernetes manifests as YAML documents, and the external tools that build them (kustomize,
helm), run the way the Flux controllers run them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from .failure import fail


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def run(cmd: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        fail(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr.strip()}")
    return res.stdout


def kustomize_build(path: Path) -> str:
    """Builds like kustomize-controller: load restrictions off (files from charts/ are shared)."""
    if shutil.which("kustomize"):
        return run(["kustomize", "build", "--load-restrictor=LoadRestrictionsNone", str(path)])
    if shutil.which("kubectl"):
        return run(["kubectl", "kustomize", "--load-restrictor=LoadRestrictionsNone", str(path)])
    fail("neither kustomize nor kubectl found (scripts/tools.sh installs kustomize)")
