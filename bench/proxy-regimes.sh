# shellcheck shell=bash
# bench/proxy.sh's second table: the regimes a sidecar lives in (issue 21), one named row per
# regime and one column per variant, all variants in the same run and under the same layout as
# the first table (proxy on PROXY_CPU, load generator + upstream on LOAD_CPU). Sourced by
# bench/proxy.sh, which has started the upstream and defined VARIANTS; writes $OUT_REGIMES
# (default bench/proxy/regimes.md).
#
# - "at 1k / 5k req/s over 32 connections": h2load --h1 -c32 --rps (rate / 32 per connection)
#   for REGIME_SECS; added p50 / p99 = the median over REGIME_ROUNDS rounds of (variant - direct
#   in the same round), the first second of each run (connection setup) left out; CPU-ms per 1k
#   requests = the process tree's CPU time (every thread's schedstat) over the whole run divided
#   by the requests it completed;
# - "max req/s, 32 connections": wrk -t1 -c32, median of the rounds;
# - "h2c req/s": h2load -c32 -m10 (prior-knowledge h2c), median of the rounds;
# - "peak RSS, 1,000 busy keep-alive connections": a fresh process per variant after the rounds,
#   wrk -t1 -c1000 for PEAK_SECS; the figure is the process tree's summed VmHWM (the kernel's
#   own peak of resident memory; the process had only served a short warm-up before);
# - "idle RSS": VmRSS of that fresh process after a 1 s warm-up with 4 connections.
#
# Env: REGIME_ROUNDS (3), REGIME_SECS (6), REGIME_CONNS (32), PEAK_SECS (5), OUT_REGIMES.

REGIME_ROUNDS="${REGIME_ROUNDS:-3}"
REGIME_SECS="${REGIME_SECS:-6}"
REGIME_CONNS="${REGIME_CONNS:-32}"
PEAK_SECS="${PEAK_SECS:-5}"
OUT_REGIMES="${OUT_REGIMES:-$OUTRIGGER_ROOT/bench/proxy/regimes.md}"

