#!/usr/bin/env bash
# `make run`: the bundled AMI simulator as the PBX, a local Redis when one is
# installed, and amibridge on 127.0.0.1:8080 with a demo key. Ctrl-C stops
# everything this script started.
set -u
BUILD=${1:-build}
LISTEN=${AMIBRIDGE_LISTEN:-127.0.0.1:8080}
DEMO_TOKEN=${DEMO_TOKEN:-demo-token-change-me}
STATE=$(mktemp -d /tmp/amibridge-run.XXXXXX)
pids=""

cleanup() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$STATE"
    echo
    echo "stopped: amibridge, ami-sim${redis_started:+, redis-server}"
}
trap cleanup INT TERM EXIT

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# the simulated PBX: 5038 when free, else any free port
"$BUILD/ami-sim" --listen 127.0.0.1:0 --ready-file "$STATE/sim.port" --quiet &
pids="$pids $!"
i=0
while [ ! -s "$STATE/sim.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
SIM_PORT=$(cat "$STATE/sim.port" 2>/dev/null)
[ -n "$SIM_PORT" ] || { echo "ami-sim did not start" >&2; exit 1; }

redis_started=""
REDIS_URL=""
if command -v redis-server >/dev/null 2>&1; then
    RPORT=6390
    while ! port_free $RPORT && [ $RPORT -lt 6400 ]; do RPORT=$((RPORT + 1)); done
    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$STATE" --logfile "$STATE/redis.log" &
    pids="$pids $!"
    redis_started=1
    REDIS_URL="redis://127.0.0.1:$RPORT"
fi

AMIBRIDGE_LISTEN=$LISTEN \
AMIBRIDGE_AMI_HOST=127.0.0.1 AMIBRIDGE_AMI_PORT=$SIM_PORT \
AMIBRIDGE_AMI_USERNAME=bridge AMIBRIDGE_AMI_SECRET=bridgesecret \
AMIBRIDGE_API_KEYS="demo:$DEMO_TOKEN:read,call,control,actions,admin" \
AMIBRIDGE_REDIS_URL=$REDIS_URL \
AMIBRIDGE_WEBHOOK_ALLOW_NETS=${AMIBRIDGE_WEBHOOK_ALLOW_NETS:-127.0.0.0/8} \
    "$BUILD/amibridge" &
pids="$pids $!"

i=0
until curl -fs "http://$LISTEN/readyz" >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done

# demo traffic, so that the dashboard has something to show (DEMO_TRAFFIC=0: none)
if [ "${DEMO_TRAFFIC:-1}" != 0 ]; then
    (
        while :; do
            for x in 200 400 700 100 401 600 300; do
                body=$(printf '{"channel":"Local/%s@demo","context":"demo","exten":"%s","wait":false,"caller_id":"\\"Demo %s\\" <555%s>"}' "$x" "$x" "$x" "$x")
                curl -fs -o /dev/null -X POST -H "Authorization: Bearer $DEMO_TOKEN" \
                    -H 'Content-Type: application/json' -d "$body" "http://$LISTEN/v1/calls"
                sleep 4
            done
        done
    ) &
    pids="$pids $!"
fi

cat <<MSG

amibridge is up on http://$LISTEN (AMI: ami-sim on 127.0.0.1:$SIM_PORT${REDIS_URL:+, Redis: $REDIS_URL})
Dashboard: open http://$LISTEN/ and type the API key $DEMO_TOKEN
(demo calls are placed every few seconds; DEMO_TRAFFIC=0 make run for none)

Try:

  curl -s -X POST -H 'Authorization: Bearer $DEMO_TOKEN' http://$LISTEN/v1/actions/Ping

Click-to-dial (ami-sim's exten 100 answers, 300 is busy):

  curl -s -X POST -H 'Authorization: Bearer $DEMO_TOKEN' -H 'Content-Type: application/json' \\
       -d '{"channel":"Local/100@demo","context":"demo","exten":"100"}' http://$LISTEN/v1/calls

Watch the events (Server-Sent Events${REDIS_URL:+, or Redis pub/sub}):

  curl -N -H 'Authorization: Bearer $DEMO_TOKEN' http://$LISTEN/v1/events
MSG
if [ -n "$REDIS_URL" ]; then
    echo "  redis-cli -p $RPORT psubscribe 'ami.*'"
fi
cat <<MSG

Webhooks to a local receiver (this demo allows 127.0.0.0/8; see docs/events-and-webhooks.md):

  AMIBRIDGE_WEBHOOK_SECRET=demo-webhook-secret-0123 python3 docs/examples/webhook_receiver.py 9000 &
  curl -s -X POST -H 'Authorization: Bearer $DEMO_TOKEN' -H 'Content-Type: application/json' \\
       -d '{"url":"http://127.0.0.1:9000/hook","events":["Hangup"],"secret":"demo-webhook-secret-0123"}' \\
       http://$LISTEN/v1/webhooks
MSG
echo
echo "Ctrl-C stops everything."
wait
