#!/usr/bin/env bash
# The redis engine beside the embedded one, in one run, on loopback:
#   1. room operations on one node, embedded vs redis, at P=1 and P=16;
#   2. three redis-mode nodes vs one (the load split over the nodes);
#   3. room-message fan-out: same node (embedded, redis) and cross-node
#      (senders on node A, receivers on node B);
#   4. Redis bytes per membership.
#
#   bench/scale-out.sh
#   DURATION=5 bench/scale-out.sh
#
# It starts the local cluster (scripts/redis-cluster.sh, 3 masters + 3
# replicas) if it is not running, builds the release binaries, and stops the
# servers it started on exit. On a 2-core machine the cluster's six
# processes, the nodes and the load generator share two cores: the figures
# show per-operation cost and behaviour, not scale-up.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
KEYSPACE=10000
NAMESPACE="bench$(date +%s)"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

scripts/redis-cluster.sh start >&2
echo "building release binaries..." >&2
cargo build --release -q -p rtm-server -p rtm-loadtest
SERVER=target/release/rtm-server
LOADTEST=target/release/rtm-loadtest

start_node() { # name server_port client_port [--set ...]
    local name=$1 port=$2 client=$3
    shift 3
    "$SERVER" --listen "127.0.0.1:$port" --set "gates.client.listeners=[{addr=\"127.0.0.1:$client\"}]" \
        --set 'gates.client.websocket_listeners=[]' --set metrics.listen= --set recording.http_listen= \
        --log-level warn "$@" >"/tmp/scale-out-$name.log" 2>&1 &
    pids+=("$!")
    LAST_PID=$!
    for _ in $(seq 100); do
        "$LOADTEST" --addr "127.0.0.1:$port" -c 1 -n 1 op ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "node $name did not start; see /tmp/scale-out-$name.log" >&2
    exit 1
}

stop_node() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

redis_node() { # name server_port client_port
    start_node "$1" "$2" "$3" --set engine.kind=redis --set 'engine.redis_nodes=["127.0.0.1:17001"]' \
        --set "engine.redis_namespace=$NAMESPACE" --set storage.data_dir= --set history.enabled=false
}

# prints "rate p99_ms"
op_run() { # port op pipeline connections
    "$LOADTEST" --addr "127.0.0.1:$1" -c "$4" -P "$3" -d "${DURATION}s" --rooms "$KEYSPACE" --uids "$KEYSPACE" \
        --json op "$2" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.3f" % (r["rate"], r["latency_us"]["p99"] / 1000))'
}

# prints "deliveries/s p50_ms p99_ms lost duplicated"
fanout_run() { # server_port client_port [--sender-addr ADDR]
    local port=$1 client=$2
    shift 2
    "$LOADTEST" --addr "127.0.0.1:$port" --json -d "${DURATION}s" --rate 1000 fanout --client-addr "127.0.0.1:$client" \
        --clients 200 --room-count 10 --senders 100 "$@" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); l=r["latency_us"]; print("%.0f %.2f %.2f %d %d" % (r["deliveries_per_second"], l["p50"]/1000, l["p99"]/1000, r["lost"], r["duplicated"]))'
}

echo "## 1. room operations, one node, $CONNECTIONS connections, ${DURATION}s each"
echo "| engine | op | P | rate/s | p99 ms |"
echo "|---|---|---|---|---|"
DATA=$(mktemp -d)
start_node embedded 24315 24321 --set "storage.data_dir=$DATA" --set storage.fsync=everysec --set history.enabled=false
EMBEDDED=$LAST_PID
# Fan-out first: the room operations put uids 1..10000 into many rooms,
# past the client gate's rooms-per-user limit.
fanout_embedded=$(fanout_run 24315 24321)
for op in addroommember getroomcount; do
    for p in 1 16; do
        read -r rate p99 < <(op_run 24315 "$op" "$p" "$CONNECTIONS")
        echo "| embedded (fsync everysec) | $op | $p | $rate | $p99 |"
    done
done
stop_node "$EMBEDDED"
rm -rf "$DATA"

redis_node a 25315 25321
redis_node b 26315 26321
fanout_same=$(fanout_run 25315 25321)
fanout_cross=$(fanout_run 25315 26321 --sender-addr 127.0.0.1:25321)
for op in addroommember getroomcount; do
    for p in 1 16; do
        read -r rate p99 < <(op_run 25315 "$op" "$p" "$CONNECTIONS")
        echo "| redis, 1 node | $op | $p | $rate | $p99 |"
    done
done

echo
echo "## 2. three redis nodes vs one: addroommember, P=16, $CONNECTIONS connections in all"
redis_node c 27315 27321
read -r one one_p99 < <(op_run 25315 addroommember 16 "$CONNECTIONS")
per=$((CONNECTIONS / 3))
tmp=$(mktemp -d)
runs=()
for port in 25315 26315 27315; do
    op_run "$port" addroommember 16 "$per" >"$tmp/$port" &
    runs+=("$!")
done
for run in "${runs[@]}"; do wait "$run"; done
three=0
worst=0
for port in 25315 26315 27315; do
    read -r rate p99 <"$tmp/$port"
    three=$((three + rate))
    worst=$(python3 -c "print(max($worst, $p99))")
done
rm -rf "$tmp"
echo "| nodes | rate/s | p99 ms |"
echo "|---|---|---|"
echo "| 1 | $one | $one_p99 |"
echo "| 3 | $three | $worst (worst node) |"

echo
echo "## 3. fan-out: 200 clients in 10 rooms (20 members each), 100 senders at 10 messages/s each (1000/s), ${DURATION}s"
echo "| where | deliveries/s | p50 ms | p99 ms | lost | duplicated |"
echo "|---|---|---|---|---|---|"
echo "| embedded, one node | $(echo "$fanout_embedded" | sed 's/ / | /g') |"
echo "| redis, same node | $(echo "$fanout_same" | sed 's/ / | /g') |"
echo "| redis, senders on A, receivers on B | $(echo "$fanout_cross" | sed 's/ / | /g') |"

echo
echo "## 4. Redis memory per membership"
used() {
    local total=0 port
    for port in 17001 17002 17003 17004 17005 17006; do
        if redis-cli -p "$port" info replication | grep -q '^role:master'; then
            total=$((total + $(redis-cli -p "$port" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')))
        fi
    done
    echo "$total"
}
before=$(used)
"$LOADTEST" --addr 127.0.0.1:25315 fill --rooms 2000 --members 100 --first-room 1000000 >/dev/null
after=$(used)
python3 -c "print('| memberships | bytes on the masters | bytes per membership |'); print('|---|---|---|'); print('| 200000 | %d | %.1f |' % ($after - $before, ($after - $before) / 200000))"
