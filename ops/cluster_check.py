"""Checks the ops/*-cluster.sh scripts run against local nodes (standard library + websocket-client).

    cluster_check.py ready TIMEOUT_S NAME=PID=URL ...   wait until every node is ready and a cluster
    cluster_check.py exercise URL ...                    create, append, tail, list across the nodes

Owns: the bounded readiness wait (each node's `/health/ready` is 200, or 503
`draining` for a node an operator drained, which is up and synced; every
node lists all the given names as write nodes, and knows a leader for each
of its groups; a node whose process exited fails at once) and the
cross-node exercise (create a session on the first node, append on the
second, tail it over WebSocket on the third, list sessions on the last,
checking seqs; a 503 is retried with the same body, as a client would). Must not: start or stop nodes (the shell scripts do).
Exit status: 0 ok, 1 failure (the reason on stderr).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import websocket

APPENDS = 100
REQUEST_TIMEOUT_S = 5.0
RETRY_FOR_S = 15.0  # a 503 (e.g. a leader handing its group to its preferred replica just after ready) is retried


class CheckFailed(Exception):
    pass


def _call(url: str, method: str = "GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def _call_retrying(url: str, method: str, body):
    """``_call``, with 503s and refused connections retried for up to RETRY_FOR_S, the same body each
    time: as a client should, since an append carries its producer_seq (the service dedupes it).
    Returns ``(status, body, retried)``."""
    deadline, retried = time.monotonic() + RETRY_FOR_S, False
    while True:
        try:
            status, answer = _call(url, method, body)
            if status != 503 or time.monotonic() >= deadline:
                return status, answer, retried
        except OSError:
            if time.monotonic() >= deadline:
                raise
        retried = True
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ops_status(name: str):
    """``(status, body)`` of ``/ops/status`` from node ``name``'s ops socket (never the API port)."""
    from starcite.cluster.ops_client import OpsClient
    path = os.path.join(os.environ.get("STARCITE_CLUSTER_STATE", "ops/.cluster"), name, "ops.sock")
    try:
        return OpsClient(path, timeout=2).get("/ops/status")
    except OSError:
        return None, None


def _node_ready(url: str, names: list, name: str):
    """"ready", "drained" (synced, held back only by an operator's drain), or None (not yet)."""
    code, answer = _call(f"{url}/health/ready")
    state = "ready" if code == 200 else "drained" if code == 503 and b'"draining"' in answer else None
    if state is None:
        return None
    status, body = _ops_status(name)
    if status != 200:
        return False
    if len(names) > 1 and sorted(body.get("write_nodes") or []) != sorted(names):
        raise CheckFailed(f"{url} runs with write nodes {body.get('write_nodes')}, not {names}")
    return state if all(group.get("leader") for group in body.get("groups", [])) else None


def ready(timeout_s: float, nodes: list):
    """``nodes``: ``name=pid=url`` entries."""
    entries = [node.split("=", 2) for node in nodes]
    names = [name for name, _, _ in entries]
    deadline, waiting = time.monotonic() + timeout_s, list(entries)
    while waiting:
        name, pid, url = waiting[0]
        if not _alive(int(pid)):
            raise CheckFailed(f"{name} (pid {pid}) exited while starting")
        try:
            state = _node_ready(url, names, name)
            if state:
                print(f"{name} ready: {url}" if state == "ready" else f"{name} up, drained (ops undrain): {url}")
                waiting.pop(0)
                continue
        except (OSError, ValueError):  # not listening yet
            pass
        if time.monotonic() >= deadline:
            raise CheckFailed(f"{', '.join(n for n, _, _ in waiting)} not ready after {timeout_s:.0f}s")
        time.sleep(0.2)


def _expect(status: int, wanted: int, what: str, body):
    if status != wanted:
        raise CheckFailed(f"{what}: HTTP {status}: {body!r:.300}")


def exercise(urls: list):
    create_url, append_url, tail_url, list_url = urls[0], urls[1 % len(urls)], urls[2 % len(urls)], urls[-1]
    session_id = f"ops-check-{uuid.uuid4().hex[:12]}"
    status, body, retried = _call_retrying(f"{create_url}/v1/sessions", "POST",
                                           {"id": session_id, "title": "ops cluster check"})
    if not (retried and status == 409):  # a retried create may find the session its first try made
        _expect(status, 201, f"create on {create_url}", body)
    for n in range(1, APPENDS + 1):
        status, body, _ = _call_retrying(f"{append_url}/v1/sessions/{session_id}/append", "POST",
                                         {"type": "ping", "payload": {"n": n}, "producer_id": "ops",
                                          "producer_seq": n})
        _expect(status, 201, f"append {n} on {append_url}", body)
        if body.get("seq") != n:
            raise CheckFailed(f"append {n} on {append_url} was given seq {body.get('seq')}")
    ws_url = tail_url.replace("http://", "ws://", 1)
    sock = websocket.create_connection(f"{ws_url}/v1/sessions/{session_id}/tail?cursor=0&batch_size=100",
                                       timeout=REQUEST_TIMEOUT_S)
    seqs, deadline = [], time.monotonic() + 10
    try:
        while len(seqs) < APPENDS and time.monotonic() < deadline:
            seqs += [event["seq"] for event in json.loads(sock.recv())]
    finally:
        sock.close()
    if seqs != list(range(1, APPENDS + 1)):
        raise CheckFailed(f"tail on {tail_url} gave seqs {seqs[:10]}... ({len(seqs)}), not 1..{APPENDS}")
    listed, cursor = [], None
    for _ in range(100):  # pages of 1,000: bounded
        status, body = _call(f"{list_url}/v1/sessions?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        _expect(status, 200, f"list on {list_url}", body)
        listed += [s["id"] for s in body["sessions"]]
        cursor = body.get("next_cursor")
        if session_id in listed or not cursor:
            break
    if session_id not in listed:
        raise CheckFailed(f"list on {list_url} does not show {session_id}")
    print(f"ok: session {session_id} created on {create_url}, {APPENDS} appends on {append_url} (seqs 1..{APPENDS}), "
          f"tailed on {tail_url}, listed on {list_url}")


def main(argv: list) -> int:
    try:
        if len(argv) >= 3 and argv[0] == "ready":
            ready(float(argv[1]), argv[2:])
        elif len(argv) >= 2 and argv[0] == "exercise":
            exercise(argv[1:])
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
    except (CheckFailed, OSError, ValueError, KeyError, websocket.WebSocketException) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
