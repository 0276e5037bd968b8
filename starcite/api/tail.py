"""WebSocket tails: `GET /v1/sessions/:id/tail?cursor=N&batch_size=M`.

Owns: the tail's HTTP checks before the upgrade (cursor, batch_size, session
exists, access), the handshake through the worker's upgrade hook, and the
socket greenlet: replay from the store (cold + hot, gap-free) until caught
up, then hand over to the `TailActor` and send what it puts on the outbox;
re-enter replay whenever the actor says so. It sends every committed event
after the cursor exactly once, in order.

Must not: decide liveness or gaps itself beyond a defensive seq check (the
`TailActor` does), or read inbound frames for meaning (they are ignored).
"""

import base64
import collections
import struct
import time

import gevent
import gevent.socket

from starcite.api.errors import ApiError
from starcite.api.resources import int_param
from starcite.tier_reads import ArchiveReadError
from starcite.rules import TAIL_BATCH_SIZE, TAIL_CURSOR

REPLAY_CHUNK = 1000
CLOSE_NORMAL = 1000
CLOSE_INTERNAL = 1011
CLOSE_TOKEN_EXPIRED = 4001
SUPPORTED_VERSIONS = ("13", "8", "7")


def _check_handshake(env):
    if env.get("HTTP_UPGRADE", "").lower() != "websocket" or "upgrade" not in env.get("HTTP_CONNECTION", "").lower():
        raise ApiError(426, "upgrade_required", "This endpoint is a WebSocket: send an Upgrade request",
                       {"Upgrade": "websocket"})
    if env.get("HTTP_SEC_WEBSOCKET_VERSION") not in SUPPORTED_VERSIONS:
        raise ApiError(400, "invalid_handshake", "Unsupported Sec-WebSocket-Version (use 13)")
    try:
        if len(base64.b64decode(env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_handshake", "Invalid Sec-WebSocket-Key") from None


class TailResource:
    def __init__(self, node, gate):
        self.node, self.gate = node, gate

    def _checked(self, req, session_id):
        """Everything a tail request must pass before the upgrade: ``(access, cursor, batch_size)``."""
        access = req.context.access
        access.scope("session:read")
        cursor = int_param(req, "cursor", 0, TAIL_CURSOR, "invalid_cursor")
        batch_size = int_param(req, "batch_size", 1, TAIL_BATCH_SIZE, "invalid_batch_size")
        access.session(self.node.require_session(session_id))
        _check_handshake(req.env)
        return access, cursor, batch_size

    def on_head(self, req, resp, session_id):
        """The GET's answer without a body; a HEAD never upgrades, so a valid handshake is refused."""
        self._checked(req, session_id)
        raise ApiError(400, "invalid_handshake", "A WebSocket tail opens with GET, not HEAD")

    def on_get(self, req, resp, session_id):
        access, cursor, batch_size = self._checked(req, session_id)
        upgrade = req.env.get("starcite.upgrade")
        if upgrade is None or self.node.stopping:
            raise ApiError(503, "unavailable", "Tails are not served by this process right now")
        ws = upgrade()
        req.context.upgraded = True
        # The request greenlet ends here: the tail lives on a detached socket, driven by
        # watchers and short-lived greenlets, so an idle tail holds no greenlet stack.
        TailStream(self.node, TailSocket.detach(ws), session_id, cursor, batch_size,
                   self.gate.expires_at(access)).start()


OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked server-to-client WebSocket frame (FIN set)."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x80 | opcode, size) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


class InboundFrames:
    """Just enough of a WebSocket frame reader to ignore data frames and notice close and ping."""

    def __init__(self):
        self.buffer = b""
        self.skip = 0

    def feed(self, data: bytes):
        """Yields ``(opcode, payload)`` of complete control frames; data frames are dropped."""
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
        buf = self.buffer + data
        while len(buf) >= 2:
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            head = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if buf[1] & 0x80 else 0)
            if len(buf) < head:
                break
            if length == 126:
                length = struct.unpack("!H", buf[2:4])[0]
            elif length == 127:
                length = struct.unpack("!Q", buf[2:10])[0]
            if opcode < 0x8 and len(buf) < head + length:
                self.skip = head + length - len(buf)  # a data frame: drop it as it streams in
                buf = b""
                break
            if len(buf) < head + length:
                break
            payload = buf[head:head + length]
            if buf[1] & 0x80:
                mask = buf[head - 4:head]
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode >= 0x8:
                yield opcode, payload
            buf = buf[head + length:]
        self.buffer = buf[:1024]


def encode_frames(entries, batch_size) -> bytes:
    """The wire bytes of ``entries`` as text frames: one event per frame, or arrays of ``batch_size``."""
    if batch_size == 1:
        return b"".join(frame(OP_TEXT, event_json.encode()) for _seq, event_json in entries)
    return b"".join(frame(OP_TEXT, ("[" + ",".join(e[1] for e in entries[i:i + batch_size]) + "]").encode())
                    for i in range(0, len(entries), batch_size))


class _FrameMemo:
    """The group puts one batch into every live outbox in a row: encode it once, not once per tail."""

    entries = None
    batch_size = None
    data = b""

    @classmethod
    def frames(cls, entries, batch_size):
        if entries is not cls.entries or batch_size != cls.batch_size:
            cls.entries, cls.batch_size, cls.data = entries, batch_size, encode_frames(entries, batch_size)
        return cls.data


class TailSocket:
    """The tail's own handle on the connection, detached from the WSGI handler after the 101."""

    def __init__(self, sock):
        self.sock = sock
        self.closed = False
        self.unsent = b""  # bytes a non-blocking send could not take yet; the pump sends them first

    @classmethod
    def detach(cls, ws):
        """Take the connection's fd from the WSGI handler's socket object (which then
        closes nothing). Not os.dup: epoll keeps reporting on the closed twin and the
        event loop loses our readiness events."""
        return cls(gevent.socket.socket(fileno=ws.handler.socket.detach()))

    def send(self, data: bytes):
        self.flush()
        self.sock.sendall(data)

    def flush(self):
        if self.unsent:
            data, self.unsent = self.unsent, b""
            self.sock.sendall(data)

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

    def send_control(self, opcode, payload=b""):
        try:
            self.send(frame(opcode, payload))
        except OSError:
            pass

    def close(self, code=None, reason=""):
        if self.closed:
            return
        if code is not None:
            self.send_control(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        self.closed = True
        self.sock.close()


class Outbox:
    """Work for a tail: the group and the TailActor put items here.

    A committed batch for an idle live tail is written straight to the socket,
    non-blocking (``deliver``), with no greenlet; anything else wakes the pump.
    """

    def __init__(self, wake, deliver):
        self.items = collections.deque()
        self.wake = wake
        self.deliver = deliver

    def put(self, item):
        if item[0] == "events" and not self.items and self.deliver(item[1]):
            return
        self.items.append(item)
        self.wake()


class TailStream:
    """One tail: replay from the store, then live items from its TailActor, to one socket.

    No greenlet while idle: inbound bytes are read by an io watcher on the hub, the
    token expiry is a timer, and a pump greenlet runs only while there is work
    (replaying, or items in the outbox), then exits.
    """

    def __init__(self, node, conn, session_id, cursor, batch_size, expires_at=None):
        """expires_at: epoch seconds at which the socket closes with 4001
        `token_expired` (the gate's choice, see `JwtGate.expires_at`); None
        with auth off."""
        self.node, self.conn, self.session_id = node, conn, session_id
        self.sent = cursor
        self.batch_size = batch_size
        self.expires_at = expires_at
        self.replaying = True
        self.pump = None
        self.outbox = Outbox(self.kick, self._deliver_now)
        self.handle = None
        self.watchers = []
        self.inbound = InboundFrames()

    def start(self):
        loop = gevent.get_hub().loop
        self.handle = self.node.open_tail(self.session_id, self.sent, self.outbox)
        reader = loop.io(self.conn.sock.fileno(), 1)
        reader.start(self._readable)
        self.watchers.append(reader)
        if self.expires_at is not None:
            self._arm_expiry(loop)
        self.kick()

    def kick(self):
        if self.pump is None and not self.conn.closed:
            self.pump = gevent.spawn(self._run)

    # -- the pump -------------------------------------------------------------

    def _run(self):
        try:
            self._work()
        except OSError:
            self._finish()  # the client went away
        finally:
            self.pump = None

    def _deliver_now(self, entries) -> bool:
        """Hub context (never blocks): write the next contiguous batch of an idle live tail."""
        if self.pump is not None or self.replaying or self.conn.closed or self.conn.unsent:
            return False
        if entries[0][0] != self.sent + 1:
            return False  # overlap or gap: the pump sorts it out
        if not self.conn.send_now(_FrameMemo.frames(entries, self.batch_size)):
            return False  # the pump will hit the error and end the tail
        self.sent = entries[-1][0]
        if self.conn.unsent:
            self.kick()  # the kernel buffer was full: the pump writes the rest
        return True

    def _work(self):
        items = self.outbox.items
        while not self.conn.closed:
            self.conn.flush()
            if self.replaying:
                if self.expires_at is not None and time.time() >= self.expires_at:
                    return self._finish(CLOSE_TOKEN_EXPIRED, "token_expired")  # a long replay ends too
                try:
                    entries = self.node.read_events(self.session_id, self.sent, REPLAY_CHUNK)
                except ArchiveReadError as exc:
                    return self._finish(CLOSE_INTERNAL, f"archive_read_unavailable: {exc}")
                if entries:
                    self._send(entries)
                    continue
                self.replaying = False
                self.handle.go_live(self.sent)  # may queue ("replay",) at once
                continue
            if not items:
                return  # idle: nothing holds a greenlet until the next put
            item = items.popleft()
            kind = item[0]
            if kind == "events":
                entries = item[1]
                while items and items[0][0] == "events":
                    entries = entries + items.popleft()[1]
                entries = [entry for entry in entries if entry[0] > self.sent]
                if entries and entries[0][0] != self.sent + 1:
                    self._replay()  # a gap: never skip a seq
                    continue
                self._send(entries)
            elif kind == "check":
                # Periodic catch-up check: behind the store with nothing queued -> replay.
                hot = self.node.read_hot(self.session_id, self.sent, 0)
                if hot is not None and hot[1] > self.sent and not items:
                    self._replay()
            elif kind == "replay":
                self.replaying = True
            elif kind == "close":
                return self._finish(item[1], item[2])
            elif kind == "gone":
                return self._finish()
            elif kind == "pong":
                self.conn.send_control(OP_PONG, item[1])

    def _replay(self):
        self.replaying = True
        self.handle.go_replay()

    def _send(self, entries):
        if not entries:
            return
        self.conn.send(encode_frames(entries, self.batch_size))
        self.sent = entries[-1][0]

    def _finish(self, code=None, reason=""):
        for watcher in self.watchers:
            watcher.stop()
            watcher.close()
        self.watchers = []
        if self.handle is not None:
            self.handle.close()
        self.conn.close(code, reason)

    # -- hub callbacks (never block) ------------------------------------------

    def _readable(self):
        try:
            data = self.conn.sock._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.outbox.put(("gone",))
            self.watchers[0].stop()
            return
        for opcode, payload in self.inbound.feed(data):
            if opcode == OP_CLOSE:
                self.outbox.put(("close", CLOSE_NORMAL, ""))  # answer the client's close
                self.watchers[0].stop()
                return
            if opcode == OP_PING:
                self.outbox.put(("pong", payload))

    def _arm_expiry(self, loop):
        """Close with 4001 once the token is expired by the wall clock (timers may fire early)."""
        timer = loop.timer(max(0.0, self.expires_at - time.time()) + 0.001)
        self.watchers.append(timer)

        def fire():
            if time.time() < self.expires_at:
                self.watchers.remove(timer)
                timer.close()
                return self._arm_expiry(loop)
            self.outbox.put(("close", CLOSE_TOKEN_EXPIRED, "token_expired"))

        timer.start(fire)
