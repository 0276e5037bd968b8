"""The edge: everything that speaks HTTP or WebSocket to clients, in rooms by concern.

Owns, from the bottom up: `auth` (tokens, JWKS, policy, the per-request
access decision), `http` (resources, middleware, error rendering, OpenAPI
and the ops console's routes), `tails` (the tail resource, its stream, the
WebSocket and SSE wires, the live fan-out), `app` (the Falcon app: every
route wired to its resource) and `server` (the gunicorn worker, its accept
gate, header reader and access log). Each room imports only rooms before it
in that list. Turns traffic into `Node` calls and renders results and
errors. Must not: hold session state or decide session rules; nothing below
the edge imports it.
"""
