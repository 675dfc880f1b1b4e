#!/usr/bin/env bash
# Message history benchmarks (docs/performance.md, "Message history"):
#
#  1. send throughput with history on and off, fsync = always, closed loop
#     (50 connections, 1 and 16 in flight) and open loop at 20,000/s;
#  2. a store of MESSAGES messages over ROOMS rooms: fill rate, bytes on
#     disk per message, `getroommsg` (20 newest rows of a random room) with 1
#     and 16 connections, and restart time after SIGKILL;
#  3. the same shape in Redis Streams, in the same run: XADD MAXLEN ~ to
#     fill, XREVRANGE COUNT 20 to read, memory per message.
#
#   bench/history.sh                       # 10,000,000 messages: ~10 minutes
#   MESSAGES=1000000 bench/history.sh      # a quicker look
#   PARTS="2 3" bench/history.sh           # only the store and Redis parts
#
# Long: never part of CI. It builds the release binaries, uses spare ports
# and a scratch directory, and stops what it started (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${MESSAGES:-10000000}
ROOMS=${ROOMS:-10000}
DURATION=${DURATION:-10}
PORT=${PORT:-23410}
REDIS_PORT=${REDIS_PORT:-26380}
DATA=${DATA:-/tmp/rtm-history-bench}
PARTS=${PARTS:-"1 2 3"}
PER_ROOM=$(( MESSAGES / ROOMS ))
# Redis keeps stream fields uncompressed, so one fixed 100-byte text is fair
# there; rtm-loadtest sends 100 bytes of random words.
MSG="the quick brown fox jumps over the lazy dog; the quick brown fox jumps over the lazy dog; 0123456789"
part() { [[ " $PARTS " == *" $1 "* ]]; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

cargo build --release -q -p rtm-server -p rtm-loadtest
SERVER=target/release/rtm-server
LOADTEST=target/release/rtm-loadtest

start() { # history fsync [more --set ...]
    local history=$1 fsync=$2
    shift 2
    "$SERVER" --listen "127.0.0.1:$PORT" --set "gates.client.listeners=[{addr=\"127.0.0.1:$((PORT + 1))\"}]" \
        --set "storage.data_dir=$DATA" --set "storage.fsync=$fsync" --set "history.enabled=$history" \
        --set "history.max_per_room=$((PER_ROOM * 2))" --set metrics.listen= --log-level warn "$@" \
        >/tmp/rtm-history-bench.log 2>&1 &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    local started=$(date +%s.%N) probe=ping
    # With history, ready means history answers.
    [ "$history" = true ] && probe=getroommsg
    for _ in $(seq 600); do
        if "$LOADTEST" --addr "127.0.0.1:$PORT" -c 1 -n 1 op "$probe" >/dev/null 2>&1; then
            STARTUP=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $started))")
            return 0
        fi
        sleep 0.05
    done
    echo "the server did not start; see /tmp/rtm-history-bench.log" >&2
    exit 1
}

stop() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

run() { # loadtest args... ; prints "rate p50 p99"
    "$LOADTEST" --addr "127.0.0.1:$PORT" --rooms "$ROOMS" --json "$@" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); l=r["latency_us"]; print("%.0f/s p50 %.2f ms p99 %.2f ms" % (r["rate"], l["p50"]/1000, l["p99"]/1000))'
}

part 1 && echo "== 1. send throughput, history on and off, fsync = always =="
part 1 && for round in 1 2; do
    for history in true false; do
        rm -rf "$DATA"
        start "$history" always
        echo "history=$history round $round: closed P=1 $(run -c 50 -d ${DURATION}s op sendroommsg)"
        echo "history=$history round $round: closed P=16 $(run -c 50 -P 16 -d ${DURATION}s op sendroommsg)"
        echo "history=$history round $round: open 20000/s $(run -c 50 --rate 20000 -d ${DURATION}s op sendroommsg)"
        stop
    done
done

if part 2; then
echo "== 2. a store of $MESSAGES messages over $ROOMS rooms =="
rm -rf "$DATA"
start true off
echo "fill (fsync=off): $(run -c 50 -P 16 -n "$MESSAGES" op sendroommsg)"
stop
echo "bytes on disk: $(du -sb "$DATA/history" | cut -f1) ($(python3 -c "print('%.1f' % ($(du -sb "$DATA/history" | cut -f1) / $MESSAGES))") per message; apparent sizes, the journal is preallocated)"
echo "blocks on disk: $(du -sk "$DATA/history" | cut -f1) KiB ($(python3 -c "print('%.1f' % ($(du -sk "$DATA/history" | cut -f1) * 1024 / $MESSAGES))") per message)"
start true always
echo "clean start: ${STARTUP} s"
for c in 1 16; do
    echo "getroommsg, $c connections: $(run -c $c -d ${DURATION}s op getroommsg)"
done
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start true always
echo "start after SIGKILL: ${STARTUP} s"
stop
fi

part 3 || exit 0
echo "== 3. Redis Streams, the same shape =="
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/tmp/rtm-history-redis.log 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rb() { # connections pipeline requests command...
    local c=$1 p=$2 n=$3
    shift 3
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$c" -P "$p" -n "$n" -r "$ROOMS" --csv "$@" |
        python3 -c 'import csv,sys; rows=list(csv.reader(sys.stdin)); h=rows[0]; r=rows[-1]; print("%.0f/s p50 %s ms p99 %s ms" % (float(r[h.index("rps")]), r[h.index("p50_latency_ms")], r[h.index("p99_latency_ms")]))'
}
XADD=(XADD "room:__rand_int__" MAXLEN "~" $((PER_ROOM * 2)) "*" from __rand_int__ mtype 51 mid __rand_int__ msg "$MSG" attrs "")
echo "XADD, 50 connections, 1 in flight: $(rb 50 1 $((DURATION * 60000)) "${XADD[@]}")"
redis-cli -p "$REDIS_PORT" flushall >/dev/null
echo "fill with XADD (50 connections, 16 in flight): $(rb 50 16 "$MESSAGES" "${XADD[@]}")"
used=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
echo "memory: $used bytes ($(python3 -c "print('%.1f' % ($used / $MESSAGES))") per message)"
for c in 1 16; do
    echo "XREVRANGE COUNT 20, $c connections: $(rb $c 1 $((DURATION * 20000 * c)) XREVRANGE "room:__rand_int__" + - COUNT 20)"
done
rm -rf "$DATA"
