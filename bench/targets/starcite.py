"""A Starcite node (`starcite serve`, the embedded default config: local
archive, durable Raft journal) on a free loopback port with its own data
directory.

Owns: starting (at once or in two steps, for cluster members), restarting,
stopping and SIGKILLing a node, readiness (`GET /health/ready` → 200),
the ops console's status (its unix socket), creating sessions, reading
`/metrics`, the append/tail paths of the API and a tail reader.
Must not: measure anything. A node that cannot start raises
`bench.procs.StartError`, which the workloads report as "not available".
"""

import asyncio
import json
import os

from starcite.cluster.ops_client import OpsClient

from bench.aio import gather_bounded
from bench.procs import StartError, free_port
from bench.targets import REPO_ROOT, VENV_BIN, http_get
from bench.wire import ws
from bench.wire.base import ProtocolError
from bench.wire.http import HttpClient

EXECUTABLE = os.path.join(VENV_BIN, "starcite")
READY_TIMEOUT_S = 90.0
SETUP_TIMEOUT_S = 120.0


def append_path(session_id: str) -> str:
    return f"/v1/sessions/{session_id}/append"


def tail_path(session_id: str, cursor: int = 0, batch_size: int = 1) -> str:
    return f"/v1/sessions/{session_id}/tail?cursor={cursor}&batch_size={batch_size}"


def tail_batches(port: int, session_id: str, batch_size: int):
    """Replay reader over a tail from cursor 0: an async iterator factory yielding each frame's event
    count (a frame is a JSON array of events); a gap in the seqs raises ProtocolError."""
    async def batches():
        frames = asyncio.Queue()
        sock = await ws.connect(port, tail_path(session_id, 0, batch_size),
                                lambda payload, _t: frames.put_nowait(payload))
        try:
            expected = 1
            while True:
                events = json.loads(await frames.get())
                if events and events[0]["seq"] != expected:
                    raise ProtocolError(f"tail gap: expected seq {expected}, got {events[0]['seq']}")
                expected += len(events)
                yield len(events)
        finally:
            sock.close()
    return batches


def append_body(payload: bytes, producer_id: str, producer_seq: int) -> bytes:
    return b'{"type":"msg","payload":%s,"producer_id":"%s","producer_seq":%d}' % (
        payload, producer_id.encode(), producer_seq)


class Node:
    """One node; `restart` keeps its data directory (and so its journal and archive).

    Without ``port`` every start picks a free API port; with it (cluster members) the port stays.
    """

    def __init__(self, sup, work_dir: str, env: dict = None, port: int = None, name: str = "starcite"):
        self.sup, self.extra_env, self.name, self.fixed_port = sup, dict(env or {}), name, port
        self.data_dir = os.path.join(work_dir, f"{name}-{free_port()}")
        self.port = self.child = None

    def spawn(self, env: dict = None, port: int = None):
        """Start the process without waiting for it (cluster members must boot together);
        ``port``: where its clients reconnect (default: the fixed port, else a free one)."""
        if not os.path.exists(EXECUTABLE):
            raise StartError(f"{EXECUTABLE} is not installed")
        self.port = port or self.fixed_port or free_port()
        full_env = {"PORT": str(self.port), "STARCITE_HOST": "127.0.0.1", "STARCITE_DATA_DIR": self.data_dir,
                    **self.extra_env, **(env or {})}
        self.child = self.sup.spawn(self.name, [EXECUTABLE, "serve"], full_env, REPO_ROOT)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, via_ops: bool = False):
        """Until ``/health/ready`` is 200: on the API port, or (``via_ops``) on the node's ops
        socket, which is served beside the API listener, not behind connections queued on it."""
        self.sup.await_ready(self.child, self.ops_ready if via_ops else self.ready, timeout,
                             interval=0.01 if via_ops else 0.05)
        return self

    def start(self, env: dict = None, port: int = None, ready_via_ops: bool = False):
        return self.spawn(env, port).wait_ready(via_ops=ready_via_ops)

    def ready(self) -> bool:
        return http_get(self.port, "/health/ready", timeout=2)[0] == 200

    def ops_ready(self) -> bool:
        return OpsClient(os.path.join(self.data_dir, "ops.sock"), timeout=2).get("/health/ready")[0] == 200

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def status(self) -> dict:
        """``/ops/status`` from the node's ops console (its unix socket in the data dir)."""
        try:
            status, body = OpsClient(os.path.join(self.data_dir, "ops.sock"), timeout=2).get("/ops/status")
        except OSError as exc:
            raise StartError(f"{self.name}: ops socket: {exc}") from None
        if status != 200:
            raise StartError(f"{self.name}: /ops/status -> {status}")
        return body

    def stop(self):
        if self.child is not None:
            self.sup.stop(self.child, timeout=30)
            self.child = None

    def kill(self):
        """SIGKILL the node's process group (master and workers at once): a crash."""
        if self.child is not None:
            self.sup.kill(self.child)
            self.child = None

    def restart(self, env: dict = None, same_port: bool = False, ready_via_ops: bool = False):
        """Stop (SIGTERM, graceful) and start again; ``same_port``: where its clients reconnect;
        ``ready_via_ops``: see `wait_ready`."""
        port = self.port if same_port else None
        self.stop()
        return self.start(env, port, ready_via_ops)

    def metric(self, name: str) -> float:
        """Sum of every sample of metric ``name`` (0 when absent)."""
        status, body = http_get(self.port, "/metrics")
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
