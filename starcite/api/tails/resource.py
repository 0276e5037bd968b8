"""Tails: `GET /v1/sessions/:id/tail?cursor=N&batch_size=M`, over WebSocket or SSE.

Owns: the tail's HTTP checks before the stream starts (cursor or
``Last-Event-ID``, batch_size, session exists, access, the wire: a WebSocket
upgrade, else ``Accept: text/event-stream``, else 426), the start through
the worker's hooks (``starcite.upgrade`` for a 101, ``starcite.stream`` for
an SSE head), the registry of open tail streams (for the metrics and for
`starcite.api.tails.keeper`, which sends their keep-alives and pings). Each started tail is a `starcite.api.tails.stream.TailStream`.

Must not: send events or keep a tail's state (the stream does), or let any
refusal (400, 401, 403, 404, 426) happen after the stream has started.
"""

import base64
import time

import gevent

from starcite.api.http.errors import ApiError
from starcite.api.http.resources import int_param
from starcite.api.http.request_context import REQUEST_ID_HEADER
from starcite.api.tails.keeper import TailKeeper, stall_seconds
from starcite.api.tails.sse_wire import SseConn, sse_head
from starcite.api.tails.stream import TailStream
from starcite.api.tails.ws_wire import WebSocketConn
from starcite.core.errors import StarciteError
from starcite.core.rules import TAIL_BATCH_SIZE, TAIL_CURSOR

WEBSOCKET_VERSION = "13"  # RFC 6455; any other version is answered 426 naming this one (§4.2.2)
_SSE_OPEN_POLL_S = 0.05


def _wants_sse(env) -> bool:
    return not env.get("HTTP_UPGRADE") and "text/event-stream" in env.get("HTTP_ACCEPT", "").lower()


def _cursor(req, sse: bool) -> int:
    """``cursor``, or on SSE the ``Last-Event-ID`` a reconnecting EventSource sends in its place."""
    last_event_id = req.get_header("Last-Event-ID") if sse else None
    if last_event_id is None or not last_event_id.strip():
        return int_param(req, "cursor", 0, TAIL_CURSOR, "invalid_cursor")
    cursor = TAIL_CURSOR.parse(last_event_id.strip())
    if cursor is None:
        raise ApiError(400, "invalid_cursor",
                       f"Last-Event-ID must be an integer from {TAIL_CURSOR.minimum} to {TAIL_CURSOR.maximum}")
    return cursor


def _header_tokens(value: str) -> set:
    """A comma-separated header's tokens, lower-cased (``Connection: keep-alive, Upgrade``)."""
    return {token.strip().lower() for token in value.split(",")}


def check_handshake(env):
    """RFC 6455 §4.2.1 checks of an upgrade request (426 or 400 before anything is written);
    the raw tail and the Phoenix socket share them."""
    if (env.get("HTTP_UPGRADE", "").strip().lower() != "websocket"
            or "upgrade" not in _header_tokens(env.get("HTTP_CONNECTION", ""))):
        raise ApiError(426, "upgrade_required", "This endpoint is a WebSocket: send an Upgrade request",
                       {"Upgrade": "websocket"})
    if env.get("SERVER_PROTOCOL") != "HTTP/1.1":  # RFC 6455 §4.1 (geventwebsocket would answer a bare 402)
        raise ApiError(400, "invalid_handshake", "A WebSocket upgrade is an HTTP/1.1 request")
    if env.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != WEBSOCKET_VERSION:
        raise ApiError(426, "unsupported_websocket_version", f"Sec-WebSocket-Version must be {WEBSOCKET_VERSION}",
                       {"Sec-WebSocket-Version": WEBSOCKET_VERSION})
    try:
        if len(base64.b64decode(env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_handshake", "Invalid Sec-WebSocket-Key") from None


class TailResource:
    def __init__(self, node, gate, sse_keepalive_ms=15000, sse_retry_ms=1000, ws_ping_ms=30000):
        self.node, self.gate = node, gate
        self.streams = set()  # every TailStream from start to finish
        self.intervals = {"sse_tail": sse_keepalive_ms / 1000.0, "websocket_tail": ws_ping_ms / 1000.0}
        self.sse_retry_ms = sse_retry_ms
        self.keeper = TailKeeper(self.streams, self.intervals)  # its greenlet starts with the first tail

    def _checked(self, req, session_id):
        """Everything a tail request must pass before the stream starts:
        ``(access, sse, cursor, batch_size)``."""
        access = req.context.access
        access.scope("session:read")
        sse = _wants_sse(req.env)
        cursor = _cursor(req, sse)
        batch_size = int_param(req, "batch_size", 1, TAIL_BATCH_SIZE, "invalid_batch_size")
        access.session(self._session(session_id, sse))
        if not sse:
            check_handshake(req.env)
        return access, sse, cursor, batch_size

    def _session(self, session_id, sse: bool) -> dict:
        """The session's record, or the refusal. An EventSource gives up for good on any status
        but 200, so an SSE open waits (up to ``raft_timeout_ms``) while this replica cannot vouch
        for the session yet, e.g. right after a restart, rather than answering that 503."""
        deadline = time.monotonic() + (self.node.command_timeout if sse else 0.0)
        while True:
            try:
                return self.node.require_session(session_id)
            except StarciteError as exc:
                if exc.status != 503 or time.monotonic() >= deadline or self.node.stopping:
                    raise
            gevent.sleep(_SSE_OPEN_POLL_S)

    def on_head(self, req, resp, session_id):
        """The GET's answer without a body; a HEAD never upgrades, so a valid handshake is refused."""
        _access, sse, _cursor, _batch_size = self._checked(req, session_id)
        if not sse:
            raise ApiError(400, "invalid_handshake", "A WebSocket tail opens with GET, not HEAD")
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.cache_control = ["no-cache"]

    def on_get(self, req, resp, session_id):
        access, sse, cursor, batch_size = self._checked(req, session_id)
        hook = req.env.get("starcite.stream" if sse else "starcite.upgrade")
        if hook is None or self.node.stopping:
            raise ApiError(503, "unavailable", "Tails are not served by this process right now")
        if sse:
            head, chunked = sse_head(req.env.get("SERVER_PROTOCOL", "HTTP/1.1"),
                                     [(REQUEST_ID_HEADER, req.context.request_id)], self.sse_retry_ms)
            conn = SseConn(hook(head), chunked, stall_seconds(self.intervals["sse_tail"]))
        else:
            websocket, head = hook()
            conn = WebSocketConn.detach(websocket, stall_seconds(self.intervals["websocket_tail"]))
            conn.unsent = head  # the 101 goes out with the first replay frames, in one write
        req.context.upgraded = True
        self.keeper.started()
        # The request greenlet runs the first replay, then ends: the tail lives on a detached
        # socket, driven by watchers and short-lived greenlets, so an idle tail holds no stack.
        TailStream(self.node, conn, session_id, cursor, batch_size,
                   self.gate.expires_at(access)).start(self.streams)

    def counts(self) -> dict:
        """What open tail streams hold at the edge, for the metrics (0 once they are closed)."""
        return {"tail_streams": len(self.streams),
                "tail_watchers": sum(len(stream.watchers) for stream in self.streams),
                "tail_pumps": sum(1 for stream in self.streams if stream.pump is not None)}
