"""The gateway's contract in charts/outrigger, asserted on rendered files (check-charts-platform.sh):
least-privilege RBAC (exactly the read rules and status writes the controller needs cluster-wide;
the Lease and the Gateways' Services written only in the release namespace), Pod Security
"restricted" with no sysctl or capability (the listeners are bound on unprivileged internal ports),
readiness on /ready, drain by SIGTERM (no preStop) sized from the grace period, the PDB, no static
Service (the controller makes one per Gateway) and the controller's Service flags matching the
Deployment (its namespace, its pods' labels)."""

from __future__ import annotations

from pathlib import Path

from .failure import fail, fail_all
from .manifests import load_docs

COMPONENT = "app.kubernetes.io/component"
# The ClusterRole, rule by rule (apiGroups, resources, verbs), nothing more and nothing less: the
# verbs the controller uses (docs/gateway.md, "RBAC").
CLUSTER_RULES = [
    (["gateway.networking.k8s.io"], ["gatewayclasses", "gateways", "httproutes", "referencegrants"], ["list", "watch"]),
    (["gateway.networking.k8s.io"], ["gatewayclasses/status", "gateways/status", "httproutes/status"], ["patch"]),
    ([""], ["services", "secrets", "namespaces"], ["list", "watch"]),
    (["discovery.k8s.io"], ["endpointslices"], ["list", "watch"]),
]
# The Role for the Gateways' Services (in the release namespace), exactly.
SERVICE_RULES = [([""], ["services"], ["create", "update", "patch", "delete"])]


def _rules(role: dict) -> list[tuple]:
    return [(r.get("apiGroups"), r.get("resources"), r.get("verbs")) for r in role.get("rules") or []]


