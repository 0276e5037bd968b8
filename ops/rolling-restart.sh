#!/usr/bin/env bash
# Rolling restart of the local cluster (ops/start-cluster.sh first), one write node at a time, as the
# self-hosting runbook has it: drain, wait until every node agrees it is drained, restart, wait until it
# has synced, undrain, wait ready, verify that every write node is ready, next.
#   ops/rolling-restart.sh [node ...]       default: every node, n1 first
# Nodes in containers (or elsewhere): set STARCITE_NODE_OPS and STARCITE_NODE_RESTART (ops/cluster-env.sh),
# and write $STATE/size and $STATE/n<i>.url; docs/containers.md has a podman example.
# Bounded: DRAIN_TIMEOUT_MS (30000), READY_TIMEOUT_MS (60000), STOP_TIMEOUT_S (30). Exits non-zero at the
# first step that fails, leaving the remaining nodes untouched.
# Behind a load balancer that health-checks /health/ready, set LB_DRAIN_WAIT_S (default 0) to at least its
# checks' fall x interval (ops/haproxy.cfg: 2 x 1 s, so 3): once drained, the node is restarted only after
# the balancer has taken it out, so no new request is sent to a node that is stopping.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
nodes=("$@")
[ "${#nodes[@]}" -gt 0 ] || mapfile -t nodes < <(recorded_nodes)
[ "${#nodes[@]}" -gt 0 ] || { echo "no cluster recorded in $STATE (ops/start-cluster.sh first)" >&2; exit 1; }
drain_ms=${DRAIN_TIMEOUT_MS:-30000}
ready_ms=${READY_TIMEOUT_MS:-60000}
size=$(cat "$STATE/size")

step() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$1" "$2"; }

for name in "${nodes[@]}"; do
  step "$name" "drain"
  node_ops "$name" drain >/dev/null || {
    step "$name" "cannot drain it: not running? (ops/start-cluster.sh starts the missing nodes)"; exit 1; }
  node_ops "$name" wait-drained "$drain_ms" >/dev/null || { step "$name" "drain did not converge"; exit 1; }
  if [ "${LB_DRAIN_WAIT_S:-0}" != 0 ]; then
    step "$name" "drained on every node; ${LB_DRAIN_WAIT_S} s for the load balancer to take it out"
    sleep "$LB_DRAIN_WAIT_S"
  fi
  step "$name" "drained on every node; restarting"
  restart_node "$name" || { step "$name" "not running, or its restart failed"; exit 1; }
  # Back up: it reports "draining" (sticky) once it has synced its groups; then undrain.
  deadline=$((SECONDS + ready_ms / 1000))
  until [ "$("$PY" -c 'import json,sys,urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/health/ready", timeout=2)
    print("ok")
except urllib.error.HTTPError as e:
    print(json.loads(e.read()).get("reason"))
except Exception:
    print("down")' "$(cat "$STATE/$name.url")")" = draining ]; do
    [ "$SECONDS" -lt "$deadline" ] || { step "$name" "did not come back synced"; exit 1; }
    sleep 0.2
  done
  step "$name" "synced; undrain"
  node_ops "$name" undrain >/dev/null
  node_ops "$name" wait-ready "$ready_ms" >/dev/null || { step "$name" "not ready"; exit 1; }
  # Every write node ready, as this node's observer sees it: polled (bounded by READY_TIMEOUT_MS), since
  # a peer link that the restart cut may take a moment to come back after the node itself is ready.
  deadline=$((SECONDS + ready_ms / 1000))
  until ready=$(node_ops "$name" ready-nodes | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["ready_nodes"]))') \
      && [ "$ready" = "$size" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { step "$name" "only ${ready:-?} of $size write nodes ready"; exit 1; }
    sleep 0.2
  done
  step "$name" "ready; $ready of $size write nodes ready"
done
step all "rolled ${#nodes[@]} node(s)"
