#!/usr/bin/env bash
# End-to-end on a kind cluster with the images CI just built (never pulled from a registry):
#   1. namespace enforcing Pod Security "restricted" (the chart must be admitted as is),
#   2. helm install with the Outrigger sidecar, wait for the rollout, `helm test`,
#   3. continuous load through the Service while the Deployment is restarted twice: zero failures.
# usage: .github/e2e/kind.sh IMAGES_DIR KIND_CLUSTER
set -euo pipefail
images_dir="$1"
cluster="$2"
ns=hello
cd "$(dirname "$0")/../.."

for archive in "$images_dir"/*.tar; do
  kind load image-archive "$archive" --name "$cluster"
done

kubectl create namespace "$ns"
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/enforce-version=latest

helm dependency build charts/flask-hello-world
helm install hello charts/flask-hello-world --namespace "$ns" --wait --timeout 5m \
  --set image.repository=ci.local/flask-hello-world --set image.tag=ci --set image.pullPolicy=Never \
  --set outrigger.image.repository=ci.local/outrigger-proxy --set outrigger.image.tag=ci \
  --set outrigger.image.pullPolicy=Never --set app.drainDelaySeconds=3
kubectl -n "$ns" get pods -o wide
helm test hello --namespace "$ns" --logs

# In-cluster load: one new connection per request so kube-proxy spreads them over all endpoints.
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: load
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: load
      image: ci.local/flask-hello-world:ci
      imagePullPolicy: Never
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      command:
        - python
        - -c
        - |
          import time, urllib.request
          ok = failed = 0
          deadline = time.monotonic() + 150
          while time.monotonic() < deadline:
              try:
                  with urllib.request.urlopen("http://hello-flask-hello-world/json", timeout=5) as r:
                      ok += r.status == 200
                      failed += r.status != 200
              except Exception as err:  # every failure counts, whatever its kind
                  failed += 1
                  print("failure:", repr(err), flush=True)
              time.sleep(0.02)
          print(f"ok={ok} failed={failed}", flush=True)
          raise SystemExit(1 if failed or ok == 0 else 0)
YAML
kubectl -n "$ns" wait --for=condition=Ready pod/load --timeout=60s
sleep 10
for round in 1 2; do
  echo "rollout restart round $round under load"
  kubectl -n "$ns" rollout restart deployment/hello-flask-hello-world
  kubectl -n "$ns" rollout status deployment/hello-flask-hello-world --timeout=5m
done
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/load --timeout=4m || {
  kubectl -n "$ns" logs pod/load
  echo "load saw failures during the rollouts" >&2
  exit 1
}
kubectl -n "$ns" logs pod/load | tail -1