def _pod_errors(where: str, dep: dict) -> list[str]:
    errors = []
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errors.append(f"{where}: pod must run as non-root with the RuntimeDefault seccomp profile")
    if psc.get("sysctls"):
        errors.append(f"{where}: no pod sysctls (internal ports are unprivileged), got {psc.get('sysctls')}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            errors.append(f"{where}: {key} must stay off")
    if pod.get("volumes"):
        errors.append(f"{where}: the gateway mounts no volume (certificates come from the API)")
    (c,) = pod["containers"]
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{where}: no privilege and no escalation")
    if sc.get("readOnlyRootFilesystem") is not True or caps.get("drop") != ["ALL"] or caps.get("add"):
        errors.append(f"{where}: read-only root, capabilities drop [ALL] and add nothing")
    if (c.get("lifecycle") or {}).get("preStop"):
        errors.append(f"{where}: no preStop hook: SIGTERM starts the proxy's own drain")
    if c.get("args", [None])[0] != "gateway":
        errors.append(f"{where}: the container must run `outrigger-proxy gateway`, args {c.get('args')}")
    ready = (c.get("readinessProbe") or {}).get("httpGet") or {}
    if ready.get("path") != "/ready":
        errors.append(f"{where}: readiness must be the admin /ready")
    env = {e["name"]: e for e in c.get("env") or []}
    grace = str(pod.get("terminationGracePeriodSeconds"))
    if (env.get("OUTRIGGER_TERMINATION_GRACE_PERIOD") or {}).get("value") != grace:
        errors.append(f"{where}: OUTRIGGER_TERMINATION_GRACE_PERIOD must equal terminationGracePeriodSeconds ({grace})")
    if ((env.get("POD_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        errors.append(f"{where}: POD_NAME (the leader identity) must come from metadata.name")
    if not c["resources"].get("requests") or not c["resources"].get("limits", {}).get("memory"):
        errors.append(f"{where}: requests and a memory limit are required")
    if dep["spec"]["strategy"].get("rollingUpdate", {}).get("maxUnavailable") != 0:
        errors.append(f"{where}: a rollout must never remove a replica before its successor is Ready")
    return errors


def gateway_errors(path: Path) -> tuple[list[str], bool]:
    """(errors, whether the render holds the gateway at all)."""
    docs = load_docs(path.read_text())
    mine = [d for d in docs if (d.get("metadata", {}).get("labels") or {}).get(COMPONENT) == "gateway"]
    if not mine:
        return [], False
    name = path.name
    errors: list[str] = []
    by_kind: dict[str, list[dict]] = {}
    for d in mine:
        by_kind.setdefault(d["kind"], []).append(d)
    want_kinds = {
        "Deployment",
        "PodDisruptionBudget",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    if not want_kinds <= set(by_kind):
        errors.append(f"{name}: gateway objects missing: {sorted(want_kinds - set(by_kind))}")
        return errors, True
    (dep,) = by_kind["Deployment"]
    errors += _pod_errors(f"{name}: gateway Deployment", dep)
    (cr,) = by_kind["ClusterRole"]
    if _rules(cr) != [(list(g), list(r), list(v)) for g, r, v in CLUSTER_RULES]:
        errors.append(f"{name}: gateway ClusterRole must be exactly {CLUSTER_RULES}, got {_rules(cr)}")
    ns = dep["metadata"]["namespace"]
    roles = {r["metadata"]["name"]: r for r in by_kind["Role"]}
    sa = dep["spec"]["template"]["spec"].get("serviceAccountName")
    role = roles.get(f"{sa}-leader") or {"metadata": {}}
    services_role = roles.get(f"{sa}-services") or {"metadata": {}}
    if len(roles) != 2:
        errors.append(f"{name}: the gateway has exactly two Roles (<sa>-leader, <sa>-services), got {sorted(roles)}")
    if services_role["metadata"].get("namespace") != ns or _rules(services_role) != [
        (list(g), list(r), list(v)) for g, r, v in SERVICE_RULES
    ]:
        errors.append(
            f"{name}: the gateway's Services Role must be {SERVICE_RULES} in {ns}, got {_rules(services_role)}"
        )
    lease_rules = role.get("rules") or []
    if (
        not lease_rules
        or role["metadata"].get("namespace") != ns
        or any(r.get("apiGroups") != ["coordination.k8s.io"] or r.get("resources") != ["leases"] for r in lease_rules)
    ):
        errors.append(f"{name}: the gateway Role grants Leases in the release namespace only, got {lease_rules}")
    if any(set(r["verbs"]) - {"create"} and not r.get("resourceNames") for r in lease_rules):
        errors.append(f"{name}: Lease verbs other than create must be limited to the lease name")
    for b in by_kind["ClusterRoleBinding"] + by_kind["RoleBinding"]:
        if [(s["kind"], s["name"], s.get("namespace")) for s in b["subjects"]] != [("ServiceAccount", sa, ns)]:
            errors.append(f"{name}: {b['kind']} {b['metadata']['name']} must bind only the gateway's ServiceAccount")
    (pdb,) = by_kind["PodDisruptionBudget"]
    if (
        pdb["spec"].get("minAvailable") in (None, 0, "0")
        or pdb["spec"]["selector"]["matchLabels"] != dep["spec"]["selector"]["matchLabels"]
    ):
        errors.append(f"{name}: the PDB must keep at least one gateway pod and select the Deployment's pods")
    if by_kind.get("Service"):
        errors.append(f"{name}: no static gateway Service: the controller makes one per Gateway")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a}
    selector = dict(kv.split("=", 1) for kv in flags.get("--pod-selector", "").split(",") if "=" in kv)
    if selector != dep["spec"]["selector"]["matchLabels"]:
        errors.append(f"{name}: --pod-selector must be the Deployment's pod labels, got {flags.get('--pod-selector')}")
    if flags.get("--namespace") != ns:
        errors.append(f"{name}: --namespace must be the release namespace {ns}, got {flags.get('--namespace')}")
    if "--service" in flags:
        errors.append(f"{name}: --service is gone (one Service per Gateway)")
    for gc in by_kind.get("GatewayClass", []):
        if gc["spec"].get("controllerName") != next(
            (
                a.split("=", 1)[1]
                for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]
                if a.startswith("--controller-name=")
            ),
            None,
        ):
            errors.append(f"{name}: the GatewayClass must name the controller the gateway runs as")
    return errors, True


def cmd_gateway_invariants(files: list[str]) -> None:
    results = [gateway_errors(Path(f)) for f in files]
    if not any(found for _, found in results):
        fail(f"no gateway in any of {files}: the check would prove nothing")
    fail_all([e for errs, _ in results for e in errs])
    print(f"  {sum(found for _, found in results)} of {len(files)} renders hold the gateway: gateway invariants hold")
