# shellcheck shell=bash
# shellcheck disable=SC2034 # the ports and VH2PORT are read by the scripts that source this
# The variants that bench/proxy.sh and bench/proxy-breakdown.sh put in front of one upstream:
# their configs, starting and stopping them, and reading a variant's process tree from /proc.
# Sourced after bench/lib.sh; the caller sets BIN, FLOOR_BIN, BASE_BIN, PROXY_CPU and LOAD_CPU,
# then calls bench_start (scratch dir T, cleanup on exit, the upstream).

UP_PORT=18081 OR_PORT=18443 OR_ADMIN=18191 NG_PORT=18444 HA_PORT=18445 FL_PORT=18446
BASE_PORT=18447 BASE_ADMIN=18192
# nginx 1.22 and HAProxy 2.6 take prior-knowledge h2c only on a listener of its own; the
# outrigger-proxy variants tell h2c from HTTP/1 by the connection preface on one port.
NG_H2_PORT=18448 HA_H2_PORT=18449
PIDS=()

# bench_start: a scratch dir T, removed on exit after every process in PIDS is stopped; then
# the upstream.
bench_start() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  T="$(mktemp -d)"
  trap bench_cleanup EXIT
  start_upstream
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}

# haproxy_head BIND...: the start of a haproxy.cfg shared by the proxy and gateway benches (one
# thread, keep-alive both ways, connection reuse), one `bind` line per argument, open at the
# `backend b` section for the caller's `server` lines.
haproxy_head() {
  cat <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend f
EOF
  printf '  bind %s\n' "$@"
  printf '  default_backend b\nbackend b\n'
}

# nginx_head DIR: the start of an nginx.conf shared by the upstream and the nginx variant (one
# worker, state and temp files in DIR, no access log, unlimited keep-alive), open at `http {`.
nginx_head() {
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
  uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 1000000;
EOF
}

# --- upstream app: nginx, 1 worker, on the load-generator CPU --------------------------------
# start_hello_nginx DIR PORT: one-worker nginx answering "hello world" on 127.0.0.1:PORT, on the
# load-generator CPU (also bench/gateway.sh's four upstreams).
start_hello_nginx() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  {
    nginx_head "$dir"
    cat <<EOF
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / { default_type text/plain; return 200 "hello world\n"; }
  }
}
EOF
  } >"$dir/nginx.conf"
  taskset -c "$LOAD_CPU" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  PIDS+=($!)
  wait_port "$port"
}

start_upstream() {
  mkdir -p "$T/ng"
  start_hello_nginx "$T/up" "$UP_PORT"
  write_proxy_configs
}

# --- proxies under test, each pinned to PROXY_CPU ---------------------------------------------
write_proxy_configs() {
  {
    nginx_head "$T/ng"
    cat <<EOF
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NG_PORT backlog=4096;
    listen 127.0.0.1:$NG_H2_PORT backlog=4096 http2;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
  } >"$T/ng/nginx.conf"
  {
    haproxy_head "127.0.0.1:$HA_PORT" "127.0.0.1:$HA_H2_PORT proto h2"
    echo "  server app 127.0.0.1:$UP_PORT"
  } >"$T/haproxy.cfg"
}

# start_variant NAME: sets VPID (the pid whose process tree is measured; empty for direct),
# VPORT (HTTP/1.1) and VH2PORT (prior-knowledge h2c; empty where the variant has none).
start_variant() {
  VH2PORT=""
  case "$1" in
    direct) VPID="" VPORT=$UP_PORT ;;
    outrigger-proxy)
      OUTRIGGER_ACCESS_LOG=false taskset -c "$PROXY_CPU" "$BIN" --inbound "127.0.0.1:$OR_PORT" \
        --admin "127.0.0.1:$OR_ADMIN" --app "127.0.0.1:$UP_PORT" --workers 1 \
        >"$T/or.out" 2>"$T/or.err" &
      VPID=$! VPORT=$OR_PORT VH2PORT=$OR_PORT ;;
    outrigger-proxy-base)
      [[ -x "$BASE_BIN" ]] || { echo "outrigger-proxy-base needs OUTRIGGER_PROXY_BASE_BIN" >&2; exit 1; }
      OUTRIGGER_ACCESS_LOG=false taskset -c "$PROXY_CPU" "$BASE_BIN" --inbound "127.0.0.1:$BASE_PORT" \
        --admin "127.0.0.1:$BASE_ADMIN" --app "127.0.0.1:$UP_PORT" --workers 1 \
        >"$T/base.out" 2>"$T/base.err" &
      VPID=$! VPORT=$BASE_PORT VH2PORT=$BASE_PORT ;;
    hyper-floor)
      taskset -c "$PROXY_CPU" "$FLOOR_BIN" "127.0.0.1:$FL_PORT" "127.0.0.1:$UP_PORT" >"$T/fl.log" 2>&1 &
      VPID=$! VPORT=$FL_PORT ;;
    nginx)
      taskset -c "$PROXY_CPU" nginx -p "$T/ng" -e "$T/ng/error.log" -c "$T/ng/nginx.conf" &
      VPID=$! VPORT=$NG_PORT VH2PORT=$NG_H2_PORT ;;
    haproxy)
      taskset -c "$PROXY_CPU" haproxy -db -f "$T/haproxy.cfg" >"$T/ha.log" 2>&1 &
      VPID=$! VPORT=$HA_PORT VH2PORT=$HA_H2_PORT ;;
    *) echo "unknown variant $1" >&2; exit 1 ;;
  esac
  [[ -n "$VPID" ]] && PIDS+=("$VPID")
  wait_port "$VPORT"
  sleep 0.3
}

