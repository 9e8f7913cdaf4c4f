#!/usr/bin/env bash
# Every headline figure of amibridge against its ceiling and its target, in
# one run on this machine, printed as one markdown table:
#   1. POST /v1/actions/Ping through amibridge to ami-sim (wrk, as
#      bench/actions.sh), against build/mhd-baseline (bench/mhd_baseline.c:
#      a bare libmicrohttpd JSON responder on one thread, MHD in external
#      epoll mode) under the same wrk
#      command; ROUNDS interleaved rounds, the best of each kept. Then the
#      bridge's p99 at half the baseline's rate, and the baseline's at the
#      same rate: build/pace-bench (bench/pace_bench.c), open loop, requests
#      evenly spaced at that rate on PACE_CONNS keep-alive connections, each
#      timed from when it was due (wrk2 is not in Debian; wrk paced by a Lua
#      delay() sends on whole-millisecond ticks, in bunches); LAT_ROUNDS
#      rounds turn about, the median round by p99 reported, every one printed
#      (a stall of this shared machine lasts milliseconds and moves a p99);
#   2. the highest SimFlood rate ami-sim -> amibridge -> Redis PUBLISH that
#      a subscriber (build/events-bench) receives complete and in order, as
#      bench/events.sh, and at KEEP_UP of the rate or more (the bridge holds
#      events back while Redis is slower: nothing lost is not enough),
#      against redis-benchmark PUBLISH of the same payload (CEIL_ROUNDS
#      runs, the median; with Redis every
#      bridge is a replica, alone or not: its events go through the lease's
#      fence script); the same steps again with a second replica, a
#      follower, running beside the leader (2e);
#      then the end-to-end latency (ami-sim's Timestamp to the subscriber) of a
#      flood at LAT_RATE for LAT_S seconds, its own step, LAT_ROUNDS times
#      (the median round by p99; events lost in any round fail it); then SSE fan-out:
#      SSE_CLIENTS streams of GET /v1/events (build/sse-bench, one epoll loop)
#      while ami-sim floods SSE_RATE for SSE_S seconds, each stream checked
#      complete and in order, latency from ami-sim's Timestamp;
#   3. RSS of an idle bridge right after /readyz says 200, and with 5,000
#      idle keep-alive connections (build/soak idle), each beside the same
#      figure of build/mhd-baseline;
#   4. start-up: exec of build/amibridge to the first 200 of /readyz and of
#      /healthz, polled every 1 ms, against a running ami-sim; median of STARTS;
#   5. with WEBHOOKS=1: bench/webhooks.sh's deliveries/s (3 more minutes).
#   (0, first: build/stall-probe (bench/stall_probe.c), how long this machine
#   takes a busy core away, with every core busy and with one: a latency row
#   cannot be better than the stalls the machine had during the run.)
#   (1d: bench/instructions.sh, the instructions per request of the action
#   route in user space, amibridge against mhd-baseline, counted by
#   callgrind: the one figure this machine's noise does not move.)
#   (2d: bench/burst.sh, BURST events as fast as ami-sim makes them: all of
#   them must reach the subscriber, in order, none dropped.)
# With PROFILE=auto (default) a missed throughput target is followed by a
# `perf record -g` of amibridge under that load (after the measurements,
# so perf does not weigh on them) and its top symbols; PROFILE=1 always,
# PROFILE=0 never. Everything started here is stopped by pid; every port
# is a free one; the whole run has a budget (TIMEOUT_S).
#
#   bash bench/run-all.sh [BUILD_DIR]        (or: make bench-all)
#   DURATION=10 CONNS=64 THREADS=2 POOL=4 ROUNDS=2 PACE_CONNS=64
#   BURST=1000000 STEP_S=2 RATES="20000 40000 60000 80000 120000 160000 200000 250000 300000 350000 400000 500000 600000 700000 800000 1000000"
#   KEEP_UP=0.9 LAT_RATE=50000 LAT_S=4 LAT_ROUNDS=3 CEIL_ROUNDS=3 SSE_CLIENTS=100 SSE_RATE=20000 SSE_S=5 SSE_QUEUE=20000
#   IDLE_CONNS=5000 STARTS=10 WEBHOOKS=0 PROFILE=auto PROFILE_S=5 TIMEOUT_S=900 STALL_S=5 CG_S=5
set -uo pipefail
BUILD=${1:-build}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
POOL=${POOL:-4}
ROUNDS=${ROUNDS:-2}
PACE_CONNS=${PACE_CONNS:-64}
STEP_S=${STEP_S:-2}
RATES=${RATES:-"20000 40000 60000 80000 120000 160000 200000 250000 300000 350000 400000 500000 600000 700000 800000 1000000"}
KEEP_UP=${KEEP_UP:-0.9}
LAT_RATE=${LAT_RATE:-50000}
LAT_S=${LAT_S:-4}
LAT_ROUNDS=${LAT_ROUNDS:-3}
CEIL_ROUNDS=${CEIL_ROUNDS:-3}
STALL_S=${STALL_S:-5}
CG_S=${CG_S:-5}
SSE_CLIENTS=${SSE_CLIENTS:-100}
SSE_RATE=${SSE_RATE:-20000}
SSE_S=${SSE_S:-5}
SSE_QUEUE=${SSE_QUEUE:-20000}
IDLE_CONNS=${IDLE_CONNS:-5000}
STARTS=${STARTS:-10}
WEBHOOKS=${WEBHOOKS:-0}
PROFILE=${PROFILE:-auto}
PROFILE_S=${PROFILE_S:-5}
if [ "$WEBHOOKS" = 1 ]; then TIMEOUT_S=${TIMEOUT_S:-2400}; else TIMEOUT_S=${TIMEOUT_S:-900}; fi
# targets (issue "Hardening and speed", item 6)
T_RATIO=0.5 T_P99_MS=2 T_IDLE_MIB=10 T_CONNS_MIB=64 T_READY_MS=100
# issue 17 ("Speed"): events with zero loss raised from 200,000/s, and at
# least 0.6 of redis-benchmark PUBLISH with a subscriber
T_EVENTS=250000 T_EV_RATIO=0.6 T_EV_P99_MS=2
BURST=${BURST:-1000000}

for b in ami-sim amibridge events-bench sse-bench soak mhd-baseline pace-bench stall-probe; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
for c in wrk curl python3 redis-server redis-cli redis-benchmark; do
    command -v "$c" >/dev/null 2>&1 || { echo "missing $c (wrk: sh tools/deps.sh wrk)" >&2; exit 2; }
done
case $PROFILE in 0 | 1 | auto) ;; *) echo "PROFILE is 0, 1 or auto" >&2; exit 2 ;; esac
[ "$PROFILE" = 0 ] || command -v perf >/dev/null 2>&1 || PROFILE=0

