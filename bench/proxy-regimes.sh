# shellcheck shell=bash
# bench/proxy.sh's second table: the regimes a sidecar lives in (issue 21), one named row per
# regime and one column per variant, all variants in the same run and under the same layout as
# the first table (proxy on PROXY_CPU, load generator + upstream on LOAD_CPU). Sourced by
# bench/proxy.sh, which has started the upstream and defined VARIANTS; writes $OUT_REGIMES
# (default bench/proxy/regimes.md).
#
# - "at 1k req/s over 32 connections": every variant at once, each with its 32 keep-alive
#   connections from proxy/examples/paced_load (load generator CPU) for PACED_SECS in all:
#   all 32 connections of a variant send together once per 32 ms (the load shape of h2load --rps,
#   which fires its connections' timers together), and the variants' ticks are spread evenly
#   over those 32 ms, so they are measured side by side on the same machine state rather than one
#   after the other: direct-to-app latency alone moves by 0.2 ms between 4 s runs taken a minute
#   apart, more than a proxy adds (docs/benchmarks.md, session 20). The run is cut into one
#   segment per variant with the order of the ticks rotated by one each segment (a variant whose
#   burst overruns delays the next one's). Added p50 / p99 = the variant's percentile minus
#   direct's, over every segment's requests but the first second of each (connection setup);
#   CPU-ms per 1k requests = the process tree's CPU time (every thread's schedstat) over the run,
#   per request completed;
# - "at 5k req/s over 32 connections": RATE_ROUNDS interleaved rounds, each running every variant
#   alone (in an order rotated by one per round) under h2load --h1 -c32 --rps 156.25 for
#   REGIME_SECS; added p50 / p99 = the percentile of every round's requests pooled per variant,
#   minus direct's, the first second of each run left out; CPU-ms per 1k requests as above,
#   median of the rounds ("each variant alone");
# - "CPU at 5k req/s, every variant side by side": the alone figure's rounds spread by ±20 % for
#   one variant, more than nginx and outrigger-proxy differ by, so it is also measured
#   paired, as at 1k: paced_load at 5k req/s to every variant at once for PACED_5K_SECS (the
#   proxies then share their core, four bursts of 32 requests per 6.4 ms; the latencies of that
#   run are in the log only, as they include waiting for the other proxies' bursts);
# - "max req/s, 32 connections": wrk -t1 -c32, median of REGIME_ROUNDS interleaved rounds;
# - "max req/s paired with outrigger-proxy on one core": the figure above is a variant alone,
#   one after the other, and moves by ±15 % between 5 s rounds of the same variant (the shared
#   machine), more than the proxies differ by. So each other proxy variant also runs at the same
#   time as outrigger-proxy, both pinned to PROXY_CPU, each under its own wrk -t1 -c32 (started
#   together on LOAD_CPU) for MAX_DURATION: both are saturated and share the core, so what either
#   completes per CPU-second is its throughput on that core, measured on the same machine state.
#   Cell: the variant's requests per CPU-second over outrigger-proxy's, median of PAIRED_ROUNDS
#   rounds (outrigger-proxy: 1.00; above 1: the variant serves more on the same core);
# - "h2c req/s": h2load -c32 -m10 (prior-knowledge h2c), median of the same rounds;
# - "peak RSS, 1,000 busy keep-alive connections": a fresh process per variant after the rounds,
#   wrk -t1 -c1000 for PEAK_SECS; the figure is the process tree's summed VmHWM (the kernel's
#   own peak of resident memory; the process had only served a short warm-up before);
# - "idle RSS": VmRSS of that fresh process after a 1 s warm-up with 4 connections.
#
# Env: PACED_SECS (120), PACED_5K_SECS (60), PACED_LOGS (a directory to keep paced_load's per-variant logs in),
# RATE_ROUNDS (10), REGIME_SECS (4), REGIME_ROUNDS (3), PAIRED_ROUNDS (5), REGIME_CONNS (32),
# PEAK_SECS (5), OUT_REGIMES.

