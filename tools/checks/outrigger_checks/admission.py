"""Admission by a real kube-apiserver (scripts/kube-test-env.sh, PodSecurity plugin on): every
rendered object the server serves goes through a server-side dry run with strict field validation
and must draw no warning, and a Pod made from every Deployment's and StatefulSet's template must be
admitted into a namespace that *enforces* "restricted". An unhardened control Pod must be refused
there, so a server that admits everything cannot pass."""

from __future__ import annotations

import json
from pathlib import Path

from .dryrun import Api
from .failure import fail, fail_all
from .manifests import load_docs

NAMESPACE = "pss-restricted"


def _create(api: Api, doc: dict, dry_run: bool = True) -> tuple[int, dict, list[str]] | None:
    """POSTs ``doc``; None when the server does not serve its kind (CRDs are kubeconform's job)."""
    res = api.resource(doc["apiVersion"], doc["kind"])
    if res is None:
        return None
    plural, namespaced = res
    group = f"/api/{doc['apiVersion']}" if "/" not in doc["apiVersion"] else f"/apis/{doc['apiVersion']}"
    if namespaced:
        doc.setdefault("metadata", {})["namespace"] = NAMESPACE
        path = f"{group}/namespaces/{NAMESPACE}/{plural}"
    else:
        path = f"{group}/{plural}"
    query = "?dryRun=All&fieldValidation=Strict" if dry_run else "?fieldValidation=Strict"
    code, body = api.call("POST", path + query, doc)
    return code, body, api.warnings


def cmd_admit(state: Path, files: list[str]) -> None:
    api = Api(state)
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}
    code, body = api.call("POST", "/api/v1/namespaces", namespace)
    if code not in (201, 409):
        fail(f"admit: cannot create namespace {NAMESPACE}: {code} {body.get('message')}")

    errors: list[str] = []
    checked = admitted = 0
    for name in files:
        for doc in load_docs(Path(name).read_text()):
            doc = json.loads(json.dumps(doc))
            where = f"{Path(name).name}: {doc['kind']}/{doc['metadata']['name']}"
            created = _create(api, doc)
            if created is None:
                continue
            code, body, warnings = created
            checked += 1
            if code != 201:
                errors.append(f"{where}: API server refused ({code}): {body.get('message')}")
            errors += [f"{where}: warning: {w}" for w in warnings]
            template = doc.get("spec", {}).get("template")
            if doc["kind"] in ("Deployment", "StatefulSet") and template:
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{doc['metadata']['name']}-pss",
                        "labels": template["metadata"].get("labels", {}),
                    },
                    "spec": template["spec"],
                }
                code, body, _ = _create(api, pod) or (0, {}, [])
                if code != 201:
                    errors.append(
                        f"{where}: pod template refused under enforce=restricted ({code}): {body.get('message')}"
                    )
                else:
                    admitted += 1
            elif doc["kind"] == "Pod" and code == 201:
                admitted += 1

    # No securityContext at all: root allowed, escalation allowed, capabilities kept, no seccomp.
    control = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unhardened"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    code, body, _ = _create(api, control) or (0, {}, [])
    if code != 403 or 'violates PodSecurity "restricted' not in body.get("message", ""):
        errors.append(f"control: an unhardened pod was not refused by PodSecurity ({code}: {body.get('message')})")
    fail_all(errors)
    if checked == 0 or admitted == 0:
        fail(f"admit: nothing was checked ({checked} objects, {admitted} pods)")
    print(
        f"  {checked} objects accepted by a real API server (dry-run, strict fields); "
        f"{admitted} pods admitted under enforce=restricted; unhardened control pod refused"
    )
