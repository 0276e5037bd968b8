"""A tail's own handle on its connection, whatever the wire (WebSocket or SSE).

Owns: `TailSocket`, the part of a tail's connection that does not depend on
the wire: a non-blocking read for the hub's io watcher, blocking sends for
the pump (each bounded by the stall timeout: a write that makes no progress
for ``stall_s`` raises, and the pump ends the tail), a non-blocking send for
the hub (what the kernel could not take waits in ``unsent``), the claim of
the live fan-out (``in_flight``: a `starcite.api.tails.live_fanout` job is
sending on the fd; every other write and the close wait for it), and the
close (and `close_watchers`, the end of the watchers on its fd; `received`, a
stream's read of what came in; `watch`, its watchers started). The wires (`starcite.api.tails.ws_wire`,
`starcite.api.tails.sse_wire`) subclass `TailSocket` with their encoding, what
they make of inbound bytes, and what they send before closing.

Must not: know about sessions, cursors, the node or the pump's state.
"""

import time

import gevent

from starcite.node.deletions import CLOSE_SESSION_DELETED  # noqa: F401  (one of the codes below)

# How a tail ends, in WebSocket close codes (the SSE wire maps them to its own ending).
CLOSE_NORMAL = 1000         # shutdown, or the client's close
CLOSE_INTERNAL = 1011       # the tail failed or cannot be served (the reason says why)
CLOSE_TOKEN_EXPIRED = 4001  # the token expired
# CLOSE_SESSION_DELETED = 4410: the session was deleted (reason "session_deleted"), put by `starcite.node.deletions`


class WriteStalled(OSError):
    """A blocking send made no progress within the socket's stall timeout (the peer stopped reading)."""


class TailSocket:
    """The connection of one tail after it is detached from the WSGI handler."""

    kind = None  # what the connection counts as in the node's `ConnectionCounts`
    keepalive = None  # bytes an idle stream sends periodically (SSE's comment, a WebSocket ping); None: nothing
    keepalive_answered = False  # the peer must answer each keep-alive (a WebSocket pong)

    def __init__(self, sock, stall_s=None):
        """stall_s: the longest a blocking send may wait for the kernel to take a byte (None: no limit)."""
        self.sock = sock  # a gevent socket on the detached fd
        sock.settimeout(stall_s)  # gevent waits for room at most this long per send (socket.timeout)
        self.closed = False
        self.unsent = b""  # bytes a non-blocking send could not take yet; the pump sends them first
        self.in_flight = None  # the live fan-out job sending on this fd (its ``done`` is an Event)

    # -- what a wire defines ------------------------------------------------------

    def encode(self, entries, batch_size) -> bytes:
        """The wire bytes of ``entries``, a list of ``(seq, event_json)``."""
        raise NotImplementedError

    def wire_key(self, batch_size):
        """Two sockets with the same key encode a batch to the same bytes (the live fan-out
        encodes a batch once per key)."""
        raise NotImplementedError

    def inbound(self, data: bytes) -> list:
        """Outbox items for bytes the client sent: ``("close", code, reason)``, ``("pong", payload)``."""
        return []

    def pong(self, payload: bytes):
        """Answer a ping (WebSocket only)."""

    def goodbye(self, code, reason: str) -> bytes:
        """What the wire sends before the socket closes with ``code`` (None: just close)."""
        return b""

    # -- the shared part ----------------------------------------------------------

    def busy(self) -> bool:
        """Hub context: something is pending on the fd, so a hub-side write must not go now."""
        return self.closed or bool(self.unsent) or self.in_flight is not None

    def wait_in_flight(self):
        """Greenlet context: until the fan-out job on this fd (if any) has settled."""
        while self.in_flight is not None:
            self.in_flight.done.wait()

    def settle(self, data: bytes, sent: int) -> bool:
        """Hub context: the fan-out job sent ``sent`` bytes of ``data`` (-errno: the socket is
        dead; False). What the kernel did not take waits in ``unsent`` for the pump."""
        self.in_flight = None
        if sent < 0:
            return False
        if sent < len(data):
            self.unsent = data[sent:]
        return True

    def send(self, data: bytes):
        """Blocking (greenlet context): what is unsent, then ``data``, in one write. Not sendall:
        its timeout bounds the whole write, and a long replay to a slow but steady reader is fine;
        here each send must make progress within the socket's stall timeout."""
        self.wait_in_flight()
        if self.unsent:
            data, self.unsent = self.unsent + data, b""
        view = memoryview(data)
        try:
            while view:
                view = view[self.sock.send(view):]
        except TimeoutError:
            raise WriteStalled(f"no progress in {self.sock.gettimeout()} s") from None

    def flush(self):
        self.send(b"")

    def send_now(self, data: bytes) -> bool:
        """Non-blocking: True when every byte was written or queued in ``unsent``; False on a dead socket."""
        try:
            sent = self.sock._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False
        if sent < len(data):
            self.unsent = data[sent:]
        return True

    def recv_now(self):
        """Hub context, non-blocking: what the peer sent (b"" at its EOF or on an error), or None
        when nothing is there yet."""
        try:
            return self.sock._sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def send_quietly(self, data: bytes):
        """A last write (a close frame, an error event): a peer that is gone is not an error."""
        try:
            if data:
                self.send(data)
        except OSError:
            pass

    def close(self, code=None, reason=""):
        self.wait_in_flight()  # never close an fd a fan-out job may still be sending on
        if self.closed:
            return
        self.send_quietly(self.goodbye(code, reason))
        self.closed = True
        self.sock.close()


def watch(stream):
    """Hub context: start ``stream``'s read watcher (``watchers[0]``, calling its ``_readable``) and, when
    its token expires, the expiry timer (its ``_arm_expiry``). Returns the loop."""
    loop = gevent.get_hub().loop
    reader = loop.io(stream.conn.sock.fileno(), 1)
    reader.start(stream._readable)
    stream.watchers.append(reader)
    if stream.expires_at is not None:
        stream._arm_expiry(loop)
    return loop


def received(stream):
    """Hub context, a stream's read callback: the bytes waiting on ``stream.conn`` (None: nothing yet).
    At the peer's end (``b""``) the stream's read watcher (``watchers[0]``) is stopped; otherwise the
    peer has just been heard from (``heard_at``, what the keeper's pings go by)."""
    data = stream.conn.recv_now()
    if data == b"":
        stream.watchers[0].stop()
    elif data is not None:
        stream.heard_at = time.monotonic()
    return data


def close_watchers(watchers: list):
    """Stop and close the io watchers and timers on a connection (the list is emptied)."""
    for watcher in watchers:
        watcher.stop()
        watcher.close()
    watchers.clear()
