"""The node's side of tails: opening one, the registry of open tails, the catch-up tick.

Owns: `LocalTail`, what a tail's socket pump holds for a tail fed by this
node's replica (go_live, go_replay, close: each a direct, non-yielding call
on the group's tail registry, `group_actor.admit_live` / `leave_live`, the
same code the group's actor runs for a GoLive / LeaveLive message), and
`NodeTails`, the node's tail part: it opens tails on the local replica or
through a remote one (`open`, `open_local`), keeps `handles` (every tail
whose socket this node holds), puts the periodic ``("check", last_seq)``
item (`catch_up_tick`), and counts what tails hold for the metrics.

A tail is not an actor: its whole state in the data plane is its outbox's
membership of the group's registry (`RaftGroup.live_tails`) while it is
live. Closing it removes that entry, so a closed tail leaves nothing behind
(a Thespian actor per tail did: simpleSystemBase keeps every exited actor's
registry entry, and its exit notice, for the life of the process).

Must not: touch sockets, decide whether a tail is caught up (the group's
actor does, atomically), or block.
"""

import logging

from starcite.actors.group_actor import admit_live, leave_live
from starcite.node.deletions import CLOSE_SESSION_DELETED

log = logging.getLogger("starcite.tails")


class LocalTail:
    """A tail fed by this node's replica of its session's group."""

    __slots__ = ("handles", "session_id", "group", "outbox", "closed")

    def __init__(self, handles, session_id, group, outbox):
        """``handles``: the node's set of open tails; ``group``: this node's `RaftGroup` replica of
        the session's group."""
        self.handles, self.session_id, self.group, self.outbox = handles, session_id, group, outbox
        self.closed = False

    def go_live(self, cursor):
        """The socket has sent everything up to ``cursor``: live if that is the session's last
        seq (the group checks and registers without yielding), else ``("replay",)`` on the outbox."""
        if not self.closed:
            admit_live(self.group, self.session_id, self.outbox, cursor)

    def go_replay(self):
        if not self.closed:
            leave_live(self.group, self.session_id, self.outbox)

    def close(self):
        if not self.closed:
            self.closed = True
            self.handles.discard(self)
            leave_live(self.group, self.session_id, self.outbox)


class NodeTails:
    """The node's tails. ``groups``: this node's replicas by group id (the dict the node fills);
    ``group_of(session_id)``; ``read_hot`` (as `SessionReads` takes it); ``remote_tails``: the
    `RemoteTails` of a cluster node (None on a single node), set once the peer hub exists."""

    def __init__(self, groups, group_of, read_hot):
        self.groups, self.group_of, self.read_hot = groups, group_of, read_hot
        self.remote_tails = None
        self.handles = set()  # every tail whose socket this node holds

    def open(self, session_id: str, cursor: int, outbox):
        """A handle (go_live, go_replay, close) for a tail that will send events after ``cursor``.
        ``outbox`` has ``put(item)``: the group puts ``("events", entries)`` and ``("replay",)`` on it.
        Served by the local replica, or by a remote one when this node holds none."""
        group_id = self.group_of(session_id)
        if group_id in self.groups:
            handle = self.open_local(session_id, outbox)
        else:
            handle = self.remote_tails.open(session_id, group_id, cursor, outbox)
        self.handles.add(handle)
        return handle

    def open_local(self, session_id, outbox) -> LocalTail:
        """A tail on this node's replica; nothing is registered until its first go_live."""
        return LocalTail(self.handles, session_id, self.groups[self.group_of(session_id)], outbox)

    def catch_up_tick(self):
        """The safety net for a missed notification (e.g. across a leader change): every tail gets
        ``("check", last_seq)``, read once per session; one that has sent less replays."""
        by_session = {}
        for handle in list(self.handles):
            by_session.setdefault(handle.session_id, []).append(handle)
        for session_id, handles in by_session.items():
            try:
                hot = self.read_hot(session_id, 0, 0)
            except Exception as exc:  # e.g. no replica reachable: the others go on, this one waits a tick
                log.warning("tail catch-up check of %s skipped: %s", session_id, exc)
                continue
            # A session gone from an up-to-date replica was deleted (its tails closed when the delete was
            # applied; this catches one that went live in between): its tails close the same way.
            item = ("check", hot[1]) if hot is not None else ("close", CLOSE_SESSION_DELETED, "session_deleted")
            for handle in handles:
                handle.outbox.put(item)

    def close_session(self, session_id, code, reason):
        """Every tail of ``session_id`` this node holds or serves for a peer gets a close on its outbox."""
        outboxes = {handle.outbox for handle in self.handles if handle.session_id == session_id}
        group = self.groups.get(self.group_of(session_id))
        if group is not None:
            outboxes.update(group.live_tails.get(session_id, ()))  # a peer's tails served by this replica
        for outbox in outboxes:
            outbox.put(("close", code, reason))

    def close_all(self, code, reason):
        """Shutdown: every open tail gets a close on its outbox."""
        for handle in list(self.handles):
            handle.outbox.put(("close", code, reason))

    def counts(self) -> dict:
        """What open tails hold in the data plane, for the metrics: every figure returns to its
        idle value (0) once the tails are closed."""
        remote = self.remote_tails.counts() if self.remote_tails is not None else {}
        return {"tails_open": len(self.handles),
                "tails_live": sum(len(outboxes) for group in self.groups.values()
                                  for outboxes in group.live_tails.values()),
                "tail_sessions_watched": sum(len(group.live_tails) for group in self.groups.values()),
                "tails_fed_remotely": remote.get("fed_remotely", 0),
                "tails_served_for_peers": remote.get("served_for_peers", 0)}
