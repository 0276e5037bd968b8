"""The Server-Sent Events wire of a tail (WHATWG HTML §9.2, server side).

Owns: the response head of an SSE tail (`sse_head`: 200
``text/event-stream``, chunked on HTTP/1.1, the ``retry:`` field once),
encoding events (``id: <seq>`` and ``data: <event JSON>``, one message per
event, so that ``Last-Event-ID`` is always a seq), the keep-alive comment,
and `SseConn`, the `TailSocket` of an SSE tail: how it ends (a shutdown or a
client close is the end of the body; any other end is an ``event: error``
whose data is the API's ``{"error","message"}`` body, then the end).

Must not: know about sessions, cursors or the node. An event's JSON never
holds a raw CR or LF (JSON escapes them), so one ``data:`` line carries it.
"""

from starcite.api.http.errors import error_body
from starcite.api.tails.tail_socket import CLOSE_NORMAL, TailSocket

_LAST_CHUNK = b"0\r\n\r\n"
_MESSAGES = {
    "token_expired": "The access token has expired; reconnect with a fresh one",
    "tail_unavailable": "No replica of this session can serve the tail right now; reconnect",
    "replica_unavailable": "The replica serving this tail went away; reconnect",
    "internal_error": "The tail failed on the server; reconnect",
    "session_deleted": "The session was deleted; its events are gone",
}


def encode_events(entries) -> bytes:
    """One SSE message per ``(seq, event_json)``."""
    return b"".join(b"id: %d\ndata: %s\n\n" % (seq, event_json.encode()) for seq, event_json in entries)


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_head(protocol: str, extra_headers, retry_ms: int) -> tuple:
    """``(bytes, chunked)``: the status line, the headers and the first body bytes (``retry:``)."""
    chunked = protocol == "HTTP/1.1"
    headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no"), *extra_headers]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    headers.append(("Connection", "close"))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    first = b"retry: %d\n\n" % retry_ms
    return (f"{protocol if chunked else 'HTTP/1.0'} 200 OK\r\n{head}\r\n".encode("latin-1")
            + (chunk(first) if chunked else first)), chunked


class SseConn(TailSocket):
    """An SSE tail's connection after its head is sent; inbound bytes mean nothing."""

    kind = "sse_tail"

    def __init__(self, sock, chunked: bool, stall_s=None):
        super().__init__(sock, stall_s)
        self.chunked = chunked
        self.keepalive = self._body(b": keep-alive\n\n")

    def _body(self, data: bytes) -> bytes:
        return chunk(data) if self.chunked else data

    def encode(self, entries, batch_size) -> bytes:
        return self._body(encode_events(entries))

    def wire_key(self, batch_size):
        return ("sse", self.chunked)  # batch_size does not apply: one message per event

    def goodbye(self, code, reason: str) -> bytes:
        if code is None:
            return b""  # the client is gone
        if code == CLOSE_NORMAL:
            note = self._body(b": %s\n\n" % reason.encode()) if reason else b""
        else:
            error, _, message = reason.partition(": ")
            body = error_body(error or "internal_error", message or _MESSAGES.get(error, error))
            note = self._body(b"event: error\ndata: %s\n\n" % body.encode())
        return note + (_LAST_CHUNK if self.chunked else b"")
