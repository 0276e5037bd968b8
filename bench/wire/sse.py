"""A minimal Server-Sent Events client for tails (receive side).

Owns: the request (`Accept: text/event-stream`, optionally `Last-Event-ID`),
the response head, the chunked body, and cutting it into messages: each
message's ``data`` goes with its receipt time (`time.perf_counter_ns`) to a
callback; comments and ``retry:`` are dropped. Must not: decode the event
JSON (callers decide what they need).
"""

import time

from bench.wire.base import StreamProtocol, open_stream

_DATA = b"data: "


class SseProtocol(StreamProtocol):
    """Calls ``on_event(data_bytes, received_ns)`` for every message that carries data."""

    def __init__(self, on_event):
        super().__init__()
        self.on_event = on_event
        self._body = bytearray()

    def parse_stream(self, buf, start):
        line_end = buf.find(b"\r\n", start)
        if line_end < 0:
            return None
        size = int(bytes(buf[start:line_end]), 16)
        if len(buf) < line_end + 2 + size + 2:
            return None
        return bytes(buf[line_end + 2:line_end + 2 + size]), line_end + 2 + size + 2

    def on_stream_message(self, chunk):
        self._body += chunk
        received = time.perf_counter_ns()
        while (end := self._body.find(b"\n\n")) >= 0:
            block = bytes(self._body[:end])
            del self._body[:end + 2]
            for line in block.split(b"\n"):
                if line.startswith(_DATA):
                    self.on_event(line[len(_DATA):], received)


async def connect(port: int, path: str, on_event, timeout: float = 10.0, last_event_id=None) -> SseProtocol:
    """Open ``http://127.0.0.1:port{path}`` as an event stream; each event's data goes to ``on_event``."""
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
               f"{resume}\r\n").encode()
    return await open_stream(lambda: SseProtocol(on_event), port, request, timeout)
