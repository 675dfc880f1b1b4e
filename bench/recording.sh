#!/usr/bin/env bash
# Recording benchmarks (docs/performance.md, "Recording"): sendroommsg
# throughput over 100 rooms with none of them recorded, and with every one
# recorded (`mix`), alternating round by round on a fresh durable server
# (fsync always, history on); and the recording lag (message accepted to
# its line synced in a file) from the server's rtm_recording_lag_seconds.
#
#   bench/recording.sh
#   ROUNDS=3 DURATION=10 ROOMS=100 PIPELINES="1 16" bench/recording.sh
#
# Never part of CI. Uses spare ports and a scratch directory; stops what it
# started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
ROOMS=${ROOMS:-100}
CONNECTIONS=${CONNECTIONS:-50}
PIPELINES=${PIPELINES:-"1 16"}
PORT=${PORT:-23601}
METRICS=${METRICS:-23690}
DATA=$(mktemp -d /tmp/rtm-recording-bench.XXXXXX)

cargo build --release -q -p rtm-server -p rtm-loadtest
SERVER=target/release/rtm-server
LOADTEST=target/release/rtm-loadtest

pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT

start() {
    rm -rf "$DATA"/*
    "$SERVER" --listen "127.0.0.1:$PORT" --set "gates.client.listeners=[{addr=\"127.0.0.1:$((PORT + 1))\"}]" \
        --set "gates.client.websocket_listeners=[]" --set "storage.data_dir=$DATA/data" \
        --set "recording.requests_per_second=100000" --set "metrics.listen=127.0.0.1:$METRICS" \
        --log-level warn >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        "$LOADTEST" --addr "127.0.0.1:$PORT" -c 1 -n 1 op ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the server did not start" >&2
    exit 1
}

stop() {
    kill "$pid" && wait "$pid" 2>/dev/null || true
    pid=
}

run() { # recorded pipeline → "rate p99_ms lag_p50_ms lag_p99_ms lines"
    start
    local record=()
    [ "$1" = yes ] && record=(--record-rooms "$ROOMS")
    local result
    result=$("$LOADTEST" --addr "127.0.0.1:$PORT" "${record[@]}" -c "$CONNECTIONS" -P "$2" -d "${DURATION}s" \
        --rooms "$ROOMS" --json op sendroommsg 2>/dev/null)
    sleep 0.5 # the last pass
    local metrics
    metrics=$(curl -s "http://127.0.0.1:$METRICS/metrics")
    stop
    python3 - "$result" "$metrics" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
buckets, count = [], 0.0
for line in sys.argv[2].splitlines():
    if line.startswith("rtm_recording_lag_seconds_bucket"):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    if line.startswith("rtm_recording_lag_seconds_count"):
        count = float(line.split()[-1])
def quantile(q):
    # Linear within the bucket, as Prometheus' histogram_quantile does.
    if count == 0:
        return 0.0
    rank, lo, below = q * count, 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                return lo * 1000
            return (lo + (le - lo) * (rank - below) / max(cum - below, 1e-9)) * 1000
        lo, below = le, cum
    return lo * 1000
print("%.0f %.3f %.1f %.1f %.0f" % (r["rate"], r["latency_us"]["p99"] / 1000, quantile(0.5), quantile(0.99), count))
PY
}

summary=()
for pipeline in $PIPELINES; do
    plain=()
    recorded=()
    for round in $(seq "$ROUNDS"); do
        if (( round % 2 )); then order="no yes"; else order="yes no"; fi
        for which in $order; do
            read -r rate p99 lag50 lag99 lines <<<"$(run "$which" "$pipeline")"
            if [ "$which" = yes ]; then
                echo "P=$pipeline round $round recorded: $rate sends/s, p99 $p99 ms; lag p50 $lag50 ms, p99 $lag99 ms over $lines lines" >&2
                recorded+=("$rate")
            else
                echo "P=$pipeline round $round not recorded: $rate sends/s, p99 $p99 ms" >&2
                plain+=("$rate")
            fi
        done
    done
    summary+=("$(python3 - "$pipeline" "${plain[*]}" "${recorded[*]}" <<'PY'
import statistics, sys
p, plain, rec = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
mp, mr = statistics.median(plain), statistics.median(rec)
print(f"P={p:>2}  not recorded {mp:>8.0f}/s  recorded {mr:>8.0f}/s  {100 * mr / mp:5.1f}%  "
      f"(not {min(plain):.0f}-{max(plain):.0f}, rec {min(rec):.0f}-{max(rec):.0f})")
PY
)")
done
printf '%s\n' "${summary[@]}"
