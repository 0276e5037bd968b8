#!/usr/bin/env bash
# Stop the local cluster started by ops/start-cluster.sh: SIGTERM to every node's process group (graceful:
# in-flight appends finish, the archive is flushed), a bounded wait (STOP_TIMEOUT_S, default 30), then
# SIGKILL to whatever is left. Data stays in ops/.cluster/. Exits 0 when nothing is left running.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
pids=()
for name in $(recorded_nodes); do
  [ -e "$STATE/$name.pid" ] || continue
  pid=$(cat "$STATE/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null && pids+=("$pid")
  rm -f "$STATE/$name.pid"
done

group_alive() { kill -0 -- "-$1" 2>/dev/null; }
deadline=$((SECONDS + ${STOP_TIMEOUT_S:-30}))
for pid in "${pids[@]}"; do
  while group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if group_alive "$pid"; then
    echo "process group $pid still running after SIGTERM: SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
done
echo "stopped ${#pids[@]} node(s)"
