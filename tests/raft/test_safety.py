"""Unit tests of the follower-side Raft fixes in `starcite.actors.raft_safety`.

Each fix is checked on `SafeReplica` (our class) and, where stock pysyncobj 0.3.17
has the bug, on `StockReplica` as a strict xfail: the test proves the bug exists
and that the fix removes it. A follower is driven by hand: the test plays the
leader (node 1) by injecting append-entries and reads the follower's replies
from the simulated network. Cluster-level properties live in test_safety_property.py.
"""

import pytest
from pysyncobj import FAIL_REASON
from pysyncobj import pickle as pysyncobj_pickle

from starcite.actors.raft_safety import SafeSyncObj, chain_digest
from tests.raft.sim import SafeReplica, SimClock, SimCluster, SimNetwork, StockReplica, simulated_world

LEADER, FOLLOWER = 1, 2
NO_OP = b"\x01"   # pysyncobj's _COMMAND_TYPE.NO_OP: applied without touching the state machine

# raises=AssertionError: only a failed assertion counts as "bug proven", not an unrelated error.
STOCK_FAILS = pytest.mark.xfail(strict=True, raises=AssertionError, reason="stock pysyncobj 0.3.17 has this bug")
BOTH = pytest.mark.parametrize("replica_class", [SafeReplica, pytest.param(StockReplica, marks=STOCK_FAILS)])


def entry(index, term, payload=b""):
    return (NO_OP + b"%d:%d:" % (index, term) + payload, index, term)


def append_entries(prev, entries, term, commit=0):
    """An append-entries from the leader: prev = (index, term), entries = [(index, term), ...]."""
    return {
        "type": "append_entries", "term": term, "commit_index": commit,
        "prevLogIdx": prev[0], "prevLogTerm": prev[1], "entries": [entry(i, t) for i, t in entries],
    }


class Follower:
    """One replica (node 2) whose only peer, the leader (node 1), is played by the test."""

    def __init__(self, replica_class, tmp_path, clock):
        self.network = SimNetwork(clock)
        self.cluster = SimCluster(replica_class, [LEADER, FOLLOWER], str(tmp_path), self.network,
                                  raftMinTimeout=1000.0, raftMaxTimeout=2000.0, connectionTimeout=2000.0)
        self.replica = self.cluster.start(FOLLOWER)
        self.journal = self.replica._SyncObj__raftLog

    def receive(self, message, src=LEADER):
        self.network.inject(src, FOLLOWER, message)

    def log(self):
        return [(index, term) for _, index, term in self.cluster.log(FOLLOWER)]

    def success_replies(self):
        return [r["next_node_idx"] for r in self.network.replies_to(LEADER) if r["success"]]

    def hold_1_to_5(self, terms=(1, 1, 1, 1), term=1):
        """Give the follower entries 2..5 (entry 1 is pysyncobj's initial no-op, term 0)."""
        self.receive(append_entries((1, 0), list(zip(range(2, 6), terms)), term=term))
        self.replica.doTick(0)
        assert self.log() == [(1, 0)] + list(zip(range(2, 6), terms))


@pytest.fixture
def make_follower(tmp_path):
    clock = SimClock()
    with simulated_world(clock, seed=0):
        followers = []

        def make(replica_class):
            followers.append(Follower(replica_class, tmp_path / f"f{len(followers)}", clock))
            return followers[-1]

        yield make
        for follower in followers:
            follower.cluster.stop_all()


# --- (a) truncate only on a real term conflict --------------------------------------

@BOTH
def test_stale_append_entries_keeps_acknowledged_entries(make_follower, replica_class):
    """The reproduction: holding 1..5, a re-sent prevLogIdx=1 with [2, 3] must change nothing."""
    f = make_follower(replica_class)
    f.hold_1_to_5()
    assert f.success_replies() == [6]
    f.receive(append_entries((1, 0), [(2, 1), (3, 1)], term=1, commit=5))
    f.replica.doTick(0)
    assert f.log() == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]   # stock: [1..3]
    assert f.success_replies()[-1] == 6                           # stock: next=4


@BOTH
def test_stale_heartbeat_keeps_acknowledged_entries(make_follower, replica_class):
    """An empty append-entries with an old prevLogIdx truncated too (stock ~L991-1004)."""
    f = make_follower(replica_class)
    f.hold_1_to_5()
    f.receive(append_entries((2, 1), [], term=1, commit=2))
    f.replica.doTick(0)
    assert len(f.log()) == 5


def test_real_conflict_truncates_from_the_first_conflicting_entry(make_follower):
    f = make_follower(SafeReplica)
    f.hold_1_to_5()
    # A leader of term 2 agrees up to 3, and has its own entry 4.
    f.receive(append_entries((2, 1), [(3, 1), (4, 2)], term=2))
    f.replica.doTick(0)
    assert f.log() == [(1, 0), (2, 1), (3, 1), (4, 2)]
    assert f.success_replies()[-1] == 5


