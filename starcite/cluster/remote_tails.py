"""Tails on a node without a replica of the session's group, fed by a replica over the peer port.

Owns both ends of a remote tail:
- on the node holding the socket, `RemoteTailHandle` (what `TailStream`
  calls: go_live, go_replay, close) sends ``("tail", stream_id, op, ...)`` to
  the serving replica, and items coming back are put on the tail's outbox;
  when the link to that replica drops, the handle asks the tail to replay
  and re-attaches to another replica at its next go-live, so the client sees
  no gap and no repeat;
- on the serving replica, a local tail (a `LocalTail`, as for a local
  socket) whose outbox is a `PeerOutbox` that forwards its items.
The go-live check stays atomic because it runs on the serving replica, next
to the state it checks. Periodic catch-up checks are made by the socket's
node (its `("check",)` items read through the router), so the replica does
not forward its own.

Must not: touch sockets, Raft or the archive.
"""

import itertools
import logging

log = logging.getLogger("starcite.remote_tails")

FORWARDED = ("events", "replay", "close")  # a close from the replica: the session was deleted


class PeerOutbox:
    """The outbox of a tail served for another node: forwards events and replays to it."""

    def __init__(self, hub, peer, stream_id):
        self.hub, self.peer, self.stream_id = hub, peer, stream_id

    def put(self, item):
        if item[0] in FORWARDED:
            self.hub.send(self.peer, ("tail_item", self.stream_id, item))


class RemoteTailHandle:
    """What the socket side holds for a tail served by a remote replica."""

    def __init__(self, tails, session_id, group_id, outbox):
        self.tails, self.session_id, self.group_id, self.outbox = tails, session_id, group_id, outbox
        self.stream_id = next(tails.stream_ids)
        self.peer = None

    def attach(self, cursor):
        """Open the tail on a connected replica (raises when none answers)."""
        def open_on(peer):
            self.tails.hub.call(peer, "tail_open", (self.stream_id, self.session_id, cursor), self.tails.timeout)
            return peer
        self.peer = self.tails.router.remote(self.group_id, open_on)

    def go_live(self, cursor):
        if self.peer is None:
            try:
                self.attach(cursor)
            except Exception as exc:  # no replica reachable: end the tail, the client resumes later
                log.warning("tail %s: no replica to re-attach to: %s", self.stream_id, exc)
                self.outbox.put(("close", 1011, "replica_unavailable"))
                return
        self.tails.hub.send(self.peer, ("tail", self.stream_id, "live", cursor))

    def go_replay(self):
        if self.peer is not None:
            self.tails.hub.send(self.peer, ("tail", self.stream_id, "replay", None))

    def close(self):
        self.tails.forget(self)
        self.tails.node.tails.handles.discard(self)
        if self.peer is not None:
            self.tails.hub.send(self.peer, ("tail", self.stream_id, "stop", None))

    def detach(self):
        """The serving replica is gone: replay (through the router), then re-attach at go-live."""
        self.peer = None
        self.outbox.put(("replay",))


class RemoteTails:
    """The node's registry of remote tails, in both directions, and their peer messages."""

    def __init__(self, node, hub, router):
        self.node, self.hub, self.router = node, hub, router
        self.timeout = router.timeout
        self.stream_ids = itertools.count(1)
        self.fed = {}      # stream id -> RemoteTailHandle (our sockets, served elsewhere)
        self.served = {}   # (peer, stream id) -> local tail handle (their sockets, our replica)
        hub.methods["tail_open"] = self._open_served
        hub.handlers["tail"] = self._on_tail
        hub.handlers["tail_item"] = self._on_item
        hub.link_listeners.append(self._on_link)

    def open(self, session_id, group_id, cursor, outbox) -> RemoteTailHandle:
        handle = RemoteTailHandle(self, session_id, group_id, outbox)
        self.fed[handle.stream_id] = handle
        try:
            handle.attach(cursor)
        except Exception:
            self.fed.pop(handle.stream_id, None)
            raise
        return handle

    def forget(self, handle):
        self.fed.pop(handle.stream_id, None)

    # -- peer messages ----------------------------------------------------------

    def _open_served(self, peer, stream_id, session_id, cursor):
        """``cursor`` is part of the peer protocol; the tail's first go-live carries the one that counts."""
        handle = self.node.tails.open_local(session_id, PeerOutbox(self.hub, peer, stream_id))
        self.served[(peer, stream_id)] = handle
        return True

    def _on_tail(self, peer, message):
        _kind, stream_id, op, cursor = message
        handle = self.served.get((peer, stream_id))
        if handle is None:
            return
        if op == "live":
            handle.go_live(cursor)
        elif op == "replay":
            handle.go_replay()
        elif op == "stop":
            del self.served[(peer, stream_id)]
            handle.close()

    def _on_item(self, peer, message):
        handle = self.fed.get(message[1])
        if handle is not None and handle.peer == peer:
            handle.outbox.put(message[2])

    def _on_link(self, peer, up):
        if up:
            return
        for key in [key for key in self.served if key[0] == peer]:
            self.served.pop(key).close()
        for handle in list(self.fed.values()):
            if handle.peer == peer:
                handle.detach()

    def counts(self) -> dict:
        return {"fed_remotely": len(self.fed), "served_for_peers": len(self.served)}
