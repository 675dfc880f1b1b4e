#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 3 masters and 3 replicas
# on loopback ports BASE..BASE+5 (default 17001..17006).
#
#   scripts/redis-cluster.sh start [BASE_PORT]   # idempotent: a running cluster is left as is
#   scripts/redis-cluster.sh stop  [BASE_PORT]
#   scripts/redis-cluster.sh status [BASE_PORT]
#   scripts/redis-cluster.sh start-node PORT [BASE_PORT]   # (re)start one node, e.g. after a kill -9
#
# Data lives in ${RTM_REDIS_DIR:-/tmp/rtm-redis-cluster-BASE}. Node timeout is
# 2 s so a failover takes seconds, not the 15 s default; a replica syncs at
# once (no 5 s diskless-sync delay), so a restarted node is soon a replica
# again; AOF is on with
# fsync every second, as docs/operations.md recommends for production.
set -euo pipefail

cmd=${1:-}
base=${2:-17001}
dir=${RTM_REDIS_DIR:-/tmp/rtm-redis-cluster-$base}
ports=$(seq "$base" $((base + 5)))

need() {
    command -v "$1" >/dev/null || { echo "redis-cluster.sh: '$1' not found; install redis-server (apt-get install redis-server)" >&2; exit 1; }
}

cluster_ok() {
    local port
    for port in $ports; do
        redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
    # Every master has its replica, in sync (a fresh cluster takes a moment).
    [ "$(redis-cli -p "$base" cluster nodes 2>/dev/null | grep -c ' slave ')" -eq 3 ] || return 1
    for port in $ports; do
        if redis-cli -p "$port" info replication 2>/dev/null | grep -q '^role:slave'; then
            redis-cli -p "$port" info replication | grep -q '^master_link_status:up' || return 1
        fi
    done
}

# A node answers PING with an error (LOADING) while it reads its AOF at start;
# only PONG means it takes commands.
node_ready() {
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ]
}

wait_ready() {
    local port=$1
    for _ in $(seq 600); do node_ready "$port" && return; sleep 0.05; done
    echo "redis-cluster.sh: node $port not ready after 30 s; log in $dir/$port/redis.log" >&2
    return 1
}

start_node() {
    local port=$1
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        wait_ready "$port"
        return
    fi
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
        --dir "$dir/$port" --logfile "$dir/$port/redis.log" --pidfile "$dir/$port/redis.pid" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync everysec --save '' --repl-diskless-sync-delay 0
    wait_ready "$port"
}

start() {
    need redis-server
    need redis-cli
    if cluster_ok; then
        echo "redis cluster already up on 127.0.0.1:$base-$((base + 5))"
        return
    fi
    mkdir -p "$dir"
    local port
    for port in $ports; do
        start_node "$port"
    done
    if ! redis-cli -p "$base" cluster info | grep -q '^cluster_slots_assigned:16384'; then
        local nodes=()
        for port in $ports; do nodes+=("127.0.0.1:$port"); done
        if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
            # A half-made cluster cannot be created over; start once more from empty nodes.
            echo "redis-cluster.sh: cluster create failed, retrying from empty nodes:" >&2
            cat "$dir/create.log" >&2
            for port in $ports; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
            sleep 0.5
            rm -rf "$dir"
            mkdir -p "$dir"
            for port in $ports; do start_node "$port"; done
            redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
                || { cat "$dir/create.log" >&2; exit 1; }
        fi
    fi
    for _ in $(seq 200); do
        cluster_ok && { echo "redis cluster up on 127.0.0.1:$base-$((base + 5)) (data in $dir)"; return; }
        sleep 0.1
    done
    echo "redis-cluster.sh: cluster did not reach state ok; logs in $dir/*/redis.log" >&2
    exit 1
}

stop() {
    local port
    for port in $ports; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
    echo "redis cluster on 127.0.0.1:$base-$((base + 5)) stopped"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) cluster_ok && echo up || { echo down; exit 1; } ;;
    start-node)
        [ -n "${2:-}" ] || { echo "usage: $0 start-node PORT [BASE_PORT]" >&2; exit 2; }
        base=${3:-17001}
        dir=${RTM_REDIS_DIR:-/tmp/rtm-redis-cluster-$base}
        start_node "$2"
        ;;
    *) echo "usage: $0 start|stop|status|start-node [BASE_PORT]" >&2; exit 2 ;;
esac
