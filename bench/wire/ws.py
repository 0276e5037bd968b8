"""A minimal WebSocket client for tails (RFC 6455, receive side).

Owns: the upgrade handshake, frame parsing (fragmented messages, ping/pong,
close), and handing each complete text/binary message with its receipt time
(`time.perf_counter_ns`, CLOCK_MONOTONIC: comparable across processes) to a
callback. Must not: decode the messages (callers decide what they need).
"""

import base64
import os
import struct
import time

from bench.wire.base import ProtocolError, StreamProtocol, open_stream

_OP_CONT, _OP_TEXT, _OP_BIN, _OP_CLOSE, _OP_PING = 0, 1, 2, 8, 9


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payloads here are control frames: < 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class WsProtocol(StreamProtocol):
    """Calls ``on_frame(payload_bytes, received_ns)`` for every complete data message, and
    ``on_upgrade(received_ns)`` (if given) when the 101 is parsed, before any frame behind it."""

    OPEN_STATUS = 101

    def __init__(self, on_frame, on_upgrade=None):
        super().__init__()
        self.on_frame = on_frame
        self.on_upgrade = on_upgrade
        self._fragments = []
        self._live = False  # upgraded: `data_received` may take its fast path

    def data_received(self, data):
        """Fast path for the common case once upgraded (a tail receives one frame per event,
        ~50,000 a second across a storm's clients): whole unfragmented data frames under 64 KiB
        at the start of ``data``, with nothing buffered, go to ``on_frame`` straight from ``data``;
        anything else (and the rest) goes through the general parser."""
        if self._buf or not self._live or self._fragments:
            return super().data_received(data)
        pos, end, on_frame, now = 0, len(data), self.on_frame, time.perf_counter_ns()
        while pos + 2 <= end:
            b0, size = data[pos], data[pos + 1]
            if b0 & 0x8F not in (0x81, 0x82) or size > 126:
                break  # masked or 64-bit length, control, fragmented: the general parser
            head = 2
            if size == 126:
                if pos + 4 > end:
                    break
                size, head = (data[pos + 2] << 8) | data[pos + 3], 4
            if pos + head + size > end:
                break  # incomplete: the general parser buffers it
            on_frame(data[pos + head:pos + head + size], now)
            pos += head + size
        if pos < end:
            super().data_received(data[pos:] if pos else data)

    def parse_stream(self, buf, start):
        if len(buf) - start < 2:
            return None
        b0, b1 = buf[start], buf[start + 1]
        if b1 & 0x80:
            raise ProtocolError("server frames must not be masked")
        size, pos = b1 & 0x7F, start + 2
        if size == 126:
            if len(buf) < pos + 2:
                return None
            size, pos = struct.unpack_from("!H", buf, pos)[0], pos + 2
        elif size == 127:
            if len(buf) < pos + 8:
                return None
            size, pos = struct.unpack_from("!Q", buf, pos)[0], pos + 8
        if len(buf) < pos + size:
            return None
        return (b0 & 0x80, b0 & 0x0F, bytes(buf[pos:pos + size])), pos + size

    def on_open(self):
        if self.on_upgrade is not None:
            self.on_upgrade(time.perf_counter_ns())
        self._live = True

    def on_stream_message(self, message):
        fin, opcode, payload = message
        if opcode == _OP_PING:
            self.transport.write(_client_frame(0xA, payload))
        elif opcode == _OP_CLOSE:
            self.transport.write(_client_frame(_OP_CLOSE, payload[:2]))
            self.close()
        elif opcode in (_OP_TEXT, _OP_BIN, _OP_CONT):
            if not fin:
                self._fragments.append(payload)
            else:
                if self._fragments:
                    payload = b"".join(self._fragments) + payload
                    self._fragments.clear()
                self.on_frame(payload, time.perf_counter_ns())


async def connect(port: int, path: str, on_frame, timeout: float = 10.0, on_upgrade=None) -> WsProtocol:
    """Open a WebSocket to ``ws://127.0.0.1:port{path}``; frames go to ``on_frame``, the 101's
    receipt time to ``on_upgrade``."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    return await open_stream(lambda: WsProtocol(on_frame, on_upgrade), port, request, timeout)
