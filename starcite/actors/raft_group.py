"""One Raft group: the pysyncobj replica (`RaftGroup`), its state machine and its actor.

Owns: the group's replica of the replicated state machine (`SessionStateMachine`,
in `starcite.actors.session_machine`), durability of the Raft journal (`DurableFileJournal`: one
fdatasync per tick, before entries count toward a commit), snapshots forced
when the journal outgrows its share of the hot store cap, the group's tick
greenlet, and `RaftGroupActor`, the only way the rest of the node talks to a
group: commands, hot reads, tail subscriptions, archive progress.

Must not: decide session rules (that is `starcite.core.rules`), do archive I/O, or
block inside an actor handler (commands are handed to pysyncobj, whose
callback resolves the caller's reply future from the tick greenlet).
"""

import functools
import logging
import os
import sys
import time

import gevent
import gevent.event
from pysyncobj import FAIL_REASON, SyncObjConf
from pysyncobj.node import Node
from pysyncobj.transport import Transport

from starcite.actors.raft_journal import DurableFileJournal, finish_snapshot
from starcite.actors.raft_errors import NotLeader, RaftUnavailable, raft_error
from starcite.actors.quiescence import QuiescentGroup
from starcite.peers.raft_transport import MuxTransport
from starcite.actors.session_machine import SessionStateMachine
from starcite.core import rules
from starcite.core.rules import GroupState

# Snapshots written before the pure core moved to `starcite.core` (2026-12) pickle the state
# machine's `starcite.rules.GroupState` and `SessionState` by that module path (pysyncobj
# snapshots with the stdlib's pickle, which imports by name): the old path keeps loading them.
sys.modules.setdefault("starcite.rules", rules)

log = logging.getLogger("starcite.raft")

FORCED_SNAPSHOT_INTERVAL_S = 1.0  # a log over its share of the cap snapshots at most this often
SNAPSHOT_FINISH_TIMEOUT_S = 5.0  # how long a stop waits for a snapshot its forked child is still writing


class LocalOnlyTransport(Transport):
    """Transport of a group with no peers (a one-node cluster): nothing to connect."""

    def __init__(self, syncObj, selfNode, otherNodes):
        super().__init__(syncObj, selfNode, otherNodes)

    def tryGetReady(self):
        pass

    @property
    def ready(self):
        return True

    def waitReady(self):
        pass

    def send(self, node, message):
        return False

    def addNode(self, node):
        pass

    def dropNode(self, node):
        pass

    def destroy(self):
        pass


class _EventNotifier:
    """Stands in for pysyncobj's pipe notifier: wakes the group's tick greenlet."""

    def __init__(self, event):
        self.event = event

    def notify(self):
        self.event.set()


class _InboxPoller:
    """Stands in for pysyncobj's socket poller (called at the end of every tick).

    The tick greenlet waits here on an Event, set by a queued command or a peer
    message, instead of on sockets; then it hands the group's inbox (peer messages,
    link changes) to pysyncobj, all inside the tick, as pysyncobj's own poller does.
    A dirty journal or held replies mean another tick is due at once (it syncs).
    """

    def __init__(self, group):
        self.group = group

    def subscribe(self, descr, callback, eventType):
        pass

    def unsubscribe(self, descr):
        pass

    def poll(self, timeout):
        group = self.group
        transport = group.transport
        busy = (group.journal.dirty or group.pending_appends or group.has_held_replies()
                or (transport is not None and transport.inbox))
        if not busy:
            group.wake.wait(timeout)
        else:
            gevent.sleep(0)  # the next tick is due at once, but the others run first (without a sync to
            #                  wait on, e.g. raft.fsync off, a busy group would otherwise never yield)
        group.wake.clear()  # before the drain: anything queued after it re-wakes us
        if transport is not None:
            transport.drain()


