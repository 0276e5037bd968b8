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

waiting=()
for name in $(recorded_nodes); do
  : >"$STATE/$name.log"
  launch_node "$name"
  waiting+=("$name=$(cat "$STATE/$name.pid")=$(cat "$STATE/$name.url")")
done

if ! "$PY" ops/cluster_check.py ready "${READY_TIMEOUT_S:-60}" "${waiting[@]}"; then
  for name in $(recorded_nodes); do echo "--- $STATE/$name.log (tail)"; tail -n 8 "$STATE/$name.log"; done >&2
  "$(dirname "$0")/stop-cluster.sh" >&2
  exit 1
fi
