#!/usr/bin/env bash
# Stop one node of the local cluster gracefully: ops/stop-node.sh n<i>. SIGTERM to its process group
# (in-flight appends finish, the archive is flushed, the journals synced), a bounded wait (STOP_TIMEOUT_S,
# default 30), then SIGKILL. The others keep running; ops/start-cluster.sh starts it again.
set -euo pipefail
source "$(dirname "$0")/cluster-env.sh"
[ $# -eq 1 ] || { echo "usage: $0 n<i>" >&2; exit 2; }
stop_node "$1" || { echo "$1 is not running from $STATE" >&2; exit 1; }
echo "stopped $1"