def _chunked(message, held_entry, chunks=3):
    """pysyncobj's transmission of one large entry: start, process..., finish."""
    data = pysyncobj_pickle.dumps(held_entry)
    size = len(data) // chunks + 1
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    kinds = ["start"] + ["process"] * (len(parts) - 2) + ["finish"]
    base = {k: v for k, v in message.items() if k != "entries"}
    return [dict(base, transmission=kind, data=part) for kind, part in zip(kinds, parts)]


@BOTH
def test_chunked_entries_are_reassembled_then_compared(make_follower, replica_class):
    f = make_follower(replica_class)
    big = (NO_OP + b"x" * 3000, 2, 1)
    f.receive(dict(append_entries((1, 0), [], term=1), entries=[big] + [entry(i, 1) for i in (3, 4, 5)]))
    f.replica.doTick(0)
    for chunk in _chunked(append_entries((1, 0), [], term=1), big):   # re-sent: already held
        f.receive(chunk)
    f.replica.doTick(0)
    assert len(f.log()) == 5                                          # stock: truncated to 1..2
    new = (NO_OP + b"y" * 3000, 6, 1)
    for chunk in _chunked(append_entries((5, 1), [], term=1), new):   # a new large entry
        f.receive(chunk)
    f.replica.doTick(0)
    assert f.cluster.log(FOLLOWER)[-1] == new
    assert f.success_replies()[-1] == 7


# --- (b) commit only what the message covers -----------------------------------------

@BOTH
def test_snapshot_transfer_message_commits_nothing_unmatched(make_follower, replica_class):
    """A message without prevLogIdx (snapshot on its way) proves nothing about the log.

    Stock sets commit = min(leaderCommit, end of log) (~L1033) and applies entries 2..5
    from term 1, which the term-2 leader's log may not contain.
    """
    f = make_follower(replica_class)
    f.hold_1_to_5()
    f.receive({"type": "append_entries", "term": 2, "commit_index": 5, "serialized": None})
    f.replica.doTick(0)
    assert f.replica.raftCommitIndex == 1 and f.replica.raftLastApplied == 1


@BOTH
def test_commit_stops_at_the_end_of_the_message(make_follower, replica_class):
    """Entries 4, 5 are from an older term: kept (no conflict yet) but not committed."""
    f = make_follower(replica_class)
    f.hold_1_to_5()
    f.receive(append_entries((1, 0), [(2, 1), (3, 1)], term=2, commit=5))
    f.replica.doTick(0)
    assert f.log() == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]
    assert f.replica.raftCommitIndex == 3
    assert f.success_replies()[-1] == 4   # 4, 5 may conflict with the term-2 leader


# --- (c) success replies only after the journal sync ---------------------------------

@BOTH
def test_success_reply_waits_for_the_journal_sync(make_follower, replica_class):
    f = make_follower(replica_class)
    synced_at_send = []
    send = f.network.send

    def recording_send(src, dst, message):
        synced_at_send.append(list(f.journal.synced_entries) == f.cluster.log(FOLLOWER))
        return send(src, dst, message)

    f.network.send = recording_send
    f.receive(append_entries((1, 0), [(2, 1), (3, 1)], term=1))
    assert f.success_replies() == []       # held until the next tick (stock: sent now)
    f.replica.doTick(0)
    assert f.success_replies() == [4]
    assert synced_at_send == [True]


@BOTH
def test_one_sync_and_one_reply_for_a_poll(make_follower, replica_class):
    f = make_follower(replica_class)
    syncs = f.journal.syncs
    for index in (2, 3, 4):
        f.receive(append_entries((index - 1, 0 if index == 2 else 1), [(index, 1)], term=1))
    f.replica.doTick(0)
    assert f.journal.syncs == syncs + 1
    assert f.success_replies() == [5]      # stock: [3, 4, 5], each before any sync


def test_failure_replies_are_not_held(make_follower):
    f = make_follower(SafeReplica)
    f.receive(append_entries((7, 1), [(8, 1)], term=1))
    assert [r["success"] for r in f.network.replies_to(LEADER)] == [False]


def test_a_reply_held_across_a_term_change_is_dropped(make_follower):
    f = make_follower(SafeReplica)
    f.receive(append_entries((1, 0), [(2, 1)], term=1))
    f.receive({"type": "request_vote", "term": 2, "last_log_index": 2, "last_log_term": 1}, src=3)
    f.replica.doTick(0)
    assert f.success_replies() == []


# --- (d) a bounded number of entries applied per tick --------------------------------

