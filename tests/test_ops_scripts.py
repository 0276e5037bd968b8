"""The ops cluster scripts end to end: ops/start-cluster.sh 3, ops/test-cluster.sh, ops/stop-cluster.sh,
and the drills on the running cluster: a SIGKILLed node started again by ops/start-cluster.sh alone,
and the restart runbook (drain, wait-drained, stop, start, wait-synced, undrain, wait-ready).

Runs them as a user would, in a private state directory and on free loopback port ranges (so a
developer's cluster on 4000+ is never touched), each step bounded in time; the cluster is always
stopped, and no node process may be left behind.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.server import free_port_range, group_alive


OPS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ops")
SIZE = 3
START_TIMEOUT_S, CHECK_TIMEOUT_S, STOP_TIMEOUT_S = 120, 60, 60


def _script(name: str, env: dict, timeout: float, *args) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(OPS_DIR, name), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_start_test_stop_a_three_node_cluster(tmp_path):
    api_base = free_port_range(SIZE)
    env = {**os.environ, "STARCITE_CLUSTER_STATE": str(tmp_path / "cluster"),
           "STARCITE_API_BASE_PORT": str(api_base), "STARCITE_PEER_BASE_PORT": str(free_port_range(SIZE, [api_base])),
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
        pgids = _drill_sigkill_one_node(env, tmp_path / "cluster", pgids, urls)
        pgids = _drill_restart_runbook(env, tmp_path / "cluster", pgids)
    finally:
        stopped = _script("stop-cluster.sh", env, STOP_TIMEOUT_S)
        for pgid in pgids:  # the script must have left nothing; never leave a node behind either way
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                pytest.fail(f"process group {pgid} still running after stop-cluster.sh")
    assert stopped.returncode == 0 and f"stopped {SIZE} node(s)" in stopped.stdout, stopped.stdout + stopped.stderr


def _pids(state) -> list:
    return [int((state / f"n{i}.pid").read_text()) for i in range(1, SIZE + 1)]


def _drill_sigkill_one_node(env, state, pgids, urls) -> list:
    """SIGKILL n3's process group; ops/start-cluster.sh (no argument) starts n3 alone, and the cluster passes."""
    os.killpg(pgids[2], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while group_alive(pgids[2]) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _script("test-cluster.sh", env, CHECK_TIMEOUT_S, "n1", "n2")
    assert survivors.returncode == 0, survivors.stdout + survivors.stderr
    again = _script("start-cluster.sh", env, START_TIMEOUT_S)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "n1: already running" in again.stdout and "n2: already running" in again.stdout, again.stdout
    assert f"ready: {urls[2]}" in again.stdout, again.stdout
    now = _pids(state)
    assert now[:2] == pgids[:2] and now[2] != pgids[2]  # n1 and n2 untouched
    checked = _script("test-cluster.sh", env, CHECK_TIMEOUT_S)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    every = _script("start-cluster.sh", env, START_TIMEOUT_S)  # nothing missing: nothing started
    assert every.returncode == 0 and "already running" in every.stdout and _pids(state) == now, every.stdout
    return now


def _ops(state, node, *args) -> subprocess.CompletedProcess:
    starcite = os.path.join(os.path.dirname(sys.executable), "starcite")
    return subprocess.run([starcite, "ops", *args, "--socket", str(state / node / "ops.sock")],
                          capture_output=True, text=True, timeout=90)


def _drill_restart_runbook(env, state, pgids) -> list:
    """docs/operations.md's "Restart or upgrade a node" on n2, with the wait before undrain."""
    for args in (("drain",), ("wait-drained", "30000")):
        done = _ops(state, "n2", *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    os.killpg(pgids[1], signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_alive(pgids[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pgids[1])
    started = _script("start-cluster.sh", env, START_TIMEOUT_S)  # the node's start, on this cluster
    assert started.returncode == 0 and "n2 up, drained" in started.stdout, started.stdout + started.stderr
    for args in (("wait-synced", "60000"), ("undrain",), ("wait-ready", "60000")):
        done = _ops(state, "n2", *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    checked = _script("test-cluster.sh", env, CHECK_TIMEOUT_S)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return _pids(state)


def test_test_cluster_fails_without_a_cluster(tmp_path):
    env = {**os.environ, "STARCITE_CLUSTER_STATE": str(tmp_path / "none")}
    checked = _script("test-cluster.sh", env, CHECK_TIMEOUT_S)
    assert checked.returncode != 0 and "no cluster" in checked.stderr
