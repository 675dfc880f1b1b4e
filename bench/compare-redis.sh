#!/usr/bin/env bash
# Side-by-side benchmark: rtm-server against Redis, on loopback, with the
# same connection count and pipeline depth, then the memory of 10,000 rooms
# x 100 members in each.
#
#   bench/compare-redis.sh            # from the repository root or anywhere
#   DURATION=5 bench/compare-redis.sh # shorter runs
#   BASELINE=/path/to/old/rtm-server bench/compare-redis.sh
#                                     # also measures an earlier build, in the
#                                     # same run, alternating with this one
#
# It installs redis-server from the distribution if missing, builds the
# release binaries, starts both servers on spare ports, and stops every
# process it started (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}          # seconds per rtm-server measurement
CONNECTIONS=${CONNECTIONS:-50}
RTM_PORT=${RTM_PORT:-23321}
REDIS_PORT=${REDIS_PORT:-26379}
KEYSPACE=10000                    # rooms and uids are drawn from 1..10000 on both sides
BASELINE=${BASELINE:-}            # an earlier rtm-server binary to compare with
BASE_PORT=$((RTM_PORT + 1))

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server from the distribution..." >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

echo "building release binaries..." >&2
cargo build --release -q -p rtm-server -p rtm-loadtest
RTM_SERVER=target/release/rtm-server
LOADTEST=target/release/rtm-loadtest

start_server() { # binary port log; sets SERVER_PID
    # In memory, like the Redis side (no RDB, no AOF); see docs/performance.md
    # for the durable policies.
    "$1" --listen "127.0.0.1:$2" --set storage.data_dir= --set metrics.listen= --log-level warn >"$3" 2>&1 &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    for _ in $(seq 50); do
        "$LOADTEST" --addr "127.0.0.1:$2" -c 1 -n 1 op ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not start; see $3" >&2
    exit 1
}

start_rtm() {
    start_server "$RTM_SERVER" "$RTM_PORT" /tmp/compare-rtm.log
    RTM_PID=$SERVER_PID
}

stop_rtm() {
    kill "$RTM_PID" 2>/dev/null || true
    wait "$RTM_PID" 2>/dev/null || true
}

start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        >/tmp/compare-redis.log 2>&1 &
    REDIS_PID=$!
    pids+=("$REDIS_PID")
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not start; see /tmp/compare-redis.log" >&2
    exit 1
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# rtm: prints "rate p99_ms"
rtm_run() { # op pipeline [extra args...]
    rtm_run_on "$RTM_PORT" "$@"
}

rtm_run_on() { # port op pipeline [extra args...]
    local port=$1 op=$2 pipeline=$3
    shift 3
    "$LOADTEST" --addr "127.0.0.1:$port" -c "$CONNECTIONS" -P "$pipeline" -d "${DURATION}s" \
        --rooms "$KEYSPACE" --uids "$KEYSPACE" --json "$@" op "$op" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.3f" % (r["rate"], r["latency_us"]["p99"] / 1000))'
}

# redis: prints "rate p99_ms"
redis_run() { # pipeline command...
    local pipeline=$1
    shift
    # Enough requests for a run of about DURATION seconds at Redis's usual rate.
    local n=$(( (pipeline == 1 ? 80000 : 500000) * DURATION ))
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" -P "$pipeline" -n "$n" -r "$KEYSPACE" --csv "$@" |
        python3 -c 'import csv,sys; rows=list(csv.reader(sys.stdin)); h=rows[0]; r=rows[-1]; print("%.0f %.3f" % (float(r[h.index("rps")]), float(r[h.index("p99_latency_ms")])))'
}

start_rtm
start_redis
if [ -n "$BASELINE" ]; then
    start_server "$BASELINE" "$BASE_PORT" /tmp/compare-baseline.log
fi
rcli sadd members20 $(seq 1 20) >/dev/null
rcli sadd members100 $(seq 1 100) >/dev/null

pairs=(
    "addroommember||SADD room:__rand_int__ __rand_int__"
    "delroommember||SREM room:__rand_int__ __rand_int__"
    "getroomcount||SCARD room:__rand_int__"
    "isbanofroom||EXISTS ban:__rand_int__:__rand_int__ ban:all:__rand_int__"
    "getroommembers|--room-size 20|SMEMBERS members20"
    "getroommembers|--room-size 100|SMEMBERS members100"
    "setroominfo||HSET roominfo:__rand_int__ oinfo room-info-value"
    "getroominfo||HGET roominfo:__rand_int__ oinfo"
    "addroomban||SET ban:__rand_int__:__rand_int__ 1 EX 60"
)

