"""`RaftGroupActor`: the only way the rest of the node talks to one local Raft group.

Owns: turning messages into Raft commands (create, append, patch, archive and
unarchive, ack_archived; only
on the leader, a follower answers `NotLeader` with its hint so the node can
route), answering local reads from the replica's state (session, hot events,
pending archive work, status), and the group's tail registry: the outboxes of
live tails (`RaftGroup.live_tails`), the atomic go-live check that admits a
tail into it, and the fan-out of committed batches into them.

The reads and the tail registry are also module functions on the group
(`session_record`, `hot_read`, `admit_live`, `leave_live`), which the node
calls directly from a request or tail greenlet: like a handler, none of them
yields, so a direct call is the same single dispatch without Thespian's send
loop (~10 µs per message, three per tail open), and the go-live check and
registration stay atomic. Commands still go through the actor.

Must not: block (commands are handed to pysyncobj, whose callback resolves
the caller's future from the tick greenlet), decide session rules, or know
about other nodes.
"""

from pysyncobj import FAIL_REASON
from thespian.actors import Actor, ActorExitRequest

from starcite.actors import messages as m
from starcite.actors.raft_group import NotLeader, raft_error


def _reply_from_raft(reply):
    """A pysyncobj callback that resolves ``reply`` with the result or a RaftUnavailable."""
    def callback(result, err):
        if err == FAIL_REASON.SUCCESS:
            reply.set(result)
        else:
            reply.set_exception(raft_error(err))
    return callback


def session_record(group, session_id):
    """The session's record on this replica, or None."""
    state = group.state.sessions.get(session_id)
    return None if state is None else state.record()


def hot_read(group, session_id, after_seq, limit):
    """``(archived_seq, last_seq, [(seq, json, nbytes)...])`` after ``after_seq``, or None if unknown."""
    state = group.state.sessions.get(session_id)
    if state is None:
        return None
    return state.archived_seq, state.last_seq, state.hot_range(after_seq, limit)


def admit_live(group, session_id, outbox, cursor):
    """A tail that has sent everything up to ``cursor`` goes live, or is told to replay.

    The check and the registration run without yielding: no commit can be applied
    between them. A commit applied before the check shows in last_seq (-> replay);
    one applied after it finds the outbox."""
    state = group.state.sessions.get(session_id)
    if state is not None and state.last_seq > cursor:
        outbox.put(("replay",))
        return
    group.live_tails.setdefault(session_id, {})[outbox] = None


def put_all(session_id, outboxes, item):
    """``item`` into every outbox of ``session_id``'s live tails. A kind of outbox that takes a
    batch at once (a ``put_all(session_id, outboxes, item)`` attribute of its class: the edge's
    tail outboxes, whose sends then leave the worker's thread, see `starcite.api.tails.live_fanout`)
    gets all of its members in one call."""
    bulk = {}
    for outbox in outboxes:
        put_many = getattr(type(outbox), "put_all", None)
        if put_many is None:
            outbox.put(item)
        else:
            bulk.setdefault(put_many, []).append(outbox)
    for put_many, members in bulk.items():
        put_many(session_id, members, item)


def leave_live(group, session_id, outbox):
    outboxes = group.live_tails.get(session_id)
    if outboxes is not None:
        outboxes.pop(outbox, None)
        if not outboxes:
            del group.live_tails[session_id]


class RaftGroupActor(Actor):
    """Front door of one Raft group.

    Messages: StartGroup, CreateSession, Append, AckArchived, SessionCommand (Raft commands,
    replied through their future once committed); GetSession, ReadHot,
    PendingArchive, GroupStatus (answered at once from local state);
    GoLive/LeaveLive (tail registry), Committed (fan-out into live tails' outboxes).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = None

    def receiveMessage(self, msg, sender):
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(self, msg, sender)

    def _start(self, msg, sender):
        self.group = msg.group

    def _leads(self, msg) -> bool:
        """Commands go to the leader only (the node routes them there); a follower says who leads."""
        if self.group.is_leader():
            return True
        msg.reply.set_exception(NotLeader(self.group.group_id, self.group.leader_name()))
        return False

    def _create(self, msg, sender):
        if self._leads(msg):
            self.group.machine.create_session(msg.session_id, msg.title, msg.metadata, msg.created_at,
                                              msg.creator_principal, msg.request, msg.expires_at, msg.ttl_seconds,
                                              callback=_reply_from_raft(msg.reply))

    def _append(self, msg, sender):
        self.group.queue_append((msg.session_id, msg.append, msg.inserted_at, msg.nbytes), msg.reply)

    def _machine_command(self, msg, sender):
        """A `ControlCommand` or a `SessionCommand`: a method of the group's state machine."""
        if self._leads(msg):
            getattr(self.group.machine, msg.method)(*msg.args, callback=_reply_from_raft(msg.reply))

    def _ack(self, msg, sender):
        if self._leads(msg):
            self.group.machine.ack_archived(msg.session_id, msg.upto_seq, callback=_reply_from_raft(msg.reply))

    def _get(self, msg, sender):
        msg.reply.set(session_record(self.group, msg.session_id))

    def _read_hot(self, msg, sender):
        msg.reply.set(hot_read(self.group, msg.session_id, msg.after_seq, msg.limit))

    def _pending(self, msg, sender):
        msg.reply.set(self.group.state.pending() if self.group.is_leader() else [])

    def _status(self, msg, sender):
        group = self.group
        msg.reply.set({**group.status(), "sessions": len(group.state.sessions), "hot_bytes": group.state.hot_bytes,
                       "live_tails": sum(len(t) for t in group.live_tails.values())})

    def _go_live(self, msg, sender):
        admit_live(self.group, msg.session_id, msg.outbox, msg.cursor)

    def _leave_live(self, msg, sender):
        leave_live(self.group, msg.session_id, msg.outbox)

    def _committed(self, msg, sender):
        # Straight into each live tail's outbox: one Thespian message per tail per commit
        # would cost ~10 us each, a whole core at 1,000 tails x 100 appends/s.
        outboxes = self.group.live_tails.get(msg.session_id)
        if outboxes:
            # A copy: a peer outbox's put can drop its link, and tails with it.
            put_all(msg.session_id, list(outboxes), ("events", msg.entries))

    def _exit(self, msg, sender):
        self.group.live_tails.clear()

    _handlers = {
        m.StartGroup: _start, m.CreateSession: _create, m.Append: _append, m.AckArchived: _ack,
        m.GetSession: _get, m.ReadHot: _read_hot, m.PendingArchive: _pending, m.GroupStatus: _status,
        m.GoLive: _go_live, m.LeaveLive: _leave_live, m.Committed: _committed, m.ControlCommand: _machine_command,
        m.SessionCommand: _machine_command,
        ActorExitRequest: _exit,
    }
