#!/usr/bin/env bash
# Exercise the running local cluster across its nodes (ops/start-cluster.sh first): create a session on
# n1, append 100 events on n2, tail them over WebSocket on n3, list sessions on the last node; checks the
# seqs (1..100) and exits non-zero on any failure.
#   ops/test-cluster.sh [node ...]   only through these nodes (e.g. n1 n2 while n3 is down in a drill)
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
nodes=("$@")
[ "${#nodes[@]}" -gt 0 ] || mapfile -t nodes < <(recorded_nodes)
urls=()
for name in "${nodes[@]}"; do
  [ -e "$STATE/$name.url" ] || { echo "no node $name recorded in $STATE" >&2; exit 1; }
  urls+=("$(cat "$STATE/$name.url")")
done
[ "${#urls[@]}" -gt 0 ] || { echo "no cluster recorded in $STATE (ops/start-cluster.sh first)" >&2; exit 1; }
exec "$PY" ops/cluster_check.py exercise "${urls[@]}"
