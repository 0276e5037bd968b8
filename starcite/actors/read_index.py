"""Reads that see every acknowledged write: etcd's ReadIndex on pysyncobj (`ConfirmedReads`).

Owns, for one Raft group:
- the leader's read index: its commit index when the read arrived (at least its
  term's first entry, the no-op pysyncobj appends on election: until that
  commits, a new leader's commit index may lag what the old one acknowledged);
- confirming that it still led when the read arrived: a *probe round*. The
  leader sends ``read_probe {term, round}`` to its followers; a follower that
  is in that term and follows that leader echoes it (``read_probe_ack``). A
  majority (the leader counts itself) echoing round R or later proves that no
  other leader had been elected when they answered, so nothing was
  acknowledged that the read index misses. Every read that arrives while a
  round is out waits for the next one: one round in flight per group, however
  many reads;
- the wait until this replica has applied a given index (`wait_applied`),
  which a follower runs with the index its leader returned.

No log entry is written, and no clock is trusted: a lease would not be safe
here, because a leadership transfer (drain, the preferred-replica hand-over)
elects the next leader at once, without waiting out any timeout.

Must not: answer reads (the node reads the state machine once this says it
may), route to the leader (`starcite.cluster.routing` does), or change the
Raft state. Raft reference: §6.4 of Ongaro's thesis; etcd raft's ReadIndex.
"""

import heapq
import itertools
import time

import gevent
from gevent.event import AsyncResult

from starcite.actors.raft_errors import NotLeader, raft_timeout
from starcite.actors.raft_safety import SafeSyncObj

PROBE_RESEND_S = 0.1   # a round not confirmed by then (a lost message, a follower between leaders) is sent again


