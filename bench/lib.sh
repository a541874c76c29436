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
