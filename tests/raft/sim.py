"""An in-process Raft cluster for tests: pysyncobj replicas over a fault-injecting network.

Owns: a virtual clock (pysyncobj's timers read it), `SimNetwork` (routes deep-copied
messages between replicas, and with a seeded RNG drops, duplicates, delays and so
reorders them), `SimTransport` (the pysyncobj `Transport` each replica uses),
`PowerLossJournal` (a file journal of which only the synced entries survive a
crash) and `SimCluster`, which starts, ticks, crashes and restarts replicas.

Must not: open sockets, sleep, or read the wall clock; everything is driven by
`doTick(0)` calls and `SimClock.advance`, so a seed replays the same run.
"""

import contextlib
import copy
import functools
import heapq
import os
import random
from unittest import mock

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import syncobj as pysyncobj_syncobj
from pysyncobj.journal import FileJournal
from pysyncobj.node import Node
from pysyncobj.transport import Transport

from starcite.actors.raft_journal import DurableFileJournal
from starcite.actors.raft_safety import SafeSyncObj


class SimClock:
    """Stands in for pysyncobj's monotonic clock: time moves only when a test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class SimNode(Node):
    """Integer ids hash the same in every process, so set iteration (and a seeded run) repeats."""

    def __str__(self):
        return f"n{self.id}"


class SimNetwork:
    """Every message any replica sends, and the ones still in flight.

    Faults are drawn per link from an RNG seeded by (seed, src, dst), so the faults a
    link sees do not depend on the order replicas send on other links.
    """

    def __init__(self, clock, seed=0, drop=0.0, duplicate=0.0, max_delay=0.0):
        self.clock = clock
        self.seed = seed
        self.drop, self.duplicate, self.max_delay = drop, duplicate, max_delay
        self.transports = {}   # node id -> SimTransport of the running replica
        self.sent = []         # (src id, dst id, message) of every send, for assertions
        self._in_flight = []   # heap of (due, src, dst, link seq, message)
        self._links = {}       # (src, dst) -> [rng, seq]

    def register(self, transport):
        self.transports[transport.node.id] = transport
        for other_id, other in self.transports.items():
            if other_id != transport.node.id:
                other._onNodeConnected(transport.node)
                transport._onNodeConnected(other.node)

    def unregister(self, transport):
        if self.transports.get(transport.node.id) is transport:
            del self.transports[transport.node.id]
            for other in self.transports.values():
                other._onNodeDisconnected(transport.node)

    def send(self, src, dst, message):
        self.sent.append((src.id, dst.id, copy.deepcopy(message)))
        if dst.id not in self.transports:
            return False
        link = self._links.setdefault((src.id, dst.id), [random.Random(f"{self.seed}:{src.id}:{dst.id}"), 0])
        rng = link[0]
        if rng.random() < self.drop:
            return True
        copies = 2 if rng.random() < self.duplicate else 1
        for _ in range(copies):
            link[1] += 1
            due = self.clock.now + rng.uniform(0.0, self.max_delay)
            heapq.heappush(self._in_flight, (due, src.id, dst.id, link[1], copy.deepcopy(message)))
        return True

    def deliver_due(self):
        """Hand every message whose delay has passed to its replica, earliest first."""
        while self._in_flight and self._in_flight[0][0] <= self.clock.now:
            _, src_id, dst_id, _, message = heapq.heappop(self._in_flight)
            self.inject(src_id, dst_id, message)

    def inject(self, src_id, dst_id, message):
        transport = self.transports.get(dst_id)
        if transport is not None:   # a crashed replica loses what was sent to it
            transport._onMessageReceived(SimNode(src_id), message)

    def replies_to(self, dst_id, kind="next_node_idx"):
        return [msg for _, dst, msg in self.sent if dst == dst_id and msg["type"] == kind]


class SimTransport(Transport):
    """pysyncobj's transport interface over a SimNetwork (built as partial(SimTransport, net))."""

    def __init__(self, network, syncObj, selfNode, otherNodes):
        super().__init__(syncObj, selfNode, otherNodes)
        self.network = network
        self.node = selfNode

    def tryGetReady(self):
        # Called once the replica has set its callbacks, so peers can be connected now.
        if self.node.id not in self.network.transports:
            self.network.register(self)

    @property
    def ready(self):
        return self.node.id in self.network.transports

    def send(self, node, message):
        return self.network.send(self.node, node, message)

    def destroy(self):
        self.network.unregister(self)


class PowerLossJournal(DurableFileJournal):
    """Our durable file journal, minus the fsync, remembering what each sync made durable."""

    def __init__(self, journal_file):
        super().__init__(journal_file)
        self.fsync = False
        self.synced_entries = self[:]
        self.syncs = 0

    def sync(self):
        if self.dirty:
            self.synced_entries = self[:]
            self.syncs += 1
        super().sync()


