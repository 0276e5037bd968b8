"""A minimal Server-Sent Events client for tails (receive side).

Owns: the request (`Accept: text/event-stream`, optionally `Last-Event-ID`),
the response head, the chunked body, and cutting it into messages: each
message's ``data`` goes with its receipt time (`time.perf_counter_ns`) to a
callback; comments and ``retry:`` are dropped. Must not: decode the event
JSON (callers decide what they need).
"""

import asyncio
import time

from bench.wire.base import FramedProtocol, ProtocolError, open_connection
from bench.wire.http import parse_head

_DATA = b"data: "


class SseProtocol(FramedProtocol):
    """Calls ``on_event(data_bytes, received_ns)`` for every message that carries data."""

    def __init__(self, on_event):
        super().__init__()
        self.on_event = on_event
        self.opened = asyncio.get_running_loop().create_future()
        self._body = bytearray()

    def parse(self, buf, start):
        if not self.opened.done():
            head = parse_head(buf, start)
            if head is None:
                return None
            status, _head_lower, end = head
            return ("head", status, bytes(buf[end:]) if status != 200 else b""), (end if status == 200 else len(buf))
        line_end = buf.find(b"\r\n", start)
        if line_end < 0:
            return None
        size = int(bytes(buf[start:line_end]), 16)
        if len(buf) < line_end + 2 + size + 2:
            return None
        return ("chunk", bytes(buf[line_end + 2:line_end + 2 + size])), line_end + 2 + size + 2

    def on_message(self, message):
        if message[0] == "head":
            _, status, body = message
            if status == 200:
                self.opened.set_result(True)
            else:
                self.opened.set_exception(ProtocolError(f"stream refused: {status} {body[:200]!r}"))
                self.close()
            return
        self._body += message[1]
        received = time.perf_counter_ns()
        while (end := self._body.find(b"\n\n")) >= 0:
            block = bytes(self._body[:end])
            del self._body[:end + 2]
            for line in block.split(b"\n"):
                if line.startswith(_DATA):
                    self.on_event(line[len(_DATA):], received)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the head: {exc}"))


async def connect(port: int, path: str, on_event, timeout: float = 10.0, last_event_id=None) -> SseProtocol:
    """Open ``http://127.0.0.1:port{path}`` as an event stream; each event's data goes to ``on_event``."""
    proto = await open_connection(lambda: SseProtocol(on_event), port)
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    proto.transport.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                           f"{resume}\r\n").encode())
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
    except BaseException:
        if not proto.opened.done():
            proto.opened.cancel()
        proto.close()
        raise
    return proto
