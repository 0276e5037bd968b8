"""The WebSocket wire of a tail (RFC 6455, server side): frames out, control frames in, the socket.

Owns: encoding server frames (one event per frame, or arrays of
``batch_size``; a live batch encoded once for every tail), a reader that
drops inbound data frames and notices close and ping, and `TailSocket`, the
tail's own handle on the connection after it is detached from the WSGI
handler (blocking sends for the pump, a non-blocking send for the hub).

Must not: know about sessions, cursors or the node.
"""

import struct

import gevent.socket

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


class FrameMemo:
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