def lose_unsynced_entries(journal_file, synced_entries):
    """What a power loss leaves: the journal file holds only the synced entries."""
    os.remove(journal_file)
    journal = FileJournal(journal_file)
    for entry in synced_entries:
        journal.add(*entry)
    journal._destroy()


class Register(SyncObjConsumer):
    """The replicated state: the values applied, in order."""

    def __init__(self):
        super().__init__()
        self.values = []

    @replicated
    def add(self, value):
        self.values.append(value)
        return len(self.values)


class _SyncsBeforeTick:
    """What RaftGroup does: the journal is synced at the start of every tick (RaftGroup itself is
    checked by tests/raft/test_fsync_before_ack.py)."""

    def _onTick(self, timeToWait=0.0):
        self._SyncObj__raftLog.sync()
        super()._onTick(timeToWait)


class SafeReplica(_SyncsBeforeTick, SafeSyncObj):
    """A replica with our fixes (as RaftGroup runs it)."""


class StockReplica(_SyncsBeforeTick, SyncObj):
    """A replica on stock pysyncobj 0.3.17 (as RaftGroup ran before the fixes)."""


def replica_conf(journal_file, **overrides):
    settings = dict(
        autoTick=False, appendEntriesUseBatch=False, journalFile=journal_file,
        appendEntriesPeriod=0.05, raftMinTimeout=0.4, raftMaxTimeout=0.9,
        logCompactionMinEntries=10 ** 9, logCompactionMinTime=10 ** 9, leaderFallbackTimeout=3.0,
    )
    settings.update(overrides)
    return SyncObjConf(**settings)


@contextlib.contextmanager
def simulated_world(clock, seed):
    """pysyncobj's clock, election randomness and journal factory, for the duration of a test."""
    with mock.patch.object(pysyncobj_syncobj, "monotonicTime", clock), \
            mock.patch.object(pysyncobj_syncobj, "random", random.Random(seed)), \
            mock.patch.object(pysyncobj_syncobj, "createJournal", PowerLossJournal):
        yield


class SimCluster:
    """Replicas `node_ids` of `replica_class`, each with a Register and a journal in `data_dir`."""

    def __init__(self, replica_class, node_ids, data_dir, network, snapshots=False, **conf_overrides):
        self.replica_class = replica_class
        self.node_ids = list(node_ids)
        self.data_dir = data_dir
        self.network = network
        self.conf_overrides = conf_overrides
        self.snapshots = snapshots   # snapshot files next to the journals (written in-process)
        os.makedirs(data_dir, exist_ok=True)
        self.replicas = {}
        self.registers = {}   # node id -> the running replica's Register

    def journal_file(self, node_id):
        return os.path.join(self.data_dir, f"node{node_id}.journal")

    def start(self, node_id):
        others = [SimNode(other) for other in self.node_ids if other != node_id]
        conf = dict(self.conf_overrides)
        if self.snapshots:
            conf.update(fullDumpFile=self.journal_file(node_id) + ".snapshot", useFork=False)
        self.registers[node_id] = Register()
        replica = self.replica_class(
            SimNode(node_id), others, replica_conf(self.journal_file(node_id), **conf),
            consumers=[self.registers[node_id]], nodeClass=SimNode,
            transportClass=functools.partial(SimTransport, self.network))
        self.replicas[node_id] = replica
        return replica

    def stop(self, node_id):
        replica = self.replicas.pop(node_id)
        replica.destroy()
        notifier = replica._SyncObj__pipeNotifier   # pysyncobj never closes its pipe
        os.close(notifier._PipeNotifier__pipeR)
        os.close(notifier._PipeNotifier__pipeW)
        return replica

    def crash(self, node_id):
        """Power loss: the replica stops and keeps only its synced journal entries."""
        replica = self.stop(node_id)
        lose_unsynced_entries(self.journal_file(node_id), replica._SyncObj__raftLog.synced_entries)

    def stop_all(self):
        for node_id in list(self.replicas):
            self.stop(node_id)

    def step(self, seconds=0.005):
        """One round: every replica ticks, due messages arrive, time moves on."""
        for replica in list(self.replicas.values()):
            replica.doTick(0)
        self.network.deliver_due()
        self.network.clock.advance(seconds)

    def leader(self):
        leaders = [r for r in self.replicas.values() if r._isLeader()]
        return max(leaders, key=lambda r: r._getTerm()) if leaders else None

    def log(self, node_id):
        journal = self.replicas[node_id]._SyncObj__raftLog
        return [journal[i] for i in range(len(journal))]
