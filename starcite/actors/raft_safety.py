"""Raft safety fixes for pysyncobj 0.3.17, as narrowly scoped overrides (`SafeSyncObj`).

Owns the follower's handling of append-entries (truncate only on a real term
conflict, commit only what a message proves), holding a follower's success
replies until its journal is synced, the bound on entries applied per tick, the
running digest of applied entries that replicas compare to detect divergence,
and loading a snapshot newer than the journal's start without losing the
journal's later entries (`_SyncObj__loadDumpFile`).

Must not: copy pysyncobj's code (each override wraps or rewrites one message or
one call and then defers to the stock method), touch the transport or the
journal's storage (`RaftGroup` owns those and syncs the journal), or know about
Starcite's state machine. Line numbers below are 0.3.17's `syncobj.py`.

Raft references: §5.3 of the paper; etcd raft's `maybeAppend`/`findConflict`
(`log.go`) is the model for the follower's append path.
"""

import collections
import hashlib
import struct

from pysyncobj import SyncObj
from pysyncobj import pickle as pysyncobj_pickle

_INDEX_TERM = struct.Struct(">QQ")
DIGEST_BYTES = 16


def chain_digest(previous: bytes, index: int, term: int, command: bytes) -> bytes:
    """digest_i = blake2b(digest_{i-1} || index || term || command): equal chains, equal logs."""
    h = hashlib.blake2b(previous, digest_size=DIGEST_BYTES)
    h.update(_INDEX_TERM.pack(index, term))
    h.update(command)
    return h.digest()


