#!/usr/bin/env bash
# Charts of issue 5: the outrigger-sidecar library chart and the flask-hello-world app chart.
#   helm lint --strict (library + app with every values file)
#   helm template with default, values-production.yaml and ci/*-values.yaml, plus a second chart
#   that consumes the library (charts/outrigger-sidecar/tests/consumer)
#     -> kubeconform strict (offline schemas: Kubernetes + CRDs)
#     -> Pod Security "restricted" + zero-downtime invariants (embedded checker, with a control)
#     -> a real kube-apiserver: server-side dry-run with strict field validation, and a Pod from
#        every pod template admitted into a namespace enforcing "restricted" (a failure under CI=true, a loud
#        SKIPPED elsewhere, when kube-apiserver/etcd are not installed)
#     -> checkov (kubernetes framework) on the rendered manifests
#   negative cases: values.schema.json and the template guards must reject bad values.
# Works on a temporary copy, so the tree is never modified (helm dependency build writes charts/).
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
# shellcheck source=tools/versions.sh
source "$OUTRIGGER_ROOT/tools/versions.sh"

KUBE_VERSION="${KUBERNETES_VERSION#v}"
NAMESPACE=flask-hello-world
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for tool in helm checkov python3; do
  command -v "$tool" >/dev/null || { echo "check-charts-app: $tool not installed (run scripts/tools.sh)" >&2; exit 1; }
done
[[ -x "$OUTRIGGER_ROOT/scripts/kubeconform.sh" ]] || { echo "check-charts-app: scripts/kubeconform.sh missing (run scripts/tools.sh)" >&2; exit 1; }

mkdir -p "$work/charts" "$work/render"
cp -R "$OUTRIGGER_ROOT/charts/outrigger-sidecar" "$work/charts/"
cp -R "$OUTRIGGER_ROOT/charts/flask-hello-world" "$work/charts/"
rm -rf "$work/charts/flask-hello-world/charts"
app="$work/charts/flask-hello-world"

echo "check-charts-app: helm lint --strict charts/outrigger-sidecar (library)"
helm lint --strict "$work/charts/outrigger-sidecar"

echo "check-charts-app: helm dependency build (Chart.lock must match Chart.yaml)"
helm dependency build --skip-refresh "$app" >/dev/null

