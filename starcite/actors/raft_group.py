"""One Raft group: the pysyncobj replica (`RaftGroup`), its state machine and its actor.

Owns: the replicated state machine (`SessionStateMachine`, which only calls
`starcite.rules`), durability of the Raft journal (`DurableFileJournal`: one
fdatasync per tick, before entries count toward a commit), the group's tick
greenlet, and `RaftGroupActor`, the only way the rest of the node talks to a
group: commands, hot reads, tail subscriptions, archive progress.

Must not: decide session rules (that is `starcite.rules`), do archive I/O, or
block inside an actor handler (commands are handed to pysyncobj, whose
callback resolves the caller's reply future from the tick greenlet).
"""

import ctypes
import ctypes.util
import logging
import os

import gevent
import gevent.event
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import journal as pysyncobj_journal
from pysyncobj import serializer as pysyncobj_serializer
from pysyncobj import syncobj as pysyncobj_syncobj
from pysyncobj.node import Node
from pysyncobj.transport import Transport
from thespian.actors import Actor, ActorExitRequest

from starcite.actors import messages as m
from starcite.errors import StarciteError
from starcite.rules import GroupState, RuleError

log = logging.getLogger("starcite.raft")


class RaftUnavailable(StarciteError):
    """The group could not commit: no leader, lost leadership, or timed out (503; retry)."""

    def __init__(self, code: str, message: str):
        super().__init__(503, code, message, {"Retry-After": "1"})


def raft_error(reason: int) -> RaftUnavailable:
    if reason == FAIL_REASON.MISSING_LEADER:
        return RaftUnavailable("raft_unavailable", "No Raft leader for this session's group")
    if reason == FAIL_REASON.QUEUE_FULL:
        return RaftUnavailable("raft_unavailable", "Raft command queue is full")
    return RaftUnavailable("raft_unavailable", f"Raft leadership changed before commit (reason {reason})")


class DurableMetaStorer(pysyncobj_journal.MetaStorer):
    """pysyncobj's meta file (term, vote, commit index), written with fsync before the rename."""

    def storeMeta(self, meta):
        tmp = self.getPath() + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(pysyncobj_journal.dumps(meta))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.getPath())


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def flush_files(fds):
    """Make the written data of ``fds`` durable: one syncfs when several files (all
    journals live in one directory, so one filesystem), else fdatasync."""
    if len(fds) > 2 and _SYNCFS is not None:
        fd = next(iter(fds))
        if _SYNCFS(fd) == 0:
            return
    for fd in fds:
        os.fdatasync(fd)


class JournalSyncer:
    """Group commit across the node's Raft groups.

    A group's tick asks for its journal to be synced and waits; every journal that
    asks while a flush is running rides on the next one, so 16 busy groups cost one
    flush (measured: one syncfs ~0.35 ms vs 16 fdatasyncs ~2.7 ms). The flush runs in
    the hub's thread pool, so HTTP and the other groups keep running meanwhile.
    """

    def __init__(self):
        self.waiting = set()
        self.next_flush = gevent.event.Event()
        self.flusher = None

    def sync(self, fd):
        self.waiting.add(fd)
        done = self.next_flush
        if self.flusher is None:
            self.flusher = gevent.spawn(self._flush_loop)
        done.wait()

    def _flush_loop(self):
        pool = gevent.get_hub().threadpool
        try:
            while self.waiting:
                fds, done = self.waiting, self.next_flush
                self.waiting, self.next_flush = set(), gevent.event.Event()
                try:
                    pool.apply(flush_files, (fds,))
                finally:
                    done.set()
        finally:
            self.flusher = None


SYNCER = JournalSyncer()


class DurableFileJournal(pysyncobj_journal.FileJournal):
    """pysyncobj's mmap journal plus `sync()`: everything added since the last sync made durable."""

    def __init__(self, journal_file):
        super().__init__(journal_file)
        self._FileJournal__metaStorer = DurableMetaStorer(journal_file + ".meta")
        self.dirty = False
        self.fsync = True

    def _file(self):
        return self._FileJournal__journalFile._ResizableFile__f

    def add(self, command, idx, term):
        super().add(command, idx, term)
        self.dirty = True

    def deleteEntriesFrom(self, entryFrom):
        super().deleteEntriesFrom(entryFrom)
        self.dirty = True

    def sync(self):
        """Called by the group's tick greenlet, which waits; other greenlets keep running."""
        if self.dirty:
            self.dirty = False
            if self.fsync:
                SYNCER.sync(self._file().fileno())


def _create_journal(journal_file=None):
    if journal_file is None:
        return pysyncobj_journal.MemoryJournal()
    return DurableFileJournal(journal_file)