TOKEN=bench-token-0123456789
export BENCH_TOKEN=$TOKEN
NAME=run-all.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
# a copy of the binaries: a rebuild of BUILD during the run changes nothing
# here (and perf can still read the symbols of what it profiles)
BIN=$tmp/bin
mkdir -p "$BIN"
for b in ami-sim amibridge events-bench sse-bench soak mhd-baseline pace-bench stall-probe webhooks-bench; do
    [ ! -x "$BUILD/$b" ] || cp -p "$BUILD/$b" "$BIN/$b"
done
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
mib() { awk -v k="$1" 'BEGIN {if (k == "") print "?"; else printf "%.1f", k / 1024}'; }
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# us_per_req TICKS RPS: CPU µs per request, TICKS of CPU over DURATION s at RPS
us_per_req() { calc '"%.1f" % (float(sys.argv[1]) * 1e6 / float(sys.argv[2]) / (float(sys.argv[3]) * float(sys.argv[4])))' "$1" "$hz" "$2" "$DURATION"; }
# wrk's "99%    2.96ms" in ms
wrk_ms() { awk -v q="$1" '$1 == q {v = $2; m = 1; if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1;
    else if (v ~ /m$/) m = 60000; else if (v ~ /s$/) m = 1000; sub(/[a-z]+$/, "", v); printf "%.2f", v * m}' "$2"; }
wrk_bad() { awk '/Non-2xx/ {n += $5} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1"; }
met() { if [ "$1" = 1 ]; then echo yes; else echo "**no**"; fi; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
MISSED_ACTIONS=0 MISSED_EVENTS=0

# start_baseline [ARGS...]: build/mhd-baseline; sets BASE_PID, BASE_URL
start_baseline() {
    rm -f "$tmp/base.port"
    "$BIN/mhd-baseline" --ready-file "$tmp/base.port" "$@" &
    BASE_PID=$!
    pids+=("$BASE_PID")
    for _ in $(seq 100); do [ -s "$tmp/base.port" ] && break; sleep 0.02; done
    [ -s "$tmp/base.port" ] || { echo "mhd-baseline did not start" >&2; exit 2; }
    BASE_URL=http://127.0.0.1:$(cat "$tmp/base.port")
    for _ in $(seq 100); do curl -fs -m 1 -o /dev/null "$BASE_URL/" && break; sleep 0.02; done
}

# run_wrk OUT URL SECONDS [LUA] [CONNS]: the wrk command of bench/actions.sh
run_wrk() {
    local out=$1 url=$2 secs=$3 lua=${4:-bench/post_ping.lua} conns=${5:-$CONNS}
    timeout $((secs + 30)) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --latency -s "$lua" \
        "$url/v1/actions/Ping" >"$out" 2>&1
}

# profile NAME PID: perf record -g of PID for PROFILE_S seconds (the load
# runs meanwhile), then its top symbols (self time) into $tmp/profile-NAME
profile_start() {
    perf record -g -q -o "$tmp/perf-$1.data" -p "$2" -- sleep "$PROFILE_S" >"$tmp/perf-$1.log" 2>&1 &
    PERF_PID=$!
    pids+=("$PERF_PID")
}
profile_end() {
    wait "$PERF_PID" 2>/dev/null
    stop_pid "$PERF_PID"
    {
        echo "== profile: $2"
        echo "   by object (self time):"
        perf report -i "$tmp/perf-$1.data" --stdio --no-children -g none --percent-limit 1 \
            -F overhead,dso 2>/dev/null | grep -v '^#' | sed '/^ *$/d' | head -8
        echo "   top symbols (self time; stripped libraries show addresses):"
        perf report -i "$tmp/perf-$1.data" --stdio --no-children -g none --percent-limit 0.7 \
            -F overhead,dso,sym 2>/dev/null | grep -v '^#' | sed '/^ *$/d' | head -30
    } >"$tmp/profile-$1.txt"
}

host_line="$(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "== machine: $host_line; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== binaries: copied from $BUILD (amibridge built $(date -u -r "$BIN/amibridge" +%Y-%m-%dT%H:%M:%SZ)), git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo '+uncommitted')"
T_START=$(date +%s)

# --- 0. the machine: how long a busy core is taken away -------------------------------------
echo "== 0. the machine's stalls: build/stall-probe, a clock-reading loop on every core for ${STALL_S}s, then one alone"
"$BIN/stall-probe" --threads "$(nproc)" --seconds "$STALL_S" >"$tmp/stall-all.json"
"$BIN/stall-probe" --threads 1 --seconds "$STALL_S" >"$tmp/stall-one.json"
sed 's/^/  /' "$tmp/stall-all.json" "$tmp/stall-one.json"
stall_text() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print("no gap over 1 ms" if not j["over_1ms"] else "%d gaps over 1 ms, %d over 10 ms, the longest %.1f ms, %.1f %% of the time lost" % (j["over_1ms"], j["over_10ms"], j["longest_ms"], j["lost_pct"]))' "$1"
}
row "the machine: gaps over 1 ms in a loop that only reads the clock, ${STALL_S}s (a busy core taken away; what every latency row below meets)" \
    "every core busy: $(stall_text "$tmp/stall-all.json"); one core busy: $(stall_text "$tmp/stall-one.json")" "—" "—" "—" "—"

# --- 1. the action route ------------------------------------------------------------------
echo "== 1. POST /v1/actions/Ping: amibridge (pool $POOL) -> ami-sim vs mhd-baseline; wrk -t$THREADS -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds"
start_sim
start_bridge actions AMIBRIDGE_AMI_POOL_SIZE="$POOL"
start_baseline
base_rss_idle=$(status_kib "$BASE_PID" VmRSS)
best_base=0 best_bridge=0 bridge_p50='' bridge_p99='' bad=0 bridge_cpu='' base_cpu='' sim_cpu='' base_us='' bridge_us=''
for r in $(seq "$ROUNDS"); do
    b0=$(cpu_ticks "$BASE_PID")
    run_wrk "$tmp/wrk-base.txt" "$BASE_URL" "$DURATION"
    b1=$(cpu_ticks "$BASE_PID")
    rps=$(wrk_rps "$tmp/wrk-base.txt")
    printf '  round %s: mhd-baseline %s req/s (p99 %s ms, CPU %s%% of a core)\n' "$r" "${rps:-?}" \
        "$(wrk_ms 99% "$tmp/wrk-base.txt")" "$(((b1 - b0) * 100 / hz / DURATION))"
    if [ -n "$rps" ] && calc 'float(sys.argv[1]) > float(sys.argv[2])' "$rps" "$best_base" | grep -q True; then
        best_base=$rps base_cpu=$(((b1 - b0) * 100 / hz / DURATION))
        base_us=$(us_per_req "$((b1 - b0))" "$rps")
    fi
    x0=$(cpu_ticks "$BRIDGE_PID") s0=$(cpu_ticks "$SIM_PID")
    run_wrk "$tmp/wrk-bridge.txt" "$BRIDGE_URL" "$DURATION"
    x1=$(cpu_ticks "$BRIDGE_PID") s1=$(cpu_ticks "$SIM_PID")
    rps=$(wrk_rps "$tmp/wrk-bridge.txt")
    bad=$((bad + $(wrk_bad "$tmp/wrk-bridge.txt")))
    printf '  round %s: amibridge    %s req/s (p99 %s ms, CPU %s%% of a core, ami-sim %s%%)\n' "$r" \
        "${rps:-?}" "$(wrk_ms 99% "$tmp/wrk-bridge.txt")" "$(((x1 - x0) * 100 / hz / DURATION))" \
        "$(((s1 - s0) * 100 / hz / DURATION))"
    if [ -n "$rps" ] && calc 'float(sys.argv[1]) > float(sys.argv[2])' "$rps" "$best_bridge" | grep -q True; then
        best_bridge=$rps bridge_p50=$(wrk_ms 50% "$tmp/wrk-bridge.txt") bridge_p99=$(wrk_ms 99% "$tmp/wrk-bridge.txt")
        bridge_cpu=$(((x1 - x0) * 100 / hz / DURATION)) sim_cpu=$(((s1 - s0) * 100 / hz / DURATION))
        bridge_us=$(us_per_req "$((x1 - x0))" "$rps")
    fi
