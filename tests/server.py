"""Test helper: run the real `starcite serve` as a subprocess on a free loopback port.

Owns: free loopback ports (one, or a run of them for a cluster's ranges),
starting a node with a temp data dir and an environment, waiting (bounded)
for readiness, HTTP helpers, and stopping it (SIGTERM, then SIGKILL) so no
process outlives a test; reading a process's RSS and its children from /proc
(`rss_bytes`, `child_pids`: memory tests watch the worker).
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import requests

STARCITE = os.path.join(os.path.dirname(sys.executable), "starcite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_listen_port() -> int:
    """A free port below the ephemeral range, for listeners that must not collide with the
    source ports of outgoing connections (the peer port): the bench harness's own picker."""
    from bench.procs import free_port as free_low_port
    return free_low_port()


def free_port_range(count: int, avoid=()) -> int:
    """The first of ``count`` consecutive loopback ports that are free now (below the ephemeral range)."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if any(abs(base - other) < count for other in avoid):
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free run of loopback ports")


def wait_until(predicate, timeout=10.0, what="condition"):
    """Poll ``predicate`` until it is true, at most ``timeout`` seconds (then TimeoutError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class StarciteServer:
    def __init__(self, data_dir, env=None, config_file=None):
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "STARCITE_DATA_DIR": self.data_dir,
                    "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "200", **(env or {})}
        self.config_file = config_file
        self.proc = None
        self.log_path = os.path.join(self.data_dir, f"server-{self.port}.log")
        self.http = requests.Session()

    # -- lifecycle ------------------------------------------------------------

    def start(self, wait=True, timeout=20.0):
        os.makedirs(self.data_dir, exist_ok=True)
        args = [STARCITE, "serve"] + (["--config", self.config_file] if self.config_file else [])
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                if requests.get(self.base + "/health/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.output()[-3000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        self.http = requests.Session()
        return self.start()

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    # -- HTTP -----------------------------------------------------------------

    def request(self, method, path, body=None, raw=None, headers=None, timeout=10):
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        return self.http.request(method, self.base + path, data=data, headers=headers, timeout=timeout)

    def create(self, session_id=None, **fields):
        body = dict(fields)
        if session_id is not None:
            body["id"] = session_id
        response = self.request("POST", "/v1/sessions", body)
        assert response.status_code == 201, response.text
        return response.json()

    def append(self, session_id, producer_seq, producer_id="p1", **fields):
        body = {"type": "message", "payload": {"n": producer_seq}, "producer_id": producer_id,
                "producer_seq": producer_seq, **fields}
        return self.request("POST", f"/v1/sessions/{session_id}/append", body)

    @property
    def ops_socket(self) -> str:
        return self.env.get("STARCITE_OPS_SOCKET") or os.path.join(self.data_dir, "ops.sock")

    def ops(self, method="GET", path="/ops/status", timeout=5.0):
        """``(status, body)`` from the node's ops console (its unix socket, never the API port)."""
        from starcite.cluster.ops_client import OpsClient
        return OpsClient(self.ops_socket, timeout).request(method, path)

    def ops_status(self) -> dict:
        status, body = self.ops("GET", "/ops/status")
        assert status == 200, body
        return body

    def metric(self, name) -> float:
        for line in self.request("GET", "/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def wait_until(self, predicate, timeout=10.0, what="condition"):
        wait_until(predicate, timeout, what)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")


def _processes():
    """``(pid, state, ppid, pgrp)`` of every process (from /proc)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                yield int(entry), fields[0], int(fields[1]), int(fields[2])
            except (OSError, IndexError, ValueError):
                continue


def child_pids(pid: int) -> list:
    """Direct children of ``pid`` (from /proc)."""
    return [child for child, _state, ppid, _pgrp in _processes() if ppid == pid]


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a live member (a zombie waiting for its reaper is not)."""
    return any(pgrp == pgid and state != "Z" for _pid, state, _ppid, pgrp in _processes())
