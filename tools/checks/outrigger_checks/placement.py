"""Node-pool placement: every workload the Flux tree deploys lands on the pool its class asks for
(infrastructure on the tainted infra pool, apps on the apps pool, the agent everywhere), remote
charts through their placement values, and Terraform's pools, taint and Flux-controller placement
are the ones the manifests assume."""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import ROOT
from .failure import fail, fail_all
from .manifests import load_docs

POOL_LABEL = "doks.digitalocean.com/node-pool"
INFRA_TAINT = {"key": "outrigger.io/dedicated", "value": "infra", "effect": "NoSchedule"}

WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicaSet", "Pod"}

# Remote charts cannot be rendered offline; their placement lives in values at these paths (each
# path holds a pod's nodeSelector/tolerations pair). A chart missing here fails the check.
REMOTE_CHART_PLACEMENT = {
    "cert-manager/cert-manager": ["", "webhook", "cainjector", "startupapicheck"],
    "monitoring/kube-prometheus-stack": [
        "prometheusOperator",
        "prometheusOperator.admissionWebhooks.patch",
        "prometheus.prometheusSpec",
        "alertmanager.alertmanagerSpec",
        "kube-state-metrics",
        "grafana",
    ],
    "monitoring/loki": ["singleBinary"],
    "podinfo/podinfo": [""],
}
# Sub-components a remote chart would deploy unless switched off; the check insists they are off.
REMOTE_CHART_DISABLED = {
    "monitoring/kube-prometheus-stack": ["nodeExporter.enabled"],
    "monitoring/loki": [
        "chunksCache.enabled",
        "resultsCache.enabled",
        "gateway.enabled",
        "lokiCanary.enabled",
        "test.enabled",
    ],
    "podinfo/podinfo": ["redis.enabled"],
}


def get_path(values: dict, dotted: str):
    cur = values
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def tolerates_infra(tols: list[dict]) -> bool:
    for t in tols or []:
        op = t.get("operator", "Equal")
        if op == "Exists" and not t.get("key"):
            return True
        if t.get("key") != INFRA_TAINT["key"]:
            continue
        if t.get("effect") not in (None, "", INFRA_TAINT["effect"]):
            continue
        if op == "Exists" or t.get("value") == INFRA_TAINT["value"]:
            return True
    return False


def tolerates_everything(tols: list[dict]) -> bool:
    return any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect") for t in tols or [])