values_sets=("default:")
values_sets+=("production:$app/values-production.yaml")
for f in "$app"/ci/*-values.yaml; do
  values_sets+=("$(basename "$f" -values.yaml):$f")
done

for set in "${values_sets[@]}"; do
  name="${set%%:*}"
  file="${set#*:}"
  args=(--kube-version "$KUBE_VERSION" --namespace "$NAMESPACE")
  [[ -n "$file" ]] && args+=(-f "$file")
  echo "check-charts-app: [$name] helm lint --strict"
  helm lint --strict "${args[@]}" "$app" >/dev/null
  echo "check-charts-app: [$name] helm template | kubeconform (strict)"
  helm template flask-hello-world "$app" "${args[@]}" >"$work/render/$name.yaml"
  "$OUTRIGGER_ROOT/scripts/kubeconform.sh" "$work/render/$name.yaml"
done

cat >"$work/pss.py" <<'PY'
"""Checks the rendered manifests against Pod Security "restricted" (v1.3x rules) and the chart's
zero-downtime contract. Fails with one line per violation."""
import sys

import yaml

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
errors = []


def pss(where, pod):
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
        def eff(key):
            return sc[key] if key in sc else psc.get(key)
        if eff("runAsNonRoot") is not True:
            errors.append(f"{cw}: runAsNonRoot must be true")
        if eff("runAsUser") == 0:
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
        # Beyond PSS, our own bar: read-only root filesystem and resource requests everywhere.
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cw}: readOnlyRootFilesystem must be true")
        if not (c.get("resources") or {}).get("requests"):
            errors.append(f"{cw}: resources.requests missing")


for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds = {d["kind"] for d in docs}
    for doc in docs:
        where = f"{path.rsplit('/', 1)[-1]}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Pod":
            pss(where, doc["spec"])
        if doc["kind"] in ("StatefulSet", "DaemonSet", "Job"):
            pss(where, doc["spec"]["template"]["spec"])
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        pss(where, pod)
        ru = spec["strategy"]["rollingUpdate"]
        if spec["strategy"]["type"] != "RollingUpdate" or str(ru["maxUnavailable"]) not in ("0", "0%"):
            errors.append(f"{where}: rollout must be RollingUpdate with maxUnavailable 0")
        if spec.get("minReadySeconds", 0) < 1:
            errors.append(f"{where}: minReadySeconds must be > 0")
        for c in pod["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    errors.append(f"{where}: container {c['name']} has no {probe}")
        sidecars = [c for c in pod.get("initContainers") or [] if c["name"] == "outrigger-proxy"]
        service = next(d for d in docs if d["kind"] == "Service")
        http = next(p for p in service["spec"]["ports"] if p["name"] == "http")
        if sidecars:
            sc = sidecars[0]
            if sc.get("restartPolicy") != "Always":
                errors.append(f"{where}: outrigger-proxy must be a native sidecar (restartPolicy Always)")
            env = {e["name"]: e.get("value") for e in sc.get("env", [])}
            if env.get("OUTRIGGER_TERMINATION_GRACE_PERIOD") != str(pod["terminationGracePeriodSeconds"]):
                errors.append(f"{where}: OUTRIGGER_TERMINATION_GRACE_PERIOD != terminationGracePeriodSeconds")
            if http["targetPort"] != "outrigger":
                errors.append(f"{where}: Service port http must target the proxy when the sidecar is on")
            # The proxy must learn of the termination before the app stops: the app's preStop
            # calls its token-guarded GET /drain (admin port by number), with the proxy's token.
            app = next(c for c in pod["containers"] if c["name"] == "app")
            hook = (((app.get("lifecycle") or {}).get("preStop") or {}).get("httpGet")) or {}
            headers = {h["name"]: h["value"] for h in hook.get("httpHeaders") or []}
            token = env.get("OUTRIGGER_PROXY_DRAIN_TOKEN") or ""
            if hook.get("path") != "/drain" or hook.get("port") != 4191:
                errors.append(f"{where}: app container has no preStop httpGet /drain on port 4191: {hook}")
            if len(token) < 16 or headers.get("X-Outrigger-Drain-Token") != token:
                errors.append(f"{where}: the preStop hook's X-Outrigger-Drain-Token is not the proxy's token")
        elif http["targetPort"] != "http":
            errors.append(f"{where}: Service port http must target the app when the sidecar is off")
        if "PodDisruptionBudget" not in kinds and (spec.get("replicas") or 2) > 1:
            errors.append(f"{where}: no PodDisruptionBudget")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"  {len(sys.argv) - 1} renders: Pod Security restricted and invariants hold")
PY
# The library must serve any chart, not only flask-hello-world: a StatefulSet fixture with TLS,
# mTLS, tracing, custom ports and drain knobs (charts/outrigger-sidecar/tests/consumer).
consumer="$work/charts/outrigger-sidecar/tests/consumer"
echo "check-charts-app: [library consumer] helm template | kubeconform (strict)"
helm dependency build --skip-refresh "$consumer" >/dev/null
helm template consumer "$consumer" --kube-version "$KUBE_VERSION" --namespace "$NAMESPACE" >"$work/render/consumer.yaml"
"$OUTRIGGER_ROOT/scripts/kubeconform.sh" "$work/render/consumer.yaml"
python3 - "$work/render/consumer.yaml" <<'PY'
import sys

import yaml

docs = {d["kind"]: d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
pod = docs["StatefulSet"]["spec"]["template"]["spec"]
proxy = pod["initContainers"][0]
env = {e["name"]: e.get("value") for e in proxy["env"]}
want = {
    "OUTRIGGER_INBOUND": "0.0.0.0:8443", "OUTRIGGER_APP": "127.0.0.1:9000",
    "OUTRIGGER_TERMINATION_GRACE_PERIOD": "60", "OUTRIGGER_DRAIN_DELAY": "3s",
    "OUTRIGGER_DRAIN_TIMEOUT": "40s", "OUTRIGGER_TLS_CERT": "/var/run/outrigger/tls/tls.crt",
    "OUTRIGGER_TLS_KEY": "/var/run/outrigger/tls/tls.key", "OUTRIGGER_CLIENT_CA": "/var/run/outrigger/tls/ca.crt",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318", "OTEL_SERVICE_NAME": "consumer",
    "OUTRIGGER_REQUEST_TIMEOUT": "5s", "OUTRIGGER_RETRY_ATTEMPTS": "0",
}
errors = [f"env {k}={env.get(k)!r}, want {v!r}" for k, v in want.items() if env.get(k) != v]
if proxy.get("restartPolicy") != "Always":
    errors.append("sidecar is not a native sidecar")
if {"name": "outrigger-tls", "mountPath": "/var/run/outrigger/tls", "readOnly": True} not in proxy.get("volumeMounts", []):
    errors.append("TLS secret not mounted read-only")
if not any(v.get("secret", {}).get("secretName") == "consumer-mesh-tls" for v in pod.get("volumes", [])):
    errors.append("TLS secret volume missing")
https = next((p for p in docs["Service"]["spec"]["ports"] if p["name"] == "https"), {})
if https.get("targetPort") != "outrigger" or https.get("appProtocol") != "https":
    errors.append(f"Service port https does not target the TLS proxy: {https}")
if errors:
    sys.exit("library consumer: " + "; ".join(errors))
print("  library consumer: env, TLS volume and Service port as configured")
PY

# The derived drain token is stable across renders (no rollout on every upgrade), differs per release
# and per seed, and an explicit token too short is refused.
token_of() {
  helm template "$1" "$app" --kube-version "$KUBE_VERSION" --namespace "$NAMESPACE" "${@:2}" --show-only templates/deployment.yaml |
    python3 -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); print([e["value"] for c in d["spec"]["template"]["spec"]["initContainers"] for e in c["env"] if e["name"] == "OUTRIGGER_PROXY_DRAIN_TOKEN"][0])'
}
t1=$(token_of a)
t2=$(token_of a)
t3=$(token_of b)
t4=$(token_of a --set outrigger.drainTokenSeed=s3cr3t)
[[ ${#t1} -eq 64 && "$t1" == "$t2" && "$t1" != "$t3" && "$t1" != "$t4" ]] ||
  { echo "check-charts-app: derived drain token not stable per release and seed: $t1 $t2 $t3 $t4" >&2; exit 1; }
[[ "$(token_of a --set outrigger.drainToken=explicit-token-0123456789)" == explicit-token-0123456789 ]] ||
  { echo "check-charts-app: outrigger.drainToken is not used as given" >&2; exit 1; }
echo "  drain token: derived and stable per release and seed, explicit value used as given"

echo "check-charts-app: Pod Security restricted + rollout/sidecar invariants"
python3 "$work/pss.py" "$work/render"/*.yaml
# The checker itself must catch a violation (a render with privilege escalation and maxUnavailable 1).
mkdir -p "$work/bad"
helm template flask-hello-world "$app" --kube-version "$KUBE_VERSION" --namespace "$NAMESPACE" \
  --set securityContext.allowPrivilegeEscalation=true --set strategy.maxUnavailable=1 >"$work/bad/bad.yaml"
if python3 "$work/pss.py" "$work/bad/bad.yaml" 2>/dev/null; then
  echo "check-charts-app: the Pod Security checker accepted a privileged render" >&2
  exit 1
fi

# The real thing: a kube-apiserver (scripts/kube-test-env.sh) with the PodSecurity admission
# plugin. Every rendered built-in object goes through a server-side dry-run with strict field
# validation, and a Pod made from every workload's pod template must be admitted into a namespace
# that *enforces* "restricted"; an unhardened control Pod must be refused there.
cat >"$work/admit.py" <<'PY'
import json
import ssl
import sys
import urllib.error
import urllib.request

import yaml

state, renders = sys.argv[1], sys.argv[2:]
api = open(f"{state}/api-url").read().strip()
ctx = ssl.create_default_context(cafile=f"{state}/ca.crt")
ctx.load_cert_chain(f"{state}/admin.crt", f"{state}/admin.key")
NS = "pss-restricted"
# kind -> (API prefix, resource); CRD kinds (ServiceMonitor, HTTPRoute) are kubeconform's job.
REST = {
    "Deployment": ("apis/apps/v1", "deployments"), "StatefulSet": ("apis/apps/v1", "statefulsets"),
    "Service": ("api/v1", "services"), "ServiceAccount": ("api/v1", "serviceaccounts"),
    "Pod": ("api/v1", "pods"), "PodDisruptionBudget": ("apis/policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("apis/autoscaling/v2", "horizontalpodautoscalers"),
    "NetworkPolicy": ("apis/networking.k8s.io/v1", "networkpolicies"),
    "Ingress": ("apis/networking.k8s.io/v1", "ingresses"),
}


def call(method, path, body, dry_run=True):
    query = "?dryRun=All&fieldValidation=Strict" if dry_run else "?fieldValidation=Strict"
    req = urllib.request.Request(f"{api}/{path}{query}", data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.load(resp), resp.headers.get_all("Warning") or []
    except urllib.error.HTTPError as err:
        return err.code, json.load(err), []


def create(kind, obj):
    prefix, resource = REST[kind]
    return call("POST", f"{prefix}/namespaces/{NS}/{resource}", obj)


status, body, _ = call("POST", "api/v1/namespaces", {
    "apiVersion": "v1", "kind": "Namespace",
    "metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                        "pod-security.kubernetes.io/enforce-version": "latest"}}}, dry_run=False)
if status not in (201, 409):
    sys.exit(f"cannot create namespace: {status} {body.get('message')}")

errors, admitted, checked = [], 0, 0
for path in renders:
    name = path.rsplit("/", 1)[-1]
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc["kind"] not in REST:
            continue
        doc["metadata"]["namespace"] = NS
        status, body, warnings = create(doc["kind"], doc)
        checked += 1
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        if status != 201:
            errors.append(f"{where}: API server refused ({status}): {body.get('message')}")
        errors += [f"{where}: warning: {w}" for w in warnings]
        template = doc.get("spec", {}).get("template")
        if doc["kind"] in ("Deployment", "StatefulSet") and template:
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{doc['metadata']['name']}-pss", "namespace": NS,
                                "labels": template["metadata"].get("labels", {})},
                   "spec": template["spec"]}
            status, body, _ = create("Pod", pod)
            if status != 201:
                errors.append(f"{where}: pod template refused under enforce=restricted ({status}): {body.get('message')}")
            else:
                admitted += 1
        elif doc["kind"] == "Pod" and status == 201:
            admitted += 1

# Control: the same admission must refuse a pod that breaks "restricted".
# (No securityContext at all: root allowed, escalation allowed, capabilities kept, no seccomp.)
status, body, _ = create("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unhardened"},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
if status != 403 or 'violates PodSecurity "restricted' not in body.get("message", ""):
    errors.append(f"control: an unhardened pod was not refused by PodSecurity ({status}: {body.get('message')})")
if errors:
    sys.exit("\n".join(errors))
print(f"  {checked} objects accepted by a real API server (dry-run, strict fields); "
      f"{admitted} pods admitted under enforce=restricted; unhardened control pod refused")
PY
echo "check-charts-app: kube-apiserver: server-side dry-run (strict) + PodSecurity enforce=restricted"
if command -v kube-apiserver >/dev/null && command -v etcd >/dev/null; then
  export OUTRIGGER_KUBE_TEST_DIR="$work/kube"
  trap '"$OUTRIGGER_ROOT/scripts/kube-test-env.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  "$OUTRIGGER_ROOT/scripts/kube-test-env.sh" start >/dev/null
  python3 "$work/admit.py" "$OUTRIGGER_KUBE_TEST_DIR" "$work/render"/*.yaml
  "$OUTRIGGER_ROOT/scripts/kube-test-env.sh" stop >/dev/null 2>&1
else
  skip_or_fail "admission check" "kube-apiserver or etcd not installed (scripts/tools.sh apt kube)"
fi

echo "check-charts-app: negative cases (schema and template guards must reject bad values)"
expect_failure() {
  local why="$1"
  shift
  if helm template flask-hello-world "$app" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>&1; then
    echo "check-charts-app: accepted $why ($*)" >&2
    exit 1
  fi
}
expect_failure "a string replicaCount" --set replicaCount=two
expect_failure "an unknown top-level key" --set replicasCount=3
expect_failure "an invalid image digest" --set image.digest=latest
expect_failure "a grace period shorter than the drain" --set terminationGracePeriodSeconds=20
expect_failure "a drain token too short" --set outrigger.drainToken=short
expect_failure "TLS without a secret" --set outrigger.tls.enabled=true
expect_failure "an HTTPRoute without parentRefs" --set httpRoute.enabled=true
expect_failure "a non-OUTRIGGER proxy setting" --set outrigger.config.PATH=/tmp

# Skipped checkov checks, each on purpose:
#   CKV_K8S_11 CPU limits: CFS quota throttles the proxy and gunicorn under bursts (tail latency)
#              while requests already reserve CPU for scheduling and the HPA; memory limits are set.
#   CKV_K8S_15 imagePullPolicy Always: release tags are immutable (semver, signed) and image.digest
#              pins exactly; Always only adds a registry round trip to every restart.
#   CKV_K8S_43 image digest: supported (image.digest, exercised by ci/ingress-values.yaml), but the
#              GitOps flow promotes by semver tag (Flux image policies); cosign signatures bind tags.
# The helm test Pod skips the probe checks (CKV_K8S_8/9) itself, by annotation (one-shot pod).
echo "check-charts-app: checkov (kubernetes) on every render"
checkov --directory "$work/render" --framework kubernetes --quiet --compact --skip-download \
  --skip-check CKV_K8S_11,CKV_K8S_15,CKV_K8S_43
echo "check-charts-app: ok"
