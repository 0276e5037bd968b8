"""The control plane on a live 3-node cluster: Observer states, drain, undrain, the ops commands."""

import json
import subprocess
import time

from tests.server import STARCITE, wait_until

ENV = {"STARCITE_NUM_GROUPS": "4", "STARCITE_OBSERVER_LOST_AFTER_MS": "1500"}


def ops(node, *args, timeout=60):
    """Run `starcite ops` beside ``node`` (its own environment): (exit code, stdout)."""
    result = subprocess.run([STARCITE, "ops", *args], capture_output=True, text=True, timeout=timeout, env=node.env)
    return result.returncode, result.stdout


def wait_for(predicate, timeout=20.0, what="condition"):
    wait_until(predicate, timeout, what)


def groups_led(node):
    return sum(1 for group in node.ops_status()["groups"] if group["is_leader"])


def test_observer_marks_a_dead_node_suspect_then_lost_and_ready_again(make_cluster):
    cluster = make_cluster(3, env=ENV)
    n1, n3 = cluster["n1"], cluster["n3"]
    assert n1.ops_status()["observer"] == {"n1": "ready", "n2": "ready", "n3": "ready"}
    n3.kill()
    wait_for(lambda: n1.ops_status()["observer"]["n3"] == "suspect", what="n3 suspect")
    wait_for(lambda: n1.ops_status()["observer"]["n3"] == "lost", what="n3 lost")
    code, out = ops(n1, "ready-nodes")
    assert code == 0 and json.loads(out)["ready_nodes"] == ["n1", "n2"]
    n3.start()
    wait_for(lambda: n1.ops_status()["observer"]["n3"] == "ready", what="n3 ready again")


def test_drain_is_agreed_sticky_across_a_restart_and_moves_leaderships(make_cluster):
    cluster = make_cluster(3, env=ENV)
    n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
    code, out = ops(n1, "drain", "n2")
    assert code == 0 and json.loads(out)["statuses"]["n2"] == "draining"
    code, out = ops(n1, "wait-drained", "20000", "--node", "n2")
    assert code == 0 and set(json.loads(out)["views"].values()) == {"draining"}
    for node in cluster:  # the same on every node
        wait_for(lambda node=node: node.ops_status()["observer"]["n2"] == "draining", what="drain visible")
    assert n2.request("GET", "/health/ready").json() == {"status": "starting", "mode": "write_node",
                                                        "reason": "draining"}
    wait_for(lambda: groups_led(n2) == 0, what="n2 hands over its leaderships")
    n1.create("s-drain")
    assert [n3.append("s-drain", i).status_code for i in range(1, 6)] == [201] * 5
    # sticky: a restart of the drained node does not undrain it
    n2.stop()
    n2.start(wait=False)
    wait_for(lambda: _ready_reason(n2) == "draining", timeout=40, what="n2 back, still draining")
    assert n1.ops_status()["observer"]["n2"] == "draining"
    # undrain restores it at once
    code, out = ops(n3, "undrain", "n2")
    assert code == 0 and json.loads(out)["statuses"]["n2"] == "ready"
    assert ops(n2, "wait-ready", "20000")[0] == 0
    assert n2.append("s-drain", 6).status_code == 201


def _ready_reason(node):
    try:
        return node.request("GET", "/health/ready", timeout=2).json().get("reason")
    except Exception:
        return None


def test_every_ops_command_and_its_exit_code(make_cluster):
    cluster = make_cluster(3, env=ENV)
    n1 = cluster["n1"]
    code, out = ops(n1, "status")
    assert code == 0 and out.startswith("node n1 (write_node): ready") and "peer n2: up" in out
    code, out = ops(n1, "status", "--json")
    assert code == 0 and len(json.loads(out)["groups"]) == 4
    code, out = ops(n1, "ready-nodes")
    assert code == 0 and json.loads(out)["ready_nodes"] == ["n1", "n2", "n3"]
    assert ops(n1, "wait-ready", "5000")[0] == 0
    assert ops(n1, "wait-drained", "600")[0] == 1           # n1 is not drained: times out, exit 1
    assert ops(n1, "drain", "nope")[0] == 1                  # not a write node
    assert ops(n1, "drain")[0] == 0                          # this node
    assert ops(n1, "wait-drained", "20000")[0] == 0
    assert ops(n1, "wait-ready", "600")[0] == 1              # drained: not ready
    assert ops(n1, "undrain")[0] == 0
    assert ops(n1, "wait-ready", "20000")[0] == 0


def test_readiness_gate_starting_until_synced_then_ok(make_cluster):
    """Seed 002's readiness-gate drill: after a restart, `starting` until this node has caught up."""
    cluster = make_cluster(3, env=ENV)
    n1, n2 = cluster["n1"], cluster["n2"]
    n1.create("s-gate")
    assert n1.append("s-gate", 1).status_code == 201
    for node in cluster:
        node.kill()
    n1.start(wait=False)  # alone: no quorum, so no leader and nothing to catch up from
    wait_for(lambda: _ready_reason(n1) is not None, timeout=30, what="n1 answering")
    seen = set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        response = n1.request("GET", "/health/ready", timeout=2)
        assert response.status_code == 503
        seen.add((response.json()["status"], response.json()["reason"]))
        time.sleep(0.1)
    assert seen == {("starting", "raft_sync")}
    n2.start(wait=False)
    n1.wait_ready(40)
    assert n1.request("GET", "/health/ready").json() == {"status": "ok", "mode": "write_node"}
    assert n1.request("GET", "/v1/sessions/s-gate").json()["last_seq"] == 1
