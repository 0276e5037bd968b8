"""`TailActor`: the live side of one WebSocket tail subscription.

Owns: the subscription's mode (replaying or live) and its delivered cursor,
deciding for each committed batch whether it can go straight to the socket
(live, contiguous) or whether the socket greenlet must re-enter replay (a gap,
or a failed catch-up check). It talks to its group's `RaftGroupActor` and
puts work items on the socket greenlet's outbox queue.

Must not: touch the socket, read the archive, or block: the socket greenlet
in `starcite.api.tail` does the I/O and reports progress with `GoLive`.

Outbox items: ``("events", [(seq, json), ...])``, ``("replay",)``.
"""

from thespian.actors import Actor, ActorExitRequest

from starcite.actors import messages as m

REPLAYING, CHECKING, LIVE = "replaying", "checking", "live"


class TailActor(Actor):
    """Messages: TailStart, EventsCommitted, GoLive, LastSeqIs, CatchUpCheck, TailStop."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.session_id = None
        self.cursor = 0
        self.outbox = None
        self.group = None
        self.mode = REPLAYING

    def receiveMessage(self, msg, sender):
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(self, msg)

    def _start(self, msg):
        self.session_id, self.cursor, self.outbox, self.group = msg.session_id, msg.cursor, msg.outbox, msg.group
        self.send(self.group, m.Subscribe(self.session_id, self.myAddress))

    def _committed(self, msg):
        if self.mode != LIVE:
            return  # the socket greenlet is replaying; it will read these from the store
        entries = msg.entries
        if entries[-1][0] <= self.cursor:
            return
        if entries[0][0] <= self.cursor:
            entries = [e for e in entries if e[0] > self.cursor]
        if entries[0][0] != self.cursor + 1:
            self._replay()
            return
        self.cursor = entries[-1][0]
        self.outbox.put(("events", entries))

    def _go_live(self, msg):
        # The socket has sent everything up to msg.cursor; ask the group (atomically,
        # inside this same dispatch) whether anything was committed since.
        self.cursor = msg.cursor
        self.mode = CHECKING
        self.send(self.group, m.LastSeq(self.session_id, self.myAddress))

    def _last_seq_is(self, msg):
        if msg.last_seq > self.cursor:
            self._replay()
        elif self.mode == CHECKING:
            self.mode = LIVE

    def _catch_up(self, msg):
        if self.mode == LIVE:
            self.mode = CHECKING
            self.send(self.group, m.LastSeq(self.session_id, self.myAddress))

    def _replay(self):
        self.mode = REPLAYING
        self.outbox.put(("replay",))

    def _stop(self, msg):
        if self.group is not None:
            self.send(self.group, m.Unsubscribe(self.session_id, self.myAddress))
        self.send(self.myAddress, ActorExitRequest())

    _handlers = {
        m.TailStart: _start, m.EventsCommitted: _committed, m.GoLive: _go_live, m.LastSeqIs: _last_seq_is,
        m.CatchUpCheck: _catch_up, m.TailStop: _stop,
    }
