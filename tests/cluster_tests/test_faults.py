"""Nothing acknowledged is lost: nodes SIGKILLed under load, checked from the clients' history.

Clients append continuously through every node (retrying the same
producer_seq elsewhere after a 503, a timeout or a refused connection) while
the test kills and restarts nodes, and readers beside them read through random
nodes, checking each read against the appends acknowledged before it
(`history.FreshReads`: no stale read); then every session's tail is read from
every node and checked against every acknowledgement (`history.check_history`).

`STARCITE_FAULT_CYCLES` sets the cycles of each scenario (default: 10 for
leader kills, 3 for the others, which keeps the file to a few minutes);
the soak is the same tests with more cycles (docs/operations.md, "Cluster soak").
"""

import os
import random
import time

import pytest

from tests.cluster_tests.history import AppendClients, FreshReads, check_history

CYCLES = int(os.environ.get("STARCITE_FAULT_CYCLES", "0"))
ENV = {"STARCITE_NUM_GROUPS": "4", "STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "300",
       "STARCITE_RAFT_SNAPSHOT_ENTRIES": "400"}


def cycles(default):
    return CYCLES or default


def sessions_over_groups(cluster, count=4):
    """``count`` session ids that land in different groups, created on the first node."""
    chosen, groups = [], set()
    for i in range(1000):
        sid = f"hist-{i}"
        if cluster.group_of(sid) not in groups:
            groups.add(cluster.group_of(sid))
            chosen.append(sid)
            cluster[cluster.names[0]].create(sid)
        if len(chosen) == count:
            return chosen
    raise AssertionError("not enough groups")


def restart(node):
    node.start(wait=False)
    node.wait_ready(60)


def wait_progress(clients, more=5, timeout=30.0):
    """Appends keep being acknowledged (bounded)."""
    target = clients.acked_count() + more
    deadline = time.monotonic() + timeout
    while clients.acked_count() < target:
        assert time.monotonic() < deadline, f"no progress: {clients.acked_count()} acks, errors {clients.errors[:3]}"
        assert not clients.errors, clients.errors[:3]
        time.sleep(0.05)


def run_scenario(cluster, kill_round, rounds, entry_nodes=None):
    rng = random.Random(20261201)
    sessions = sessions_over_groups(cluster)
    clients = AppendClients(cluster, sessions, entry_nodes=entry_nodes).start()
    readers = FreshReads(cluster, clients, sessions, nodes=entry_nodes).start()
    try:
        wait_progress(clients)
        for round_no in range(rounds):
            kill_round(cluster, sessions, rng, round_no)
            wait_progress(clients)
        wait_progress(clients, more=20)
    finally:
        readers.stop()
        clients.stop()
    checked = check_history(cluster, clients, sessions)
    assert checked >= len(clients.acks) > 0
    print(f"{rounds} rounds: {len(clients.acks)} acks, {clients.retries} retries, {checked} events checked; "
          f"reads: {readers.summary()}")
    assert not readers.violations, readers.violations[:5]
    assert not readers.errors, readers.errors[:5]
    return clients


def leader_of(cluster, session_id):
    group = cluster.group_of(session_id)
    return cluster.wait_leaders([group], timeout=30)[group]


def kill_leader(cluster, sessions, rng, round_no):
    victim = cluster[leader_of(cluster, sessions[round_no % len(sessions)])]
    victim.kill()
    time.sleep(rng.uniform(0.2, 1.0))
    restart(victim)


def kill_follower(cluster, sessions, rng, round_no):
    sid = sessions[round_no % len(sessions)]
    leader = leader_of(cluster, sid)
    group = cluster.group_of(sid)
    followers = [name for name in cluster.names if name != leader
                 and any(g["group"] == group for g in cluster.status(name)["groups"])]
    victim = cluster[rng.choice(followers)]
    victim.kill()
    time.sleep(rng.uniform(0.2, 1.0))
    restart(victim)


def kill_everything(cluster, sessions, rng, round_no):
    for node in cluster:
        node.kill()
    time.sleep(rng.uniform(0.1, 0.5))
    for node in cluster:
        node.start(wait=False)
    for node in cluster:
        node.wait_ready(60)


@pytest.mark.parametrize("scenario,default_rounds", [
    (kill_leader, 10), (kill_follower, 3), (kill_everything, 3)], ids=["leaders", "followers", "whole-cluster"])
def test_sigkill_under_load_three_nodes(make_cluster, scenario, default_rounds):
    cluster = make_cluster(3, env=ENV)
    run_scenario(cluster, scenario, cycles(default_rounds))


def test_sigkill_leaders_five_nodes_rf3_traffic_through_non_replicas(make_cluster):
    cluster = make_cluster(5, env=ENV)
    run_scenario(cluster, kill_leader, cycles(3))
