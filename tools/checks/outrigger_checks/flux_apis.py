"""Flux API versions: every Flux object uses the current apiVersion of its kind, and the table of
current versions is not older than what the toolchain's Flux CRDs serve."""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import ROOT
from .failure import fail, fail_all
from .manifests import load_docs

CURRENT_FLUX_APIS = {
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1",
    "ImagePolicy": "image.toolkit.fluxcd.io/v1",
    "ImageUpdateAutomation": "image.toolkit.fluxcd.io/v1",
    "Receiver": "notification.toolkit.fluxcd.io/v1",
    "Alert": "notification.toolkit.fluxcd.io/v1beta3",
    "Provider": "notification.toolkit.fluxcd.io/v1beta3",
}


def flux_api_errors(named_docs: list[tuple[str, dict]]) -> tuple[list[str], int]:
    errors = []
    seen = 0
    for name, doc in named_docs:
        api = str(doc.get("apiVersion", ""))
        if ".toolkit.fluxcd.io/" not in api and ".extensions.fluxcd.io/" not in api:
            continue
        seen += 1
        want = CURRENT_FLUX_APIS.get(doc.get("kind"))
        if want is None:
            errors.append(f"{name}: {doc.get('kind')} ({api}) is not a known Flux kind")
        elif api != want:
            errors.append(f"{name}: {doc['kind']} {doc['metadata'].get('name')} uses {api}; current is {want}")
    return errors, seen


def k8s_version_key(v: str) -> tuple[int, int, int]:
    """Kubernetes API version order: v2 > v1 > v1beta3 > v1beta1 > v1alpha1."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (int(m.group(1)), stage, int(m.group(3) or 0))


def stale_table_errors(schemas: Path) -> list[str]:
    """The table above must name the newest version the toolchain's Flux CRDs serve for each kind."""
    errors = []
    for kind, api in CURRENT_FLUX_APIS.items():
        group, version = api.split("/")
        files = list((schemas / group).glob(f"{kind.lower()}_*.json"))
        served = sorted((f.stem.split("_", 1)[1] for f in files), key=k8s_version_key)
        if not served:
            errors.append(f"no CRD schema for {group} {kind} in {schemas}")
        elif served[-1] != version:
            errors.append(f"{kind}: newest served version is {group}/{served[-1]}, table says {api}")
    return errors


def cmd_flux_apis(files: list[str]) -> None:
    errors, seen = flux_api_errors([(n, d) for n in files for d in load_docs(Path(n).read_text())])
    schemas = Path(os.environ.get("OUTRIGGER_TOOLS", ROOT / ".tools")) / "schemas" / "crds"
    if not schemas.is_dir():
        fail(f"flux-apis: {schemas} missing (run scripts/tools.sh)")
    errors += stale_table_errors(schemas)
    fail_all(errors)
    if seen == 0:
        fail("flux-apis: no Flux objects found")
    print(f"flux api versions ok: {seen} Flux objects, all on current APIs")
