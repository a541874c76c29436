#!/usr/bin/env bash
# A real Kubernetes API server for tests: Debian's etcd + kube-apiserver (built by scripts/tools.sh
# from the k8s.io/kubernetes module), both on 127.0.0.1 only, on free ports, with a throw-away CA,
# serving cert, admin client cert (group system:masters) and an admin bearer token, made with
# openssl. No controller-manager, scheduler or kubelet: objects are stored and served, nothing runs
# them (pods stay Pending; a deleted namespace stays Terminating).
#
# usage: scripts/kube-test-env.sh start      starts (or finds running) and prints the kubeconfig path
#        scripts/kube-test-env.sh stop       stops both servers and removes the state dir
#        scripts/kube-test-env.sh status     exit 0 if the API server answers /readyz
#        scripts/kube-test-env.sh selftest   start, create a namespace and a pod with curl, read the
#                                            pod back, stop (proves the whole chain works)
# State dir: ${OUTRIGGER_KUBE_TEST_DIR:-/tmp/outrigger-kube-test}: kubeconfig, ca.crt, admin.crt,
# admin.key, token, api-url, *.log. Logs go to stderr; stdout carries only the kubeconfig path.
# ${OUTRIGGER_KUBE_SERVICE_CIDR:-10.96.0.0/16}: the Service range (fixed clusterIPs must be in it).
set -euo pipefail
# shellcheck source=scripts/lib/env.sh
source "$(dirname "$0")/lib/env.sh"

STATE=${OUTRIGGER_KUBE_TEST_DIR:-/tmp/outrigger-kube-test}
READY_TIMEOUT=${OUTRIGGER_KUBE_READY_TIMEOUT:-180}
SERVICE_CIDR=${OUTRIGGER_KUBE_SERVICE_CIDR:-10.96.0.0/16}

