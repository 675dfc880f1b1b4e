#!/usr/bin/env bash
# Requests per second over plain FPNN, FPNN `*key` (package and stream mode)
# and TLS, against one in-memory server, in one run: the variants alternate
# round by round so that drift of the machine hits all alike. Prints each
# run and the median per variant, with its ratio to plain.
#
#   bench/encryption.sh
#   ROUNDS=5 DURATION=5 OP=getroomcount PIPELINES="1 16" BITS=128 CURVE=secp256k1 bench/encryption.sh
#
# Makes a throw-away key pair (rtm-server keygen) and a self-signed TLS
# certificate (openssl) in a temporary directory; every process started
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
OP=${OP:-getroomcount}
PIPELINES=${PIPELINES:-"1 16"}
BITS=${BITS:-128}
CURVE=${CURVE:-secp256k1}
SERVER=target/release/rtm-server
LOADTEST=target/release/rtm-loadtest
[ -x "$SERVER" ] && [ -x "$LOADTEST" ] || cargo build --release -q -p rtm-server -p rtm-loadtest

work=$(mktemp -d /tmp/rtm-encryption-bench.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$SERVER" keygen --curve "$CURVE" --out "$work" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE -keyout "$work/tls-key.pem" -out "$work/tls-cert.pem" 2>/dev/null

PLAIN=127.0.0.1:23501
TLS=127.0.0.1:23502
"$SERVER" --set storage.data_dir= --set metrics.listen= --log-level warn \
    --set "gates.server.listeners=[{addr=\"$PLAIN\"},{addr=\"$TLS\",tls=true}]" \
    --set "gates.client.listeners=[{addr=\"127.0.0.1:23521\"}]" --set "gates.client.websocket_listeners=[]" \
    --set "tls.cert_path=$work/tls-cert.pem" --set "tls.key_path=$work/tls-key.pem" \
    --set "gates.server.ecdh.key_path=$work/server-key.bin" --set "gates.server.ecdh.curve=$CURVE" \
    >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do
    "$LOADTEST" --addr "$PLAIN" -c 1 -n 1 op ping >/dev/null 2>&1 && break
    sleep 0.1
done

run() { # variant pipeline → "rate p99_ms"
    local how=()
    case $1 in
        plain) how=(--addr "$PLAIN") ;;
        package | stream) how=(--addr "$PLAIN" --encrypt "$work/server-public.pem" --encrypt-mode "$1" --encrypt-bits "$BITS") ;;
        tls) how=(--addr "$TLS" --tls-ca "$work/tls-cert.pem") ;;
    esac
    "$LOADTEST" "${how[@]}" -c "$CONNECTIONS" -P "$2" -d "${DURATION}s" --rooms 10000 --uids 10000 --json op "$OP" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.3f" % (r["rate"], r["latency_us"]["p99"] / 1000))'
}

VARIANTS=(plain package stream tls)
summary=()
for pipeline in $PIPELINES; do
    declare -A rates=()
    for round in $(seq "$ROUNDS"); do
        # Rotate the order each round, so no variant always follows another.
        for i in "${!VARIANTS[@]}"; do
            variant=${VARIANTS[$(((i + round) % ${#VARIANTS[@]}))]}
            read -r rate p99 <<<"$(run "$variant" "$pipeline")"
            echo "$OP P=$pipeline round $round $variant: $rate req/s, p99 $p99 ms" >&2
            rates[$variant]="${rates[$variant]:-} $rate"
        done
    done
    summary+=("$(python3 - "$pipeline" "${rates[plain]}" "${rates[package]}" "${rates[stream]}" "${rates[tls]}" <<'PY'
import statistics, sys
p = sys.argv[1]
runs = {name: [float(x) for x in sys.argv[i].split()] for i, name in enumerate(["plain", "package", "stream", "tls"], 2)}
plain = statistics.median(runs["plain"])
for name, rates in runs.items():
    m = statistics.median(rates)
    print(f"P={p:>2} {name:8} median {m:>9.0f} req/s  {100 * m / plain:5.1f}% of plain  ({min(rates):.0f}-{max(rates):.0f})")
PY
)")
    unset rates
done
printf '%s\n' "${summary[@]}"
