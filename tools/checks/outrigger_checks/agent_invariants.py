"""The agent's security and placement contract, asserted on the chart's rendered objects
(check-charts-platform.sh renders charts/outrigger with every ci/*-values.yaml first): tolerates
every taint, read-only host mounts, pods-only RBAC, no privilege, ports 4192/4191, the default
render's kinds."""

from __future__ import annotations

from pathlib import Path

from .failure import fail_all
from .manifests import load_docs


def invariant_errors(path: Path) -> list[str]:
    errors: list[str] = []
    docs = load_docs(path.read_text())
    name = path.name
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for ds in by_kind.get("DaemonSet", []):
        pod = ds["spec"]["template"]["spec"]
        if not any(
            t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
            for t in pod.get("tolerations") or []
        ):
            errors.append(f"{name}: DaemonSet must tolerate every taint")
        for key in ("hostPID", "hostIPC"):
            if pod.get(key):
                errors.append(f"{name}: {key} must stay off")
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: the token must only be mounted explicitly")
        vols = {v["name"]: v for v in pod["volumes"]}
        host = {n: v["hostPath"]["path"] for n, v in vols.items() if "hostPath" in v}
        for want in ("/var/log/pods", "/proc", "/sys"):
            if want not in host.values():
                errors.append(f"{name}: hostPath {want} missing")
        (c,) = pod["containers"]
        sc = c.get("securityContext") or {}
        if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: no privilege and no escalation")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{name}: root filesystem must be read-only")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"] or (sc.get("capabilities") or {}).get("add"):
            errors.append(f"{name}: capabilities must be drop [ALL], add nothing")
        writable = []
        for m in c["volumeMounts"]:
            if m["name"] in host and not m.get("readOnly"):
                writable.append(host[m["name"]])
        if writable != ["/var/lib/outrigger-agent"]:
            errors.append(f"{name}: only the state dir may be a writable host path, got {writable}")
        if not c["resources"].get("requests") or not c["resources"].get("limits", {}).get("memory"):
            errors.append(f"{name}: requests and a memory limit are required")
        if [p["containerPort"] for p in c["ports"]] != [4192]:
            errors.append(f"{name}: the agent exposes exactly port 4192")
        args = " ".join(c["args"])
        if "--loki-url=" not in args and "--otlp-logs-url=" not in args:
            errors.append(f"{name}: no log sink configured")
    for role in by_kind.get("ClusterRole", []):
        # The gateway's ClusterRole has its own contract (gateway_chart).
        if ((role.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component") == "gateway":
            continue
        if role["rules"] != [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]:
            errors.append(f"{name}: ClusterRole must grant get/list/watch on pods only, got {role['rules']}")
    for pm in by_kind.get("PodMonitor", []):
        if pm["spec"]["podMetricsEndpoints"][0]["port"] != "outrigger-admin":
            errors.append(f"{name}: PodMonitor must scrape the proxy admin port outrigger-admin (4191)")
    for sm in by_kind.get("ServiceMonitor", []):
        component = sm["metadata"]["labels"].get("app.kubernetes.io/component")
        want = {"agent": "metrics", "injector": "metrics"}.get(component)
        if sm["spec"]["endpoints"][0]["port"] != want:
            errors.append(f"{name}: ServiceMonitor of {component} must scrape port {want}")
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
            errors.append(f'{name}: dashboard ConfigMap {cm["metadata"]["name"]} lacks grafana_dashboard: "1"')
    if name.startswith("default") and sorted(by_kind) != sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "DaemonSet",
            "ServiceMonitor",
            "PodMonitor",
            "ConfigMap",
            "PrometheusRule",
            "NetworkPolicy",
            # outrigger-injector (on by default): webhook, its Deployment and cert-manager objects.
            "Deployment",
            "PodDisruptionBudget",
            "MutatingWebhookConfiguration",
            "Issuer",
            "Certificate",
        ]
    ):
        errors.append(f"{name}: unexpected kinds {sorted(by_kind)}")
    return errors


def cmd_invariants(files: list[str]) -> None:
    fail_all([e for f in files for e in invariant_errors(Path(f))])
    print(f"  {len(files)} renders: agent invariants hold")
