#!/usr/bin/env bash
# Start, exercise and stop local Starcite nodes on loopback.
#   ops/local.sh start [N]    start N nodes (ports 4000+i, data in ops/.local/node-i); N=1 today
#   ops/local.sh exercise     create a session, append, tail it back, check seqs
#   ops/local.sh status       ops status of every running node
#   ops/local.sh stop         SIGTERM every node (graceful), wait, report
# Multi-node clusters need the Raft peer transport (the cluster issue); until then N must be 1.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=ops/.local
BIN=${STARCITE_BIN:-.venv/bin/starcite}
PY=${STARCITE_PY:-.venv/bin/python}
cmd=${1:-}
n=${2:-1}

start() {
  [ "$n" = 1 ] || { echo "only single-node today (cluster transport not built yet)"; exit 2; }
  mkdir -p "$STATE"
  for i in $(seq 0 $((n - 1))); do
    port=$((4000 + i))
    PORT=$port STARCITE_DATA_DIR="$STATE/node-$i" NODE_NAME="node-$i" \
      nohup "$BIN" serve >"$STATE/node-$i.log" 2>&1 &
    echo $! >"$STATE/node-$i.pid"
    "$BIN" ops wait-ready 20000 --url "http://127.0.0.1:$port" >/dev/null && echo "node-$i ready on :$port"
  done
}

exercise() {
  "$PY" - <<'PY'
import json, urllib.request, uuid
import websocket
base = "http://127.0.0.1:4000"
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())
sid = post("/v1/sessions", {"title": "ops exercise"})["id"]
for n in range(1, 101):
    post(f"/v1/sessions/{sid}/append", {"type": "ping", "payload": {"n": n}, "producer_id": "ops", "producer_seq": n})
ws = websocket.create_connection(f"ws://127.0.0.1:4000/v1/sessions/{sid}/tail?cursor=0&batch_size=100", timeout=10)
seqs = []
while len(seqs) < 100:
    seqs += [e["seq"] for e in json.loads(ws.recv())]
ws.close()
assert seqs == list(range(1, 101)), seqs
print(f"ok: session {sid}, 100 appends, tail replayed seqs 1..100")
PY
}

status() {
  for pidfile in "$STATE"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    i=$(basename "$pidfile" .pid); i=${i#node-}
    "$BIN" ops status --url "http://127.0.0.1:$((4000 + i))" | head -20
  done
}

stop() {
  for pidfile in "$STATE"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" || true
    rm -f "$pidfile"
    echo "stopped $(basename "$pidfile" .pid)"
  done
}

case "$cmd" in
  start) start ;;
  exercise) exercise ;;
  status) status ;;
  stop) stop ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