# regime_rate PORT RATE LOG: h2load at RATE req/s in total over REGIME_CONNS connections; prints
# "p50 p99 cpu-ms-per-1k" (cpu "-" for direct).
regime_rate() {
  local port=$1 rate=$2 log=$3 c0=0 c1=0 n
  local rps
  rps=$(awk -v r="$rate" -v c="$REGIME_CONNS" 'BEGIN { printf "%.4f", r / c }')
  [[ -n "$VPID" ]] && c0=$(cpu_ns "$VPID")
  taskset -c "$LOAD_CPU" h2load --h1 -c "$REGIME_CONNS" --rps "$rps" -D "$REGIME_SECS" \
    --log-file "$log" "http://127.0.0.1:$port/" >"$log.report" 2>&1 || true
  [[ -n "$VPID" ]] && c1=$(cpu_ns "$VPID")
  n=$(awk -F'\t' '$2 == 200' "$log" | wc -l)
  read -r p50 p99 _ <<<"$(percentiles "$log" 1000000)"
  local cpu="-"
  if [[ -n "$VPID" ]] && (( n > 0 )); then
    cpu=$(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN { printf "%.1f", d / 1e6 / (n / 1000) }')
  fi
  echo "$p50 $p99 $cpu"
}

regimes_table() {
  declare -A ADD1_50 ADD1_99 ADD5_50 ADD5_99 CPU1 CPU5 MAX32 H2C IDLE PEAK
  local r v out p50 p99 cpu
  for r in $(seq 1 "$REGIME_ROUNDS"); do
    declare -A L1=() L5=()
    for v in "${VARIANTS[@]}"; do
      echo "== regimes, round $r/$REGIME_ROUNDS: $v" >&2
      start_variant "$v"
      taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
      read -r p50 p99 cpu <<<"$(regime_rate "$VPORT" 1000 "$T/rg-$v-1k-$r.log")"
      L1[$v]="$p50 $p99"
      CPU1[$v]+="$cpu "
      read -r p50 p99 cpu <<<"$(regime_rate "$VPORT" 5000 "$T/rg-$v-5k-$r.log")"
      L5[$v]="$p50 $p99"
      CPU5[$v]+="$cpu "
      out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d"${MAX_DURATION}s" "http://127.0.0.1:$VPORT/")
      MAX32[$v]+="$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out") "
      if [[ -n "$VH2PORT" ]]; then
        # Counted only if every request succeeded: a variant answering errors fast is no figure.
        out=$(taskset -c "$LOAD_CPU" h2load -c "$REGIME_CONNS" -m10 -D "$MAX_DURATION" \
          "http://127.0.0.1:$VH2PORT/" 2>&1 || true)
        echo "$out" >"$T/rg-$v-h2c-$r.out"
        H2C[$v]+="$(awk '/^finished in/ {rps = $4}
          /^requests:/ {errs = $10 + $12}
          /^status codes:/ {ok = $3; bad = $7 + $9}
          END { if (rps != "" && ok > 0 && !bad && !errs) printf "%d", rps; else print "failed" }' <<<"$out") "
      fi
      echo "   1k: ${L1[$v]} ms, CPU-ms/1k: ${CPU1[$v]}; 5k: ${L5[$v]} ms, ${CPU5[$v]}; max -c$REGIME_CONNS: ${MAX32[$v]}; h2c: ${H2C[$v]:-}" >&2
      if [[ "${H2C[$v]:-}" == *failed* ]]; then grep -E '^(finished|requests|status)' "$T/rg-$v-h2c-$r.out" >&2 || true; fi
      stop_variant
    done
    local d1 d5
    d1=${L1[direct]:-} d5=${L5[direct]:-}
    for v in "${VARIANTS[@]}"; do
      [[ -n "$d1" ]] || break
      ADD1_50[$v]+="$(diff_ms "${L1[$v]% *}" "${d1% *}") "
      ADD1_99[$v]+="$(diff_ms "${L1[$v]#* }" "${d1#* }") "
      ADD5_50[$v]+="$(diff_ms "${L5[$v]% *}" "${d5% *}") "
      ADD5_99[$v]+="$(diff_ms "${L5[$v]#* }" "${d5#* }") "
    done
  done

  for v in "${VARIANTS[@]}"; do
    [[ "$v" == direct ]] && continue
    echo "== regimes, memory: $v" >&2
    start_variant "$v"
    taskset -c "$LOAD_CPU" wrk -t1 -c4 -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
    sleep 0.5
    IDLE[$v]=$(rss_kib "$VPID")
    taskset -c "$LOAD_CPU" wrk -t1 -c1000 -d"${PEAK_SECS}s" "http://127.0.0.1:$VPORT/" >"$T/rg-$v-peak.out" 2>&1 || true
    PEAK[$v]=$(status_kib "$VPID" VmHWM)
    echo "   idle $(mib "${IDLE[$v]}") MiB, peak $(mib "${PEAK[$v]}") MiB; $(grep -E 'Requests/sec|Non-2xx|errors' "$T/rg-$v-peak.out" | tr -s ' ' | tr '\n' ';')" >&2
    stop_variant
  done

  local cols=() sep="|---|" row
  for v in "${VARIANTS[@]}"; do cols+=("$v"); sep+="---|"; done
  {
    run_line
    echo "Tools: $(nginx -v 2>&1 | cut -d' ' -f3), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'), h2load $(h2load --version | awk '{print $2}'); outrigger-proxy $("$BIN" --version | awk '{print $2}') --workers 1, access log off"
    echo "Proxy pinned to CPU $PROXY_CPU; load generator + upstream (nginx, 12-byte body) on CPU $LOAD_CPU; $REGIME_ROUNDS interleaved rounds, each running every variant for h2load --h1 -c$REGIME_CONNS at 1k and 5k req/s (${REGIME_SECS}s each, first second left out of the latencies), wrk -t1 -c$REGIME_CONNS -d${MAX_DURATION}s and h2load -c$REGIME_CONNS -m10 -D$MAX_DURATION (h2c); added latency: median of the per-round differences to direct; CPU: schedstat of every thread of the process tree over the whole rate run, per request completed; req/s: median of the rounds; memory: one fresh process per variant, idle = VmRSS after wrk -c4 -d1s, peak = summed VmHWM after wrk -t1 -c1000 -d${PEAK_SECS}s"
    echo
    row="| regime |"
    for v in "${cols[@]}"; do row+=" $v |"; done
    echo "$row"
    echo "$sep"
    row="| added p50 / p99 at 1k req/s over $REGIME_CONNS connections (ms) |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${ADD1_50[$v]:-}" "%+.3f") / $(median_of "${ADD1_99[$v]:-}" "%+.3f") |"; done
    echo "$row"
    row="| CPU-ms per 1k requests at 1k req/s |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${CPU1[$v]//-/}" "%.1f") |"; done
    echo "$row"
    row="| added p50 / p99 at 5k req/s over $REGIME_CONNS connections (ms) |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${ADD5_50[$v]:-}" "%+.3f") / $(median_of "${ADD5_99[$v]:-}" "%+.3f") |"; done
    echo "$row"
    row="| CPU-ms per 1k requests at 5k req/s |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${CPU5[$v]//-/}" "%.1f") |"; done
    echo "$row"
    row="| peak RSS, 1,000 busy keep-alive connections (MiB) |"
    for v in "${VARIANTS[@]}"; do row+=" $(mib "${PEAK[$v]:--}") |"; done
    echo "$row"
    row="| idle RSS (MiB) |"
    for v in "${VARIANTS[@]}"; do row+=" $(mib "${IDLE[$v]:--}") |"; done
    echo "$row"
    row="| max req/s, $REGIME_CONNS connections |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${MAX32[$v]:-}" "%d") |"; done
    echo "$row"
    row="| h2c req/s ($REGIME_CONNS connections × 10 streams) |"
    for v in "${VARIANTS[@]}"; do
      if [[ "${H2C[$v]:-}" == *failed* ]]; then row+=" failed |"; else row+=" $(median_of "${H2C[$v]:-}" "%d") |"; fi
    done
    echo "$row"
  } | tee "$OUT_REGIMES"
}

diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print ""; else printf "%.4f", a - b }'; }
