#!/usr/bin/env bash
# Start an N-node Starcite cluster on loopback: ops/start-cluster.sh [N]   (N = 3 or 5, default 3; 1: one node)
# Node i (1..N) is NODE_NAME=n<i>, API http://127.0.0.1:$((4000 + i - 1)), peer port 4400 + i - 1, with its
# data in ops/.cluster/n<i>/, a generated cluster secret (kept in ops/.cluster/secret) and one shared local
# archive (ops/.cluster/archive). Waits (bounded: READY_TIMEOUT_S, default 60) until every node is ready
# and prints each API URL. On failure it prints the failing node's log tail, stops what it started, exits 1.
# Data is kept between runs (same N); `rm -rf ops/.cluster` after ops/stop-cluster.sh starts afresh.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
n=${1:-3}
case "$n" in 1|3|5) ;; *) echo "usage: $0 [3|5|1]" >&2; exit 2 ;; esac

for pidfile in "$STATE"/n*.pid; do
  [ -e "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && {
    echo "a cluster is already running from $STATE (ops/stop-cluster.sh first)" >&2; exit 1; }
done
mkdir -p "$STATE/archive"
if [ -e "$STATE/size" ] && [ "$(cat "$STATE/size")" != "$n" ]; then
  echo "$STATE holds a $(cat "$STATE/size")-node cluster's data: stop it and remove $STATE first" >&2; exit 1
fi
echo "$n" >"$STATE/size"
[ -s "$STATE/secret" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_hex(24))' >"$STATE/secret")

peers=""
for i in $(seq 1 "$n"); do peers+="${peers:+,}n$i@127.0.0.1:$((PEER_BASE + i - 1))"; done
cluster_env=()
[ "$n" = 1 ] || cluster_env=(CLUSTER_NODES="$peers" STARCITE_CLUSTER_SECRET="$(cat "$STATE/secret")")

waiting=()
for name in $(recorded_nodes); do
  i=${name#n}
  url="http://127.0.0.1:$((API_BASE + i - 1))"
  # setsid: each node leads its own process group, so stop-cluster.sh can signal the node and its workers.
  env NODE_NAME="$name" PORT=$((API_BASE + i - 1)) STARCITE_HOST=127.0.0.1 STARCITE_DATA_DIR="$STATE/$name" \
    STARCITE_ARCHIVE_ADAPTER=local STARCITE_ARCHIVE_DIR="$STATE/archive" "${cluster_env[@]}" \
    setsid "$BIN" serve >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  echo "$url" >"$STATE/$name.url"
  waiting+=("$name=$!=$url")
done

if ! "$PY" ops/cluster_check.py ready "${READY_TIMEOUT_S:-60}" "${waiting[@]}"; then
  for name in $(recorded_nodes); do echo "--- $STATE/$name.log (tail)"; tail -n 8 "$STATE/$name.log"; done >&2
  "$(dirname "$0")/stop-cluster.sh" >&2
  exit 1
fi
