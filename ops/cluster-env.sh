# Sourced by ops/start-cluster.sh, ops/test-cluster.sh and ops/stop-cluster.sh: where a local cluster
# lives and how its nodes are named and numbered. Owns no logic beyond that; starts nothing.
#   STARCITE_CLUSTER_STATE  state directory (default ops/.cluster): per node n<i>/ (data), n<i>.log,
#                           n<i>.pid (process group id), n<i>.url; secret, size, archive/
#   STARCITE_API_BASE_PORT  API port of node 1 (default 4000; node i gets base + i - 1)
#   STARCITE_PEER_BASE_PORT peer port of node 1 (default 4400)
# Nodes that are not local processes (containers, hosts): a command line in which {node} stands for
# the node's name (n<i>); $STATE then only needs `size` and n<i>.url (each node's API URL).
#   STARCITE_NODE_OPS       runs `starcite ops ARGS...` on the node, ARGS appended, e.g.
#                           'podman exec starcite-{node} starcite ops' (default: the local ops socket)
#   STARCITE_NODE_RESTART   restarts the node gracefully (SIGTERM, bounded wait, start), e.g.
#                           'podman restart --time 30 starcite-{node}' (default: stop_node, launch_node)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STATE=${STARCITE_CLUSTER_STATE:-ops/.cluster}
BIN=${STARCITE_BIN:-.venv/bin/starcite}
PY=${STARCITE_PY:-.venv/bin/python}
API_BASE=${STARCITE_API_BASE_PORT:-4000}
PEER_BASE=${STARCITE_PEER_BASE_PORT:-4400}

# The names of the nodes recorded in $STATE (n1 n2 ...), in order.
recorded_nodes() {
  local size
  size=$(cat "$STATE/size" 2>/dev/null || echo 0)
  for i in $(seq 1 "$size"); do echo "n$i"; done
}

# Whether process group $1 has a live member (zombies, left for a reaper that has not run yet, are not).
# (Processes come and go while /proc is read: a vanished one is skipped, and not a failure of the pipe.)
group_alive() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed -E 's/^[0-9]+ \(.*\) //' \
    | awk -v g="$1" '$3 == g && $1 != "Z" { f = 1 } END { exit !f }'
}

# Whether node $1's recorded process group is alive.
node_running() {
  [ -e "$STATE/$1.pid" ] && group_alive "$(cat "$STATE/$1.pid")"
}

# Start node $1 (n<i>) in the background as its own process group (setsid), so a stop can signal the
# node and its workers; records its pid and API URL. Every node gets the same CLUSTER_NODES and secret.
launch_node() {
  local name=$1 i=${1#n} size peers="" j cluster_env=()
  size=$(cat "$STATE/size")
  for j in $(seq 1 "$size"); do peers+="${peers:+,}n$j@127.0.0.1:$((PEER_BASE + j - 1))"; done
  [ "$size" = 1 ] || cluster_env=(CLUSTER_NODES="$peers" STARCITE_CLUSTER_SECRET="$(cat "$STATE/secret")")
  env NODE_NAME="$name" PORT=$((API_BASE + i - 1)) STARCITE_HOST=127.0.0.1 STARCITE_DATA_DIR="$STATE/$name" \
    STARCITE_ARCHIVE_ADAPTER=local STARCITE_ARCHIVE_DIR="$STATE/archive" "${cluster_env[@]}" \
    setsid "$BIN" serve >>"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  echo "http://127.0.0.1:$((API_BASE + i - 1))" >"$STATE/$name.url"
}

# SIGTERM node $1's process group (graceful), wait at most STOP_TIMEOUT_S (default 30), then SIGKILL.
# Prints nothing; returns 0 once the group is gone (1 when it had no pid file).
stop_node() {
  local name=$1 pid deadline
  [ -e "$STATE/$name.pid" ] || return 1
  pid=$(cat "$STATE/$name.pid")
  rm -f "$STATE/$name.pid"
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + ${STOP_TIMEOUT_S:-30}))
  while group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if group_alive "$pid"; then
    echo "process group $pid still running after SIGTERM: SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
}

# `starcite ops` against node $1: through its ops socket, or STARCITE_NODE_OPS.
node_ops() {
  local name=$1
  shift
  if [ -n "${STARCITE_NODE_OPS:-}" ]; then
    node_command "$STARCITE_NODE_OPS" "$name" "$@"
  else
    "$BIN" ops "$@" --socket "$STATE/$name/ops.sock"
  fi
}

# Restart node $1 gracefully: STARCITE_NODE_RESTART, or stop_node then launch_node (1: it was not running).
restart_node() {
  local name=$1
  if [ -n "${STARCITE_NODE_RESTART:-}" ]; then
    node_command "$STARCITE_NODE_RESTART" "$name" >/dev/null
  else
    stop_node "$name" || return 1
    launch_node "$name"
  fi
}

# Run the command line $1 with {node} replaced by $2, then the remaining arguments (split on blanks).
node_command() {
  local line=${1//\{node\}/$2}
  shift 2
  local words
  read -r -a words <<<"$line"
  "${words[@]}" "$@"
}