say() { printf 'kube-test-env: %s\n' "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# free_port: a port nothing listens on right now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

api() {
  curl -sS --max-time 10 --cacert "$STATE/ca.crt" --cert "$STATE/admin.crt" --key "$STATE/admin.key" "$@"
}

ready() {
  [[ -f "$STATE/api-url" ]] && alive kube-apiserver && [[ "$(api "$(cat "$STATE/api-url")/readyz" 2>/dev/null)" == ok ]]
}

make_certs() {
  local d=$STATE
  say "generating CA, serving and client certificates (openssl) in $d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=outrigger-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=outrigger-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$d/admin.ext"
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/admin.ext" -out "$d/admin.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  openssl rand -hex 24 >"$d/token"
  printf '%s,outrigger-admin-token,outrigger-admin-token,"system:masters"\n' "$(cat "$d/token")" >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/token" "$d/tokens.csv"
}

write_kubeconfig() {
  local url=$1
  cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: outrigger-test
  cluster:
    server: $url
    certificate-authority: $STATE/ca.crt
users:
- name: admin
  user:
    client-certificate: $STATE/admin.crt
    client-key: $STATE/admin.key
- name: admin-token
  user:
    token: $(cat "$STATE/token")
contexts:
- name: outrigger-test
  context: {cluster: outrigger-test, user: admin}
- name: outrigger-test-token
  context: {cluster: outrigger-test, user: admin-token}
current-context: outrigger-test
EOF
  chmod 600 "$STATE/kubeconfig"
}

start() {
  if ready; then
    say "already running at $(cat "$STATE/api-url")"
    echo "$STATE/kubeconfig"
    return 0
  fi
  stop_quiet
  local apiserver etcd_bin
  apiserver=$(command -v kube-apiserver || true)
  etcd_bin=$(command -v etcd || true)
  [[ -n "$apiserver" ]] || { say "kube-apiserver not installed (scripts/tools.sh kube)"; exit 2; }
  [[ -n "$etcd_bin" ]] || { say "etcd not installed (scripts/tools.sh apt)"; exit 2; }
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  make_certs

  local etcd_port peer_port api_port
  etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
  say "starting etcd on 127.0.0.1:$etcd_port ($("$etcd_bin" --version | head -n 1))"
  nohup "$etcd_bin" --name outrigger-test --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "outrigger-test=http://127.0.0.1:$peer_port" \
    --quota-backend-bytes $((512 * 1024 * 1024)) \
    >"$STATE/etcd.log" 2>&1 </dev/null &
  echo $! >"$STATE/etcd.pid"
  local i
  for i in $(seq 1 100); do
    [[ "$(curl -s --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null)" == *'"health":"true"'* ]] && break
    alive etcd || { tail -n 20 "$STATE/etcd.log" >&2; fail "etcd exited"; }
    [[ $i -lt 100 ]] || fail "etcd not healthy after 20 s (log: $STATE/etcd.log)"
    sleep 0.2
  done

  local url="https://127.0.0.1:$api_port"
  say "starting $("$apiserver" --version) on $url"
  # ServiceAccount admission is off: no controller-manager creates namespaces' default service
  # accounts here, so with it on every pod create would fail.
  nohup "$apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$STATE/certs" \
    --tls-cert-file "$STATE/apiserver.crt" --tls-private-key-file "$STATE/apiserver.key" \
    --client-ca-file "$STATE/ca.crt" --token-auth-file "$STATE/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$STATE/sa.pub" --service-account-signing-key-file "$STATE/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --disable-admission-plugins ServiceAccount \
    --enable-priority-and-fairness=false --profiling=false \
    >"$STATE/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$STATE/kube-apiserver.pid"
  echo "$url" >"$STATE/api-url"
  write_kubeconfig "$url"

  local start_s=$SECONDS
  until ready; do
    alive kube-apiserver || { tail -n 30 "$STATE/kube-apiserver.log" >&2; fail "kube-apiserver exited (log: $STATE/kube-apiserver.log)"; }
    if (( SECONDS - start_s > READY_TIMEOUT )); then
      tail -n 30 "$STATE/kube-apiserver.log" >&2
      fail "kube-apiserver not ready after $READY_TIMEOUT s"
    fi
    sleep 0.5
  done
  say "ready after $(( SECONDS - start_s )) s: $url (kubeconfig $STATE/kubeconfig)"
  echo "$STATE/kubeconfig"
}

# stop_pid NAME: TERM, up to 10 s grace, then KILL. Only the PIDs this script recorded.
stop_pid() {
  local name=$1 pid i
  [[ -f "$STATE/$name.pid" ]] || return 0
  pid=$(cat "$STATE/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$STATE/$name.pid"
}

stop_quiet() {
  stop_pid kube-apiserver
  stop_pid etcd
  # Only ever a directory this script created (it holds our pid files / api-url marker).
  if [[ -d "$STATE" && ( -f "$STATE/api-url" || -f "$STATE/ca.crt" ) ]]; then
    rm -rf "$STATE"
  fi
}

selftest() {
  local kubeconfig url ns="outrigger-selftest" code
  kubeconfig=$(start)
  url=$(cat "$STATE/api-url")
  trap stop_quiet EXIT
  say "selftest against $url (kubeconfig $kubeconfig)"
  # Namespace with the client certificate.
  code=$(api -o "$STATE/ns.json" -w '%{http_code}' -H 'Content-Type: application/json' -X POST "$url/api/v1/namespaces" \
    -d "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$ns\"}}")
  [[ "$code" == 201 ]] || fail "create namespace: HTTP $code $(cat "$STATE/ns.json")"
  say "created namespace $ns (HTTP $code, client certificate)"
  # Pod with the bearer token.
  code=$(curl -sS --max-time 10 --cacert "$STATE/ca.crt" -H "Authorization: Bearer $(cat "$STATE/token")" \
    -o "$STATE/pod.json" -w '%{http_code}' -H 'Content-Type: application/json' -X POST "$url/api/v1/namespaces/$ns/pods" \
    -d '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app.kubernetes.io/name":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}')
  [[ "$code" == 201 ]] || fail "create pod: HTTP $code $(cat "$STATE/pod.json")"
  say "created pod $ns/web (HTTP $code, bearer token)"
  api "$url/api/v1/namespaces/$ns/pods/web" | python3 -c '
import json, sys
pod = json.load(sys.stdin)
assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": "web"}, pod["metadata"]
assert pod["metadata"]["uid"], "no uid"
print("kube-test-env: read back pod %s/%s uid=%s phase=%s" % (pod["metadata"]["namespace"],
      pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"].get("phase")), file=sys.stderr)'
  # Unauthenticated requests must be refused.
  code=$(curl -sS --max-time 10 --cacert "$STATE/ca.crt" -o /dev/null -w '%{http_code}' "$url/api/v1/namespaces/$ns/pods")
  [[ "$code" == 401 || "$code" == 403 ]] || fail "anonymous list pods: HTTP $code (want 401/403)"
  say "anonymous request refused (HTTP $code)"
  say "selftest passed"
}

case "${1:-}" in
  start) start ;;
  stop) stop_quiet; say "stopped" ;;
  status) if ready; then say "running at $(cat "$STATE/api-url")"; else say "not running"; exit 1; fi ;;
  selftest) selftest ;;
  *) echo "usage: $0 start|stop|status|selftest" >&2; exit 2 ;;
esac
