"""`ConfirmedReads` (starcite/actors/read_index.py) in the Raft simulator: a leader's read index.

Owns: the property fresh reads rest on: a leader cut off from its followers, still believing it
leads while another leader commits, never confirms a read index (a read served from it would miss
an acknowledged write); the new leader's read index covers that write; concurrent reads share
probe rounds. Must not: open sockets; the simulator drives every replica (reads wait in greenlets).
"""

import gevent
import pytest

from starcite.actors.raft_errors import RaftUnavailable
from starcite.actors.read_index import ConfirmedReads
from tests.raft.sim import SimClock, SimCluster, SimNetwork, _SyncsBeforeTick, simulated_world


class ReadReplica(_SyncsBeforeTick, ConfirmedReads):
    group_id = 0

    def leader_name(self):
        leader = self._getLeader()
        return None if leader is None else str(leader)


class CuttableNetwork(SimNetwork):
    """Messages from or to a node in ``cut`` are lost."""

    def __init__(self, clock):
        super().__init__(clock)
        self.cut = set()

    def send(self, src, dst, message):
        if src.id in self.cut or dst.id in self.cut:
            return True
        return super().send(src, dst, message)


def node_id(replica):
    return replica._SyncObj__selfNode.id


def run_until(cluster, predicate, what, steps=4000):
    for _ in range(steps):
        if predicate():
            return
        cluster.step()
        gevent.sleep(0)  # the reads waiting in greenlets run
    raise AssertionError(f"not reached: {what}")


def commit(cluster, replica, value):
    done = []
    cluster.registers[node_id(replica)].add(value, callback=lambda result, err: done.append(err))
    run_until(cluster, lambda: done, f"commit of {value}")
    assert done == [0]
    return replica.raftCommitIndex


@pytest.fixture
def cluster(tmp_path):
    clock = SimClock()
    with simulated_world(clock, seed=3):
        network = CuttableNetwork(clock)
        cluster = SimCluster(ReadReplica, [1, 2, 3], str(tmp_path), network)
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        run_until(cluster, lambda: cluster.leader() is not None, "a leader")
        yield cluster
        cluster.stop_all()


def test_a_cut_off_leader_never_confirms_while_the_new_one_covers_the_new_write(cluster):
    old = cluster.leader()
    commit(cluster, old, "before")
    cluster.network.cut.add(node_id(old))
    run_until(cluster, lambda: any(r is not old and r._isLeader() for r in cluster.replicas.values()),
              "a new leader")
    new = next(r for r in cluster.replicas.values() if r is not old and r._isLeader())
    written = commit(cluster, new, "after")
    assert old._isLeader() and old.raftCommitIndex < written  # what a read served from it would miss

    stale = gevent.spawn(old.read_index, 30.0)
    fresh = gevent.spawn(new.read_index, 30.0)
    run_until(cluster, lambda: fresh.ready() and stale.ready(), "both reads answered")
    assert fresh.value >= written
    assert isinstance(stale.exception, RaftUnavailable)  # NotLeader once it stepped down: never an index


def test_concurrent_reads_share_probe_rounds(cluster):
    leader = cluster.leader()
    index = commit(cluster, leader, "x")
    sent_before = len(cluster.network.sent)
    reads = [gevent.spawn(leader.read_index, 30.0) for _ in range(20)]
    gevent.sleep(0)
    run_until(cluster, lambda: all(read.ready() for read in reads), "20 reads")
    assert [read.value for read in reads] == [index] * 20
    probes = [m for _src, _dst, m in cluster.network.sent[sent_before:] if m["type"] == "read_probe"]
    assert len(probes) <= 2 * 2  # at most two rounds to each of the two followers


def test_a_follower_waits_until_it_has_applied_the_index(cluster):
    leader = cluster.leader()
    follower = next(r for r in cluster.replicas.values() if r is not leader)
    index = commit(cluster, leader, "y")
    waiting = gevent.spawn(follower.wait_applied, index + 1, 30.0)
    run_until(cluster, lambda: follower.raftLastApplied >= index, "the follower applied")
    gevent.sleep(0)
    assert not waiting.ready()
    commit(cluster, leader, "z")
    run_until(cluster, lambda: waiting.ready(), "the wait released")
    assert waiting.successful()
