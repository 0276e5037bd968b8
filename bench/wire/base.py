"""Shared plumbing of the wire clients.

Owns: `FramedProtocol` (a byte buffer cut into messages by a subclass's
`parse`), `RequestProtocol` (request/response with in-order replies, so
pipelining works) and `open_connection`. Must not: know any protocol's syntax.
"""

import asyncio
import collections

CONNECT_TIMEOUT_S = 10.0


class ProtocolError(Exception):
    """The peer sent something the client cannot parse or did not expect."""


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