def selected_pool(pod: dict) -> str | None:
    pool = (pod.get("nodeSelector") or {}).get(POOL_LABEL)
    if pool:
        return pool
    terms = (
        ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms") or []
    pools = set()
    for term in terms:
        for e in term.get("matchExpressions") or []:
            if e.get("key") == POOL_LABEL and e.get("operator") == "In" and len(e.get("values", [])) == 1:
                pools.add(e["values"][0])
    return pools.pop() if len(pools) == 1 else None


def pod_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def check_pod(where: str, pod: dict, klass: str, is_agent: bool, errors: list[str], bare_pod: bool = False) -> None:
    tols = pod.get("tolerations") or []
    if is_agent:
        if not tolerates_everything(tols):
            errors.append(f"{where}: the agent DaemonSet must tolerate every taint (operator: Exists, no key)")
        if selected_pool(pod):
            errors.append(f"{where}: the agent DaemonSet must not be pinned to a pool")
        return
    pool = selected_pool(pod)
    if klass == "infra":
        if pool != "infra":
            errors.append(f"{where}: infrastructure workload must select {POOL_LABEL}=infra (has {pool!r})")
        if not tolerates_infra(tols):
            taint = f"{INFRA_TAINT['key']}={INFRA_TAINT['value']}:NoSchedule"
            errors.append(f"{where}: infrastructure workload must tolerate {taint}")
    else:
        # Bare Pods are helm test hooks: short-lived, they only need to stay off the infra pool,
        # which its taint guarantees as long as they do not tolerate it.
        if pool != "apps" and not (bare_pod and pool is None):
            errors.append(f"{where}: app workload must select {POOL_LABEL}=apps (has {pool!r})")
        if tolerates_infra(tols):
            errors.append(f"{where}: app workload must not tolerate the infra taint")


# Clusters without node pools: the local node of scripts/cluster.sh (make gitops-e2e) is one node
# labelled as the apps pool, and its overlay drops the infra-pool selectors on purpose.
POOLLESS_CLUSTERS = {"local"}


def placement_errors(index: list[dict]) -> tuple[list[str], int]:
    errors: list[str] = []
    checked = 0
    for entry in index:
        if entry.get("cluster") in POOLLESS_CLUSTERS:
            continue
        f = Path(entry["file"])
        docs = entry["docs"] if "docs" in entry else load_docs(f.read_text())
        if entry.get("remote"):
            hr_name = entry["helmrelease"]
            ns, name = hr_name.split("/")
            hr = next(
                d
                for d in docs
                if d.get("kind") == "HelmRelease" and d["metadata"]["name"] == name and d["metadata"]["namespace"] == ns
            )
            paths = REMOTE_CHART_PLACEMENT.get(hr_name)
            if paths is None:
                errors.append(
                    f"{entry['cluster']}: HelmRelease {hr_name} uses a remote chart with no placement "
                    "rule in REMOTE_CHART_PLACEMENT (tools/checks/outrigger_checks/placement.py)"
                )
                continue
            values = hr["spec"].get("values") or {}
            for p in paths:
                block = get_path(values, p) if p else values
                where = f"{entry['cluster']} HelmRelease {hr_name} values.{p or '<root>'}"
                if not isinstance(block, dict):
                    errors.append(f"{where}: missing")
                    continue
                check_pod(where, block, entry["class"], False, errors)
                checked += 1
            for p in REMOTE_CHART_DISABLED.get(hr_name, []):
                if get_path(values, p) is not False:
                    errors.append(
                        f"{entry['cluster']} HelmRelease {hr_name}: values.{p} must be false "
                        "(its pods would have no placement rule)"
                    )
            continue
        for doc in docs:
            if doc.get("kind") not in WORKLOAD_KINDS:
                continue
            meta = doc.get("metadata") or {}
            where = f"{entry['cluster']} {doc['kind']} {meta.get('namespace')}/{meta.get('name')} ({f.name})"
            is_agent = doc["kind"] == "DaemonSet" and (entry.get("chart") == "charts/outrigger")
            if doc["kind"] == "DaemonSet" and not is_agent:
                errors.append(f"{where}: unexpected DaemonSet (only the Outrigger agent runs on every node)")
                continue
            check_pod(where, pod_spec(doc), entry["class"], is_agent, errors, doc["kind"] == "Pod")
            checked += 1
    return errors, checked


def terraform_contract_errors() -> list[str]:
    """The pool names, taint and Flux controller placement that Terraform sets must be the ones
    the Flux manifests assume (INFRA_TAINT, POOL_LABEL values)."""
    errors = []
    conv = (ROOT / "terraform/modules/conventions/main.tf").read_text()
    for field in ("key", "value", "effect"):
        if not re.search(rf'^\s*{field}\s*=\s*"{re.escape(INFRA_TAINT[field])}"', conv, re.M):
            errors.append(f"terraform/modules/conventions: infra taint {field} is not {INFRA_TAINT[field]!r}")
    for pool in ("infra", "apps"):
        if not re.search(rf'^\s*name\s*=\s*"{pool}"', conv, re.M):
            errors.append(f"terraform/modules/conventions: no node pool named {pool!r}")
    boot = (ROOT / "terraform/bootstrap/main.tf").read_text()
    boot_vars = (ROOT / "terraform/bootstrap/variables.tf").read_text()
    if (
        "toleration_keys        = [var.infra_taint_key]" not in boot
        or f'default     = "{INFRA_TAINT["key"]}"' not in boot_vars
    ):
        errors.append("terraform/bootstrap: Flux controllers must tolerate the infra taint (toleration_keys)")
    if f'"{POOL_LABEL}" = "infra"' not in boot:
        errors.append("terraform/bootstrap: Flux controllers must select the infra pool (kustomization_override)")
    return errors


def cmd_placement(out: Path) -> None:
    errors, checked = placement_errors(json.loads((out / "index.json").read_text()))
    errors += terraform_contract_errors()
    fail_all(errors)
    if checked == 0:
        fail("placement: nothing was checked")
    print(
        f"placement ok: {checked} pod specs / value blocks land on their intended pool; Terraform's pools, "
        "taint and Flux controller placement match"
    )
