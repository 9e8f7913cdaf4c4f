#!/usr/bin/env bash
# Soak and abuse: BUILD/soak (tests/soak/soak.c) against BUILD/amibridge and
# BUILD/ami-sim on free loopback ports. A fresh bridge per phase, so each
# phase's memory and descriptor figures start clean:
#   1. mixed requests over 64 keep-alive connections (placed calls among
#      them, their history capped so that it is full by the warm-up); RSS
#      flat after warm-up, descriptors back to the baseline;
#   2. thousands of idle keep-alive connections; a new connection still
#      answered fast; RSS with all of them open;
#   3. slowloris (bridge with AMIBRIDGE_HTTP_TIMEOUT_S=5) while normal
#      requests must keep a p99 under 500 ms;
#   4. slow bodies: 1,500 clients send a whole head, then trickle a body
#      (and come back when cut) against AMIBRIDGE_HTTP_MAX_CONNECTIONS=1024
#      and AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=5, while /healthz and a client
#      with a key (new connections and one kept alive) are answered;
#   5. malformed HTTP, case by case: never a 5xx, never a crash.
# Every client of the soak is 127.0.0.1, so the phases with many
# connections lift AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT (the cap itself
# is tested in tests/integration/test_security.c).
# One line per check, then a summary table; exit status 1 when a check
# failed (2 when the stack could not start). Memory goals (idle bridge
# < 10 MiB, < 64 MiB with 5,000 idle connections) are reported as targets
# met or missed, not failures.
#
#   bash tests/soak/run.sh BUILD [short|long]      (make soak-short / make soak)
#   short: 50,000 requests, 2,000 idle, 300 slow, 1,500 slow bodies (CI, about 1.5 minutes)
#   long:  1,000,000 requests, 5,000 idle, 1,000 slow, 3,000 slow bodies
set -uo pipefail
BUILD=${1:-build}
MODE=${2:-short}
case $MODE in
short) REQUESTS=50000 IDLE=2000 SLOW=300 SLOWBODY=1500 ;;
long) REQUESTS=1000000 IDLE=5000 SLOW=1000 SLOWBODY=3000 ;;
*)
    echo "usage: $0 BUILD [short|long]" >&2
    exit 2
    ;;