@BOTH
def test_apply_is_bounded_per_tick_and_the_next_tick_is_woken(make_follower, replica_class):
    f = make_follower(replica_class)
    notifier = f.replica._SyncObj__pipeNotifier
    wakes = []
    real_notify = notifier.notify
    notifier.notify = lambda: (wakes.append(1), real_notify())
    f.receive(append_entries((1, 0), [(i, 1) for i in range(2, 5002)], term=1, commit=5001))
    f.replica.doTick(0)
    assert f.replica.raftLastApplied == 1 + SafeSyncObj.max_applied_per_tick   # stock: 5001
    assert wakes
    for _ in range(2):
        f.replica.doTick(0)
    assert f.replica.raftLastApplied == 5001


# --- (e) digest of applied entries ----------------------------------------------------

def _run_until(cluster, done, steps=4000):
    for _ in range(steps):
        if done():
            return
        cluster.step()
    raise AssertionError("the simulated cluster did not get there in time")


def _replicate(cluster, values):
    acked = []
    for value in values:
        _run_until(cluster, lambda: cluster.leader() is not None)
        leader = cluster.leader()
        cluster.registers[leader.selfNode.id].add(value, callback=lambda res, err, v=value: err == FAIL_REASON.SUCCESS and acked.append(v))
        cluster.step()
    _run_until(cluster, lambda: len(acked) == len(values) and _converged(cluster))


def _converged(cluster):
    applied = {r.raftLastApplied for r in cluster.replicas.values()}
    return len(applied) == 1 and len({r.raftCommitIndex for r in cluster.replicas.values()} | applied) == 1


@pytest.fixture
def cluster_of_three(tmp_path):
    clock = SimClock()
    with simulated_world(clock, seed=1):
        clusters = []

        def make(**conf):
            clusters.append(SimCluster(SafeReplica, [1, 2, 3], str(tmp_path), SimNetwork(clock), **conf))
            for node_id in (1, 2, 3):
                clusters[-1].start(node_id)
            return clusters[-1]

        yield make
        for cluster in clusters:
            cluster.stop_all()


def test_replicas_that_applied_the_same_log_have_the_same_digests(cluster_of_three):
    cluster = cluster_of_three()
    _replicate(cluster, range(40))
    index, digest = cluster.replicas[1].applied_digest()
    assert index > 40 and all(r.applied_digest() == (index, digest) for r in cluster.replicas.values())
    expected = b""
    for command, i, term in cluster.log(1)[1:index]:   # entry 1 is never applied
        expected = chain_digest(expected, i, term, command)
    assert expected.hex() == digest
    for i in (1, 10, index - 1):
        assert len({r.digest_at(i) for r in cluster.replicas.values()}) == 1
    cluster.stop(2)                 # a replica that replays its journal rebuilds the same chain
    cluster.start(2)
    _run_until(cluster, lambda: _converged(cluster))
    assert cluster.replicas[2].digest_at(index) == digest


def test_digest_chain_survives_snapshots(cluster_of_three, tmp_path):
    cluster = cluster_of_three(logCompactionMinEntries=20, snapshots=True)
    _replicate(cluster, range(10))
    cluster.stop(3)                 # falls behind the others' compacted logs
    _replicate(cluster, range(10, 80))
    cluster.start(3)                # catches up from a snapshot sent by the leader
    _replicate(cluster, range(80, 85))
    assert any("serialized" in msg for _, dst, msg in cluster.network.sent if dst == 3)
    digests = {(r.applied_digest(), r.digest_chain_start()) for r in cluster.replicas.values()}
    assert len(digests) == 1 and cluster.registers[3].values == list(range(85))


def test_a_chain_that_skips_indexes_restarts_and_says_where(make_follower):
    """After a snapshot written without a digest the applied index jumps: a new chain starts."""
    replica = make_follower(SafeReplica).replica
    assert replica.applied_digest() == (1, "") and replica.digest_chain_start() == 2
    replica._chain_applied([entry(10, 1)])
    assert replica.digest_chain_start() == 10
    assert replica.applied_digest() == (10, chain_digest(b"", 10, 1, entry(10, 1)[0]).hex())


# --- (f) a conflicting suffix is dropped, so two rejections cannot undo each other ---------

@BOTH
def test_two_rejections_in_one_heartbeat_point_at_the_conflict(make_follower, replica_class):
    """Found by the partition drill: a follower holds 2..5 from an old leader (term 1); the new
    leader's log differs from index 4 (term 2). In one heartbeat it sends two messages, the
    second starting past the follower's log. Stock pysyncobj answers "from 4" then "from 6"
    (the end of its log), the later answer wins, and the leader resends from 6 forever."""
    follower = make_follower(replica_class)
    follower.hold_1_to_5()
    follower.receive(append_entries((4, 2), [(5, 2), (6, 2)], term=2))   # conflict at 4
    follower.receive(append_entries((6, 2), [(7, 2)], term=2))           # past the log
    follower.replica.doTick(0)
    hints = [r["next_node_idx"] for r in follower.network.replies_to(LEADER) if r["reset"]]
    assert hints and max(hints) <= 4, hints
    assert follower.log() == [(1, 0), (2, 1), (3, 1)]  # the conflicting 4, 5 are gone (never committed)
