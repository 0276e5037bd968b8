"""WebSocket tails: `GET /v1/sessions/:id/tail?cursor=N&batch_size=M`.

Owns: the tail's HTTP checks before the upgrade (cursor, batch_size, session
exists, access), the handshake through the worker's upgrade hook, and the
socket greenlet: replay from the store (cold + hot, gap-free) until caught
up, then hand over to the `TailActor` and send what it puts on the outbox;
re-enter replay whenever the actor says so. It sends every committed event
after the cursor exactly once, in order.

Must not: decide liveness or gaps itself beyond a defensive seq check (the
`TailActor` does), or read inbound frames for meaning (they are ignored).
"""

import base64
import struct
import time

import gevent
from geventwebsocket.exceptions import WebSocketError

from starcite.api.errors import ApiError
from starcite.api.resources import int_param
from starcite.node import ArchiveReadError
from starcite.rules import SEQ_LIMIT

REPLAY_CHUNK = 1000
CLOSE_NORMAL = 1000
CLOSE_INTERNAL = 1011
CLOSE_TOKEN_EXPIRED = 4001
SUPPORTED_VERSIONS = ("13", "8", "7")


def close_socket(ws, code, reason=""):
    """Send a close frame with ``code`` (geventwebsocket's own close drops the code) and mark it closed."""
    if ws.closed:
        return
    try:
        ws.send_frame(struct.pack("!H", code) + reason.encode()[:120], opcode=ws.OPCODE_CLOSE)
    except (WebSocketError, OSError):
        pass
    ws.closed = True


def _check_handshake(env):
    if env.get("HTTP_UPGRADE", "").lower() != "websocket" or "upgrade" not in env.get("HTTP_CONNECTION", "").lower():
        raise ApiError(426, "upgrade_required", "This endpoint is a WebSocket: send an Upgrade request",
                       {"Upgrade": "websocket"})
    if env.get("HTTP_SEC_WEBSOCKET_VERSION") not in SUPPORTED_VERSIONS:
        raise ApiError(400, "invalid_handshake", "Unsupported Sec-WebSocket-Version (use 13)")
    try:
        if len(base64.b64decode(env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_handshake", "Invalid Sec-WebSocket-Key") from None


class TailResource:
    def __init__(self, node, gate):
        self.node, self.gate = node, gate

    def on_get(self, req, resp, session_id):
        access = req.context.access
        access.scope("session:read")
        cursor = int_param(req, "cursor", 0, 0, SEQ_LIMIT, "invalid_cursor")
        batch_size = int_param(req, "batch_size", 1, 1, 1000, "invalid_batch_size")
        record = self.node.require_session(session_id)
        access.session(record)
        upgrade = req.env.get("starcite.upgrade")
        _check_handshake(req.env)
        if upgrade is None or self.node.stopping:
            raise ApiError(503, "unavailable", "Tails are not served by this process right now")
        ws = upgrade()
        req.context.upgraded = True
        TailStream(self.node, ws, session_id, cursor, batch_size, self.gate.expires_at(access)).run()


class TailStream:
    """The socket greenlet of one tail."""

    def __init__(self, node, ws, session_id, cursor, batch_size, expires_at=None):
        """expires_at: epoch seconds at which the socket closes with 4001
        `token_expired` (the gate's choice, see `JwtGate.expires_at`); None
        with auth off."""
        self.node, self.ws, self.session_id = node, ws, session_id
        self.sent = cursor
        self.batch_size = batch_size
        self.expires_at = expires_at

    def run(self):
        handle = self.node.open_tail(self.session_id, self.sent)
        outbox = handle.outbox
        helpers = [gevent.spawn(self._drain_inbound, outbox)]
        if self.expires_at is not None:
            helpers.append(gevent.spawn(self._expire, outbox))
        try:
            self._loop(handle, outbox)
        except (WebSocketError, OSError):
            pass  # the client went away
        finally:
            handle.close()
            gevent.killall(helpers, block=False)
            close_socket(self.ws, CLOSE_NORMAL)

    def _loop(self, handle, outbox):
        replaying = True
        while True:
            if replaying:
                if self.expires_at is not None and time.time() >= self.expires_at:
                    close_socket(self.ws, CLOSE_TOKEN_EXPIRED, "token_expired")  # a long replay ends too
                    return
                try:
                    entries = self.node.read_events(self.session_id, self.sent, REPLAY_CHUNK)
                except ArchiveReadError as exc:
                    close_socket(self.ws, CLOSE_INTERNAL, f"archive_read_unavailable: {exc}")
                    return
                if entries:
                    self._send(entries)
                    continue
                replaying = False
                handle.go_live(self.sent)
            item = outbox.get()
            kind = item[0]
            if kind == "events":
                entries = item[1]
                while outbox.qsize() and outbox.peek()[0] == "events":
                    entries = entries + outbox.get()[1]
                entries = [entry for entry in entries if entry[0] > self.sent]
                if entries and entries[0][0] != self.sent + 1:
                    replaying = True  # defensive: never skip a seq
                    continue
                self._send(entries)
            elif kind == "replay":
                replaying = True
            elif kind == "close":
                close_socket(self.ws, item[1], item[2])
                return
            elif kind == "gone":
                return

    def _send(self, entries):
        if not entries:
            return
        ws = self.ws
        if self.batch_size == 1:
            for _seq, event_json in entries:
                ws.send(event_json)
        else:
            size = self.batch_size
            for start in range(0, len(entries), size):
                ws.send("[" + ",".join(e[1] for e in entries[start:start + size]) + "]")
        self.sent = entries[-1][0]

    def _expire(self, outbox):
        """Close with 4001 once the token is expired by the wall clock (the
        loop's timers may fire early, and a reconnect must then be refused)."""
        while (remaining := self.expires_at - time.time()) > 0:
            gevent.sleep(remaining)
        outbox.put(("close", CLOSE_TOKEN_EXPIRED, "token_expired"))

    def _drain_inbound(self, outbox):
        """Inbound frames are ignored; a close or error ends the tail."""
        try:
            while not self.ws.closed and self.ws.receive() is not None:
                pass
        except Exception:  # closed under us, reset, protocol error: the tail is over either way
            pass
        outbox.put(("gone",))
