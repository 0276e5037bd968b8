"""`TailActor`: the live side of one WebSocket tail subscription.

Owns: the subscription's lifecycle and mode (replaying, checking, live): it
subscribes to its group, decides atomically whether a tail that finished a
replay is caught up (`GoLive` -> `LastSeq` probe, answered in the same
dispatch, so no commit can slip between), and only then registers the tail's
outbox with the group (`SetLive`), which from then on puts committed batches
straight into it. A gap or failed catch-up seen by the socket pump comes
back as `GoReplay`, which unregisters the outbox.

Must not: touch the socket, read the archive, or block: the socket pump in
`starcite.api.tail` does the I/O.

Outbox items it causes: ``("events", [(seq, json), ...])`` (from the group),
``("replay",)``.
"""

from thespian.actors import Actor, ActorExitRequest

from starcite.actors import messages as m

REPLAYING, CHECKING, LIVE = "replaying", "checking", "live"


class TailActor(Actor):
    """Messages: TailStart, GoLive, LastSeqIs, GoReplay, TailStop."""

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

    def _go_live(self, msg):
        # The socket has sent everything up to msg.cursor; ask the group (atomically,
        # inside this same dispatch) whether anything was committed since.
        self.cursor = msg.cursor
        self.mode = CHECKING
        self.send(self.group, m.LastSeq(self.session_id, self.myAddress))

    def _last_seq_is(self, msg):
        if self.mode != CHECKING:
            return
        if msg.last_seq > self.cursor:
            self.mode = REPLAYING
            self.outbox.put(("replay",))
        else:
            self.mode = LIVE
            self.send(self.group, m.SetLive(self.session_id, self.myAddress, self.outbox))

    def _go_replay(self, msg):
        if self.mode == LIVE:
            self.send(self.group, m.SetLive(self.session_id, self.myAddress, None))
        self.mode = REPLAYING

    def _stop(self, msg):
        if self.group is not None:
            self.send(self.group, m.Unsubscribe(self.session_id, self.myAddress))
        self.send(self.myAddress, ActorExitRequest())

    _handlers = {
        m.TailStart: _start, m.GoLive: _go_live, m.LastSeqIs: _last_seq_is, m.GoReplay: _go_replay,
        m.TailStop: _stop,
    }
