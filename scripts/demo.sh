#!/usr/bin/env bash
# Local demo on loopback (no cluster, no cloud account, no root): the Flask hello-world app behind
# outrigger-proxy, a short load, the proxy's golden metrics, a zero-downtime drain, and the access
# log shipped by outrigger-agent to a local Loki-compatible sink.
source "$(dirname "$0")/lib/env.sh"
set -euo pipefail
cd "$OUTRIGGER_ROOT"

APP_PORT=${DEMO_APP_PORT:-18080}
INBOUND_PORT=${DEMO_INBOUND_PORT:-14143}
ADMIN_PORT=${DEMO_ADMIN_PORT:-14191}
SINK_PORT=${DEMO_SINK_PORT:-13100}
AGENT_PORT=${DEMO_AGENT_PORT:-14192}
DURATION=${DEMO_DURATION:-5}
# The proxy keeps accepting for DRAIN_DELAY after SIGTERM; the clients stop after DRAIN_WINDOW.
DRAIN_DELAY=${DEMO_DRAIN_DELAY:-1s}
DRAIN_WINDOW=${DEMO_DRAIN_WINDOW:-0.5}
fail=0

work=$(mktemp -d /tmp/outrigger-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_http() { # url expected-status
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = "$2" ] && return 0
    sleep 0.05
  done
  echo "demo: $1 never answered $2" >&2
  return 1
}

say "building outrigger-proxy and outrigger-agent"
cargo build --locked -q -p outrigger-proxy -p outrigger-agent
bin=${CARGO_TARGET_DIR:-target}/debug

say "starting flask-hello-world (gunicorn) on 127.0.0.1:$APP_PORT"
PYTHONPATH=apps/flask-hello-world/src HOST=127.0.0.1 PORT=$APP_PORT WEB_CONCURRENCY=2 \
  DRAIN_DELAY_SECONDS=1 python -m flask_hello_world.serve >"$work/app.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$APP_PORT/readyz" 200

say "starting outrigger-proxy: inbound 127.0.0.1:$INBOUND_PORT -> app, admin 127.0.0.1:$ADMIN_PORT"
"$bin/outrigger-proxy" --inbound "127.0.0.1:$INBOUND_PORT" --app "127.0.0.1:$APP_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --drain-delay "$DRAIN_DELAY" --drain-timeout 5s >"$work/proxy.log" 2>"$work/proxy.err" &
proxy_pid=$!
pids+=("$proxy_pid")
wait_http "http://127.0.0.1:$ADMIN_PORT/ready" 200
curl -s "http://127.0.0.1:$INBOUND_PORT/json"; echo

say "driving ${DURATION}s of keep-alive load through the proxy"
if command -v wrk >/dev/null; then
  wrk -t1 -c8 -d"${DURATION}s" "http://127.0.0.1:$INBOUND_PORT/json" | sed 's/^/  /'
else
  end=$((SECONDS + DURATION)); n=0
  while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "http://127.0.0.1:$INBOUND_PORT/json"; n=$((n + 1)); done
  echo "  $n requests with curl"
fi

say "golden metrics from http://127.0.0.1:$ADMIN_PORT/metrics"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^outrigger_proxy_(requests_total|request_duration_seconds_(count|sum)|requests_in_flight|open_connections|retries|request_bytes|response_bytes|draining|build_info)' | sed 's/^/  /'

say "SIGTERM the proxy under load: /ready turns 503, requests keep succeeding for the drain delay, exit 0"
# The loop plays the Service's clients: they keep sending until the endpoint is gone. In a cluster
# that takes up to a few hundred ms after /ready fails (endpoints, kube-proxy), which is what the
# proxy's drain delay covers, so the loop goes on for DRAIN_WINDOW (< the drain delay) after the
# SIGTERM. Every answer that is not 200 is a failure, and so is no answer at all (curl's 000).
stop="$work/stop-load"
( n=0
  while [ ! -e "$stop" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$INBOUND_PORT/json" || true)
    n=$((n + 1))
    [ "$code" = 200 ] || echo "failed: request $n answered ${code} (000 = no response)"
    sleep 0.02
  done
  echo "requests: $n" ) >"$work/during-drain.txt" &
load=$!
sleep 0.2
kill -TERM "$proxy_pid"
sleep 0.1
echo "  /ready during drain: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/ready")"
sleep "$DRAIN_WINDOW"
touch "$stop"
wait "$load"
set +e; wait "$proxy_pid"; status=$?; set -e
echo "  proxy exit status: $status"
failed=$(grep -c '^failed:' "$work/during-drain.txt" || true)
echo "  requests around the SIGTERM: $(sed -n 's/^requests: //p' "$work/during-drain.txt"), failed: $failed"
if [ "$failed" -gt 0 ]; then
  fail=1
  sed -n 's/^failed: /  failed: /p' "$work/during-drain.txt" | head -n 5
fi

say "shipping the proxy's access log with outrigger-agent (CRI files -> Loki JSON push)"
pod_dir="$work/pods/demo_flask-hello-world-0_00000000-0000-0000-0000-000000000001/outrigger-proxy"
mkdir -p "$pod_dir"
grep '^{' "$work/proxy.log" | while IFS= read -r line; do
  printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$line"
done >"$pod_dir/0.log"
lines=$(wc -l <"$pod_dir/0.log")
python3 scripts/lib/demo-sink.py "$SINK_PORT" "$work/sink.jsonl" &
pids+=($!)
wait_http "http://127.0.0.1:$SINK_PORT/ready" 200
"$bin/outrigger-agent" --log-root "$work/pods" --state-dir "$work/state" \
  --loki-url "http://127.0.0.1:$SINK_PORT/loki/api/v1/push" --loki-encoding json \
  --metrics "127.0.0.1:$AGENT_PORT" --node-name demo-node --kube-metadata off >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
for _ in $(seq 1 300); do
  [ -f "$work/sink.jsonl" ] && [ "$(wc -l <"$work/sink.jsonl")" -ge "$lines" ] && break
  sleep 0.1
done
sleep 1.5 # let the agent publish its post-ack checkpoint and lag figures
echo "  access-log lines on disk: $lines, received by the sink: $(wc -l <"$work/sink.jsonl" 2>/dev/null || echo 0)"
echo "  a received entry: $(head -n 1 "$work/sink.jsonl" | cut -c1-220)"
curl -s "http://127.0.0.1:$AGENT_PORT/metrics" | grep -E '^outrigger_agent_(lines_read_total|lines_sent_total|batches_total|checkpoint_age_seconds|lag_bytes)' | sed 's/^/  /'
kill -TERM "$agent_pid"; wait "$agent_pid" || true

if [ "$status" = 0 ] && [ "$fail" = 0 ]; then
  say "demo done: zero failed requests"
else
  say "demo: something failed"
  exit 1
fi