done
ratio=$(calc '"%.2f" % (float(sys.argv[1]) / max(float(sys.argv[2]), 1))' "$best_bridge" "$best_base")
ok=$(calc 'int(float(sys.argv[1]) >= float(sys.argv[2]))' "$ratio" "$T_RATIO")
[ "$ok" = 1 ] || MISSED_ACTIONS=1
extra=""
[ "$bad" = 0 ] || extra=", **$bad non-2xx or socket errors**"
row "POST /v1/actions/Ping via amibridge → ami-sim, req/s ($CONNS conns, pool $POOL, best of $ROUNDS)" \
    "$(fmt0 "$best_bridge")/s (p50 $bridge_p50 ms, p99 $bridge_p99 ms; amibridge $bridge_cpu % of a core = $bridge_us µs CPU per request, ami-sim $sim_cpu %$extra)" \
    "mhd-baseline, same wrk: $(fmt0 "$best_base")/s ($base_cpu % of a core = $base_us µs CPU per request)" "$ratio" "≥ $T_RATIO × baseline" "$(met "$ok")"

# paced URL RATE: build/pace-bench at RATE for DURATION s after 1 s of
# warm-up; sets PACED_RPS, PACED_P50, PACED_P99, PACED_ERRORS
paced() {
    local url=$1 want=$2
    timeout $((DURATION + 60)) "$BIN/pace-bench" --port "${url##*:}" --path /v1/actions/Ping \
        --token "$TOKEN" --rate "$want" --duration "$DURATION" --warmup 1 --conns "$PACE_CONNS" \
        >"$tmp/pace.json" 2>"$tmp/pace.err"
    if [ -s "$tmp/pace.json" ]; then
        PACED_RPS=$(jfield "$tmp/pace.json" rate_done)
        PACED_P50=$(jfield "$tmp/pace.json" p50_ms)
        PACED_P99=$(jfield "$tmp/pace.json" p99_ms)
        PACED_ERRORS=$(jfield "$tmp/pace.json" errors)
    else
        PACED_RPS=0 PACED_P50=? PACED_P99=999 PACED_ERRORS=?
        cat "$tmp/pace.err" >&2
    fi
    printf '  %s at %s/s: done at %s/s, p50 %s ms, p99 %s ms (p99.9 %s ms), errors %s\n' "$url" "$want" \
        "$PACED_RPS" "$PACED_P50" "$PACED_P99" "$(jfield "$tmp/pace.json" p999_ms 2>/dev/null)" "$PACED_ERRORS"
}
half=$(calc 'int(float(sys.argv[1]) / 2)' "$best_base")
echo "== 1b. amibridge p99 at half the baseline's rate ($half req/s; pace-bench, open loop, $PACE_CONNS conns; $LAT_ROUNDS rounds, turn about)"
# the median round of LAT_ROUNDS (by the bridge's p99; every round printed):
# one stall of this shared machine lasts milliseconds and moves a p99
b99s=() x99s=() xrounds=() errs_any=0
for r in $(seq "$LAT_ROUNDS"); do
    paced "$BASE_URL" "$half"
    b99s+=("$PACED_P99")
    paced "$BRIDGE_URL" "$half"
    x99s+=("$PACED_P99")
    xrounds+=("$PACED_P99 $PACED_P50 $PACED_RPS $PACED_ERRORS")
    [ "$PACED_ERRORS" = 0 ] || errs_any=1
done
mid=$(calc 'sorted(range(len(sys.argv) - 1), key=lambda i: float(sys.argv[i + 1]))[(len(sys.argv) - 2) // 2]' "${x99s[@]}")
read -r PACED_P99 PACED_P50 PACED_RPS PACED_ERRORS <<<"${xrounds[$mid]}"
base_mid=$(calc '"%.3f" % sorted(float(a) for a in sys.argv[1:])[(len(sys.argv) - 2) // 2]' "${b99s[@]}")
base_paced="mhd-baseline at the same rate: p99 $base_mid ms (median of ${b99s[*]})"
reached=$(calc 'int(float(sys.argv[1]) >= 0.95 * float(sys.argv[2]))' "${PACED_RPS:-0}" "$half")
ok=$(calc 'int(int(sys.argv[3]) == 1 and float(sys.argv[1]) < float(sys.argv[2]) and sys.argv[4] == "0")' \
    "${PACED_P99:-999}" "$T_P99_MS" "$reached" "$errs_any")
note=""
[ "$reached" = 1 ] || note=" — **rate not reached: amibridge saturated, this is its p99 under overload**"
[ "$errs_any" = 0 ] || note="$note — **errors in a round**"
row "amibridge p99 at half the baseline's rate" \
    "p99 $PACED_P99 ms, p50 $PACED_P50 ms at $(fmt0 "${PACED_RPS:-0}")/s, the median of $LAT_ROUNDS rounds (p99 ${x99s[*]} ms; wanted $(fmt0 "$half")/s, evenly spaced, open loop, $PACE_CONNS conns; errors $PACED_ERRORS)$note" \
    "$base_paced" "—" "p99 < $T_P99_MS ms" "$(met "$ok")"
if [ "$ok" != 1 ]; then
    half_own=$(calc 'int(float(sys.argv[1]) / 2)' "$best_bridge")
    echo "== 1c. (for reference) amibridge p99 at half its own best rate ($half_own req/s)"
    paced "$BASE_URL" "$half_own"
    base_paced="mhd-baseline at the same rate: p99 $PACED_P99 ms, p50 $PACED_P50 ms at $(fmt0 "${PACED_RPS:-0}")/s"
    paced "$BRIDGE_URL" "$half_own"
    row "(reference) amibridge p99 at half its own best rate" \
        "p99 $PACED_P99 ms, p50 $PACED_P50 ms at $(fmt0 "${PACED_RPS:-0}")/s (wanted $(fmt0 "$half_own")/s)" \
        "$base_paced" "—" "—" "—"
