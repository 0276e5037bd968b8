#!/usr/bin/env bash
# Stop the local cluster started by ops/start-cluster.sh: SIGTERM to every node's process group (graceful:
# in-flight appends finish, the archive is flushed), a bounded wait (STOP_TIMEOUT_S, default 30), then
# SIGKILL to whatever is left. Data stays in ops/.cluster/. Exits 0 when nothing is left running.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
stopped=0
for name in $(recorded_nodes); do
  stop_node "$name" && stopped=$((stopped + 1))
done
echo "stopped $stopped node(s)"
