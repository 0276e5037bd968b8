"""A Starcite node (`starcite serve`, the embedded default config: local
archive, durable Raft journal) on a free loopback port with its own data
directory.

Owns: starting and restarting a node, readiness (`GET /health/ready` → 200),
creating sessions, reading `/metrics`, and the append/tail paths of the API.
Must not: measure anything. A node that cannot start raises
`bench.procs.StartError`, which the workloads report as "not available".
"""

import http.client
import json
import os

from bench.aio import gather_bounded
from bench.procs import StartError, free_port
from bench.targets import REPO_ROOT, VENV_BIN
from bench.wire.http import HttpClient

EXECUTABLE = os.path.join(VENV_BIN, "starcite")
READY_TIMEOUT_S = 90.0
SETUP_TIMEOUT_S = 120.0


def _get(port: int, path: str, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def append_path(session_id: str) -> str:
    return f"/v1/sessions/{session_id}/append"


def tail_path(session_id: str, cursor: int = 0, batch_size: int = 1) -> str:
    return f"/v1/sessions/{session_id}/tail?cursor={cursor}&batch_size={batch_size}"


def append_body(payload: bytes, producer_id: str, producer_seq: int) -> bytes:
    return b'{"type":"msg","payload":%s,"producer_id":"%s","producer_seq":%d}' % (
        payload, producer_id.encode(), producer_seq)


class Node:
    """One running node; `restart` keeps its data directory (and so its journal and archive)."""

    def __init__(self, sup, work_dir: str, env: dict = None):
        self.sup, self.extra_env = sup, dict(env or {})
        self.data_dir = os.path.join(work_dir, f"starcite-{free_port()}")
        self.port = self.child = None

    def start(self, env: dict = None, port: int = None):
        """Start on ``port`` (default: a free one)."""
        if not os.path.exists(EXECUTABLE):
            raise StartError(f"{EXECUTABLE} is not installed")
        self.port = port or free_port()
        full_env = {"PORT": str(self.port), "STARCITE_HOST": "127.0.0.1", "STARCITE_DATA_DIR": self.data_dir,
                    "STARCITE_RAFT_PORT": str(free_port()), **self.extra_env, **(env or {})}
        self.child = self.sup.start("starcite", [EXECUTABLE, "serve"], self.ready, env=full_env, cwd=REPO_ROOT,
                                    timeout=READY_TIMEOUT_S)
        return self

    def ready(self) -> bool:
        return _get(self.port, "/health/ready", timeout=2)[0] == 200

    def stop(self):
        if self.child is not None:
            self.sup.stop(self.child, timeout=30)
            self.child = None

    def restart(self, env: dict = None, same_port: bool = False):
        """Stop (SIGTERM, graceful) and start again; ``same_port``: where its clients reconnect."""
        port = self.port if same_port else None
        self.stop()
        return self.start(env, port)

    def metric(self, name: str) -> float:
        """Sum of every sample of metric ``name`` (0 when absent)."""
        status, body = _get(self.port, "/metrics")
        if status != 200:
            raise StartError(f"/metrics -> {status}")
        total = 0.0
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def create_sessions(self, session_ids, connections: int = 8):
        """Create every session (an existing one is fine), over a few connections at once."""
        ids = list(session_ids)

        async def worker(share):
            client = HttpClient(self.port)
            try:
                for session_id in share:
                    response = await client.request("POST", "/v1/sessions", json.dumps({"id": session_id}).encode())
                    if response.status not in (201, 409):
                        raise StartError(f"create session -> {response.status}: {response.body[:200]!r}")
            finally:
                await client.close()

        await gather_bounded([worker(ids[i::connections]) for i in range(connections)], SETUP_TIMEOUT_S)
