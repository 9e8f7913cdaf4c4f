#!/usr/bin/env bash
# A burst of COUNT events (1,000,000) from ami-sim as fast as it can make
# them, through amibridge (default buffer, AMIBRIDGE_REDIS_BUFFER=10000) to
# a Redis subscriber (build/events-bench): does every event arrive, once,
# in order? ami-sim plays manager.conf writetimeout = 100 ms (a session
# whose writes make no progress that long is dropped, as Asterisk does) and
# queues without a byte cap, like Asterisk's per-session event queue.
# Prints one JSON line: what the subscriber got, how long it took, what
# amibridge dropped and how long it held events back, AMI reconnects.
#
#   bash bench/burst.sh [BUILD_DIR]      COUNT=1000000 RATE=2000000
set -uo pipefail
BUILD=${1:-build}
COUNT=${COUNT:-1000000}
RATE=${RATE:-2000000}
TOKEN=bench-token-0123456789
tmp=$(mktemp -d /tmp/amibridge-burst.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
for b in ami-sim amibridge events-bench; do
    [ -x "$BUILD/$b" ] || { echo "missing $BUILD/$b: run 'make all'" >&2; exit 2; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" &
pids+=($!)
"$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$tmp/sim.port" --quiet \
    --write-timeout 100 --max-outbuf 0 &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/sim.port" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
HTTP_PORT=$(free_port)
URL=http://127.0.0.1:$HTTP_PORT
AMIBRIDGE_LISTEN=127.0.0.1:$HTTP_PORT AMIBRIDGE_AMI_PORT=$(cat "$tmp/sim.port") \
AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret AMIBRIDGE_LOG_LEVEL=warn \
AMIBRIDGE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
AMIBRIDGE_API_KEYS="bench:$TOKEN:actions,read" "$BUILD/amibridge" 2>"$tmp/bridge.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "$URL/readyz" | grep -q '"redis":{"state":"up"' && break; sleep 0.1; done
metric() { curl -fs "$URL/metrics" | awk -v m="$1" 'index($1, m) == 1 {s += $2} END {print s + 0}'; }

"$BUILD/events-bench" --port "$REDIS_PORT" --channel ami.default.SimFlood --count "$COUNT" \
    --ready-file "$tmp/ready" --idle-ms 5000 >"$tmp/sub.json" &
sub=$!
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
t0=$(date +%s.%N)
curl -fs -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"Flood\":\"$RATE\",\"FloodCount\":\"$COUNT\"}" "$URL/v1/actions/SimControl" >/dev/null
wait "$sub"
[ -n "${DEBUG:-}" ] && { curl -fs "$URL/metrics" | grep -E "^amibridge_(events|ami_rec|redis_buf)"; grep -v "\"info\"" "$tmp/bridge.log" | tail -5; }
t1=$(date +%s.%N)
python3 - "$tmp/sub.json" "$t0" "$t1" "$COUNT" \
    "$(metric 'amibridge_events_dropped_total{outlet="redis"')" \
    "$(metric amibridge_events_read_paused_seconds_total)" \
    "$(metric amibridge_ami_reconnects_total)" <<'PY'

import json, sys
sub = json.load(open(sys.argv[1]))
t0, t1, count = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(json.dumps({
    "events": count, "received": sub["received"], "missing": sub["missing"],
    "out_of_order": sub["out_of_order"], "duplicates": sub["duplicates"],
    "seconds": round(t1 - t0 - 5.0 if sub["missing"] else t1 - t0, 2),
    "dropped": int(float(sys.argv[5])), "held_back_s": float(sys.argv[6]),
    "ami_reconnects": int(float(sys.argv[7]))}))
PY
