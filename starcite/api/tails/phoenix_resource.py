"""The Phoenix socket's route: `GET /v1/socket/websocket?token=<jwt>&vsn=2.0.0`.

Owns: `PhoenixSocketResource`: the checks before the upgrade (``vsn``, the
WebSocket handshake shared with the raw tail, the token, which the access
middleware reads from ``token`` on this route), the upgrade through the
worker's hook, the registries of open sockets (tended by a `TailKeeper`:
pings, silent sockets closed) and of their channels' tail streams, and
their gauges. Each upgraded socket is a `starcite.api.tails.phoenix_socket.PhoenixSocket`.

Must not: refuse anything after the 101 (a join's refusal is the socket's
reply), or serve a channel itself.
"""

from starcite.api.http.errors import ApiError
from starcite.api.tails.keeper import TailKeeper, stall_seconds
from starcite.api.tails.phoenix_socket import PhoenixSocket
from starcite.api.tails.phoenix_wire import SharedWebSocket
from starcite.api.tails.resource import check_handshake

SOCKET_PATH = "/v1/socket/websocket"
PHOENIX_VSN = "2.0.0"


class PhoenixSocketResource:
    def __init__(self, node, gate, ws_ping_ms=30000):
        """ws_ping_ms: a socket silent this long is pinged, and closed after as long again
        without a word (Phoenix clients heartbeat every 30 s; Phoenix's own server waits 60 s)."""
        self.node, self.gate = node, gate
        self.sockets = set()   # every open PhoenixSocket
        self.streams = set()   # every tail channel's stream, from its join to its end
        self.intervals = {SharedWebSocket.kind: ws_ping_ms / 1000.0}
        self.keeper = TailKeeper(self.sockets, self.intervals)

    def _checked(self, req):
        vsn = req.get_param("vsn")
        if vsn is not None and vsn != PHOENIX_VSN:
            raise ApiError(400, "unsupported_vsn", f"this socket speaks the Phoenix V2 serializer: vsn={PHOENIX_VSN}")
        check_handshake(req.env)
        return req.context.access

    def on_head(self, req, resp):
        self._checked(req)
        raise ApiError(400, "invalid_handshake", "A WebSocket opens with GET, not HEAD")

    def on_get(self, req, resp):
        access = self._checked(req)
        hook = req.env.get("starcite.upgrade")
        if hook is None or self.node.stopping:
            raise ApiError(503, "unavailable", "Sockets are not served by this process right now")
        websocket, head = hook()
        conn = SharedWebSocket.detach(websocket, stall_seconds(self.intervals[SharedWebSocket.kind]))
        conn.unsent = head  # the 101 goes out with the first write
        req.context.upgraded = True
        self.keeper.started()
        PhoenixSocket(self.node, conn, access, self.gate.expires_at(access), (self.sockets, self.streams)).start()

    def counts(self) -> dict:
        """What open Phoenix sockets hold, for the metrics (0 once they are closed)."""
        return {"phoenix_sockets": len(self.sockets),
                "phoenix_channels": sum(len(socket.channels) for socket in self.sockets),
                "phoenix_tail_streams": len(self.streams),
                "phoenix_tail_pumps": sum(1 for stream in self.streams if stream.pump is not None)}
