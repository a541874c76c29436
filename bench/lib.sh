# shellcheck shell=bash
# Helpers sourced by the benchmark scripts.

# wait_port PORT [TRIES]: wait until something accepts on 127.0.0.1:PORT (TRIES x 50 ms; programs
# under valgrind start ~50x slower), else exit 1.
wait_port() {
  local tries=${2:-100}
  for _ in $(seq 1 "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}

# require_tools SCRIPT TOOL...: exit 1 naming the first TOOL not on PATH.
require_tools() {
  local script=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$script: $tool not installed" >&2; exit 1; }
  done
}

# build_proxy_binaries: the release outrigger-proxy ($BIN) and the hyper-floor ($FLOOR_BIN) and
# paced_load ($PACED_BIN) examples, unless OUTRIGGER_PROXY_BIN names the proxy to measure (then
# only missing examples are built).
# Always built otherwise (a no-op when up to date): a stale binary would silently measure old code.
build_proxy_binaries() {
  if [[ -z "${OUTRIGGER_PROXY_BIN:-}" ]]; then
    echo "building release binaries..." >&2
    (cd "$OUTRIGGER_ROOT" && cargo build --release -p outrigger-proxy --bin outrigger-proxy \
      --example hyper_floor --example paced_load >&2)
  elif [[ ! -x "$FLOOR_BIN" || ! -x "${PACED_BIN:-$CARGO_TARGET_DIR/release/examples/paced_load}" ]]; then
    (cd "$OUTRIGGER_ROOT" && cargo build --release -p outrigger-proxy --example hyper_floor --example paced_load >&2)
  fi
  [[ -x "$BIN" ]] || { echo "no executable proxy at $BIN" >&2; exit 1; }
}

# nginx_conf DIR LISTEN-PORT APP-PORT LOCATION-BODY: a one-process nginx config (no master, no
# daemon, files under DIR) serving LOCATION-BODY on 127.0.0.1:LISTEN-PORT, with `app` an
# upstream keep-alive pool to 127.0.0.1:APP-PORT.
nginx_conf() {
  cat <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
  uwsgi_temp_path $1; scgi_temp_path $1;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$3; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / { $4 }
  }
}
EOF
}

# run_line: "Run: <UTC time>, <n> CPUs (<model>), kernel <release>", the first line of every
# result table, naming when and on what the figures were taken.
run_line() {
  echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)"
}
