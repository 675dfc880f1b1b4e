#!/usr/bin/env bash
# Instructions per request of two rtm-server builds, counted by callgrind:
# unlike req/s, the count does not move with the machine's load, so a
# refactor's cost can be checked on a busy 2-core box.
#
#   bench/instructions-ab.sh OLD_BINARY NEW_BINARY
#   OPS="addroommember getroomcount" PIPELINES="1 16" N=20000 bench/instructions-ab.sh old new
#
# Each build runs under `valgrind --tool=callgrind` (in memory), takes N
# and then 2N requests of each operation on fresh servers, and the
# difference divided by N is the cost of one request (start-up cancels
# out). Needs valgrind (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=$1
NEW=$2
N=${N:-20000}
OPS=${OPS:-"addroommember getroomcount getroominfo setroominfo"}
PIPELINES=${PIPELINES:-"1 16"}
PORT=${PORT:-23451}
LOADTEST=target/release/rtm-loadtest
[ -x "$LOADTEST" ] || cargo build --release -q -p rtm-loadtest
OUT=$(mktemp -d /tmp/instructions-ab.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

count() { # binary op pipeline requests → instructions
    local file="$OUT/callgrind.out"
    rm -f "$file"
    local extra=()
    # Builds with a client gate: keep it off the default port.
    if "$1" print-config 2>/dev/null | grep -q '^\[gates.client\]'; then
        extra=(--set 'gates.client.listeners=[{addr = "127.0.0.1:0"}]')
    fi
    valgrind --tool=callgrind --callgrind-out-file="$file" "$1" --listen "127.0.0.1:$PORT" \
        --set storage.data_dir= --set metrics.listen= --log-level error "${extra[@]}" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 300); do
        "$LOADTEST" --addr "127.0.0.1:$PORT" -c 1 -n 1 op ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$LOADTEST" --addr "127.0.0.1:$PORT" -c 10 -P "$3" -n "$4" --rooms 10000 --uids 10000 op "$2" >/dev/null 2>&1
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    sed -n 's/^summary: //p' "$file" | head -1
}

printf '%-16s %3s %14s %14s %8s\n' operation P "old instr/req" "new instr/req" change
for op in $OPS; do
    for p in $PIPELINES; do
        per_request() { # binary
            local one two
            one=$(count "$1" "$op" "$p" "$N")
            two=$(count "$1" "$op" "$p" $((2 * N)))
            echo $(( (two - one) / N ))
        }
        old=$(per_request "$OLD")
        new=$(per_request "$NEW")
        change=$(python3 -c "print('%+.1f%%' % (100 * ($new / $old - 1)))")
        printf '%-16s %3s %14s %14s %8s\n' "$op" "$p" "$old" "$new" "$change"
    done
done
