"""`SessionStateMachine`: the replicated state of one session group; each of its methods is a Raft command.

Owns: the commands' names and arguments (their journal encoding: pysyncobj numbers them by name, so a new
command's name must sort after every existing one's, `tests/raft/test_command_ids.py`) and the local
hooks each calls as it applies (tails notified, hot events trimmed, lifecycle events, deletions). Only
the state (`rules.GroupState`) goes into snapshots. Must not: decide session rules (it calls
`starcite.core.rules` and `starcite.core.deletion`), do I/O, or block: it runs inside the apply.
"""

from pysyncobj import SyncObjConsumer, replicated

from starcite.core import deletion
from starcite.core.rules import GroupState


class SessionStateMachine(SyncObjConsumer):
    """The replicated state of one group. Every method below is a Raft command."""

    def __init__(self, on_committed, on_trimmed, on_lifecycle=None, on_deleted=None):
        # Set before SyncObjConsumer.__init__: hooks are local, never replicated. ``on_lifecycle(kind,
        # record)`` hears each session created, patched, archived or unarchived as this replica applies it;
        # ``on_deleted(session_id)`` each session it deletes (its tails close, its waiters answer, its
        # caches forget).
        self.on_committed = on_committed
        self.on_trimmed = on_trimmed
        self.on_lifecycle = on_lifecycle
        self.on_deleted = on_deleted
        super().__init__()
        self.state = GroupState()

    def _lifecycle(self, kind, record):
        if self.on_lifecycle is not None:
            self.on_lifecycle(kind, record)

    # pysyncobj numbers the commands by name (all at ver 0), and a journal holds the numbers: a new
    # command's name must sort after every existing one's, or the journals of older versions replay
    # as the wrong command (tests/raft/test_command_ids.py).

    @replicated
    def create_session(self, session_id, title, metadata, created_at, creator_principal, request=None,
                       expires_at=None, ttl_seconds=None):
        known = session_id in self.state.sessions
        result = deletion.create_session(self.state, session_id, title, metadata, created_at, creator_principal,
                                         request, expires_at, ttl_seconds)
        if result[0] == "ok" and not known:
            self._lifecycle("session.created", result[1])
        return result

    @replicated
    def patch_session(self, session_id, patch, updated_at, request=None):
        result = deletion.patch_session(self.state, session_id, patch, updated_at, request)
        if result[0] == "ok" and result[2]:
            self._lifecycle("session.updated", result[1])
        return result

    @replicated
    def set_archived(self, session_id, archived, updated_at):
        result = self.state.set_archived(session_id, archived, updated_at)
        if result[0] == "ok" and result[2]:
            self._lifecycle("session.archived" if archived else "session.unarchived", result[1])
        return result

    @replicated
    def delete_session(self, session_id, deleted_at, request=None):
        result = deletion.delete_session(self.state, session_id, deleted_at, request)
        if result[0] == "ok" and self.on_deleted is not None:
            self.on_deleted(session_id)
        return result

    @replicated
    def expire_sessions(self, session_ids, decided_at):
        deleted = deletion.expire_sessions(self.state, session_ids, decided_at)
        for session_id in deleted if self.on_deleted is not None else ():
            self.on_deleted(session_id)
        return ("ok", deleted)

    @replicated
    def forget_deleted(self, session_ids):
        return ("ok", deletion.forget_deleted(self.state, session_ids))

    @replicated
    def append_events(self, items):
        results = self.state.append_events(items)
        committed = {}
        for item, result in zip(items, results):
            if result[0] == "ok" and result[4] is not None:
                committed.setdefault(item[0], []).append((result[1], result[4]))
        for session_id, entries in committed.items():
            self.on_committed(session_id, entries)
        return [res if res[0] == "error" else res[:4] for res in results]  # an error keeps its extra fields

    @replicated
    def ack_archived(self, session_id, upto_seq):
        result = self.state.ack_archived(session_id, upto_seq)
        if result[0] == "ok" and result[2]:
            self.on_trimmed(session_id, result[2])
        return result
