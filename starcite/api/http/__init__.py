"""The HTTP API: one resource per route, middleware, errors, OpenAPI, the ops routes.

Owns: `resources` (request parsing and JSON
responses), `errors` (the one ``{"error","message"}`` rendering), `edges`
(HEAD, OPTIONS, odd methods), `request_context` (request ids and log
context), `openapi` (the served description) and `ops_console` (the routes
behind the ops channel). The app that wires them is `starcite.api.app`.
Must not: open tails (`starcite.api.tails`) or verify tokens
(`starcite.api.auth`).
"""
