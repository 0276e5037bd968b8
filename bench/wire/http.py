"""A minimal keep-alive HTTP/1.1 client.

Owns: request encoding, response parsing (Content-Length and chunked bodies),
and reconnecting after the server closes a connection. Must not: retry a
request (a failed request is the caller's error to count).
"""

import json

from bench.wire.base import ProtocolError, RequestProtocol, open_connection, parse_head

def _header(head_lower: bytes, name: bytes):
    at = head_lower.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    value_start = at + len(name) + 3
    value_end = head_lower.find(b"\r\n", value_start)
    return head_lower[value_start:value_end if value_end >= 0 else None].strip()


def _parse_chunked(buf, pos):
    """``(body, end)`` of a chunked body starting at ``pos``, or None when incomplete."""
    parts = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            return (b"".join(parts), trailer_end + 2) if trailer_end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos:pos + size]))
        pos += size + 2


class Response:
    __slots__ = ("status", "body", "close")

    def __init__(self, status, body, close):
        self.status, self.body, self.close = status, body, close

    def json(self):
        return json.loads(self.body)


class HttpProtocol(RequestProtocol):
    def parse(self, buf, start):
        head = parse_head(buf, start)
        if head is None:
            return None
        status, head_lower, pos = head
        if _header(head_lower, b"transfer-encoding") == b"chunked":
            chunked = _parse_chunked(buf, pos)
            if chunked is None:
                return None
            body, end = chunked
        else:
            end = pos + int(_header(head_lower, b"content-length") or 0)
            if len(buf) < end:
                return None
            body = bytes(buf[pos:end])
        return Response(status, body, _header(head_lower, b"connection") == b"close"), end


class HttpClient:
    """One keep-alive connection to ``127.0.0.1:port``; reopened when the server closes it."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.port, self.host = port, host
        self._proto = None
        self._prefix = {}

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        if self._proto is None or not self._proto.is_open:
            self._proto = await open_connection(HttpProtocol, self.port, self.host)
        prefix = self._prefix.get((method, path))
        if prefix is None:
            prefix = self._prefix[(method, path)] = (
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Content-Type: application/json\r\nContent-Length: ").encode()
            if len(self._prefix) > 10000:
                self._prefix.clear()
        response = await self._proto.request(b"%s%d\r\n\r\n%s" % (prefix, len(body), body))
        if response.close:
            self._proto.close()
        return response

    async def post_json(self, path: str, body: bytes, expect: int = 201) -> Response:
        response = await self.request("POST", path, body)
        if response.status != expect:
            raise ProtocolError(f"POST {path} -> {response.status}: {response.body[:200]!r}")
        return response

    async def close(self):
        if self._proto is not None:
            self._proto.close()
            self._proto = None
