"""Shared plumbing of the wire clients.

Owns: `FramedProtocol` (a byte buffer cut into messages by a subclass's
`parse`), `StreamProtocol` (a response head, then a stream: the tails'
WebSocket and SSE clients) with `open_stream`, `RequestProtocol`
(request/response with in-order replies, so pipelining works) and
`open_connection`, and `parse_head` (an HTTP response head). Must not: know any protocol's syntax.
"""

import asyncio
import collections

CONNECT_TIMEOUT_S = 10.0
_HEAD_END = b"\r\n\r\n"


class ProtocolError(Exception):
    """The peer sent something the client cannot parse or did not expect."""


def parse_head(buf, start):
    """``(status, headers_lower_bytes, body_start)`` of the HTTP response head at ``start``, or None."""
    end = buf.find(_HEAD_END, start)
    if end < 0:
        return None
    head = bytes(buf[start:end])
    if not head.startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP response: {head[:80]!r}")
    return int(head[9:12]), head.lower(), end + 4


class FramedProtocol(asyncio.Protocol):
    """Buffers received bytes and hands every complete message to `on_message`.

    Subclasses implement ``parse(buf, start) -> (message, end) | None``
    (None: incomplete, wait for more bytes).
    """

    def __init__(self):
        self.transport = None
        self._buf = bytearray()
        self._start = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self._buf += data
        while self._start < len(self._buf):
            parsed = self.parse(self._buf, self._start)
            if parsed is None:
                break
            message, self._start = parsed
            self.on_message(message)
        if self._start >= len(self._buf):
            self._buf.clear()
            self._start = 0
        elif self._start > 1 << 16:
            del self._buf[:self._start]
            self._start = 0

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.closed.done()

    def close(self):
        if self.transport is not None:
            self.transport.close()

    def parse(self, buf, start):
        raise NotImplementedError

    def on_message(self, message):
        raise NotImplementedError


class RequestProtocol(FramedProtocol):
    """Request/response: replies resolve the oldest waiting request (pipelining works)."""

    def __init__(self):
        super().__init__()
        self._waiters = collections.deque()
        self._loop = asyncio.get_running_loop()

    def call(self, data: bytes, replies: int = 1) -> list:
        """Send ``data`` and return futures of its next ``replies`` replies."""
        if not self.is_open:
            raise ConnectionError("connection closed")
        futures = [self._loop.create_future() for _ in range(replies)]
        self._waiters.extend(futures)
        self.transport.write(data)
        return futures

    async def request(self, data: bytes):
        (future,) = self.call(data)
        return await future

    def on_message(self, message):
        if not self._waiters:
            raise ProtocolError(f"unsolicited reply: {message!r:.200}")
        future = self._waiters.popleft()
        if not future.done():
            future.set_result(message)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))


async def open_connection(protocol_factory, port: int, host: str = "127.0.0.1"):
    """Connect a protocol instance to ``host:port`` (loopback) within a bounded time."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(loop.create_connection(protocol_factory, host, port), CONNECT_TIMEOUT_S)
    return protocol


class StreamProtocol(FramedProtocol):
    """A request answered by a head with ``OPEN_STATUS`` and then a stream of messages.

    Subclasses parse the stream in ``parse_stream`` and take its messages in
    ``on_stream_message``; ``opened`` resolves when the head is parsed (or fails
    with the refusal, or when the connection closes first). The request is
    written from ``connection_made`` (``request``), in the same loop callback
    as the connect: a storm's thousands of clients each save a loop round
    before their request leaves."""

    OPEN_STATUS = 200

    def __init__(self):
        super().__init__()
        self.opened = asyncio.get_running_loop().create_future()
        self.request = b""

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.request:
            transport.write(self.request)

    def parse(self, buf, start):
        if self.opened.done():
            return self.parse_stream(buf, start)
        head = parse_head(buf, start)
        if head is None:
            return None
        status, _head_lower, end = head
        if status == self.OPEN_STATUS:
            return ("head", status, b""), end
        return ("head", status, bytes(buf[end:])), len(buf)

    def on_message(self, message):
        if message[0] != "head":
            return self.on_stream_message(message)
        _, status, body = message
        if self.opened.done():  # timed out already (`open_stream`)
            return
        if status == self.OPEN_STATUS:
            self.on_open()
            self.opened.set_result(True)
        else:
            self.opened.set_exception(ProtocolError(f"stream refused: {status} {body[:200]!r}"))
            self.close()

    def on_open(self):
        """The head was parsed (before any stream message behind it)."""

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the head: {exc}"))

    def parse_stream(self, buf, start):
        raise NotImplementedError

    def on_stream_message(self, message):
        raise NotImplementedError


def _give_up(future, timeout):
    if not future.done():
        future.set_exception(asyncio.TimeoutError(f"no answer within {timeout} s"))


async def open_stream(protocol_factory, port: int, request: bytes, timeout: float):
    """Connect, send ``request``, and wait (bounded: one timer, no task) for the stream's head;
    refused or late: closed, raised."""
    def factory():
        proto = protocol_factory()
        proto.request = request
        return proto

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    proto = await open_connection(factory, port)
    timer = loop.call_at(deadline, _give_up, proto.opened, timeout)
    try:
        await proto.opened
    except BaseException:
        proto.close()
        raise
    finally:
        timer.cancel()
    return proto