fi
[ "$ok" = 1 ] || MISSED_ACTIONS=1
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && [ "$MISSED_ACTIONS" = 1 ]; }; then
    echo "== profile: perf record -g -p <amibridge> during wrk -c$CONNS (${PROFILE_S}s)"
    profile_start actions "$BRIDGE_PID"
    run_wrk "$tmp/wrk-prof.txt" "$BRIDGE_URL" "$PROFILE_S"
    profile_end actions "amibridge under wrk -c$CONNS POST /v1/actions/Ping ($(wrk_rps "$tmp/wrk-prof.txt") req/s while profiled)"
fi
stop_pid "$BASE_PID"
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"

# --- 1d. instructions per request (callgrind: the same whatever the machine does) ------------
if command -v valgrind >/dev/null 2>&1; then
    echo "== 1d. instructions per request, user space: valgrind --tool=callgrind, wrk -t1 -c8 -d${CG_S}s each (bench/instructions.sh)"
    if CG_S=$CG_S bash "$(dirname "$0")/instructions.sh" "$BIN" >"$tmp/instr.json" 2>"$tmp/instr.err"; then
        cat "$tmp/instr.json"
        ib=$(jfield "$tmp/instr.json" amibridge)
        ibase=$(jfield "$tmp/instr.json" baseline)
        ir=$(jfield "$tmp/instr.json" ratio)
        row "POST /v1/actions/Ping: instructions per request in user space (callgrind, wrk -t1 -c8; not the kernel's share)" \
            "$(fmt0 "$ib") (routing, key, policy, AMI action and reply, JSON, metrics)" \
            "mhd-baseline, same wrk: $(fmt0 "$ibase")" "$ir×" "—" "—"
    else
        echo "bench/instructions.sh failed:" >&2
        cat "$tmp/instr.err" >&2
        row "POST /v1/actions/Ping: instructions per request in user space" "**failed** (see the log)" "—" "—" "—" "—"
    fi
else
    row "POST /v1/actions/Ping: instructions per request in user space" "skipped: no valgrind" "—" "—" "—" "—"
fi

# --- 2. events -------------------------------------------------------------------------------
echo "== 2. events: SimFlood steps of ${STEP_S}s, ami-sim -> amibridge -> Redis PUBLISH -> events-bench"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" &
REDIS_PID=$!
pids+=("$REDIS_PID")
start_sim
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# ready once Redis is up and it holds the lease: with Redis every instance
# is a replica, alone or not, and publishes through the lease's fence script
READY_GREP='"redis":{"state":"up".*"this_replica":true' start_bridge events \
    AMIBRIDGE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" AMIBRIDGE_INSTANCE_ID=bench-leader
LEADER_PID=$BRIDGE_PID LEADER_URL=$BRIDGE_URL
# ev_step RATE SECONDS: events-bench subscribed, a flood of RATE for SECONDS
# through the bridge; its JSON into $tmp/step.json (empty when it failed),
# the bridge's CPU over the step in EV_CPU_MS
ev_step() {
    local count=$(($1 * $2)) sub x0 x1
    EV_TOTAL=$((${EV_TOTAL:-0} + count))
    rm -f "$tmp/ready" "$tmp/step.json"
    timeout $(($2 + 60)) "$BIN/events-bench" --port "$REDIS_PORT" --channel ami.default.SimFlood \
        --count "$count" --ready-file "$tmp/ready" --idle-ms 3000 >"$tmp/step.json" &
    sub=$!
    pids+=("$sub")
    for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
    x0=$(cpu_ticks "$BRIDGE_PID")
    flood "$1" "$count"
    wait "$sub"
    x1=$(cpu_ticks "$BRIDGE_PID")
    stop_pid "$sub"
    EV_CPU_MS=$(((x1 - x0) * 1000 / hz))
}
ev_line() {
    printf '%9s/s  received %s of %s, missing %s, gaps %s, out of order %s, delivered at %s/s, p50 %s ms, p99 %s ms; amibridge CPU %s ms\n' \
        "$1" "$(jfield "$tmp/step.json" received)" "$(jfield "$tmp/step.json" expected)" \
        "$(jfield "$tmp/step.json" missing)" "$(jfield "$tmp/step.json" seq_gaps)" \
        "$(jfield "$tmp/step.json" out_of_order)" "$(jfield "$tmp/step.json" rate_per_s)" "$(jfield "$tmp/step.json" p50_ms)" \
        "$(jfield "$tmp/step.json" p99_ms)" "$EV_CPU_MS"
}
ev_clean() {
    [ "$(jfield "$tmp/step.json" missing)" = 0 ] && [ "$(jfield "$tmp/step.json" seq_gaps)" = 0 ] &&
        [ "$(jfield "$tmp/step.json" out_of_order)" = 0 ]
}
# kept up with: the subscriber received the step at >= KEEP_UP of its rate
# (the bridge holds AMI events back while Redis is slower, so a step can
# lose nothing while the bridge only buffers it)
ev_kept() {
    calc 'int(float(sys.argv[1]) >= float(sys.argv[2]) * float(sys.argv[3]))' \
        "$(jfield "$tmp/step.json" rate_per_s)" "$KEEP_UP" "$1" | grep -q 1
}
# ev_steps: the flood steps (RATES, STEP_S each) until one loses events or
# is not kept up with; sets best, best_delivered, failed_rate, failed_why
ev_steps() {
    best=0 best_delivered=0 failed_rate='' failed_why=''
    for rate in $RATES; do
        ev_step "$rate" "$STEP_S"
        if [ ! -s "$tmp/step.json" ]; then
            printf '%9s/s  events-bench failed\n' "$rate"
            failed_rate=$rate
            break
        fi
        size=$(jfield "$tmp/step.json" avg_payload_bytes)
        ev_line "$rate"
        if ev_clean && ev_kept "$rate"; then
            best=$rate best_delivered=$(jfield "$tmp/step.json" rate_per_s)
        else
            failed_rate=$rate
            if ev_clean; then failed_why="nothing lost, but received at $(fmt0 "$(jfield "$tmp/step.json" rate_per_s)")/s"; else failed_why="lost events"; fi
            break
        fi
    done
}
size=''
ev_steps
# latency at a fixed rate, below the zero-loss one: its own step, longer
echo "== 2b. events: end-to-end latency at $LAT_RATE/s for ${LAT_S}s (ami-sim Timestamp -> events-bench), $LAT_ROUNDS rounds"
# the median round by p99, every round printed; events lost in any round fail the row
lat99s=() lat_cpus=() lat_lost=''
for r in $(seq "$LAT_ROUNDS"); do
    ev_step "$LAT_RATE" "$LAT_S"
    if [ -s "$tmp/step.json" ]; then
        ev_line "$LAT_RATE"
        ev_clean || lat_lost=", **events lost in round $r**"
        lat99s+=("$(jfield "$tmp/step.json" p99_ms)")
        lat_cpus+=("$EV_CPU_MS")
        cp "$tmp/step.json" "$tmp/lat-$((${#lat99s[@]} - 1)).json"
    else
        echo "  events-bench failed"
        lat_lost=", **events-bench failed in round $r**"
    fi
