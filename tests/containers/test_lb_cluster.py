"""Drills on a 3-node cluster of containers behind HAProxy (ops/haproxy.cfg), through the balancer only.

Six producers (two per session, each with its producer_id and producer_seq, retrying a failed
request with the same producer_seq) append continuously and a WebSocket and an SSE tail follow each
session, all through HAProxy, while (a) ops/rolling-restart.sh rolls all three containers (drain,
wait-drained, `podman restart`, undrain, wait-ready) and (b) one container is SIGKILLed
(`podman kill -s KILL`) and started again. For each: every acknowledged append is in the final
history exactly once and in order (checked on every node, with the replicas' digests), every tail
got every event once and in order, and the longest pause in acknowledgements is reported (printed
and in the summary; never asserted). Owns no helper: tests/containers/lb_cluster.py and
tests/cluster_tests/history.py have them.
"""

import itertools
import os
import subprocess
import time

import pytest

from starcite.cluster.placement import group_for
from tests.cluster_tests import history
from tests.cluster_tests.history import AppendClients, check_history, wait_converged
from tests.containers.lb_cluster import NAMES, LbCluster
from tests.following_tail import FollowingTail
from tests.containers.podman import REPORT, ROOT, create
from tests.containers.podman import podman as run_podman
from tests.server import wait_until

# Through a balancer a request that reached a node that then died is answered 502 (or 504) by the
# balancer: no node answered, so, like a 503 or no answer at all, the same producer_seq is sent again.
BALANCER_RETRYABLE = (502, 503, 504)
_unique = itertools.count(1)
DEAD_FOR_ACKS = 300  # the killed node stays down while the others acknowledge this many appends


@pytest.fixture(scope="module")
def cluster(podman, image, s3_image, tmp_path_factory):
    lb = LbCluster(podman, image, s3_image, tmp_path_factory.mktemp("lbcluster"))
    try:
        yield lb.start()
    finally:
        lb.stop()


@pytest.fixture
def load(cluster, monkeypatch):
    """Producers and followers through the balancer on three fresh sessions; stopped even on failure."""
    monkeypatch.setattr(history, "RETRYABLE", BALANCER_RETRYABLE)
    sessions = [f"drill-{os.getpid()}-{next(_unique)}-{s}" for s in "abc"]
    for sid in sessions:
        create(cluster.lb, sid)
    clients = AppendClients({"lb": cluster.lb}, sessions, producers_per_session=2, entry_nodes=["lb"], pause=0.01)
    followers = [FollowingTail([cluster.lb], sid, kind) for sid in sessions for kind in ("ws", "sse")]
    since = cluster.log_offset()
    clients.start()
    for follower in followers:
        follower.start()
    yield sessions, clients, followers, since
    clients.stop_event.set()
    for follower in followers:
        follower.stop()


def progress(clients, more=30, timeout=120.0):
    """Bounded wait for ``more`` acknowledgements beyond the current count."""
    target = clients.acked_count() + more
    wait_until(lambda: clients.acked_count() >= target or bool(clients.errors), timeout,
               f"{more} more acknowledged appends")
    assert not clients.errors, clients.errors[:5]


def longest_pause(clients, since):
    """``(seconds, start)``: the longest time between two acknowledgements and when it began,
    relative to ``since`` (monotonic)."""
    with clients.lock:
        times = sorted(clients.ack_times)
    return max(((b - a, a - since) for a, b in zip(times, times[1:])), default=(0.0, 0.0))


def finish(cluster, sessions, clients, followers, drill, since, action_at):
    """Stop the producers, check the history on every node and every follower; report the figures."""
    clients.stop()
    checked = check_history(cluster, clients, sessions)
    last = wait_converged(cluster, sessions)
    wait_until(lambda: all(f.last >= last[f.session_id] for f in followers) or any(f.errors for f in followers),
               90, "every tail caught up")
    for follower in followers:
        assert follower.stop(), f"{follower.name} is stuck"
        assert not follower.errors, follower.errors[:5]
        assert follower.seqs == list(range(1, last[follower.session_id] + 1)), follower.name
    pause, at = longest_pause(clients, action_at)
    line = (f"{drill}: {len(clients.acks)} appends acknowledged through HAProxy by 6 producers "
            f"(HAProxy's answers to appends: {cluster.append_answers(since)}; {clients.retries} retried), "
            f"{checked} events checked on 3 nodes, {len(followers)} tails (WebSocket+SSE) complete and in "
            f"order with {sum(f.reconnects for f in followers)} reconnects; longest pause in acks "
            f"{pause:.2f} s, from {at:+.1f} s after the drill began")
    print(line)
    REPORT.append(line)


def test_rolling_restart_of_all_three_containers_with_the_runbook_script(cluster, load):
    sessions, clients, followers, since = load
    progress(clients)
    began = time.monotonic()
    rolled = subprocess.run([os.path.join(ROOT, "ops", "rolling-restart.sh")], env=cluster.script_env(),
                            capture_output=True, text=True, timeout=900)
    print(rolled.stdout)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rolled 3 node(s)" in rolled.stdout
    progress(clients)
    finish(cluster, sessions, clients, followers, "rolling restart (ops/rolling-restart.sh, podman restart)",
           since, began)


def leader_of(cluster, session_id) -> str:
    """The node leading ``session_id``'s group (3 nodes, replication factor 3: every node has every
    group, so one node's group count is the cluster's)."""
    count = len(cluster["n1"].ops_status()["groups"])
    group = group_for(session_id, count)
    for name in NAMES:
        if any(g["group"] == group and g["is_leader"] for g in cluster[name].ops_status()["groups"]):
            return name
    raise AssertionError(f"no leader for group {group}")


def test_sigkill_of_one_container_and_its_restart(cluster, load):
    sessions, clients, followers, since = load
    progress(clients)
    victim = leader_of(cluster, sessions[0])  # a failover the drill's own appends must wait out
    began = time.monotonic()
    run_podman("kill", "-s", "KILL", cluster.container(victim))
    wait_until(lambda: not cluster.podman.state(cluster.container(victim))["Running"], 30, f"{victim} dead")
    progress(clients, more=DEAD_FOR_ACKS, timeout=240)  # two of three keep every group writable
    run_podman("start", cluster.container(victim))
    cluster.wait_node_ready(victim)
    progress(clients)
    finish(cluster, sessions, clients, followers, f"SIGKILL of {victim} (leading session a's group), podman start",
           since, began)
