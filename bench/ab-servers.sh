#!/usr/bin/env bash
# A/B of two rtm-server builds: the same load, alternating between them, so
# that drift of the machine hits both alike. Prints each run and the median
# per build and operation.
#
#   bench/ab-servers.sh OLD_BINARY NEW_BINARY
#   ROUNDS=5 DURATION=5 OPS="addroommember getroomcount" PIPELINES="1 16" bench/ab-servers.sh old new
#   DURABLE=1 bench/ab-servers.sh old new   # data dir with fsync = always
#
# Both servers run in memory (or durable with DURABLE=1) on spare loopback
# ports; the load generator is this tree's release rtm-loadtest. Every
# process started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=$1
NEW=$2
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
OPS=${OPS:-"addroommember getroomcount getroominfo setroominfo"}
PIPELINES=${PIPELINES:-"1 16"}
DURABLE=${DURABLE:-}
LOADTEST=target/release/rtm-loadtest
[ -x "$LOADTEST" ] || cargo build --release -q -p rtm-loadtest

pids=()
dirs=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for dir in "${dirs[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT

start() { # binary port
    local storage=(--set storage.data_dir=)
    if [ -n "$DURABLE" ]; then
        local dir
        dir=$(mktemp -d /tmp/ab-data.XXXXXX)
        dirs+=("$dir")
        storage=(--set "storage.data_dir=$dir" --set storage.fsync=always)
    fi
    # Both servers run at once: their client gates (and a newer build's
    # WebSocket endpoint) must not share the default ports.
    local gates=(--set "gates.client.listeners=[{addr=\"127.0.0.1:$(($2 + 100))\"}]")
    if "$1" print-config 2>/dev/null | grep -q websocket_listeners; then
        gates+=(--set "gates.client.websocket_listeners=[]")
    fi
    "$1" --listen "127.0.0.1:$2" "${storage[@]}" "${gates[@]}" --set metrics.listen= --log-level warn >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        "$LOADTEST" --addr "127.0.0.1:$2" -c 1 -n 1 op ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not start" >&2
    exit 1
}

start "$OLD" 23401
start "$NEW" 23402

run() { # port op pipeline → "rate p99_ms"
    "$LOADTEST" --addr "127.0.0.1:$1" -c "$CONNECTIONS" -P "$3" -d "${DURATION}s" --rooms 10000 --uids 10000 --json op "$2" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.3f" % (r["rate"], r["latency_us"]["p99"] / 1000))'
}

summary=()
for op in $OPS; do
    for pipeline in $PIPELINES; do
        old_rates=()
        new_rates=()
        for round in $(seq "$ROUNDS"); do
            # Alternate which goes first, so neither always follows the other.
            if (( round % 2 )); then order="old new"; else order="new old"; fi
            for which in $order; do
                port=23401; [ "$which" = new ] && port=23402
                read -r rate p99 <<<"$(run "$port" "$op" "$pipeline")"
                echo "$op P=$pipeline round $round $which: $rate req/s, p99 $p99 ms" >&2
                if [ "$which" = old ]; then old_rates+=("$rate"); else new_rates+=("$rate"); fi
            done
        done
        summary+=("$(python3 - "$op" "$pipeline" "${old_rates[*]}" "${new_rates[*]}" <<'PY'
import statistics, sys
op, p, old, new = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
mo, mn = statistics.median(old), statistics.median(new)
print(f"{op:16} P={p:>2}  old median {mo:>9.0f}  new median {mn:>9.0f}  change {100 * (mn / mo - 1):+6.1f}%  "
      f"(old {min(old):.0f}-{max(old):.0f}, new {min(new):.0f}-{max(new):.0f})")
PY
)")
    done
done
printf '%s\n' "${summary[@]}"