class RaftGroup(QuiescentGroup):
    """A pysyncobj replica of one group, ticked by its own greenlet, journal fsynced per tick.

    ``peer_names`` are the other replicas (none: a one-node group, no transport at
    all); with peers, ``raft_hub`` multiplexes the group over the node's peer links.
    Appends that reach the group within one tick go into one ``append_events``
    Raft entry (`queue_append`): one replication round and one fsync per batch.
    """

    def __init__(self, group_id, self_name, peer_names, data_dir, config, on_committed=None, on_trimmed=None,
                 raft_hub=None, machine=None, on_lifecycle=None, on_deleted=None):
        # Every attribute is set before SyncObj.__init__, which marks the ones present
        # as local: only the state machine (a consumer) goes into snapshots.
        self.group_id = group_id
        self.self_name = self_name
        # session id -> {outbox: None} of the live tails fed by this replica: written only by
        # RaftGroupActor, read by the commit hook (is anyone listening?) and the metrics.
        self.live_tails = {}
        self.machine = machine or SessionStateMachine(on_committed, on_trimmed, on_lifecycle, on_deleted)
        self.pending_appends = []   # [(item, reply)] waiting for the next tick
        self.leader_changes = 0
        self._last_leader = None
        self._transfer_wanted = False
        self._last_transfer = 0.0
        self.transport = None
        # The Raft log counts toward the hot store cap until a snapshot drops it: past its share of a
        # quarter of the cap, the next tick starts a snapshot (without waiting for snapshot_entries).
        self.log_budget_bytes = config.event_store_max_bytes // (4 * max(1, config.num_groups))
        self._last_forced_snapshot = 0.0  # forced snapshots at most once per FORCED_SNAPSHOT_INTERVAL_S
        self._running = True
        self._ticker = None
        self.wake = gevent.event.Event()
        single = not peer_names
        os.makedirs(data_dir, exist_ok=True)
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=False,
            journalFile=os.path.join(data_dir, f"group-{group_id}.journal"),
            fullDumpFile=os.path.join(data_dir, f"group-{group_id}.snapshot"),
            logCompactionMinEntries=config.snapshot_entries,
            logCompactionMinTime=3600,
            appendEntriesPeriod=0.01 if single else 0.05,
            raftMinTimeout=0.05 if single else 0.4,
            raftMaxTimeout=0.1 if single else 0.9,
            leaderFallbackTimeout=3.0,   # a cut-off leader steps down, so routers stop waiting on it
            commandsQueueSize=200000,
        )
        if single:
            super().__init__(f"local-{group_id}", [], conf, consumers=[self.machine],
                             transportClass=LocalOnlyTransport, nodeClass=Node)
        else:
            super().__init__(Node(self_name), [Node(name) for name in peer_names], conf, consumers=[self.machine],
                             transportClass=functools.partial(MuxTransport, raft_hub, group_id))
            self.transport = raft_hub.transports[group_id]
            self.transport.wake = self.wake.set
        # No pipe and no socket poller: the tick greenlet waits on an Event (set by a
        # queued command or a peer message) and drains the group's inbox itself.
        pipe = self._SyncObj__pipeNotifier
        os.close(pipe._PipeNotifier__pipeR)
        os.close(pipe._PipeNotifier__pipeW)
        self._SyncObj__pipeNotifier = _EventNotifier(self.wake)
        self._poller = _InboxPoller(self)
        if self.transport is not None:
            self.transport.start()
        self.journal.fsync = config.raft_fsync
        self._startup_commit = self.raftCommitIndex  # what the journal says was committed before a restart
        self._startup_last_index = self.journal[-1][1]  # the journal's last entry at start (`replaying_journal`)
        self.journal.resident_bytes = min(self.journal.resident_bytes, self.log_budget_bytes // 4)
        self._ticker = gevent.spawn(self._tick_loop)

    @property
    def journal(self) -> DurableFileJournal:
        return self._SyncObj__raftLog

    @property
    def state(self) -> GroupState:
        return getattr(self.machine, "state", None)  # None for the control group

    def _tick_loop(self):
        while self._running:
            try:
                self.doTick(self.tick_period(0.05))
            except Exception:
                log.exception("raft group %s: tick failed", self.group_id)
                gevent.sleep(0.05)

    def _onTick(self, timeToWait=0.0):
        # Entries added since the last tick become durable before they count
        # toward a commit (and before any reply that acknowledges them).
        self.journal.sync()
        self._submit_appends()
        if self._transfer_wanted:
            self._transfer_leadership()
        super()._onTick(timeToWait)
        if self.journal.held_bytes > self.log_budget_bytes:
            now = time.monotonic()
            if now - self._last_forced_snapshot > FORCED_SNAPSHOT_INTERVAL_S:
                self._last_forced_snapshot = now
                self.forceLogCompaction()
        leader = self._getLeader()
        if leader != self._last_leader:
            self._last_leader = leader
            if leader is not None:
                self.leader_changes += 1

    def _checkCommandsToApply(self):
        before = len(self.journal)
        super()._checkCommandsToApply()
        if len(self.journal) != before:
            # New entries: the next tick syncs and (alone) commits them at once, and a quiet
            # group heartbeats again.
            self.wake_up()
            self.wake.set()

    # -- batching -------------------------------------------------------------

    def queue_append(self, item, reply):
        """One append for the next tick's batch entry; ``reply`` gets its result or an error."""
        if not self._isLeader():
            reply.set_exception(NotLeader(self.group_id, self.leader_name()))
            return
        self.pending_appends.append((item, reply))
        self.wake_up()
        self.wake.set()

    def _submit_appends(self):
        if not self.pending_appends:
            return
        batch, self.pending_appends = self.pending_appends, []
        if not self._isLeader():
            for _item, reply in batch:
                reply.set_exception(NotLeader(self.group_id, self.leader_name()))
            return
        replies = [reply for _item, reply in batch]

        def callback(results, err):
            if err != FAIL_REASON.SUCCESS:
                failure = raft_error(err)
                for reply in replies:
                    reply.set_exception(failure)
                return
            for reply, result in zip(replies, results):
                reply.set(result)

        self.machine.append_events([item for item, _reply in batch], callback=callback)

    # -- leadership transfer (drain) ------------------------------------------

    def request_transfer(self, to=None):
        """Hand this group's leadership to ``to`` (a node name; None: the most caught-up follower)
        at the next tick: a drain, or giving a group back to its preferred leader."""
        self._transfer_wanted = to or True
        self.wake_up()
        self.wake.set()

    def _transfer_leadership(self):
        target, self._transfer_wanted = self._transfer_wanted, False
        now = time.monotonic()
        if self._isLeader() and self.transport is not None and now - self._last_transfer > 0.5:
            self._last_transfer = now
            node = self.transport.nodes.get(target) if isinstance(target, str) else None
            self.transferLeadership(node)  # denied (harmlessly) while the target is not caught up

    # -- state ----------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._isLeader()

    def leader_name(self):
        """The node name of the leader this replica knows, or None."""
        if self.transport is None:
            return self.self_name if self._isLeader() else None
        leader = self._getLeader()
        return None if leader is None else str(leader.id)

    def leader_commit_index(self):
        return self._SyncObj__leaderCommitIndex

    def catching_up(self) -> bool:
        """No leader known, or still applying what the journal held at start: a miss on this
        replica proves nothing yet."""
        return self._getLeader() is None or self.raftLastApplied < self._startup_commit

    def replaying_journal(self) -> bool:
        """Applying an entry the journal held at start (during an apply, `raftLastApplied` is the entry
        before it): its effects were announced before the restart, or are being learned again."""
        return self.raftLastApplied < self._startup_last_index

    def ready(self) -> bool:
        """Has a leader, and has applied everything that leader said was committed."""
        if self._getLeader() is None:
            return False
        if self._isLeader():
            return self.raftLastApplied >= self.raftCommitIndex
        learned = self.leader_commit_index()
        return learned is not None and self.raftLastApplied >= learned

    def status(self) -> dict:
        out = {"group": self.group_id, "leader": self.leader_name(), "is_leader": self.is_leader(),
               "term": self._getTerm(), "ready": self.ready(), "quiet": self.quiet,
               "commit_index": self.raftCommitIndex,
               "last_applied": self.raftLastApplied, "last_index": self.journal[-1][1],
               "applied_digest": [self.digest_chain_start(), *self.applied_digest()],
               "log_entries": len(self.journal)}
        if self.transport is not None:
            connected = self._SyncObj__connectedNodes
            next_index, match_index = self._SyncObj__raftNextIndex, self._SyncObj__raftMatchIndex
            out["replicas"] = {node.id: {"connected": node in connected,
                                         **({"next_index": next_index.get(node), "match_index": match_index.get(node)}
                                            if self.is_leader() else {})}
                               for node in self.transport.nodes.values()}
        return out

    def stop(self):
        self._running = False
        self.wake.set()
        self._ticker.join(timeout=2)
        finish_snapshot(self, SNAPSHOT_FINISH_TIMEOUT_S)
        self.journal.sync()
        self.destroy()


__all__ = ["NotLeader", "RaftGroup", "RaftUnavailable", "RuleError", "SessionStateMachine"]