done
rm -f "$tmp/step.json"
if [ ${#lat99s[@]} -gt 0 ]; then
    mid=$(calc 'sorted(range(len(sys.argv) - 1), key=lambda i: float(sys.argv[i + 1]))[(len(sys.argv) - 2) // 2]' "${lat99s[@]}")
    cp "$tmp/lat-$mid.json" "$tmp/step.json"
    EV_CPU_MS=${lat_cpus[$mid]} # the bridge's CPU in that round
fi
if [ -s "$tmp/step.json" ]; then
    lat_p50=$(jfield "$tmp/step.json" p50_ms) lat_p99=$(jfield "$tmp/step.json" p99_ms)
    lat_max=$(jfield "$tmp/step.json" max_ms) lat_cpu=$((EV_CPU_MS / LAT_S / 10))
    lat_note=$lat_lost
    ok=$(calc 'int(float(sys.argv[1]) < float(sys.argv[2]) and sys.argv[3] == "")' "$lat_p99" "$T_EV_P99_MS" "$lat_note")
    lat_row=("events: end-to-end latency at $(fmt0 "$LAT_RATE")/s for ${LAT_S}s (ami-sim Timestamp → amibridge → Redis → events-bench)" \
        "p50 $lat_p50 ms, p99 $lat_p99 ms, max $lat_max ms, the median of $LAT_ROUNDS rounds (p99 ${lat99s[*]} ms; $(jfield "$tmp/step.json" received) of $(jfield "$tmp/step.json" expected) events; amibridge $lat_cpu % of a core$lat_note)" \
        "—" "—" "p99 < $T_EV_P99_MS ms" "$(met "$ok")")
else
    echo "  events-bench failed"
    lat_row=("events: end-to-end latency at $(fmt0 "$LAT_RATE")/s" "FAILED (events-bench gave nothing)" "—" "—" "p99 < $T_EV_P99_MS ms" "**no**")
fi
drops=$(curl -fs -m 5 "$BRIDGE_URL/metrics" | awk 'index($1, "amibridge_events_dropped_total{outlet=\"redis\"") == 1 {s += $2} END {print s + 0}')
# the same steps with a second replica (a follower: same Redis, its own
# instance id): the leader's events still go through the fence script; the
# follower reads the published stream back for its SSE clients (Redis sends
# every event to it as well, and it parses each one), on the same cores
echo "== 2e. events with two replicas: a follower beside the leader, the same steps"
READY_GREP='"redis":{"state":"up".*"this_replica":false,"instance":"[^"]*","holder":"' start_bridge follower \
    AMIBRIDGE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" AMIBRIDGE_INSTANCE_ID=bench-follower
FOLLOWER_PID=$BRIDGE_PID
BRIDGE_PID=$LEADER_PID BRIDGE_URL=$LEADER_URL
lone_best=$best lone_delivered=$best_delivered lone_failed_rate=$failed_rate lone_failed_why=$failed_why
f0=$(cpu_ticks "$FOLLOWER_PID") EV_TOTAL=0
ev_steps
f1=$(cpu_ticks "$FOLLOWER_PID")
rep_best=$best rep_delivered=$best_delivered rep_failed_rate=$failed_rate rep_failed_why=$failed_why
rep_follower_us=$(calc '"%.1f" % ((int(sys.argv[1]) - int(sys.argv[2])) * 1e6 / int(sys.argv[3]) / max(int(sys.argv[4]), 1))' "$f1" "$f0" "$hz" "$EV_TOTAL")
rep_leader=$(curl -fs -m 5 "$LEADER_URL/readyz" | grep -c '"this_replica":true')
stop_pid "$FOLLOWER_PID"
best=$lone_best best_delivered=$lone_delivered failed_rate=$lone_failed_rate failed_why=$lone_failed_why
drops2=$(curl -fs -m 5 "$BRIDGE_URL/metrics" | awk 'index($1, "amibridge_events_dropped_total{outlet=\"redis\"") == 1 {s += $2} END {print s + 0}')
size=${size:-187}
payload=$(python3 -c "import sys; print('x' * int(sys.argv[1]))" "$size")
# one subscriber listens, as in the flood; Redis must not cut it for
# falling behind (pubsub output buffer limit), or the ceiling has none
redis-cli -p "$REDIS_PORT" config set client-output-buffer-limit "pubsub 0 0 0" >/dev/null
redis-cli -p "$REDIS_PORT" subscribe ami.default.SimFlood >/dev/null 2>"$tmp/rsub.err" &
rsub=$!
pids+=("$rsub")
sleep 0.2
# CEIL_ROUNDS runs, the median kept, every one printed: one run can measure
# twice the next here (429,000-1,160,000/s in five runs back to back)
ceilings=()
for _ in $(seq "$CEIL_ROUNDS"); do
    c=$(timeout 120 redis-benchmark -p "$REDIS_PORT" -c 1 -P 64 -n 500000 -q \
        PUBLISH ami.default.SimFlood "$payload" | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | awk '{print $1}' | tail -1)
    [ -z "$c" ] || ceilings+=("$c")
done
ceiling=''
[ ${#ceilings[@]} = 0 ] || ceiling=$(calc 'sorted(float(a) for a in sys.argv[1:])[(len(sys.argv) - 2) // 2]' "${ceilings[@]}")
sub_note="one subscriber listening"
kill -0 "$rsub" 2>/dev/null || sub_note="**the subscriber was cut: $(head -c 100 "$tmp/rsub.err")**"
stop_pid "$rsub"
echo "  redis-benchmark -c 1 -P 64 -n 500000 PUBLISH <$size bytes>, $CEIL_ROUNDS runs: ${ceilings[*]:-?}/s; the median ${ceiling:-?}/s"
ceil_note="the median of ${#ceilings[@]} runs ($(for c in "${ceilings[@]}"; do printf '%s ' "$(fmt0 "$c")"; done | sed 's/ $//'))"
ev_ratio=$(calc '"%.2f" % (float(sys.argv[1]) / max(float(sys.argv[2]), 1))' "$best" "${ceiling:-0}")
ok_rate=$(calc 'int(int(sys.argv[1]) >= int(sys.argv[2]))' "$best" "$T_EVENTS")
ok_ratio=$(calc 'int(float(sys.argv[1]) >= float(sys.argv[2]))' "$ev_ratio" "$T_EV_RATIO")
ok=$((ok_rate && ok_ratio))
[ "$ok" = 1 ] || MISSED_EVENTS=1
row "events: highest SimFlood rate with zero loss and kept up with (received at ≥ $KEEP_UP × the rate), ami-sim → amibridge → Redis subscriber (steps of ${STEP_S}s: ${RATES// /, })" \
    "$(fmt0 "$best")/s (received at $(fmt0 "$best_delivered")/s)$(if [ -n "$failed_rate" ]; then echo "; next step, $(fmt0 "$failed_rate")/s: $failed_why"; else echo "; the last step: no higher rate was tried"; fi); Redis outlet drops over the run: $drops" \
    "redis-benchmark PUBLISH, ${size}-byte payload, 1 conn, pipeline 64, $sub_note: $(fmt0 "${ceiling:-0}")/s, $ceil_note" \
    "$ev_ratio" "≥ $(fmt0 "$T_EVENTS")/s and ratio ≥ $T_EV_RATIO" "rate $(met "$ok_rate"), ratio $(met "$ok_ratio")"
rep_ratio=$(calc '"%.2f" % (float(sys.argv[1]) / max(float(sys.argv[2]), 1))' "$rep_best" "${ceiling:-0}")
ok_rate=$(calc 'int(int(sys.argv[1]) >= int(sys.argv[2]))' "$rep_best" "$T_EVENTS")
ok_ratio=$(calc 'int(float(sys.argv[1]) >= float(sys.argv[2]))' "$rep_ratio" "$T_EV_RATIO")
[ "$((ok_rate && ok_ratio))" = 1 ] || MISSED_EVENTS=1
lead_note=""
[ "$rep_leader" = 1 ] || lead_note="; **the first bridge no longer led at the end**"
row "events, two replicas: the same steps with a follower running beside the leader (same Redis; the follower reads every published event back for its SSE clients; same cores)" \
    "$(fmt0 "$rep_best")/s (received at $(fmt0 "$rep_delivered")/s)$(if [ -n "$rep_failed_rate" ]; then echo "; next step, $(fmt0 "$rep_failed_rate")/s: $rep_failed_why"; else echo "; the last step: no higher rate was tried"; fi); the follower's CPU $rep_follower_us µs per event flooded; Redis outlet drops over the run: $((drops2 - drops))$lead_note" \
    "the same redis-benchmark: $(fmt0 "${ceiling:-0}")/s" \
    "$rep_ratio" "≥ $(fmt0 "$T_EVENTS")/s and ratio ≥ $T_EV_RATIO" "rate $(met "$ok_rate"), ratio $(met "$ok_ratio")"
row "${lat_row[@]}"
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && [ "$MISSED_EVENTS" = 1 ]; }; then
    prate=${failed_rate:-$T_EVENTS}
    echo "== profile: perf record -g -p <amibridge> during a $prate/s flood (${PROFILE_S}s)"
    flood "$prate" $((prate * (PROFILE_S + 2)))
    sleep 0.5
    profile_start events "$BRIDGE_PID"
    profile_end events "amibridge during a SimFlood of $prate/s to Redis"
    flood 0 0
fi
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"
stop_pid "$REDIS_PID"

# --- 2c. SSE fan-out ------------------------------------------------------------------------
echo "== 2c. SSE fan-out: $SSE_CLIENTS clients on GET /v1/events?events=SimFlood, a flood of $SSE_RATE/s for ${SSE_S}s (sse-bench)"
start_sim
# every client is 127.0.0.1 with one key: lift the per-client connection cap
# and the SSE caps (100 streams, 10 per key) as the soak does; each client's
# queue is SSE_QUEUE events (the bridge's default, 1000, is 50 ms at 20,000/s)
start_bridge sse AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0 \
    AMIBRIDGE_SSE_MAX_CLIENTS=$((SSE_CLIENTS + 10)) AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=$((SSE_CLIENTS + 10)) \
    AMIBRIDGE_SSE_QUEUE="$SSE_QUEUE"
sse_count=$((SSE_RATE * SSE_S))
rm -f "$tmp/sse-ready" "$tmp/sse.json"
timeout $((SSE_S + 120)) "$BIN/sse-bench" --port "${BRIDGE_URL##*:}" --token "$TOKEN" \
    --clients "$SSE_CLIENTS" --count "$sse_count" --path '/v1/events?events=SimFlood' \
    --ready-file "$tmp/sse-ready" --idle-ms 3000 >"$tmp/sse.json" &
sub=$!
pids+=("$sub")
for _ in $(seq 200); do [ -s "$tmp/sse-ready" ] && break; sleep 0.05; done
x0=$(cpu_ticks "$BRIDGE_PID") s0=$(cpu_ticks "$SIM_PID") w0=$(date +%s%N)
flood "$SSE_RATE" "$sse_count"
wait "$sub"
x1=$(cpu_ticks "$BRIDGE_PID") s1=$(cpu_ticks "$SIM_PID") w1=$(date +%s%N)
stop_pid "$sub"
sse_cut=$(curl -fs -m 5 "$BRIDGE_URL/metrics" | awk 'index($1, "amibridge_events_dropped_total{outlet=\"sse\"") == 1 {s += $2} END {print s + 0}')
stop_pid "$BRIDGE_PID"
stop_pid "$SIM_PID"
if [ -s "$tmp/sse.json" ]; then
    sj() { jfield "$tmp/sse.json" "$1"; }
    wall_ms=$(((w1 - w0) / 1000000))
    sse_cpu=$(((x1 - x0) * 1000 / hz * 100 / (wall_ms > 0 ? wall_ms : 1)))
    sim_cpu=$(((s1 - s0) * 1000 / hz * 100 / (wall_ms > 0 ? wall_ms : 1)))
    printf '  connected %s of %s (refused %s); per client expected %s, received min %s max %s; missing %s, gaps %s, out of order %s, duplicates %s; cut as slow %s, ended early %s\n' \
        "$(sj connected)" "$SSE_CLIENTS" "$(sj refused)" "$sse_count" "$(sj received_min)" "$(sj received_max)" \
        "$(sj missing)" "$(sj seq_gaps)" "$(sj out_of_order)" "$(sj duplicates)" "$(sj cut_slow)" "$(sj ended_early)"
    printf '  %s events/s delivered in all; latency p50 %s ms, p99 %s ms, max %s ms; amibridge %s %% of a core, ami-sim %s %%, sse-bench %s s CPU over %s ms\n' \
        "$(sj events_per_s)" "$(sj p50_ms)" "$(sj p99_ms)" "$(sj max_ms)" "$sse_cpu" "$sim_cpu" "$(sj client_cpu_s)" "$wall_ms"
    # met: every client complete and in order, none cut, and the rate kept
    # up with (per client at least 95 % of SSE_RATE, first to last arrival)
    per_client=$(calc 'int(float(sys.argv[1]) / int(sys.argv[2]))' "$(sj events_per_s)" "$SSE_CLIENTS")
    kept=$(calc 'int(int(sys.argv[1]) >= 0.95 * int(sys.argv[2]))' "$per_client" "$SSE_RATE")
    ok=$(calc 'int(all(int(v) == 0 for v in sys.argv[4:]) and int(sys.argv[1]) == int(sys.argv[2]) and sys.argv[3] == "1")' \
        "$(sj complete_clients)" "$SSE_CLIENTS" "$kept" "$(sj missing)" "$(sj seq_gaps)" "$(sj out_of_order)" \
        "$(sj duplicates)" "$(sj malformed)" "$(sj cut_slow)")
    lag=""
    [ "$kept" = 1 ] || lag=" — **the rate was not kept up with** (the events waited in ami-sim and the bridge, see the latency)"
    row "SSE fan-out: $SSE_CLIENTS clients on GET /v1/events?events=SimFlood, ami-sim flooding $(fmt0 "$SSE_RATE")/s for ${SSE_S}s (sse-bench, one epoll loop; AMIBRIDGE_SSE_QUEUE=$SSE_QUEUE)" \
        "$(sj complete_clients) of $SSE_CLIENTS clients got all $(fmt0 "$sse_count") events in order (received per client min $(fmt0 "$(sj received_min)"), max $(fmt0 "$(sj received_max)"); missing $(sj missing), gaps $(sj seq_gaps), out of order $(sj out_of_order), cut as slow $(sj cut_slow) (SSE drops counted: $sse_cut)); latency p50 $(sj p50_ms) ms, p99 $(sj p99_ms) ms; delivered $(fmt0 "$per_client")/s per client, $(fmt0 "$(sj events_per_s)")/s in all$lag; amibridge $sse_cpu % of a core, ami-sim $sim_cpu %, sse-bench $(sj client_cpu_s) s CPU in $(calc '"%.1f" % (int(sys.argv[1]) / 1000)' "$wall_ms") s" \
        "—" "—" "$SSE_CLIENTS clients at $(fmt0 "$SSE_RATE")/s, no loss" "$(met "$ok")"
else
    echo "  sse-bench failed"
    row "SSE fan-out: $SSE_CLIENTS clients at $(fmt0 "$SSE_RATE")/s" "FAILED (sse-bench gave nothing)" "—" "—" \
        "$SSE_CLIENTS clients at $(fmt0 "$SSE_RATE")/s, no loss" "**no**"
fi

# --- 2d. a burst ------------------------------------------------------------------------------
echo "== 2d. a burst of $(fmt0 "$BURST") events as fast as ami-sim makes them (bench/burst.sh: writetimeout 100 ms played)"
if COUNT=$BURST bash "$(dirname "$0")/burst.sh" "$BIN" >"$tmp/burst.json" 2>"$tmp/burst.err" &&
    [ -s "$tmp/burst.json" ]; then
    bj() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/burst.json" "$1"; }
    cat "$tmp/burst.json"
    ok=$(calc 'int(sys.argv[1] == sys.argv[2] and sys.argv[3] == "0" and sys.argv[4] == "0" and sys.argv[5] == "0")' \
        "$(bj received)" "$BURST" "$(bj out_of_order)" "$(bj duplicates)" "$(bj dropped)")
    row "a burst of $(fmt0 "$BURST") events as fast as ami-sim makes them (it plays manager.conf writetimeout = 100 ms), AMIBRIDGE_REDIS_BUFFER 10,000, ami-sim → amibridge → Redis subscriber" \
        "$(fmt0 "$(bj received)") received in $(bj seconds) s, out of order $(bj out_of_order), twice $(bj duplicates), dropped $(bj dropped), held back $(bj held_back_s) s, AMI reconnects $(bj ami_reconnects)" \
        "—" "—" "all, in order, none dropped" "$(met "$ok")"
else
    echo "  burst.sh failed: $(tail -3 "$tmp/burst.err")"
    row "a burst of $(fmt0 "$BURST") events" "FAILED (bench/burst.sh gave nothing)" "—" "—" "all, in order, none dropped" "**no**"
fi

# --- 3. memory -------------------------------------------------------------------------------
echo "== 3. memory: idle RSS after ready; RSS with $IDLE_CONNS idle keep-alive connections (soak idle)"
start_sim
start_bridge idle-rss
rss=$(status_kib "$BRIDGE_PID" VmRSS) anon=$(status_kib "$BRIDGE_PID" RssAnon) file=$(status_kib "$BRIDGE_PID" RssFile)
pss=$(awk '$1 == "Pss:" {print $2}' "/proc/$BRIDGE_PID/smaps_rollup" 2>/dev/null)
ok=$(calc 'int(int(sys.argv[1]) < float(sys.argv[2]) * 1024)' "${rss:-999999}" "$T_IDLE_MIB")
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && [ "$ok" != 1 ]; }; then
    # where the idle RSS is: /proc/PID/smaps, Rss summed per mapped file
    {
        echo "== profile: idle amibridge RSS by mapping (/proc/PID/smaps, KiB)"
        awk '/^[0-9a-f]+-[0-9a-f]+ / {m = (NF >= 6 ? $6 : "[anon]")} /^Rss:/ {r[m] += $2}
             END {for (k in r) if (r[k] > 0) printf "%8d  %s\n", r[k], k}' "/proc/$BRIDGE_PID/smaps" |
            sort -rn | head -12
    } >"$tmp/profile-memory.txt"
fi
stop_pid "$BRIDGE_PID"
row "amibridge RSS, idle, right after /readyz 200 (VmRSS: RssAnon + RssFile)" \
    "$(mib "$rss") MiB ($(mib "$anon") anon + $(mib "$file") file-backed, mostly shared libraries; PSS $(mib "$pss") MiB)" \
    "mhd-baseline idle: $(mib "$base_rss_idle") MiB" \
    "$(calc '"%.1f" % (float(sys.argv[1]) / float(sys.argv[2]))' "$rss" "$base_rss_idle")×" \
    "< $T_IDLE_MIB MiB" "$(met "$ok")"

need=$((2 * IDLE_CONNS + 1024))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    row "amibridge RSS with $IDLE_CONNS idle keep-alive connections" "not measured: ulimit -n $(ulimit -n) < $need" "—" "—" "< $T_CONNS_MIB MiB" "—"
else
    # soak_idle PID PORT NAME: the tool's figures into $tmp/soak-NAME.txt;
    # the peak of RssAnon/RssFile sampled meanwhile into $tmp/peak-NAME
    soak_idle() {
        timeout 300 "$BIN/soak" idle --conns "$IDLE_CONNS" --port "$2" --pid "$1" --token "$TOKEN" \
            >"$tmp/soak-$3.txt" 2>&1 &
        local s=$! peak=0 a f v
        pids+=("$s")
        while kill -0 "$s" 2>/dev/null; do
            v=$(status_kib "$1" VmRSS)
            if [ -n "$v" ] && [ "$v" -gt "$peak" ]; then
                peak=$v a=$(status_kib "$1" RssAnon) f=$(status_kib "$1" RssFile)
            fi
            sleep 0.2
        done
        wait "$s"
        SOAK_RC=$?
        stop_pid "$s"
        echo "$peak ${a:-0} ${f:-0}" >"$tmp/peak-$3"
    }
    sfig() { awk -v n="$2" '$1 == "figure" && $2 == n {print $3}' "$tmp/soak-$1.txt"; }
    # every client here is 127.0.0.1: the per-client cap (AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT)
    # would refuse most of them, as tests/soak/run.sh knows too
    start_bridge idle-conns AMIBRIDGE_HTTP_MAX_CONNECTIONS=8000 AMIBRIDGE_HTTP_HEADER_TIMEOUT_S=3600 \
        AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0
    soak_idle "$BRIDGE_PID" "${BRIDGE_URL##*:}" bridge
    bridge_soak_rc=$SOAK_RC
    stop_pid "$BRIDGE_PID"
    start_baseline --max-conns 8000
    soak_idle "$BASE_PID" "${BASE_URL##*:}" base
    stop_pid "$BASE_PID"
    read -r _ panon pfile <"$tmp/peak-bridge"
    rss=$(sfig bridge idle.rss_with_conns_kib)
    brss=$(sfig base idle.rss_with_conns_kib)
    ok=$(calc 'int(int(sys.argv[1]) < float(sys.argv[2]) * 1024)' "${rss:-999999}" "$T_CONNS_MIB")
    extra=""
    [ "$bridge_soak_rc" = 0 ] || extra="; **soak checks failed:** $(grep '^check FAIL' "$tmp/soak-bridge.txt" | cut -d' ' -f3 | tr '\n' ' ')"
    row "amibridge RSS with $(sfig bridge idle.connections) idle keep-alive connections (soak idle)" \
        "$(mib "$rss") MiB (peak sample $(mib "$panon") anon + $(mib "$pfile") file; $(sfig bridge idle.kib_per_conn) KiB per connection; new connection answered in $(sfig bridge idle.new_conn_ms) ms$extra)" \
        "mhd-baseline, same: $(mib "$brss") MiB ($(sfig base idle.kib_per_conn) KiB per connection)" \
        "$(calc '"%.1f" % (float(sys.argv[1]) / float(sys.argv[2]))' "${rss:-0}" "${brss:-1}")×" \
        "< $T_CONNS_MIB MiB" "$(met "$ok")"
fi

# --- 4. start-up -----------------------------------------------------------------------------
echo "== 4. start-up: exec -> first 200 of /healthz and /readyz, polled every 1 ms, $STARTS starts"
cat >"$tmp/startup.py" <<'EOF'
import os, signal, socket, statistics, subprocess, sys, time
bridge, n, logdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
child = None
def on_term(sig, frame):
    if child and child.poll() is None:
        child.kill()
    sys.exit(1)
signal.signal(signal.SIGTERM, on_term)
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def ok(port, path):
    s = socket.socket(); s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return s.recv(16)[9:12] == b"200"
    except OSError:
        return False
    finally:
        s.close()
health, ready = [], []
for i in range(n):
    port = free_port()
    env = dict(os.environ, AMIBRIDGE_LISTEN="127.0.0.1:%d" % port)
    with open(os.path.join(logdir, "bridge-start%d.log" % i), "w") as log:
        t0 = time.monotonic()
        child = subprocess.Popen([bridge], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log)
        h = r = None
        tick = t0
        while time.monotonic() - t0 < 10 and child.poll() is None:
            if h is None and ok(port, b"/healthz"):
                h = time.monotonic() - t0
            if h is not None and ok(port, b"/readyz"):
                r = time.monotonic() - t0
                break
            tick += 0.001
            d = tick - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                tick = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill(); child.wait()
        child = None
    if h is None or r is None:
        print("start %d: not ready within 10 s" % i, file=sys.stderr)
        sys.exit(1)
    health.append(h * 1000); ready.append(r * 1000)
    print("  start %d: /healthz %.1f ms, /readyz %.1f ms" % (i + 1, h * 1000, r * 1000), file=sys.stderr)
print("%.1f %.1f %.1f %.1f %.1f %.1f" % (statistics.median(health), min(health), max(health),
                                         statistics.median(ready), min(ready), max(ready)))
EOF
if out=$(AMIBRIDGE_AMI_HOST=127.0.0.1 AMIBRIDGE_AMI_PORT="$SIM_PORT" AMIBRIDGE_AMI_USERNAME=bridge \
    AMIBRIDGE_AMI_SECRET=bridgesecret AMIBRIDGE_LOG_LEVEL=warn AMIBRIDGE_API_KEYS="bench:$TOKEN:actions,read" \
    timeout 300 python3 "$tmp/startup.py" "$BIN/amibridge" "$STARTS" "$tmp"); then
    read -r h_med h_min h_max r_med r_min r_max <<<"$out"
    ok=$(calc 'int(float(sys.argv[1]) < float(sys.argv[2]))' "$r_med" "$T_READY_MS")
    row "start-up: exec → first 200 of /readyz (AMI logged in; polled every 1 ms; median of $STARTS)" \
        "$r_med ms (min $r_min, max $r_max)" "—" "—" "< $T_READY_MS ms" "$(met "$ok")"
    row "start-up: exec → first 200 of /healthz (median of $STARTS)" \
        "$h_med ms (min $h_min, max $h_max)" "—" "—" "—" "—"
else
    row "start-up: exec → first 200 of /readyz" "FAILED (see above)" "—" "—" "< $T_READY_MS ms" "**no**"
fi
stop_pid "$SIM_PID"

# --- 5. webhooks (optional) ------------------------------------------------------------------
if [ "$WEBHOOKS" = 1 ]; then
    echo "== 5. webhooks: bash bench/webhooks.sh (a copy of $BUILD; about 3 minutes)"
    bash bench/webhooks.sh "$BIN" >"$tmp/webhooks.txt" 2>&1 &
    wh=$!
    pids+=("$wh")
    wait "$wh"
    wh_rc=$?
    stop_pid "$wh"
    grep -E '^\| (deliveries/s|event -> delivery latency)' "$tmp/webhooks.txt" |
        awk -F' *[|] *' '{print "| webhooks: " $2 " | " $3 " | — | — | — | — |"}' >"$tmp/webhook-rows"
    while IFS= read -r l; do rows+=("$l"); done <"$tmp/webhook-rows"
    [ "$wh_rc" = 0 ] || rows+=("| webhooks: bench/webhooks.sh | **exit $wh_rc** (see its output) | — | — | — | — |")
else
    row "webhooks: deliveries/s (bench/webhooks.sh)" "skipped (WEBHOOKS=1 adds it, about 3 minutes)" "—" "—" "—" "—"
fi

echo
echo "== $(nproc) cores shared by the load generators, the servers and whatever else runs here;"
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) at the end ($host_line); $(($(date +%s) - T_START)) s"
echo
echo "| figure | value | ceiling (what it is compared with) | ratio | target | met? |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in "${rows[@]}"; do echo "$r"; done
for f in "$tmp"/profile-*.txt; do
    [ -e "$f" ] || continue
    echo
    cat "$f"
done
