#!/usr/bin/env bash
# Start an N-node Starcite cluster on loopback: ops/start-cluster.sh [N]   (N = 3 or 5, default 3; 1: one node)
# Node i (1..N) is NODE_NAME=n<i>, API http://127.0.0.1:$((4000 + i - 1)), peer port 4400 + i - 1, with its
# data in ops/.cluster/n<i>/, a generated cluster secret (kept in ops/.cluster/secret) and one shared local
# archive (ops/.cluster/archive). Waits (bounded: READY_TIMEOUT_S, default 60) until every node is ready
# and prints each API URL. On failure it prints the failing node's log tail, stops what it started, exits 1.
# Data is kept between runs (same N); `rm -rf ops/.cluster` after ops/stop-cluster.sh starts afresh.
# With the cluster running it starts only the nodes that are not (a node killed in a drill: it replays its
# journal and catches up), leaves the others alone and waits until all of them are ready; N defaults to
# the recorded size then. Each node holds its data directory's lock: a node still alive is never doubled.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
n=${1:-$(cat "$STATE/size" 2>/dev/null || echo 3)}
case "$n" in 1|3|5) ;; *) echo "usage: $0 [3|5|1]" >&2; exit 2 ;; esac

mkdir -p "$STATE/archive"
if [ -e "$STATE/size" ] && [ "$(cat "$STATE/size")" != "$n" ]; then
  echo "$STATE holds a $(cat "$STATE/size")-node cluster's data: stop it and remove $STATE first" >&2; exit 1
fi
echo "$n" >"$STATE/size"
[ -s "$STATE/secret" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_hex(24))' >"$STATE/secret")

waiting=()
started=()
for name in $(recorded_nodes); do
  if node_running "$name"; then
    echo "$name: already running"
  else
    : >"$STATE/$name.log"
    launch_node "$name"
    started+=("$name")
  fi
  waiting+=("$name=$(cat "$STATE/$name.pid")=$(cat "$STATE/$name.url")")
done
[ "${#started[@]}" -gt 0 ] || { echo "every node of the cluster in $STATE is already running"; exit 0; }

if ! "$PY" ops/cluster_check.py ready "${READY_TIMEOUT_S:-60}" "${waiting[@]}"; then
  for name in "${started[@]}"; do echo "--- $STATE/$name.log (tail)"; tail -n 8 "$STATE/$name.log"; done >&2
  for name in "${started[@]}"; do stop_node "$name" || true; done
  exit 1
fi