PACED_SECS="${PACED_SECS:-120}"
PACED_5K_SECS="${PACED_5K_SECS:-60}"
RATE_ROUNDS="${RATE_ROUNDS:-10}"
REGIME_ROUNDS="${REGIME_ROUNDS:-3}"
PAIRED_ROUNDS="${PAIRED_ROUNDS:-5}"
REGIME_SECS="${REGIME_SECS:-4}"
REGIME_CONNS="${REGIME_CONNS:-32}"
PEAK_SECS="${PEAK_SECS:-5}"
OUT_REGIMES="${OUT_REGIMES:-$OUTRIGGER_ROOT/bench/proxy/regimes.md}"

# regime_rate PORT RATE LOG POOL: h2load at RATE req/s in total over REGIME_CONNS connections;
# appends the run's settled requests (first second left out) to the h2load-format log POOL and
# prints "p50 p99 cpu-ms-per-1k" of this run alone (cpu "-" for direct).
regime_rate() {
  local port=$1 rate=$2 log=$3 pool=$4 c0=0 c1=0 n
  local rps
  rps=$(awk -v r="$rate" -v c="$REGIME_CONNS" 'BEGIN { printf "%.4f", r / c }')
  [[ -n "$VPID" ]] && c0=$(cpu_ns "$VPID")
  taskset -c "$LOAD_CPU" h2load --h1 -c "$REGIME_CONNS" --rps "$rps" -D "$REGIME_SECS" \
    --log-file "$log" "http://127.0.0.1:$port/" >"$log.report" 2>&1 || true
  [[ -n "$VPID" ]] && c1=$(cpu_ns "$VPID")
  n=$(awk -F'\t' '$2 == 200' "$log" | wc -l)
  settled "$log" 1000000 >>"$pool"
  read -r p50 p99 _ <<<"$(percentiles "$log" 1000000)"
  local cpu="-"
  if [[ -n "$VPID" ]] && (( n > 0 )); then
    cpu=$(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN { printf "%.1f", d / 1e6 / (n / 1000) }')
  fi
  echo "$p50 $p99 $cpu"
}

# rotated ROUND: VARIANTS, starting at the (ROUND-1)th one.
rotated() {
  local n=${#VARIANTS[@]} i
  for ((i = 0; i < n; i++)); do echo "${VARIANTS[$(((i + $1 - 1) % n))]}"; done
}

# paced RATE: every variant started at once, then paced_load at RATE req/s to each for
# PACED_SECS in all, in one segment per variant, each segment with the variants' ticks in an
# order rotated by one (a variant whose burst overruns delays the one after it, so each follows
# every other for the same time); sets PACED_P[RATE,variant] (percentiles over every segment's
# settled requests) and PACED_CPU[RATE,variant] (CPU-ms per 1k requests over the segments).
declare -A PACED_P PACED_CPU
paced() {
  local rate=$1 v r targets segs=${#VARIANTS[@]} seg_secs p c sb nb
  declare -A PID PORTS C0 SERVED SLOW BURSTS
  seg_secs=$(((PACED_SECS + segs - 1) / segs))
  for v in "${VARIANTS[@]}"; do
    start_variant "$v"
    PID[$v]=$VPID PORTS[$v]=$VPORT
    SERVED[$v]=0 SLOW[$v]=0 BURSTS[$v]=0
    taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
  done
  for v in "${VARIANTS[@]}"; do [[ -n "${PID[$v]}" ]] && C0[$v]=$(cpu_ns "${PID[$v]}"); done
  mkdir -p "$T/paced-$rate"
  for r in $(seq 1 "$segs"); do
    targets=()
    for v in $(rotated "$r"); do targets+=("$v=127.0.0.1:${PORTS[$v]}"); done
    echo "== regimes, $rate req/s over $REGIME_CONNS connections, every variant side by side, segment $r/$segs (${seg_secs}s): ${targets[*]}" >&2
    taskset -c "$LOAD_CPU" "$PACED_BIN" --rate "$rate" --conns "$REGIME_CONNS" --secs "$seg_secs" \
      --out "$T/paced-$rate-$r" "${targets[@]}" >&2
    for v in "${VARIANTS[@]}"; do
      settled "$T/paced-$rate-$r/$v.log" 1000000 | tee -a "$T/paced-$rate/$v.log" >"$T/paced-$rate-$r/$v.settled"
      read -r sb nb < <(slow_bursts "$T/paced-$rate-$r/$v.settled" $((REGIME_CONNS * 1000000 / rate)))
      SLOW[$v]=$((SLOW[$v] + sb)) BURSTS[$v]=$((BURSTS[$v] + nb))
      SERVED[$v]=$((SERVED[$v] + $(awk -F'\t' '$2 == 200' "$T/paced-$rate-$r/$v.log" | wc -l)))
    done
  done
  for v in "${VARIANTS[@]}"; do
    p=$(percentiles "$T/paced-$rate/$v.log") c="-"
    if [[ -n "${PID[$v]}" ]]; then
      c=$(awk -v d=$(($(cpu_ns "${PID[$v]}") - C0[$v])) -v n="${SERVED[$v]}" 'BEGIN { printf "%.1f", d / 1e6 / (n / 1000) }')
    fi
    PACED_P[$rate,$v]=$p PACED_CPU[$rate,$v]=$c
    echo "   $v: p50 p99 p99.9 $p ms over $(wc -l <"$T/paced-$rate/$v.log") settled requests (${SLOW[$v]} of ${BURSTS[$v]} bursts had one over 1.5 ms), CPU-ms/1k $c" >&2
  done
  if [[ -n "${PACED_LOGS:-}" ]]; then mkdir -p "$PACED_LOGS/$rate" && cp "$T/paced-$rate"/*.log "$PACED_LOGS/$rate"/; fi
  for v in "${VARIANTS[@]}"; do
    [[ -n "${PID[$v]}" ]] || continue
    kill "${PID[$v]}" 2>/dev/null || true
    wait "${PID[$v]}" 2>/dev/null || true
  done
}

# paired_max: for each proxy variant but outrigger-proxy, PAIRED_ROUNDS rounds that start it and
# outrigger-proxy together on PROXY_CPU and saturate both at once, each with its own wrk on
# LOAD_CPU; appends to PAIRED[variant] the ratio of its requests per CPU-second to
# outrigger-proxy's in each round (the rounds alternate which of the two starts first).
paired_max() {
  local v r first a b pa pb porta portb port ca cb na nb rate_a rate_b rate_v rate_o loads
  for v in "${VARIANTS[@]}"; do
    [[ "$v" == direct || "$v" == outrigger-proxy ]] && continue
    for r in $(seq 1 "$PAIRED_ROUNDS"); do
      if ((r % 2)); then a=outrigger-proxy b=$v; else a=$v b=outrigger-proxy; fi
      start_variant "$a"
      pa=$VPID porta=$VPORT
      start_variant "$b"
      pb=$VPID portb=$VPORT
      for first in "$porta" "$portb"; do
        taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d1s "http://127.0.0.1:$first/" >/dev/null 2>&1 || true
      done
      ca=$(cpu_ns "$pa") cb=$(cpu_ns "$pb")
      loads=()
      for first in a b; do
        [[ "$first" == a ]] && port=$porta || port=$portb
        taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d"${MAX_DURATION}s" "http://127.0.0.1:$port/" >"$T/pair-$first.out" 2>&1 &
        loads+=($!)
      done
      wait "${loads[@]}"
      ca=$(($(cpu_ns "$pa") - ca)) cb=$(($(cpu_ns "$pb") - cb))
      na=$(awk '/requests in/ {print $1}' "$T/pair-a.out") nb=$(awk '/requests in/ {print $1}' "$T/pair-b.out")
      if grep -qE 'Non-2xx|Socket errors' "$T/pair-a.out" "$T/pair-b.out"; then
        echo "   paired round $r ($a + $b): errors, not counted" >&2
        grep -HE 'Non-2xx|Socket errors' "$T/pair-a.out" "$T/pair-b.out" >&2 || true
      else
        rate_a=$(awk -v n="$na" -v c="$ca" 'BEGIN { printf "%d", n / (c / 1e9) }')
        rate_b=$(awk -v n="$nb" -v c="$cb" 'BEGIN { printf "%d", n / (c / 1e9) }')
        rate_v=$rate_a rate_o=$rate_b
        [[ "$a" == outrigger-proxy ]] && rate_v=$rate_b rate_o=$rate_a
        PAIRED[$v]+="$(awk -v x="$rate_v" -v o="$rate_o" 'BEGIN { printf "%.3f", x / o }') "
        echo "   paired round $r/$PAIRED_ROUNDS: $a $na requests on $((ca / 1000000)) CPU-ms ($rate_a per CPU-s), $b $nb on $((cb / 1000000)) ($rate_b); core busy $(awk -v c=$((ca + cb)) -v d="$MAX_DURATION" 'BEGIN { printf "%.0f", c / 1e7 / d }') %; $v / outrigger-proxy: ${PAIRED[$v]}" >&2
      fi
      stop_variant
      kill "$pa" 2>/dev/null || true
      wait "$pa" 2>/dev/null || true
    done
  done
}

regimes_table() {
  declare -A CPU5 MAX32 H2C IDLE PEAK P5 PAIRED
  local r v out p50 p99 cpu
  for v in "${VARIANTS[@]}"; do CPU5[$v]=""; done
  paced 1000
  # The 5k side-by-side latencies include waiting for the other proxies' bursts: the log has
  # them, the table only this run's CPU figures.
  PACED_SECS=$PACED_5K_SECS paced 5000
  for r in $(seq 1 "$RATE_ROUNDS"); do
    for v in $(rotated "$r"); do
      echo "== regimes, 5k req/s round $r/$RATE_ROUNDS: $v" >&2
      start_variant "$v"
      taskset -c "$LOAD_CPU" wrk -t1 -c"$REGIME_CONNS" -d1s "http://127.0.0.1:$VPORT/" >/dev/null 2>&1 || true
      read -r p50 p99 cpu <<<"$(regime_rate "$VPORT" 5000 "$T/rg-$v-5k-$r.log" "$T/rg-$v-5k.pool")"
      CPU5[$v]+="$cpu "
      echo "   5k: p50 $p50 p99 $p99 ms, CPU-ms/1k $cpu" >&2
      stop_variant
    done
  done
  for v in "${VARIANTS[@]}"; do
    P5[$v]="- - -"
    [[ -s "$T/rg-$v-5k.pool" ]] || continue
    P5[$v]=$(percentiles "$T/rg-$v-5k.pool")
    echo "== regimes, 5k req/s pooled p50 p99 p99.9 (ms) of $v: ${P5[$v]} ($(wc -l <"$T/rg-$v-5k.pool") requests)" >&2
  done

  for r in $(seq 1 "$REGIME_ROUNDS"); do
    for v in $(rotated "$r"); do
      echo "== regimes, throughput round $r/$REGIME_ROUNDS: $v" >&2
      start_variant "$v"
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
      echo "   max -c$REGIME_CONNS: ${MAX32[$v]}; h2c: ${H2C[$v]:-}" >&2
      if [[ "${H2C[$v]:-}" == *failed* ]]; then grep -E '^(finished|requests|status)' "$T/rg-$v-h2c-$r.out" >&2 || true; fi
      stop_variant
    done
  done

  if [[ " ${VARIANTS[*]} " == *" outrigger-proxy "* ]]; then
    echo "== regimes, max req/s paired with outrigger-proxy on one core" >&2
    paired_max
  fi

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
    echo "Proxy pinned to CPU $PROXY_CPU; load generator + upstream (nginx, 12-byte body) on CPU $LOAD_CPU; 1k req/s: every variant side by side under paced_load (${REGIME_CONNS} connections each, sending together every 32 ms, the variants' ticks spread over those 32 ms) for ${PACED_SECS}s, in ${#VARIANTS[@]} segments with the tick order rotated each segment; 5k req/s side by side: the same for ${PACED_5K_SECS}s at 5k req/s each (every 6.4 ms); 5k req/s alone: $RATE_ROUNDS interleaved rounds (variant order rotated each round), each running every variant alone under h2load --h1 -c$REGIME_CONNS for ${REGIME_SECS}s, requests pooled over the rounds; first second of each run left out of the latencies; added latency: the variant's percentile minus direct's; CPU: schedstat of every thread of the process tree over the rate run, per request completed (5k: median of the rounds); then $REGIME_ROUNDS throughput rounds of wrk -t1 -c$REGIME_CONNS -d${MAX_DURATION}s and h2load -c$REGIME_CONNS -m10 -D$MAX_DURATION (h2c), req/s: median of the rounds; paired max: $PAIRED_ROUNDS rounds per variant of it and outrigger-proxy at once on CPU $PROXY_CPU, each under its own wrk -t1 -c$REGIME_CONNS -d${MAX_DURATION}s, requests per CPU-second of each, median of the ratios; memory: one fresh process per variant, idle = VmRSS after wrk -c4 -d1s, peak = summed VmHWM after wrk -t1 -c1000 -d${PEAK_SECS}s"
    echo
    row="| regime |"
    for v in "${cols[@]}"; do row+=" $v |"; done
    echo "$row"
    echo "$sep"
    row="| added p50 / p99 at 1k req/s over $REGIME_CONNS connections (ms) |"
    for v in "${VARIANTS[@]}"; do row+=" $(added_pooled "${PACED_P[1000,$v]}" "${PACED_P[1000,direct]:-}") |"; done
    echo "$row"
    row="| CPU-ms per 1k requests at 1k req/s |"
    for v in "${VARIANTS[@]}"; do row+=" ${PACED_CPU[1000,$v]} |"; done
    echo "$row"
    row="| added p50 / p99 at 5k req/s over $REGIME_CONNS connections (ms) |"
    for v in "${VARIANTS[@]}"; do row+=" $(added_pooled "${P5[$v]}" "${P5[direct]:-}") |"; done
    echo "$row"
    row="| CPU-ms per 1k requests at 5k req/s, each variant alone |"
    for v in "${VARIANTS[@]}"; do row+=" $(median_of "${CPU5[$v]//-/}" "%.1f") |"; done
    echo "$row"
    row="| CPU-ms per 1k requests at 5k req/s, every variant side by side |"
    for v in "${VARIANTS[@]}"; do row+=" ${PACED_CPU[5000,$v]} |"; done
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
    if [[ " ${VARIANTS[*]} " == *" outrigger-proxy "* ]]; then
      row="| max req/s paired with outrigger-proxy on one core (requests per CPU-second, variant / outrigger-proxy) |"
      for v in "${VARIANTS[@]}"; do
        case "$v" in
          direct) row+=" - |" ;;
          outrigger-proxy) row+=" 1.00 |" ;;
          *) row+=" $(median_of "${PAIRED[$v]:-}" "%.2f") |" ;;
        esac
      done
      echo "$row"
    fi
    row="| h2c req/s ($REGIME_CONNS connections × 10 streams) |"
    for v in "${VARIANTS[@]}"; do
      if [[ "${H2C[$v]:-}" == *failed* ]]; then row+=" failed |"; else row+=" $(median_of "${H2C[$v]:-}" "%d") |"; fi
    done
    echo "$row"
  } | tee "$OUT_REGIMES"
}

# added_pooled "p50 p99 p99.9" "direct's p50 p99 p99.9" -> "+p50 / +p99" in ms ("-": no direct)
added_pooled() {
  awk -v v="$1" -v d="$2" 'BEGIN {
    nv = split(v, a, " "); nd = split(d, b, " ")
    if (nv < 2 || nd < 2 || a[1] == "-" || b[1] == "-") { print "-"; exit }
    printf "%+.3f / %+.3f", a[1] - b[1], a[2] - b[2]
  }'
}