stop_variant() {
  if [[ -n "$VPID" ]]; then
    kill "$VPID" 2>/dev/null || true
    wait "$VPID" 2>/dev/null || true
  fi
}

tree_pids() { # pid and its children (nginx master + worker)
  echo "$1"
  pgrep -P "$1" || true
}

status_kib() { # PID FIELD: a VmRSS / VmHWM figure summed over the process tree
  local total=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

rss_kib() { status_kib "$1" VmRSS; }

cpu_ticks() { # utime+stime of the process tree, in clock ticks
  local u s
  read -r u s <<<"$(cpu_split "$1")"
  echo $((u + s))
}

cpu_split() { # "utime stime" of the process tree, in clock ticks
  local u=0 s=0 p a b
  for p in $(tree_pids "$1"); do
    # Fields 14 and 15 of /proc/PID/stat; strip "pid (comm)" first since comm may hold spaces.
    read -r a b <<<"$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}' || echo "0 0")"
    u=$((u + ${a:-0})) s=$((s + ${b:-0}))
  done
  echo "$u $s"
}

cpu_ns() { # CPU time of every thread in the process tree, in ns (schedstat: exact, where
  # utime+stime come in 10 ms ticks, too coarse for a few seconds at 1k req/s)
  local total=0 p t v
  for p in $(tree_pids "$1"); do
    for t in /proc/"$p"/task/*/schedstat; do
      read -r v _ <"$t" 2>/dev/null || v=0
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}

percentiles() { # h2load --log-file [skip-µs] -> "p50 p99 p99.9" in ms over the requests that
  # succeeded and started at least skip-µs after the run's first one (connection setup and
  # warm-up left out)
  settled "$1" "${2:-0}" | awk -F'\t' '$2 == 200 { print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "- - -"; exit }
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      i999 = int(NR * 0.999); if (i999 < 1) i999 = 1
      printf "%.3f %.3f %.3f\n", v[i50] / 1000, v[i99] / 1000, v[i999] / 1000
    }'
}

# slow_bursts LOG PERIOD-µs: "SLOW ALL" over a paced_load log: ALL bursts (the requests sent at
# one tick; ticks are PERIOD-µs apart), SLOW of them with a request over 1.5 ms. Whole bursts
# stall at random, direct included, and a variant's p99 sits where its share of them puts it, so
# the paced rows print this beside their percentiles.
slow_bursts() {
  awk -F'\t' -v period="$2" '
    NR == 1 { off = $1 % period }
    {
      b = int(($1 - off) / period + 0.5)
      if (!(b in seen)) { seen[b] = 1; all++ }
      if ($3 > 1500 && !(b in slow)) { slow[b] = 1; n++ }
    }
    END { printf "%d %d\n", n, all }' "$1"
}

# settled LOG SKIP-µs: the lines of an h2load --log-file (or paced_load's) for requests that
# started at least SKIP-µs after the run's first one.
settled() {
  awk -F'\t' -v skip="$2" 'NR == FNR { if (FNR == 1 || $1 < first) first = $1; next }
    $1 >= first + skip' "$1" "$1"
}

median_of() { # "space-separated numbers" printf-format -> their median, formatted ("-": none)
  tr ' ' '\n' <<<"$1" | { grep . || true; } | sort -g | awk -v f="$2" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "-"; exit }
      printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

mib() { [[ "$1" =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "$1"; }
