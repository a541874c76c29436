"""The app chart's contract (charts/flask-hello-world with the outrigger-sidecar library), asserted on
rendered files by check-charts-app.sh: Pod Security "restricted" plus our own bar for every pod, the
zero-downtime rollout rules, the sidecar wiring (native sidecar, Service through the proxy, the
app's preStop drain call with the proxy's token), and the library's settings as seen by a second
chart that consumes it (charts/outrigger-sidecar/tests/consumer)."""

from __future__ import annotations

from pathlib import Path

from .failure import fail, fail_all
from .manifests import load_docs

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# The proxy's admin port, where GET /drain is served (token-guarded).
ADMIN_PORT = 4191


def pod_security_errors(where: str, pod: dict) -> list[str]:
    """Pod Security "restricted" (the v1.3x rules), plus a read-only root filesystem and resource
    requests on every container, which "restricted" does not ask for but this project does."""
    errors = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            errors.append(f"{where}: {key} is set")
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            errors.append(f"{where}: volume {vol['name']} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    containers = [("container", c) for c in pod.get("containers", [])]
    containers += [("initContainer", c) for c in pod.get("initContainers") or []]
    for kind, c in containers:
        sc = c.get("securityContext") or {}
        cw = f"{where} {kind} {c['name']}"

        def effective(key: str, sc: dict = sc) -> object:
            return sc[key] if key in sc else psc.get(key)

        if effective("runAsNonRoot") is not True:
            errors.append(f"{cw}: runAsNonRoot must be true")
        if effective("runAsUser") == 0:
            errors.append(f"{cw}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{cw}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            errors.append(f"{cw}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            errors.append(f"{cw}: capabilities.drop must contain ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            errors.append(f"{cw}: capabilities.add beyond NET_BIND_SERVICE")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{cw}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            errors.append(f"{cw}: hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cw}: readOnlyRootFilesystem must be true")
        if not (c.get("resources") or {}).get("requests"):
            errors.append(f"{cw}: resources.requests missing")
    return errors


def _sidecar_errors(where: str, pod: dict, sidecar: dict, http_target: object) -> list[str]:
    errors = []
    if sidecar.get("restartPolicy") != "Always":
        errors.append(f"{where}: outrigger-proxy must be a native sidecar (restartPolicy Always)")
    env = {e["name"]: e.get("value") for e in sidecar.get("env", [])}
    if env.get("OUTRIGGER_TERMINATION_GRACE_PERIOD") != str(pod.get("terminationGracePeriodSeconds")):
        errors.append(f"{where}: OUTRIGGER_TERMINATION_GRACE_PERIOD != terminationGracePeriodSeconds")
    if http_target != "outrigger":
        errors.append(f"{where}: Service port http must target the proxy when the sidecar is on")
    # The proxy must learn of the termination before the app stops: the app's preStop calls its
    # token-guarded GET /drain (admin port by number), with the proxy's token.
    app = next((c for c in pod["containers"] if c["name"] == "app"), {})
    hook = (((app.get("lifecycle") or {}).get("preStop") or {}).get("httpGet")) or {}
    headers = {h["name"]: h["value"] for h in hook.get("httpHeaders") or []}
    token = env.get("OUTRIGGER_PROXY_DRAIN_TOKEN") or ""
    if hook.get("path") != "/drain" or hook.get("port") != ADMIN_PORT:
        errors.append(f"{where}: app container has no preStop httpGet /drain on port {ADMIN_PORT}: {hook}")
    if len(token) < 16 or headers.get("X-Outrigger-Drain-Token") != token:
        errors.append(f"{where}: the preStop hook's X-Outrigger-Drain-Token is not the proxy's token")
    return errors


def app_invariant_errors(path: Path) -> list[str]:
    """Every pod of one render under Pod Security "restricted"; every Deployment rolls out with
    maxUnavailable 0, minReadySeconds, probes, a pod template without the chart's version label, a
    PodDisruptionBudget when replicated, and the sidecar wiring when the sidecar is on (the
    Service's http port must target the app otherwise)."""
    errors: list[str] = []
    docs = load_docs(path.read_text())
    kinds = {d["kind"] for d in docs}
    for doc in docs:
        where = f"{path.name}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Pod":
            errors += pod_security_errors(where, doc["spec"])
        if doc["kind"] in ("StatefulSet", "DaemonSet", "Job"):
            errors += pod_security_errors(where, doc["spec"]["template"]["spec"])
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        errors += pod_security_errors(where, pod)
        strategy = spec.get("strategy") or {}
        unavailable = str((strategy.get("rollingUpdate") or {}).get("maxUnavailable"))
        if strategy.get("type") != "RollingUpdate" or unavailable not in ("0", "0%"):
            errors.append(f"{where}: rollout must be RollingUpdate with maxUnavailable 0")
        if spec.get("minReadySeconds", 0) < 1:
            errors.append(f"{where}: minReadySeconds must be > 0")
        # Flux's reconcileStrategy Revision puts the commit in the chart version: a chart label on
        # the pod template would roll every pod on any commit to the repository.
        if "helm.sh/chart" in ((spec["template"].get("metadata") or {}).get("labels") or {}):
            errors.append(f"{where}: the pod template must not carry helm.sh/chart (it changes with every chart build)")
        for c in pod["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    errors.append(f"{where}: container {c['name']} has no {probe}")
        service = next((d for d in docs if d["kind"] == "Service"), None)
        http = next((p for p in (service or {}).get("spec", {}).get("ports", []) if p.get("name") == "http"), None)
        if http is None:
            errors.append(f"{where}: no Service with a port named http")
            continue
        sidecars = [c for c in pod.get("initContainers") or [] if c["name"] == "outrigger-proxy"]
        if sidecars:
            errors += _sidecar_errors(where, pod, sidecars[0], http["targetPort"])
        elif http["targetPort"] != "http":
            errors.append(f"{where}: Service port http must target the app when the sidecar is off")
        if "PodDisruptionBudget" not in kinds and (spec.get("replicas") or 2) > 1:
            errors.append(f"{where}: no PodDisruptionBudget")
    return errors


# What charts/outrigger-sidecar/tests/consumer/values.yaml sets, as the proxy must receive it.
CONSUMER_ENV = {
    "OUTRIGGER_INBOUND": "0.0.0.0:8443",
    "OUTRIGGER_APP": "127.0.0.1:9000",
    "OUTRIGGER_TERMINATION_GRACE_PERIOD": "60",
    "OUTRIGGER_DRAIN_DELAY": "3s",
    "OUTRIGGER_DRAIN_TIMEOUT": "40s",
    "OUTRIGGER_TLS_CERT": "/var/run/outrigger/tls/tls.crt",
    "OUTRIGGER_TLS_KEY": "/var/run/outrigger/tls/tls.key",
    "OUTRIGGER_CLIENT_CA": "/var/run/outrigger/tls/ca.crt",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
    "OTEL_SERVICE_NAME": "consumer",
    "OUTRIGGER_REQUEST_TIMEOUT": "5s",
    "OUTRIGGER_RETRY_ATTEMPTS": "0",
}


def consumer_errors(path: Path) -> list[str]:
    """The library serves any chart, not only flask-hello-world: the consumer fixture's StatefulSet
    gets a native sidecar with the configured env, its TLS Secret mounted read-only, and a Service
    port https that targets the TLS proxy."""
    docs = {d["kind"]: d for d in load_docs(path.read_text())}
    if "StatefulSet" not in docs or "Service" not in docs:
        return [f"{path.name}: the consumer render needs a StatefulSet and a Service, got {sorted(docs)}"]
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    proxy = next((c for c in pod.get("initContainers") or [] if c["name"] == "outrigger-proxy"), None)
    if proxy is None:
        return [f"{path.name}: no outrigger-proxy sidecar in the StatefulSet"]
    env = {e["name"]: e.get("value") for e in proxy.get("env", [])}
    errors = [f"env {k}={env.get(k)!r}, want {v!r}" for k, v in CONSUMER_ENV.items() if env.get(k) != v]
    if proxy.get("restartPolicy") != "Always":
        errors.append("sidecar is not a native sidecar")
    mount = {"name": "outrigger-tls", "mountPath": "/var/run/outrigger/tls", "readOnly": True}
    if mount not in proxy.get("volumeMounts", []):
        errors.append("TLS secret not mounted read-only")
    if not any(v.get("secret", {}).get("secretName") == "consumer-mesh-tls" for v in pod.get("volumes", [])):
        errors.append("TLS secret volume missing")
    https = next((p for p in docs["Service"]["spec"]["ports"] if p["name"] == "https"), {})
    if https.get("targetPort") != "outrigger" or https.get("appProtocol") != "https":
        errors.append(f"Service port https does not target the TLS proxy: {https}")
    return [f"library consumer: {e}" for e in errors]


def drain_token(text: str) -> str:
    """The proxy's OUTRIGGER_PROXY_DRAIN_TOKEN in a rendered Deployment."""
    for doc in load_docs(text):
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("initContainers") or []:
            for e in c.get("env") or []:
                if e["name"] == "OUTRIGGER_PROXY_DRAIN_TOKEN":
                    return str(e.get("value") or "")
    fail("no OUTRIGGER_PROXY_DRAIN_TOKEN in the render")


def cmd_app_invariants(files: list[str]) -> None:
    fail_all([e for f in files for e in app_invariant_errors(Path(f))])
    print(f"  {len(files)} renders: Pod Security restricted and invariants hold")


def cmd_library_consumer(file: str) -> None:
    fail_all(consumer_errors(Path(file)))
    print("  library consumer: env, TLS volume and Service port as configured")