class ConfirmedReads(SafeSyncObj):
    """A pysyncobj replica that can tell a reader how far it must have applied (see the module)."""

    def __init__(self, *args, **kwargs):
        # Set before SyncObj.__init__: local, never in a snapshot.
        self._probe_round = 0        # the last round sent
        self._probe_term = None      # the term it was sent in
        self._probe_sent_at = 0.0
        self._probe_echoes = {}      # follower id -> highest round it echoed in _probe_term
        self._confirmed_round = 0    # the highest round a majority echoed in _probe_term
        self._leader_reads = []      # [(round needed, read index, term, AsyncResult)]
        self._applied_waits = []     # heap of (index, n, deadline, AsyncResult)
        self._wait_ids = itertools.count()
        super().__init__(*args, **kwargs)

    # -- the leader's side ---------------------------------------------------------

    def read_index(self, timeout: float) -> int:
        """The index a read must see, once this leader has confirmed it still leads (waits up to
        ``timeout``). `NotLeader` when it does not lead, or stops leading before confirmation."""
        if not self._isLeader():
            raise NotLeader(self.group_id, self.leader_name())
        noop = self._SyncObj__noopIDx or 0
        index = max(self.raftCommitIndex, noop)
        if not self._SyncObj__otherNodes:
            return index  # a group of one: nobody else can lead
        result = AsyncResult()
        term = self._getTerm()
        self._leader_reads.append((self._probe_round + 1, index, term, result))
        if self._probe_term != term or self._confirmed_round >= self._probe_round:
            self._send_probe()  # no round in flight: this read starts one
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise raft_timeout(f"Group {self.group_id}'s leader could not confirm its leadership in time") from None

    def _send_probe(self):
        term = self._getTerm()
        if term != self._probe_term:
            self._probe_term, self._probe_echoes, self._confirmed_round = term, {}, 0
        self._probe_round += 1
        self._probe_sent_at = time.monotonic()
        message = {"type": "read_probe", "term": term, "round": self._probe_round}
        transport = self._SyncObj__transport
        for node in self._SyncObj__otherNodes:
            transport.send(node, message)

    def _on_probe_ack(self, node, message):
        if not self._isLeader() or message["term"] != self._getTerm() or message["term"] != self._probe_term:
            return
        echoes = self._probe_echoes
        echoes[node.id] = max(echoes.get(node.id, 0), message["round"])
        needed = (len(self._SyncObj__otherNodes) + 1) // 2  # followers that, with the leader, make a majority
        ranked = sorted(echoes.values(), reverse=True)
        if len(ranked) >= needed:
            self._confirmed_round = max(self._confirmed_round, ranked[needed - 1])
        self._release_leader_reads()

    def _release_leader_reads(self):
        confirmed, term = self._confirmed_round, self._probe_term
        waiting = []
        for read in self._leader_reads:
            needed, index, read_term, result = read
            if read_term == term and needed <= confirmed:
                result.set(index)
            else:
                waiting.append(read)
        self._leader_reads = waiting
        if waiting and self._confirmed_round >= self._probe_round:
            self._send_probe()  # the reads that came during the round just confirmed

    def _check_leader_reads(self):
        """Each tick: reads of a leader that lost its term fail (the router asks the new one);
        a round unanswered for `PROBE_RESEND_S` goes out again."""
        if not self._leader_reads:
            return
        leading, term = self._isLeader(), self._getTerm()
        stale = [read for read in self._leader_reads if not leading or read[2] != term]
        if stale:
            self._leader_reads = [read for read in self._leader_reads if leading and read[2] == term]
            failure = NotLeader(self.group_id, self.leader_name())
            for read in stale:
                read[3].set_exception(failure)
        if self._leader_reads and time.monotonic() - self._probe_sent_at > PROBE_RESEND_S:
            self._send_probe()

    # -- the follower's side -------------------------------------------------------

    def _on_probe(self, node, message):
        """Echo a probe from the leader this replica follows, in its own term (else stay silent)."""
        leader = self._getLeader()
        if message["term"] == self._getTerm() and leader is not None and leader.id == node.id:
            self._SyncObj__transport.send(node, {"type": "read_probe_ack", "term": message["term"],
                                                "round": message["round"]})

    def hasten_commit_news(self):
        """Send the followers the commit index at the next tick instead of at the next heartbeat:
        a follower waiting to apply a read index learns it sooner."""
        self._SyncObj__newAppendEntriesTime = 0
        self._wake_next_tick()

    # -- any replica ------------------------------------------------------------------

    def wait_applied(self, index: int, timeout: float):
        """Return once this replica has applied ``index`` (its state then reflects every write
        the read index covers); `RaftUnavailable` (raft_timeout) after ``timeout``."""
        if self.raftLastApplied >= index:
            return
        result = AsyncResult()
        heapq.heappush(self._applied_waits, (index, next(self._wait_ids), time.monotonic() + timeout, result))
        try:
            result.get(timeout=timeout)
        except gevent.Timeout:
            raise raft_timeout(f"Group {self.group_id}'s replica on this node did not catch up in time") from None

    def _release_applied(self):
        waits, applied = self._applied_waits, self.raftLastApplied
        while waits and waits[0][0] <= applied:
            heapq.heappop(waits)[3].set(None)
        if waits and len(waits) > 64:  # abandoned waits (their reader timed out) do not pile up
            now = time.monotonic()
            self._applied_waits = [wait for wait in waits if wait[2] > now]
            heapq.heapify(self._applied_waits)

    # -- pysyncobj hooks ---------------------------------------------------------------

    def _SyncObj__onMessageReceived(self, node, message):
        kind = message.get("type")
        if kind == "read_probe":
            self._on_probe(node, message)
        elif kind == "read_probe_ack":
            self._on_probe_ack(node, message)
        else:
            super()._SyncObj__onMessageReceived(node, message)

    def _SyncObj__applyLogEntries(self):
        need_send = super()._SyncObj__applyLogEntries()
        if self._applied_waits:
            self._release_applied()
        return need_send

    def _onTick(self, timeToWait=0.0):
        self._check_leader_reads()
        if self._applied_waits:
            self._release_applied()  # also after a snapshot load, which moves the applied index
        super()._onTick(timeToWait)


__all__ = ["ConfirmedReads"]
