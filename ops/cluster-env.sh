# Sourced by ops/start-cluster.sh, ops/test-cluster.sh and ops/stop-cluster.sh: where a local cluster
# lives and how its nodes are named and numbered. Owns no logic beyond that; starts nothing.
#   STARCITE_CLUSTER_STATE  state directory (default ops/.cluster): per node n<i>/ (data), n<i>.log,
#                           n<i>.pid (process group id), n<i>.url; secret, size, archive/
#   STARCITE_API_BASE_PORT  API port of node 1 (default 4000; node i gets base + i - 1)
#   STARCITE_PEER_BASE_PORT peer port of node 1 (default 4400)
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
