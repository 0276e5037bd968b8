"""Idle groups cost nothing: a quiet group stops its heartbeats (`QuiescentGroup`).

Owns, for one Raft group, the quiescence etcd and CockroachDB use:
- the leader of a group with nothing to do (no entry for `QUIESCE_AFTER_S`,
  every follower linked and holding the whole log, everything committed and
  applied, no read or transfer waiting) sends ``quiesce {term, index}`` to
  its followers and stops sending heartbeats;
- a follower that receives it from the leader it follows, in its term, with
  exactly that log and commit index, stops its election timer; one that
  cannot (it has not learned that commit yet) answers ``wake``, and the
  leader heartbeats again;
- anything else wakes the group at once: a new entry or a transfer on the
  leader (it heartbeats at the next tick), any Raft message but the quiesce
  and the read probes on a follower, a peer link going down or coming up on
  the leader, and the link to the leader on a follower (whose election timer
  then starts: that is how a quiet group notices a dead leader; the peer link
  notices at once on a SIGKILL, within `starcite.peers.link.DEAD_AFTER` on a
  silent partition);
- while quiet, the tick greenlet sleeps `QUIET_TICK_S` between ticks instead
  of the heartbeat period, and the leader counts its linked followers as
  answering (pysyncobj's leader fallback would otherwise depose it).

Safety does not depend on any of it: a quiet group only stops timers and
heartbeats; votes, terms and commits follow Raft unchanged.

Must not: change the log, the commit index or the state machine, or delay a
command: the group that queues an append, a command's entry or a transfer
calls `wake_up` (RaftGroup does), and the tick greenlet is woken as before.
"""

import random

from pysyncobj import syncobj as pysyncobj_syncobj

from starcite.actors.read_index import ConfirmedReads

QUIESCE_AFTER_S = 2.0   # no entry for this long: the leader quiets the group
QUIET_TICK_S = 5.0      # a quiet group's tick period: nothing is due in a quiet group's tick (the
                        # leader's fallback check runs in the same tick that refreshes its answers)


def _now() -> float:
    """pysyncobj's clock (its election deadlines and response times are on it; tests move it)."""
    return pysyncobj_syncobj.monotonicTime()
_FOREVER = float("inf")


class QuiescentGroup(ConfirmedReads):
    """A pysyncobj replica whose group goes quiet when idle (see the module)."""

    def __init__(self, *args, **kwargs):
        # Set before SyncObj.__init__: local, never in a snapshot.
        self.quiet = False
        self._quiet_index = None            # the log index the group went quiet at
        self._active_at = _now()  # the last time the log grew or the group woke
        super().__init__(*args, **kwargs)

    # -- waking ------------------------------------------------------------------

    def wake_up(self):
        """Leave the quiet state: heartbeats (leader) and the election timer (follower) resume."""
        if not self.quiet:
            return
        self.quiet = False
        self._active_at = _now()
        if self._isLeader():
            self._SyncObj__newAppendEntriesTime = 0
        else:
            conf = self._SyncObj__conf
            self._SyncObj__raftElectionDeadline = _now() + random.uniform(
                conf.raftMinTimeout, conf.raftMaxTimeout)
        self._wake_next_tick()

    def tick_period(self, busy_period: float) -> float:
        return QUIET_TICK_S if self.quiet else busy_period

    # -- the leader's side -----------------------------------------------------------

    def _idle_enough(self) -> bool:
        if not self._isLeader() or not self._SyncObj__otherNodes:
            return False
        last = self._SyncObj__raftLog[-1][1]
        if self._quiet_index != last:
            self._quiet_index, self._active_at = last, _now()
            return False
        if _now() - self._active_at < QUIESCE_AFTER_S:
            return False
        connected, match = self._SyncObj__connectedNodes, self._SyncObj__raftMatchIndex
        return (self.raftCommitIndex == last and self.raftLastApplied == last and not self._leader_reads
                and all(node in connected and match.get(node) == last for node in self._SyncObj__otherNodes))

    def _quiesce(self):
        last = self._SyncObj__raftLog[-1][1]
        message = {"type": "quiesce", "term": self._getTerm(), "index": last}
        transport = self._SyncObj__transport
        for node in self._SyncObj__otherNodes:
            transport.send(node, message)
        self.quiet = True

    def _SyncObj__sendAppendEntries(self):
        if self.quiet:  # quiet: no heartbeats; the next one is due when the group wakes
            self._SyncObj__newAppendEntriesTime = _now() + self._SyncObj__conf.appendEntriesPeriod
            return
        super()._SyncObj__sendAppendEntries()

    def _keep_quiet_leadership(self):
        """Linked followers of a quiet group count as answering (no heartbeats, so no answers)."""
        now = _now()
        last_response = self._SyncObj__lastResponseTime
        for node in self._SyncObj__connectedNodes:
            if node in last_response:
                last_response[node] = now

    # -- the follower's side ---------------------------------------------------------

    def _on_quiesce(self, node, message):
        leader = self._getLeader()
        last = self._SyncObj__raftLog[-1][1]
        if (message["term"] == self._getTerm() and leader is not None and leader.id == node.id
                and last == message["index"] and self.raftCommitIndex == last and not self._isLeader()):
            self.quiet = True
            self._SyncObj__raftElectionDeadline = _FOREVER
        else:  # not in step with the leader: it must keep heartbeating
            self._SyncObj__transport.send(node, {"type": "wake", "term": message["term"]})

    def _follows(self, node) -> bool:
        leader = self._getLeader()
        return leader is not None and leader.id == node.id

    # -- pysyncobj hooks ---------------------------------------------------------------

    def _SyncObj__onMessageReceived(self, node, message):
        kind = message.get("type")
        if kind == "quiesce":
            self._on_quiesce(node, message)
            return
        if kind == "wake":
            self.wake_up()
            return
        if self.quiet and kind not in ("read_probe", "read_probe_ack"):
            self.wake_up()
        super()._SyncObj__onMessageReceived(node, message)

    def _SyncObj__onNodeConnected(self, node):
        if self._isLeader() or self._follows(node):
            self.wake_up()
        super()._SyncObj__onNodeConnected(node)

    def _SyncObj__onNodeDisconnected(self, node):
        if self._isLeader() or self._follows(node):
            self.wake_up()
        super()._SyncObj__onNodeDisconnected(node)

    def _onTick(self, timeToWait=0.0):
        if self.quiet:
            if self._isLeader():
                if self._SyncObj__raftLog[-1][1] != self._quiet_index:  # (a new entry wakes it at once, too)
                    self.wake_up()
                else:
                    self._keep_quiet_leadership()
            elif self._getLeader() is None:
                self.wake_up()
        elif self._idle_enough():
            self._quiesce()
        super()._onTick(timeToWait)


__all__ = ["QuiescentGroup"]
