"""A minimal Redis (RESP2) client.

Owns: command encoding, reply parsing (nested arrays included), pipelined
calls. Must not: know which commands a workload sends.
"""

from bench.wire.base import ProtocolError, RequestProtocol, open_connection


class RedisError(Exception):
    """An error reply (``-ERR ...``)."""


def encode(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _parse(buf: bytes, pos: int):
    """``(value, end)`` of the reply at ``pos``; raises IndexError or ValueError when incomplete."""
    line_end = buf.index(b"\r\n", pos)
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1:line_end])
        if size < 0:
            return None, line_end + 2
        end = line_end + 2 + size
        if len(buf) < end + 2:
            raise IndexError
        return buf[line_end + 2:end], end + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1:line_end])
        if count < 0:
            return None, line_end + 2
        pos, items = line_end + 2, []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    line = buf[pos + 1:line_end]
    if kind == 43:  # + simple string
        return line, line_end + 2
    if kind == 45:  # - error
        return RedisError(line.decode(errors="replace")), line_end + 2
    if kind == 58:  # : integer
        return int(line), line_end + 2
    raise ProtocolError(f"bad RESP type byte {kind!r}")


class RespProtocol(RequestProtocol):
    def parse(self, buf, start):
        data = bytes(buf[start:]) if start else bytes(buf)  # bytes slices are cheaper than bytearray ones
        try:
            value, end = _parse(data, 0)
        except (IndexError, ValueError):
            return None
        return value, start + end


class RedisClient:
    """One connection to a redis-server on loopback."""

    def __init__(self, proto: RespProtocol):
        self._proto = proto

    @classmethod
    async def connect(cls, port: int) -> "RedisClient":
        return cls(await open_connection(RespProtocol, port))

    async def call(self, *args):
        reply = await self._proto.request(encode(*args))
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def pipeline(self, commands: list) -> list:
        """Send all ``commands`` (tuples of args) at once and wait for every reply."""
        futures = self._proto.call(b"".join(encode(*c) for c in commands), replies=len(commands))
        replies = [await f for f in futures]
        errors = [r for r in replies if isinstance(r, RedisError)]
        if errors:
            raise errors[0]
        return replies

    async def close(self):
        self._proto.close()