results=()
baseline=()
for pipeline in 1 16; do
    for pair in "${pairs[@]}"; do
        IFS='|' read -r op extra redis_cmd <<<"$pair"
        label="$op"
        [ -n "$extra" ] && label="$op (${extra#--room-size } members)"
        echo "measuring $label, pipeline $pipeline..." >&2
        # shellcheck disable=SC2086
        read -r rtm_rate rtm_p99 <<<"$(rtm_run "$op" "$pipeline" $extra)"
        # shellcheck disable=SC2086
        read -r redis_rate redis_p99 <<<"$(redis_run "$pipeline" $redis_cmd)"
        results+=("$label|${redis_cmd%% *}|$pipeline|$rtm_rate|$redis_rate|$rtm_p99|$redis_p99")
        if [ -n "$BASELINE" ]; then
            # shellcheck disable=SC2086
            read -r base_rate base_p99 <<<"$(rtm_run_on "$BASE_PORT" "$op" "$pipeline" $extra)"
            # And this build once more, after the baseline, to see the drift.
            # shellcheck disable=SC2086
            read -r again_rate again_p99 <<<"$(rtm_run "$op" "$pipeline" $extra)"
            baseline+=("$label|$pipeline|$rtm_rate|$again_rate|$base_rate|$rtm_p99|$again_p99|$base_p99")
        fi
    done
done

# Memory: 10,000 rooms x 100 members, the same integer uids on both sides
# (member k of room r is r*100+k), on fresh servers.
echo "measuring memory..." >&2
stop_rtm
start_rtm
rtm_mem=$("$LOADTEST" --addr "127.0.0.1:$RTM_PORT" -c 8 --rooms 10000 --server-pid "$RTM_PID" --json fill --members 100 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["rss_after"]-r["rss_before"])')
rcli flushall >/dev/null
redis_before=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
redis_rss_before=$(rcli info memory | sed -n 's/^used_memory_rss:\([0-9]*\).*/\1/p')
python3 - "$REDIS_PORT" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
out = sys.stdout.buffer
for r in range(1, 10001):
    args = [b"SADD", b"room:%d" % r] + [b"%d" % (r * 100 + k) for k in range(100)]
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
PY
redis_after=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
redis_rss_after=$(rcli info memory | sed -n 's/^used_memory_rss:\([0-9]*\).*/\1/p')
redis_mem=$((redis_after - redis_before))
redis_rss=$((redis_rss_after - redis_rss_before))

echo
printf '%-30s %-9s %3s %12s %12s %7s %11s %11s\n' "rtm-server operation" "redis" "P" "rtm req/s" "redis req/s" "ratio" "rtm p99 ms" "redis p99"
for row in "${results[@]}"; do
    IFS='|' read -r label cmd pipeline rtm_rate redis_rate rtm_p99 redis_p99 <<<"$row"
    ratio=$(python3 -c "print('%.2fx' % ($rtm_rate / $redis_rate))")
    printf '%-30s %-9s %3s %12s %12s %7s %11s %11s\n' "$label" "$cmd" "$pipeline" "$rtm_rate" "$redis_rate" "$ratio" "$rtm_p99" "$redis_p99"
done
if [ -n "$BASELINE" ]; then
    echo
    echo "this build (measured before and after the baseline) against $BASELINE:"
    printf '%-30s %3s %12s %12s %12s %8s %10s %10s\n' "operation" "P" "this req/s" "again" "baseline" "change" "p99 this" "p99 base"
    for row in "${baseline[@]}"; do
        IFS='|' read -r label pipeline rate again base p99 again_p99 base_p99 <<<"$row"
        change=$(python3 -c "print('%+.1f%%' % (100 * (($rate + $again) / 2 / $base - 1)))")
        printf '%-30s %3s %12s %12s %12s %8s %10s %10s\n' "$label" "$pipeline" "$rate" "$again" "$base" "$change" "$p99" "$base_p99"
    done
fi
echo
python3 - "$rtm_mem" "$redis_mem" "$redis_rss" <<'PY'
import sys
rtm, redis, redis_rss = (int(x) for x in sys.argv[1:])
mib = lambda b: b / 1048576
print(f"memory for 10,000 rooms x 100 members (1M memberships):")
print(f"  rtm-server RSS growth     {mib(rtm):7.1f} MiB  ({rtm / 1e6:.1f} bytes per membership)")
print(f"  redis used_memory growth  {mib(redis):7.1f} MiB  ({redis / 1e6:.1f} bytes per membership)")
print(f"  redis RSS growth          {mib(redis_rss):7.1f} MiB")
print(f"  ratio rtm / redis (used_memory)  {rtm / redis:.2f}x")
PY