esac
for b in ami-sim amibridge soak; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
SLOW_TIMEOUT_S=5
TOKEN=soak-token-0123456789
# our sockets and the bridge's, plus slack: the bridge inherits the limit
need=$((2 * IDLE + 1024))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    echo "soak: ulimit -n is $(ulimit -n), $need needed for $IDLE connections" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amibridge-soak.XXXXXX") || exit 2
sim_pid=
bridge_pid=
cleanup() {
    [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
# a check of the script itself, in the format of the tool's
check() { # ok name detail
    local v=FAIL
    [ "$1" = 1 ] && v=PASS
    [ "$1" = 1 ] || failed=1
    echo "check $v $2: $3" | tee -a "$tmp/out"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk -v p="$(getconf PAGESIZE)" '{print $2 * p / 1024}' "/proc/$1/statm" 2>/dev/null; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }

"$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet &
sim_pid=$!
for _ in $(seq 100); do [ -s "$tmp/sim.port" ] && break; sleep 0.05; done
[ -s "$tmp/sim.port" ] || { echo "soak: ami-sim did not start" >&2; exit 2; }
SIM_PORT=$(cat "$tmp/sim.port")

# start_bridge NAME [VAR=value...]: a fresh bridge; sets PORT and bridge_pid
start_bridge() {
    local name=$1
    shift
    PORT=$(free_port)
    env AMIBRIDGE_LISTEN="127.0.0.1:$PORT" AMIBRIDGE_AMI_HOST=127.0.0.1 \
        AMIBRIDGE_AMI_PORT="$SIM_PORT" AMIBRIDGE_AMI_USERNAME=bridge \
        AMIBRIDGE_AMI_SECRET=bridgesecret \
        AMIBRIDGE_API_KEYS="soak:$TOKEN:read,call,control,actions,admin" \
        AMIBRIDGE_HTTP_MAX_CONNECTIONS=8000 AMIBRIDGE_CALLS_PER_SECOND=10000 \
        AMIBRIDGE_CALLS_BURST=100000 AMIBRIDGE_LOG_LEVEL=error "$@" \
        "$BUILD/amibridge" 2>"$tmp/bridge-$name.log" &
    bridge_pid=$!
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && return 0
        kill -0 "$bridge_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "soak: amibridge did not become ready for phase $name:" >&2
    cat "$tmp/bridge-$name.log" >&2
    exit 2
}

# stop_bridge NAME: SIGTERM, a clean exit expected; the log's lines reported
stop_bridge() {
    local name=$1 rc alive=1
    kill -0 "$bridge_pid" 2>/dev/null || alive=0
    kill "$bridge_pid" 2>/dev/null
    wait "$bridge_pid"
    rc=$?
    bridge_pid=
    check "$([ $alive = 1 ] && [ $rc = 0 ] && echo 1)" "$name.bridge_exit" \
        "$([ $alive = 1 ] && echo "SIGTERM: exit status $rc" || echo "had died: status $rc")"
    if [ -s "$tmp/bridge-$name.log" ]; then
        echo "  bridge log ($name, level error): $(wc -l <"$tmp/bridge-$name.log") lines, first:"
        head -n 3 "$tmp/bridge-$name.log" | cut -c1-300 | sed 's/^/    /'
    fi
}

# phase NAME SOAK-ARGS...: run the tool against the current bridge
phase() {
    local name=$1
    shift
    echo "== $name"
    "$BUILD/soak" "$@" --port "$PORT" --pid "$bridge_pid" --token "$TOKEN" | tee -a "$tmp/out"
    [ "${PIPESTATUS[0]}" = 0 ] || failed=1
}

echo "== machine: $(nproc) cores, $(uname -r); $(date -u +%Y-%m-%dT%H:%M:%SZ); mode $MODE"
t_start=$(date +%s)

# One request in ten places a call, which ends at once and is kept for
# GET /v1/calls/{id} (about 1 KiB each, up to AMIBRIDGE_CALL_MAX_HISTORY):
# a history that fills during the warm-up (the first fifth) keeps "RSS flat
# after warm-up" a test of leaks, not of that documented bound.
start_bridge mixed AMIBRIDGE_CALL_MAX_HISTORY=$((REQUESTS / 100))
rss_fresh=$(rss_kib "$bridge_pid")
{
    echo "figure bridge.rss_fresh_kib $rss_fresh"
    echo "figure bridge.rss_fresh_anon_kib $(status_kib "$bridge_pid" RssAnon)"
    echo "figure bridge.rss_fresh_file_kib $(status_kib "$bridge_pid" RssFile)"
    if [ "${rss_fresh%.*}" -lt 10240 ]; then met=MET; else met=MISSED; fi
    echo "target $met start.rss: idle bridge after start: $rss_fresh KiB (target < 10240 KiB)"
} | tee -a "$tmp/out"
phase "1. mixed: $REQUESTS requests, 64 keep-alive connections" mixed --requests "$REQUESTS" --conns 64
stop_bridge mixed

start_bridge idle AMIBRIDGE_HTTP_HEADER_TIMEOUT_S=3600 AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0
phase "2. $IDLE idle keep-alive connections" idle --conns "$IDLE"
stop_bridge idle

start_bridge slowloris AMIBRIDGE_HTTP_TIMEOUT_S=$SLOW_TIMEOUT_S AMIBRIDGE_HTTP_HEADER_TIMEOUT_S=$SLOW_TIMEOUT_S \
    AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0
phase "3. slowloris: $SLOW slow connections, 200 normal requests (AMIBRIDGE_HTTP_TIMEOUT_S=$SLOW_TIMEOUT_S)" \
    slowloris --conns "$SLOW" --normal 200 --interval-ms 50 --byte-ms 100 --timeout-s "$SLOW_TIMEOUT_S"
stop_bridge slowloris

start_bridge slowbody AMIBRIDGE_HTTP_MAX_CONNECTIONS=1024 AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=$SLOW_TIMEOUT_S \
    AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0
phase "4. slow bodies: $SLOWBODY clients, AMIBRIDGE_HTTP_MAX_CONNECTIONS=1024, AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=$SLOW_TIMEOUT_S" \
    slowbody --conns "$SLOWBODY" --normal 200 --interval-ms 50 --byte-ms 100 --timeout-s "$SLOW_TIMEOUT_S"
stop_bridge slowbody

start_bridge malformed
phase "5. malformed HTTP" malformed
stop_bridge malformed

if kill -0 "$sim_pid" 2>/dev/null; then
    check 1 sim.alive "ami-sim pid $sim_pid running"
else
    check 0 sim.alive "ami-sim pid $sim_pid is gone"
fi

fig() { awk -v n="$1" '$1 == "figure" && $2 == n {$1 = $2 = ""; sub(/^ +/, ""); v = $0} END {print (v == "" ? "-" : v)}' "$tmp/out"; }
mib() { awk -v k="$(fig "$1")" 'BEGIN {if (k == "-") print "-"; else printf "%.1f MiB", k / 1024}'; }
echo
echo "== summary ($MODE, $(($(date +%s) - t_start)) s)"
echo "| figure | value |"
echo "| --- | --- |"
echo "| bridge RSS, idle after start (anonymous / file-backed) | $(mib bridge.rss_fresh_kib) ($(mib bridge.rss_fresh_anon_kib) / $(mib bridge.rss_fresh_file_kib)) |"
echo "| mixed: requests / connections | $(fig mixed.requests) / $(fig mixed.connections) |"
echo "| mixed: requests/s | $(fig mixed.req_per_s) |"
echo "| mixed: latency p50 / p99 / max (ms) | $(fig mixed.p50_ms) / $(fig mixed.p99_ms) / $(fig mixed.max_ms) |"
echo "| mixed: 429/503 from documented limits | $(fig mixed.limited) |"
echo "| mixed: RSS start / after warm-up / max / end | $(mib mixed.rss_start_kib) / $(mib mixed.rss_after_warmup_kib) / $(mib mixed.rss_max_after_warmup_kib) / $(mib mixed.rss_end_kib) |"
echo "| mixed: fds start / max / end | $(fig mixed.fds_start) / $(fig mixed.fds_max) / $(fig mixed.fds_end) |"
echo "| idle: connections | $(fig idle.connections) |"
echo "| idle: RSS before / with all open / after close | $(mib idle.rss_before_kib) / $(mib idle.rss_with_conns_kib) / $(mib idle.rss_after_close_kib) |"
echo "| idle: KiB per idle connection | $(fig idle.kib_per_conn) |"
echo "| idle: new connection answered in (ms) | $(fig idle.new_conn_ms) |"
echo "| idle: fds before / open / after | $(fig idle.fds_before) / $(fig idle.fds_with_conns) / $(fig idle.fds_after_close) |"
echo "| slowloris: connections / cut while trickling / cut when silent / left open | $(fig slow.connections) / $(fig slow.cut_while_trickling) / $(fig slow.cut_after_silence) / $(fig slow.still_open_at_end) |"
echo "| slowloris: normal p50 / p99 / max (ms) | $(fig slow.normal_p50_ms) / $(fig slow.normal_p99_ms) / $(fig slow.normal_max_ms) |"
echo "| slowloris: bridge RSS peak | $(mib slow.rss_peak_kib) |"
echo "| slow bodies: clients / connections opened / most open at once | $(fig slowbody.connections) / $(fig slowbody.opened) / $(fig slowbody.max_open_at_once) |"
echo "| slow bodies: new-connection p50 / p99 / max (ms) | $(fig slowbody.normal_p50_ms) / $(fig slowbody.normal_p99_ms) / $(fig slowbody.normal_max_ms) |"
echo "| slow bodies: kept-alive client with a key | $(fig slowbody.keepalive_answered) |"
echo "| slow bodies: bridge RSS peak | $(mib slowbody.rss_peak_kib) |"
checks=$(grep -c '^check ' "$tmp/out")
fails=$(grep -c '^check FAIL' "$tmp/out")
echo
grep '^target ' "$tmp/out" | sed 's/^/  /'
if [ "$failed" != 0 ] || [ "$fails" != 0 ]; then
    echo "soak ($MODE): FAILED -- $fails of $checks checks failed:"
    grep '^check FAIL' "$tmp/out" | sed 's/^/  /'
    exit 1
fi
echo "soak ($MODE): all $checks checks passed"
