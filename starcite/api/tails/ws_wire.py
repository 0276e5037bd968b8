"""The WebSocket wire of a tail (RFC 6455, server side): frames out, control frames in, the socket.

Owns: encoding server frames (one event per frame, or arrays of
``batch_size``), the ping an idle tail sends, a reader of the client's frames
(a tail's drops data frames and notices close and ping; a Phoenix socket's
keeps its messages), and `WebSocketConn`, the `TailSocket` of a WebSocket tail after it
is detached from the WSGI handler (close frames, pongs).

Must not: know about sessions, cursors or the node.
"""

import struct

import gevent.socket

from starcite.api.tails.tail_socket import CLOSE_NORMAL, TailSocket

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked server-to-client WebSocket frame (FIN set)."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x80 | opcode, size) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


OP_CONTINUATION = 0x0
OP_TOO_BIG = -1  # what `InboundFrames` yields for a data message past its ``max_message``


def unmask(payload: bytes, mask: bytes) -> bytes:
    """A client frame's payload, unmasked (RFC 6455 §5.3)."""
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class InboundFrames:
    """A WebSocket frame reader for the client's frames. A tail's (``max_message`` 0) drops data
    frames as they stream in and notices close and ping; a Phoenix socket's keeps data messages
    of at most ``max_message`` bytes (fragments joined)."""

    def __init__(self, max_message: int = 0):
        self.buffer = b""
        self.skip = 0
        self.max_message = max_message
        self.fragments = None  # [opcode, parts, size] of a fragmented data message being joined

    def feed(self, data: bytes):
        """Yields ``(opcode, payload)`` of complete control frames and, when data is kept, of
        complete data messages; ``(OP_TOO_BIG, b"")`` once for a message past ``max_message``."""
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
        buf = self.buffer + data
        while len(buf) >= 2:
            fin, opcode, length = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x7F
            head = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if buf[1] & 0x80 else 0)
            if len(buf) < head:
                break
            if length == 126:
                length = struct.unpack("!H", buf[2:4])[0]
            elif length == 127:
                length = struct.unpack("!Q", buf[2:10])[0]
            if opcode < 0x8 and self.max_message:
                if length + (self.fragments[2] if self.fragments else 0) > self.max_message:
                    self.buffer, self.fragments = b"", None
                    yield OP_TOO_BIG, b""
                    return
            elif opcode < 0x8 and len(buf) < head + length:
                self.skip = head + length - len(buf)  # a data frame: drop it as it streams in
                buf = b""
                break
            if len(buf) < head + length:
                break
            payload = buf[head:head + length]
            if buf[1] & 0x80:
                payload = unmask(payload, buf[head - 4:head])
            buf = buf[head + length:]
            if opcode >= 0x8:
                yield opcode, payload
            elif self.max_message:
                message = self._join(fin, opcode, payload)
                if message is not None:
                    yield message
        self.buffer = buf if self.max_message else buf[:1024]

    def _join(self, fin, opcode, payload):
        """A complete data message ``(opcode, payload)`` once its last fragment is in, else None."""
        if opcode != OP_CONTINUATION:
            if fin:
                return opcode, payload
            self.fragments = [opcode, [payload], len(payload)]
            return None
        if self.fragments is None:
            return None  # a continuation of nothing: ignored
        self.fragments[1].append(payload)
        self.fragments[2] += len(payload)
        if not fin:
            return None
        opcode, parts, _size = self.fragments
        self.fragments = None
        return opcode, b"".join(parts)


def encode_frames(entries, batch_size) -> bytes:
    """The wire bytes of ``entries`` as text frames: one event per frame, or arrays of ``batch_size``."""
    if batch_size == 1:
        return b"".join(frame(OP_TEXT, event_json.encode()) for _seq, event_json in entries)
    return b"".join(frame(OP_TEXT, ("[" + ",".join(e[1] for e in entries[i:i + batch_size]) + "]").encode())
                    for i in range(0, len(entries), batch_size))


_PING = frame(OP_PING, b"")


class WebSocketConn(TailSocket):
    """A tail's connection after the 101: text frames out, control frames in, pings when idle."""

    kind = "websocket_tail"
    keepalive = _PING
    keepalive_answered = True

    def __init__(self, sock, stall_s=None):
        super().__init__(sock, stall_s)
        self.frames_in = InboundFrames()

    @classmethod
    def detach(cls, ws, stall_s=None):
        """Take the connection's fd from the WSGI handler's socket object (which then
        closes nothing). Not os.dup: epoll keeps reporting on the closed twin and the
        event loop loses our readiness events."""
        return cls(gevent.socket.socket(fileno=ws.handler.socket.detach()), stall_s)

    def encode(self, entries, batch_size) -> bytes:
        return encode_frames(entries, batch_size)

    def wire_key(self, batch_size):
        return ("websocket", batch_size)

    def inbound(self, data: bytes) -> list:
        items = []
        for opcode, payload in self.frames_in.feed(data):
            if opcode == OP_CLOSE:
                return items + [("close", CLOSE_NORMAL, "")]  # answer the client's close
            if opcode == OP_PING:
                items.append(("pong", payload))
        return items

    def pong(self, payload: bytes):
        self.send_quietly(frame(OP_PONG, payload))

    def goodbye(self, code, reason: str) -> bytes:
        if code is None:
            return b""
        return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
