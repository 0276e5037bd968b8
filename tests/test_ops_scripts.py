"""The ops cluster scripts end to end: ops/start-cluster.sh 3, ops/test-cluster.sh, ops/stop-cluster.sh.

Runs them as a user would, in a private state directory and on free loopback port ranges (so a
developer's cluster on 4000+ is never touched), each step bounded in time; the cluster is always
stopped, and no node process may be left behind.
"""

import os
import random
import signal
import socket
import subprocess

import pytest


OPS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ops")
SIZE = 3
START_TIMEOUT_S, CHECK_TIMEOUT_S, STOP_TIMEOUT_S = 120, 60, 60


def _free_range(count: int, avoid=()) -> int:
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
    pytest.fail("no free run of loopback ports")


def _script(name: str, env: dict, timeout: float, *args) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(OPS_DIR, name), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_test_stop_a_three_node_cluster(tmp_path):
    api_base = _free_range(SIZE)
    env = {**os.environ, "STARCITE_CLUSTER_STATE": str(tmp_path / "cluster"),
           "STARCITE_API_BASE_PORT": str(api_base), "STARCITE_PEER_BASE_PORT": str(_free_range(SIZE, [api_base])),
           "READY_TIMEOUT_S": "90"}
    pgids = []
    try:
        started = _script("start-cluster.sh", env, START_TIMEOUT_S, str(SIZE))
        assert started.returncode == 0, started.stdout + started.stderr
        pgids = [int((tmp_path / "cluster" / f"n{i}.pid").read_text()) for i in range(1, SIZE + 1)]
        urls = [f"http://127.0.0.1:{api_base + i}" for i in range(SIZE)]
        assert all(f"ready: {url}" in started.stdout for url in urls), started.stdout
        checked = _script("test-cluster.sh", env, CHECK_TIMEOUT_S)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.startswith("ok:") and "seqs 1..100" in checked.stdout
    finally:
        stopped = _script("stop-cluster.sh", env, STOP_TIMEOUT_S)
        for pgid in pgids:  # the script must have left nothing; never leave a node behind either way
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                pytest.fail(f"process group {pgid} still running after stop-cluster.sh")
    assert stopped.returncode == 0 and f"stopped {SIZE} node(s)" in stopped.stdout, stopped.stdout + stopped.stderr


def test_test_cluster_fails_without_a_cluster(tmp_path):
    env = {**os.environ, "STARCITE_CLUSTER_STATE": str(tmp_path / "none")}
    checked = _script("test-cluster.sh", env, CHECK_TIMEOUT_S)
    assert checked.returncode != 0 and "no cluster" in checked.stderr