def durable_replace(tmp_path, final_path):
    """Snapshot files: fsync the new file, rename it into place, fsync the directory."""
    with open(tmp_path, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp_path, final_path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(final_path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# SyncObj builds its journal through this module-level name; ours adds fsync.
pysyncobj_syncobj.createJournal = _create_journal
# The snapshot writer (run in a forked child) renames through this name: make it durable,
# since the journal entries it covers are deleted once it reports success.
pysyncobj_serializer.atomicReplace = durable_replace


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
    """Stands in for pysyncobj's pipe notifier in a one-node group: wakes the tick greenlet."""

    def __init__(self, event):
        self.event = event

    def notify(self):
        self.event.set()


class _NullPoller:
    """A one-node group has no sockets to poll; its tick greenlet waits on an Event instead."""

    def subscribe(self, descr, callback, eventType):
        pass

    def unsubscribe(self, descr):
        pass

    def poll(self, timeout):
        pass


class SessionStateMachine(SyncObjConsumer):
    """The replicated state of one group. Every method below is a Raft command."""

    def __init__(self, on_committed, on_trimmed):
        # Set before SyncObjConsumer.__init__: hooks are local, never replicated.
        self.on_committed = on_committed
        self.on_trimmed = on_trimmed
        super().__init__()
        self.state = GroupState()

    @replicated
    def create_session(self, session_id, title, metadata, created_at, creator_principal):
        return self.state.create_session(session_id, title, metadata, created_at, creator_principal)

    @replicated
    def append_events(self, items):
        results = self.state.append_events(items)
        committed = {}
        for item, result in zip(items, results):
            if result[0] == "ok" and result[4] is not None:
                committed.setdefault(item[0], []).append((result[1], result[4]))
        for session_id, entries in committed.items():
            self.on_committed(session_id, entries)
        return [res[:4] for res in results]

    @replicated
    def ack_archived(self, session_id, upto_seq):
        result = self.state.ack_archived(session_id, upto_seq)
        if result[0] == "ok" and result[2]:
            self.on_trimmed(session_id, result[2])
        return result


class RaftGroup(SyncObj):
    """A pysyncobj replica of one group, ticked by its own greenlet, journal fsynced per tick."""

    def __init__(self, group_id, self_node, peer_nodes, data_dir, config, on_committed, on_trimmed):
        # Every attribute is set before SyncObj.__init__, which marks the ones present
        # as local: only the state machine (a consumer) goes into snapshots.
        self.group_id = group_id
        self.watched = set()   # session ids with tail subscribers (maintained by RaftGroupActor)
        self.machine = SessionStateMachine(on_committed, on_trimmed)
        self._running = True
        self._ticker = None
        self._wake = gevent.event.Event()
        self._single = not peer_nodes
        os.makedirs(data_dir, exist_ok=True)
        single = not peer_nodes
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
            commandsQueueSize=200000,
            password=None if single else config.raft_password,
        )
        kwargs = {"transportClass": LocalOnlyTransport, "nodeClass": Node} if single else {}
        super().__init__(self_node, peer_nodes, conf, consumers=[self.machine], **kwargs)
        if single:
            # No sockets: drop the pipe and the poller (a write, a read and a poll setup
            # per command) for an Event the tick greenlet waits on.
            pipe = self._SyncObj__pipeNotifier
            os.close(pipe._PipeNotifier__pipeR)
            os.close(pipe._PipeNotifier__pipeW)
            self._SyncObj__pipeNotifier = _EventNotifier(self._wake)
            self._poller = _NullPoller()
        self.journal.fsync = config.raft_fsync
        self._ticker = gevent.spawn(self._tick_loop)

    @property
    def journal(self) -> DurableFileJournal:
        return self._SyncObj__raftLog

    @property
    def state(self) -> GroupState:
        return self.machine.state

    def _tick_loop(self):
        while self._running:
            try:
                if self._single:
                    self._wake.wait(0.05)
                    self._wake.clear()  # before the tick: a command queued during it re-wakes us
                    self.doTick(0)
                else:
                    self.doTick(0.05)
            except Exception:
                log.exception("raft group %s: tick failed", self.group_id)
                gevent.sleep(0.05)

    def _onTick(self, timeToWait=0.0):
        # Entries added since the last tick become durable before they count
        # toward a commit (and before any reply that acknowledges them).
        self.journal.sync()
        super()._onTick(timeToWait)

    def _checkCommandsToApply(self):
        before = len(self.journal)
        super()._checkCommandsToApply()
        if len(self.journal) != before and self._single:
            # A one-node group commits on its next tick: do not sleep until then.
            self._wake.set()

    def is_leader(self) -> bool:
        return self._isLeader()

    def ready(self) -> bool:
        return self._getLeader() is not None and self.raftLastApplied >= self.raftCommitIndex

    def stop(self):
        self._running = False
        self._ticker.join(timeout=2)
        self.journal.sync()
        self.destroy()


def _reply_from_raft(reply):
    """A pysyncobj callback that resolves ``reply`` with the result or a RaftUnavailable."""
    def callback(result, err):
        if err == FAIL_REASON.SUCCESS:
            reply.set(result)
        else:
            reply.set_exception(raft_error(err))
    return callback


class RaftGroupActor(Actor):
    """Front door of one Raft group.

    Messages: StartGroup, CreateSession, Append, AckArchived (Raft commands,
    replied through their future once committed); GetSession, ReadHot,
    PendingArchive, GroupStatus (answered at once from local state);
    Subscribe/Unsubscribe/SetLive (tail registry), Committed (fan-out into live tails' outboxes),
    LastSeq (a tail's catch-up probe, answered with LastSeqIs).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = None
        self.subscribers = {}

    def receiveMessage(self, msg, sender):
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(self, msg, sender)

    def _start(self, msg, sender):
        self.group = msg.group

    def _create(self, msg, sender):
        self.group.machine.create_session(msg.session_id, msg.title, msg.metadata, msg.created_at,
                                          msg.creator_principal, callback=_reply_from_raft(msg.reply))

    def _append(self, msg, sender):
        self.group.machine.append_events([(msg.session_id, msg.append, msg.inserted_at, msg.nbytes)],
                                         callback=_reply_from_raft(msg.reply))

    def _ack(self, msg, sender):
        self.group.machine.ack_archived(msg.session_id, msg.upto_seq, callback=_reply_from_raft(msg.reply))

    def _get(self, msg, sender):
        state = self.group.state.sessions.get(msg.session_id)
        msg.reply.set(None if state is None else state.record())

    def _read_hot(self, msg, sender):
        state = self.group.state.sessions.get(msg.session_id)
        if state is None:
            msg.reply.set(None)
        else:
            msg.reply.set((state.archived_seq, state.last_seq, state.hot_range(msg.after_seq, msg.limit)))

    def _pending(self, msg, sender):
        msg.reply.set(self.group.state.pending() if self.group.is_leader() else [])

    def _status(self, msg, sender):
        group = self.group
        msg.reply.set({
            "group": group.group_id,
            "leader": str(group._getLeader()) if group._getLeader() is not None else None,
            "is_leader": group.is_leader(),
            "ready": group.ready(),
            "commit_index": group.raftCommitIndex,
            "last_applied": group.raftLastApplied,
            "sessions": len(group.state.sessions),
            "hot_bytes": group.state.hot_bytes,
            "tails": sum(len(t) for t in self.subscribers.values()),
        })

    def _subscribe(self, msg, sender):
        self.subscribers.setdefault(msg.session_id, {})[msg.tail.addressDetails] = None
        self.group.watched.add(msg.session_id)

    def _set_live(self, msg, sender):
        tails = self.subscribers.get(msg.session_id)
        if tails is not None and msg.tail.addressDetails in tails:
            tails[msg.tail.addressDetails] = msg.outbox

    def _unsubscribe(self, msg, sender):
        tails = self.subscribers.get(msg.session_id)
        if tails is not None:
            tails.pop(msg.tail.addressDetails, None)
            if not tails:
                del self.subscribers[msg.session_id]
                self.group.watched.discard(msg.session_id)

    def _committed(self, msg, sender):
        # Straight into each live tail's outbox: one Thespian message per tail per commit
        # would cost ~10 us each, a whole core at 1,000 tails x 100 appends/s.
        tails = self.subscribers.get(msg.session_id)
        if tails:
            item = ("events", msg.entries)
            for outbox in tails.values():
                if outbox is not None:
                    outbox.put(item)

    def _last_seq(self, msg, sender):
        state = self.group.state.sessions.get(msg.session_id)
        self.send(msg.tail, m.LastSeqIs(0 if state is None else state.last_seq))

    def _exit(self, msg, sender):
        self.subscribers.clear()

    _handlers = {
        m.StartGroup: _start, m.CreateSession: _create, m.Append: _append, m.AckArchived: _ack,
        m.GetSession: _get, m.ReadHot: _read_hot, m.PendingArchive: _pending, m.GroupStatus: _status,
        m.Subscribe: _subscribe, m.Unsubscribe: _unsubscribe, m.SetLive: _set_live, m.Committed: _committed,
        m.LastSeq: _last_seq, ActorExitRequest: _exit,
    }


__all__ = ["RaftGroup", "RaftGroupActor", "RaftUnavailable", "RuleError", "SessionStateMachine"]
