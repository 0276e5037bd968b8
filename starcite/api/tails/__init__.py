"""Tails at the edge: `GET /v1/sessions/:id/tail` over WebSocket or SSE, replay then live.

Owns: `resource` (the HTTP checks before a stream starts), `stream` (one
tail's pump and outbox), `tail_socket` (a tail's handle on its connection),
the two wires (`ws_wire`, `sse_wire`) and `live_fanout` (a committed batch to
every idle live tail in one job). Must not: decide liveness (the group's
actor does) or hold session state.
"""
