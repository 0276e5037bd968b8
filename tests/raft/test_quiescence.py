"""`QuiescentGroup` (starcite/actors/quiescence.py) in the Raft simulator: idle groups go quiet.

Owns: a quiet group sends no heartbeats and holds its leader (no election while quiet, however
long); a new entry wakes it and commits on every replica; a leader whose links drop is replaced
(the followers' election timers start again); a follower that has not learned the last commit
keeps the leader heartbeating. Must not: open sockets; the simulator drives every replica.
"""

import pytest

from starcite.actors.quiescence import QUIESCE_AFTER_S, QuiescentGroup
from tests.raft.sim import SimClock, SimCluster, SimNetwork, _SyncsBeforeTick, simulated_world


class QuietReplica(_SyncsBeforeTick, QuiescentGroup):
    group_id = 0

    def leader_name(self):
        leader = self._getLeader()
        return None if leader is None else str(leader)


def run_until(cluster, predicate, what, seconds=10.0, step=0.005):
    for _ in range(int(seconds / step)):
        if predicate():
            return
        cluster.step(step)
    raise AssertionError(f"not reached in {seconds} s: {what}")


def run_for(cluster, seconds, step=0.005):
    for _ in range(int(seconds / step)):
        cluster.step(step)


def commit(cluster, replica, value):
    done = []
    cluster.registers[replica._SyncObj__selfNode.id].add(value, callback=lambda result, err: done.append(err))
    run_until(cluster, lambda: done, f"commit of {value}")
    assert done == [0]


@pytest.fixture
def cluster(tmp_path):
    clock = SimClock()
    with simulated_world(clock, seed=5):
        cluster = SimCluster(QuietReplica, [1, 2, 3], str(tmp_path), SimNetwork(clock))
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        run_until(cluster, lambda: cluster.leader() is not None, "a leader")
        yield cluster
        cluster.stop_all()


def heartbeats_during(cluster, seconds):
    before = len(cluster.network.sent)
    run_for(cluster, seconds)
    return sum(1 for _src, _dst, m in cluster.network.sent[before:] if m["type"] == "append_entries")


def test_an_idle_group_goes_quiet_keeps_its_leader_and_wakes_for_an_entry(cluster):
    leader = cluster.leader()
    commit(cluster, leader, "a")
    run_until(cluster, lambda: all(r.quiet for r in cluster.replicas.values()), "every replica quiet",
              seconds=QUIESCE_AFTER_S + 2)
    term = leader._getTerm()
    assert heartbeats_during(cluster, 10.0) == 0  # four leader fallbacks and ten election timeouts long
    assert cluster.leader() is leader and leader._getTerm() == term

    commit(cluster, leader, "b")
    assert not any(r.quiet for r in cluster.replicas.values())
    run_until(cluster, lambda: all(reg.values == ["a", "b"] for reg in cluster.registers.values()),
              "every replica applied b")
    assert cluster.leader() is leader and leader._getTerm() == term


def test_a_quiet_groups_dead_leader_is_replaced(cluster):
    leader = cluster.leader()
    commit(cluster, leader, "a")
    run_until(cluster, lambda: all(r.quiet for r in cluster.replicas.values()), "every replica quiet",
              seconds=QUIESCE_AFTER_S + 2)
    cluster.stop(leader._SyncObj__selfNode.id)  # its links drop
    run_until(cluster, lambda: cluster.leader() is not None, "a new leader", seconds=3.0)
    commit(cluster, cluster.leader(), "b")


def test_a_follower_behind_the_commit_keeps_the_leader_heartbeating(cluster):
    leader = cluster.leader()
    commit(cluster, leader, "a")
    follower = next(r for r in cluster.replicas.values() if r is not leader)
    leader._quiesce()  # before the followers could learn the last commit from a heartbeat
    follower._SyncObj__raftCommitIndex -= 1
    run_for(cluster, 0.2)
    assert not leader.quiet and heartbeats_during(cluster, 0.5) > 0