class SafeSyncObj(SyncObj):
    """A pysyncobj replica with the follower-side safety fixes and an applied-entry digest.

    Subclass contract (RaftGroup follows it): a subclass whose journal needs an
    explicit sync must sync it in its own `_onTick` *before* calling
    `super()._onTick()`; this class then releases the success replies held since
    the previous tick (they acknowledge entries that are now durable) and runs
    pysyncobj's tick.
    """

    # A far-behind follower would otherwise apply tens of thousands of entries in one
    # tick and miss its heartbeats (NOTES.md: "bound the apply batch per tick").
    max_applied_per_tick = 2000
    # How many recent (index -> digest) pairs `digest_at` can answer for.
    digest_ring_size = 4096

    def __init__(self, *args, **kwargs):
        # Attributes set before SyncObj.__init__ are local (never in a snapshot) ...
        self._held_success_replies = {}   # node -> (term when held, next_node_idx)
        self._digest_ring = collections.OrderedDict()  # index -> digest, oldest first
        super().__init__(*args, **kwargs)
        # ... attributes set after it are serialised with the snapshot, so a replica
        # that loads a snapshot continues the same chain from the snapshot's index.
        # pysyncobj starts with lastApplied = 1: its initial no-op is never applied.
        self._applied_digest_index = 1
        self._applied_digest = b""
        self._digest_chain_start = 2   # the first index the chain covers

    # --- (g) start: a snapshot newer than the journal's start ---------------------

    def _SyncObj__loadDumpFile(self, clearJournal):
        """Stock (1472) clears the journal whenever its first two entries are not the snapshot's last
        two, and keeps only those. A snapshot is written by a forked child and renamed into place; the
        journal is compacted to it by the parent at a later tick. A kill between the two (or a stop
        before the parent saw the child finish) leaves a journal that starts before the snapshot and
        holds committed, acknowledged entries after it: stock threw those away. Here, when the journal
        holds the snapshot's last two entries, the entries before them are dropped instead (what the
        parent's compaction would have done), and stock then finds the two in place and keeps the rest."""
        serializer = self._SyncObj__serializer
        stock_deserialize = serializer.deserialize
        try:
            data = stock_deserialize()
        except Exception:  # no snapshot, or an unreadable one: stock reports it as before
            return super()._SyncObj__loadDumpFile(clearJournal)
        serializer.deserialize = lambda: data  # read once: a large snapshot is not unpickled twice
        try:
            if not clearJournal:
                self._compact_journal_to(data[2], data[1])
            return super()._SyncObj__loadDumpFile(clearJournal)
        finally:
            del serializer.deserialize

    def _compact_journal_to(self, before_last, last):
        journal = self._SyncObj__raftLog
        if len(journal) < 2 or (journal[0] == before_last and journal[1] == last):
            return
        position = before_last[1] - journal[0][1]  # entries are (command, index, term)
        if 0 < position < len(journal) - 1 and journal[position] == before_last and journal[position + 1] == last:
            journal.deleteEntriesTo(position)

    # --- (a) + (b): follower append-entries ------------------------------------

    def _SyncObj__onMessageReceived(self, node, message):
        """Rewrites an append-entries before pysyncobj's handler (~L945-1040) sees it.

        Stock behaviour replaced: whenever prevLogIdx matches, pysyncobj deletes every
        entry after it (~L991-1004) and then sets the commit index to
        min(leaderCommit, end of its log) (~L1033). A stale or re-sent message (the
        leader's next index moved back after a late success reply) therefore drops
        entries this follower already acknowledged, and a snapshot-transfer message
        (no prevLogIdx) commits whatever the log holds, matched or not.
        """
        if message.get("type") != "append_entries" or message["term"] < self._getTerm():
            super()._SyncObj__onMessageReceived(node, message)
            return
        leader_commit = message["commit_index"]
        if message.get("transmission") == "finish":
            message = self._reassembled(message)
        if "transmission" in message:
            # 'start'/'process': pysyncobj buffers the chunk and answers "not yet".
            super()._SyncObj__onMessageReceived(node, message)
        elif "prevLogIdx" in message:
            self._append_from_first_conflict(node, message)
        else:
            # Snapshot transfer: it proves nothing about the log until the snapshot
            # is installed, so it must not advance the commit index; the next
            # regular append-entries (prevLogIdx = snapshot index) does that.
            capped = min(leader_commit, self.raftCommitIndex)
            super()._SyncObj__onMessageReceived(node, dict(message, commit_index=capped))
        # pysyncobj's record of the leader's commit index (RaftGroup.ready(), onReady)
        # stays the leader's own figure, not the cap we applied to ours.
        self._SyncObj__leaderCommitIndex = leader_commit

    def _reassembled(self, message):
        """A chunked entry's last chunk, turned into an ordinary one-entry append-entries.

        pysyncobj reassembles inside its handler (~L969); we need the entry itself to
        compare it with the log, so we do the same concatenation first.
        """
        data = self._SyncObj__recvTransmission + message["data"]
        self._SyncObj__recvTransmission = ""
        plain = {k: v for k, v in message.items() if k not in ("transmission", "data")}
        plain["entries"] = [pysyncobj_pickle.loads(data)]
        return plain

    def _append_from_first_conflict(self, node, message):
        """etcd's maybeAppend: skip the leading entries already held with the same term."""
        prev = self._SyncObj__getEntries(message["prevLogIdx"], 1)
        if prev and prev[0][2] != message["prevLogTerm"]:
            self._drop_conflicting_suffix(message["prevLogIdx"])
            prev = []
        if not prev:
            super()._SyncObj__onMessageReceived(node, message)   # pysyncobj rejects it (~L985-990)
            return
        entries = message.get("entries", [])
        held = 0
        for _, index, term in entries:
            mine = self._SyncObj__getEntries(index, 1)
            if not mine or mine[0][2] != term:
                break   # findConflict: the first entry that is missing or differs
            held += 1
        if held == len(entries):
            self._acknowledge_held(node, message, entries[-1][1] if entries else prev[0][1])
        elif held == 0:
            super()._SyncObj__onMessageReceived(node, message)   # conflicts or extends: stock is right
        else:
            # pysyncobj deletes only from the first conflict and appends the rest; its
            # commit cap (end of log) then equals the end of this message.
            last = entries[held - 1]
            super()._SyncObj__onMessageReceived(
                node, dict(message, prevLogIdx=last[1], prevLogTerm=last[2], entries=entries[held:]))

    def _drop_conflicting_suffix(self, index):
        """(f) The entry at ``index`` has another term than the leader's: it and all after it are
        not committed (the leader holds every committed entry), so Raft lets us delete them.

        Stock pysyncobj keeps them and answers "send from ``index``", but when the leader
        sent several messages in one heartbeat, the next one (prevLogIdx past our log)
        is answered "send from the end of my log + 1", which lands after the first
        answer and moves the leader's next index back past the conflict: measured in
        the partition drill, a healed follower never caught up (the two answers
        alternated every heartbeat). With the suffix gone, every answer points at or
        below the conflict.
        """
        if index > self.raftCommitIndex and index > self.raftLastApplied:
            self._SyncObj__deleteEntriesFrom(index)

    def _acknowledge_held(self, node, message, covered):
        """Everything in the message is held: change nothing in the log, commit, acknowledge."""
        matched = self._last_index_matching_leader(message, covered)
        # pysyncobj does its leader/term/election-timer bookkeeping and commits from a
        # message that carries no entries and commits no further than `matched` ...
        super()._SyncObj__onMessageReceived(node, {
            "type": "append_entries",
            "term": message["term"],
            "commit_index": min(message["commit_index"], matched),
        })
        # ... then we acknowledge what it covers, as its own path would (~L1019).
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=matched + 1, success=True)

    def _last_index_matching_leader(self, message, covered):
        """The highest index this follower may claim to share with the sender's log.

        At least `covered`, the end of this message. The log may extend past it: if
        the log's last entry is in the sender's term, it came from this leader, and by
        Raft's Log Matching property the whole log up to there is the leader's, so the
        reply need not move back below what the follower holds. Entries past the
        message from an older term may still conflict and are not claimed.
        """
        last = self._SyncObj__raftLog[-1]
        return last[1] if last[2] == message["term"] and last[1] > covered else covered

    # --- (c): success replies wait for the journal sync -------------------------

    def _SyncObj__sendNextNodeIdx(self, node, reset=False, nextNodeIdx=None, success=False):
        """Holds success replies (stock sends at once, ~L1019 and the snapshot path).

        A success reply tells the leader these entries are stored, and the leader
        counts them toward a commit; they must be durable first. Replies made during
        one poll are held (the highest per node) and released by `_onTick` after the
        journal sync, so one sync covers them all. Failure replies claim nothing and
        go at once.
        """
        if not success:
            super()._SyncObj__sendNextNodeIdx(node, reset=reset, nextNodeIdx=nextNodeIdx, success=False)
            return
        if nextNodeIdx is None:
            nextNodeIdx = self._SyncObj__raftLog[-1][1] + 1  # what the stock method computes at send
        term = self._getTerm()
        held = self._held_success_replies.get(node)
        if held is None or held[0] != term or held[1] < nextNodeIdx:
            self._held_success_replies[node] = (term, nextNodeIdx)

    def has_held_replies(self) -> bool:
        """True while success replies wait for a sync: a tick loop must not sleep then."""
        return bool(self._held_success_replies)

    def release_held_replies(self):
        """Send the success replies held since the last tick. Call only after the journal sync.

        A reply held across a term change is dropped: it was meant for an older leader
        (next_node_idx carries no term, so a deposed leader would still count it), and
        dropping a reply is always safe, like losing it on the wire.
        """
        held, self._held_success_replies = self._held_success_replies, {}
        term = self._getTerm()
        for node, (held_term, next_idx) in held.items():
            if held_term == term:
                super()._SyncObj__sendNextNodeIdx(node, nextNodeIdx=next_idx, success=True)

    def _onTick(self, timeToWait=0.0):
        """Release held replies, then pysyncobj's tick (~L610). Subclasses sync before this."""
        self.release_held_replies()
        super()._onTick(timeToWait)

    # --- (d) + (e): bounded apply, digest of what was applied -------------------

    def _SyncObj__applyLogEntries(self):
        """Applies at most `max_applied_per_tick` entries, and chains their digests.

        Stock behaviour replaced: `__applyLogEntries` (~L707) applies everything up to
        the commit index in one call. We lower the commit index it sees for the
        duration of the call (callbacks run inside it see the lowered value), then
        restore it; if entries remain, we wake the next tick instead of letting it
        wait for a socket event.
        """
        applied = self.raftLastApplied
        commit = self._SyncObj__raftCommitIndex
        bound = min(commit, applied + self.max_applied_per_tick)
        batch = self._SyncObj__getEntries(applied + 1, bound - applied) if bound > applied else []
        self._SyncObj__raftCommitIndex = bound
        try:
            return super()._SyncObj__applyLogEntries()
        finally:
            self._SyncObj__raftCommitIndex = commit
            # Only what was really applied (a state-machine exception stops the batch).
            self._chain_applied(batch[:self.raftLastApplied - applied])
            if commit > self.raftLastApplied:
                self._wake_next_tick()

    def _chain_applied(self, entries):
        digest, index = self._applied_digest, self._applied_digest_index
        for command, entry_index, term in entries:
            if entry_index != index + 1:
                # A snapshot without a digest (written before this class) or a gap:
                # the chain restarts here and is comparable only from this point.
                digest = b""
                self._digest_chain_start = entry_index
            digest = chain_digest(digest, entry_index, term, command)
            index = entry_index
            self._digest_ring[index] = digest
        while len(self._digest_ring) > self.digest_ring_size:
            self._digest_ring.popitem(last=False)
        self._applied_digest, self._applied_digest_index = digest, index

    def _wake_next_tick(self):
        # pysyncobj creates its pipe notifier only when appendEntriesUseBatch is off
        # (as we run it); RaftGroup replaces it with an Event its tick loop waits on.
        notifier = getattr(self, "_SyncObj__pipeNotifier", None)
        if notifier is not None:
            notifier.notify()

    def applied_digest(self):
        """(index, hex digest) of the last applied entry; (1, "") before any."""
        return self._applied_digest_index, self._applied_digest.hex()

    def digest_chain_start(self):
        """The first index the chain covers: digests of two replicas compare only if theirs match.

        2 (the first applied entry) unless this replica loaded a snapshot written
        without a digest, after which its chain restarted.
        """
        return self._digest_chain_start

    def digest_at(self, index):
        """Hex digest of the chain at `index`, or None if it is not among the recent ones."""
        if index == self._applied_digest_index and self._applied_digest:
            return self._applied_digest.hex()  # also right after a snapshot load
        digest = self._digest_ring.get(index)
        return None if digest is None else digest.hex()


__all__ = ["SafeSyncObj", "chain_digest"]
