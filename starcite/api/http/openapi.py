"""The OpenAPI 3 description served at `/openapi.json`, built for the running node.

Owns: `build_spec(issue_body, session_token_body)`: the machine-readable contract of SPEC.md §2
and §3 as this node answers it. Every request schema comes from the shapes
the validators use (`starcite.core.rules`, the issue body of `starcite.api.auth.tokens`,
the session-token body of `starcite.api.auth.session_tokens`,
the list cursor of `starcite.adapters.chunks`), so a bound, a required field
or an id rule cannot be enforced without being documented. Security, the
401/403 answers and `POST /v1/auth/issue` are described only in jwt mode;
with auth off, nothing asks for a token. The loopback-only `/ops/*` routes
are not part of the public API and are left out.

Must not: restate a rule the validators hold (import it), or describe a
route `create_app` does not serve (`tests/test_openapi.py` checks both ways).
"""

from starcite.adapters.chunks import CURSOR_PATTERN
from starcite.core.records import ARCHIVED_FILTERS
from starcite.core.rules import (APPEND, CREATE, EVENTS_LIMIT, EVENTS_WAIT_MS, LIST_LIMIT, PATCH, SESSION_ID,
                                 TAIL_BATCH_SIZE, TAIL_CURSOR)
from starcite.core.shapes import Obj

_REF = "#/components/schemas/"
_JSON = "application/json"
_ERROR_TEXT = {400: "Invalid request", 401: "Missing, invalid or expired token",
               403: "Forbidden by scope, session, tenant or actor", 404: "Session not found",
               409: "Conflict", 413: "Body larger than the configured limit", 426: "Not a WebSocket upgrade",
               429: "event_store_backpressure", 503: "Not ready, raft_unavailable, raft_timeout or archive_read_unavailable: retry"}


def _content(schema) -> dict:
    return {_JSON: {"schema": schema}}


def _ref(name) -> dict:
    return {"$ref": _REF + name}


def _body(shape: Obj, required: bool) -> dict:
    return {"required": required, "content": _content(shape.schema())}


def _query(name, schema: dict, default=None) -> dict:
    if default is not None:
        schema = {**schema, "default": default}
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _header(name, schema, description="") -> dict:
    """An optional header: the tail takes either the WebSocket handshake or the SSE Accept."""
    return {"name": name, "in": "header", "required": False, "schema": schema,
            **({"description": description} if description else {})}


def _case_insensitive(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": SESSION_ID.schema()}
# What `starcite.api.tails.resource` checks before it upgrades (header names are case-insensitive); a GET
# with neither these nor the SSE Accept header is answered 426.
_HANDSHAKE = [
    _header("Upgrade", {"type": "string", "pattern": f"^{_case_insensitive('websocket')}$"}),
    _header("Connection", {"type": "string", "pattern": _case_insensitive("upgrade")}),
    _header("Sec-WebSocket-Version", {"type": "string", "enum": ["13"]}),
    _header("Sec-WebSocket-Key", {"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$",
                                  "description": "base64 of 16 bytes"}),
]
# SSE is chosen by `Accept: text/event-stream` with no Upgrade header (OpenAPI 3 ignores an Accept
# parameter: the 200's content type says it).
_SSE = [
    _header("Last-Event-ID", TAIL_CURSOR.schema(),
            "SSE only: the id of the last event received (its seq); takes the place of cursor"),
]
_SSE_STREAM = (
    "Server-Sent Events (Accept: text/event-stream, no Upgrade header): `retry:` once, then per event `id: <seq>` and "
    "`data: <Event JSON>`; a `: keep-alive` comment every tail.sse_keepalive_ms; on token expiry "
    "`event: error` with `data: {\"error\":\"token_expired\",...}`, and when the session is deleted "
    "`event: error` with `data: {\"error\":\"session_deleted\",...}`, each then the end of the stream")

_SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "message"], "additionalProperties": False,
              "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                             "expected_producer_seq": {**TAIL_CURSOR.schema(),
                                                       "description": "409 producer_seq_conflict only: the "
                                                                      "producer_seq the session expects next"},
                             "current_version": {"type": "integer", "minimum": 1,
                                                 "description": "409 expected_version_conflict only: the "
                                                                "session's version now"}}},
    "Session": {"type": "object", "required": ["id", "title", "metadata", "last_seq", "created_at", "updated_at",
                                               "version", "archived"],
                "properties": {
                    "id": {"type": "string"}, "title": {"type": "string", "nullable": True},
                    "metadata": {"type": "object"}, "last_seq": TAIL_CURSOR.schema(),
                    "version": {"type": "integer", "minimum": 1,
                                "description": "1 at create, +1 per PATCH (archive does not change it)"},
                    "archived": {"type": "boolean", "description": "left out of listings unless archived=true|all"},
                    "tenant_id": {"type": "string", "minLength": 1,
                                  "description": "metadata.tenant_id (the token's tenant under JWT); absent "
                                                 "when the session has none"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "creator_principal": {"type": "object", "required": ["tenant_id", "id", "type"], "properties": {
                        "tenant_id": {"type": "string"}, "id": {"type": "string"},
                        "type": {"type": "string", "enum": ["user", "agent", "service"]}}},
                    "expires_at": {"type": "string", "format": "date-time",
                                   "description": "When the session expires and is deleted (absent: never)"}}},
    "Deleted": {"type": "object", "required": ["id", "deleted", "deleted_at"], "properties": {
        "id": {"type": "string"}, "deleted": {"type": "boolean", "enum": [True]},
        "deleted_at": {"type": "string", "format": "date-time"}}},
    "SessionPage": {"type": "object", "required": ["sessions", "next_cursor"], "properties": {
        "sessions": {"type": "array", "items": _ref("Session")},
        "next_cursor": {"type": "string", "nullable": True, "pattern": CURSOR_PATTERN}}},
    "AppendResult": {"type": "object", "required": ["seq", "last_seq", "deduped"], "properties": {
        "seq": TAIL_CURSOR.schema(), "last_seq": TAIL_CURSOR.schema(), "deduped": {"type": "boolean"}}},
    "Event": {"type": "object", "required": ["seq", "cursor", "type", "payload", "actor", "producer_id",
                                             "producer_seq", "metadata", "refs", "idempotency_key", "inserted_at"],
              "properties": {
                  "seq": TAIL_CURSOR.schema(), "cursor": {**TAIL_CURSOR.schema(), "description": "= seq"},
                  "type": {"type": "string"}, "payload": {"type": "object"},
                  "actor": {"type": "string", "minLength": 1,
                            "description": "never null: service:service for an append without one, auth off"},
                  "producer_id": {"type": "string"},
                  "producer_seq": TAIL_CURSOR.schema(),
                  "source": {"type": "string", "description": "absent when the append had none"},
                  "metadata": {"type": "object"}, "refs": {"type": "object"},
                  "idempotency_key": {"type": "string", "nullable": True},
                  "inserted_at": {"type": "string", "format": "date-time"}}},
    "EventPage": {"type": "object", "required": ["events", "next_cursor", "last_seq"], "properties": {
        "events": {"type": "array", "items": _ref("Event")},
        "next_cursor": {**TAIL_CURSOR.schema(), "description": "seq of the last event returned, else the cursor"},
        "last_seq": TAIL_CURSOR.schema()}},
    "IssueResult": {"type": "object", "required": ["token", "expires_at"], "properties": {
        "token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}}},
    "SessionToken": {"type": "object", "required": ["token", "expires_in"], "properties": {
        "token": {"type": "string", "description": "A principal token locked to session_id (with auth off: an "
                                                   "unsigned JWT, alg none, carrying the same claims)"},
        "expires_in": {"type": "integer", "minimum": 1, "description": "Seconds until the token expires"}}},
    "Health": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["ok", "starting"]},
        "mode": {"type": "string", "enum": ["write_node", "router_node"]},
        "reason": {"type": "string", "enum": ["raft_sync", "router_sync", "draining"]}}},
}


class _Describer:
    """Builds operations for one auth mode."""

    def __init__(self, jwt: bool):
        self.jwt = jwt

    def responses(self, success: dict, *errors: int) -> dict:
        statuses = sorted(set(errors) | ({401, 403} if self.jwt else set()))
        return {**success, **{str(status): {"description": _ERROR_TEXT[status], "content": _content(_ref("Error"))}
                              for status in statuses}}

    def v1(self, operation_id, summary, success, *errors, **fields) -> dict:
        return {"operationId": operation_id, "summary": summary, "responses": self.responses(success, *errors),
                **fields}


def _ok(status, schema_name, description) -> dict:
    return {str(status): {"description": description, "content": _content(_ref(schema_name))}}


def _open(operation_id, summary, responses) -> dict:
    """An operation that never needs a token."""
    return {"operationId": operation_id, "summary": summary, "security": [], "responses": responses}


def build_spec(issue_body: Obj | None, session_token_body: Obj) -> dict:
    """The document for a node: `issue_body` is the issue shape in jwt mode, None with auth off;
    `session_token_body` the body of `POST /api/v1/session-tokens` (served in both modes)."""
    jwt = issue_body is not None
    d = _Describer(jwt)
    paths = {
        "/v1/sessions": {
            "post": d.v1("createSession", "Create a session", _ok(201, "Session", "Created"), 400, 409, 413, 503,
                         requestBody=_body(CREATE, required=False)),
            "get": d.v1("listSessions", "List sessions (stable pages)", _ok(200, "SessionPage", "One page"),
                        400, 503, parameters=[
                            _query("limit", LIST_LIMIT.schema(), 100),
                            _query("cursor", {"type": "string", "pattern": CURSOR_PATTERN,
                                              "description": "next_cursor of the previous page"}),
                            {**_query("archived", {"type": "string", "enum": list(ARCHIVED_FILTERS)}, "false"),
                             "description": "false: active sessions only; true: archived ones only; all: both. "
                                            "A page may hold fewer than limit sessions: go on with next_cursor"},
                            {**_query("metadata", {"type": "object", "additionalProperties": {"type": "string"}}),
                             "style": "deepObject", "explode": True,
                             "description": "Exact-match filters metadata[<key>]=<value> (also written "
                                            "metadata.<key>=<value>); all must hold"}]),
        },
        "/v1/sessions/{session_id}": {
            "get": d.v1("getSession", "Get a session", _ok(200, "Session", "The session"), 404, 503,
                        parameters=[_SESSION_ID]),
            "patch": d.v1("updateSession", "Patch a session's title (null clears it) and metadata (merged "
                          "shallowly); version +1; 409 expected_version_conflict with current_version",
                          _ok(200, "Session", "The patched session"), 400, 404, 409, 413, 503,
                          parameters=[_SESSION_ID], requestBody=_body(PATCH, required=True)),
            "delete": d.v1("deleteSession", "Delete a session and all its events (its tails close: WebSocket "
                           "4410 session_deleted, SSE event: error); later reads are 404",
                           _ok(200, "Deleted", "Deleted"), 404, 503, parameters=[_SESSION_ID]),
        },
        "/v1/sessions/{session_id}/archive": {
            "post": d.v1("archiveSession", "Archive a session: left out of the default listing; its events "
                         "stay and appends are still accepted", _ok(200, "Session", "The session, archived"),
                         404, 503, parameters=[_SESSION_ID]),
        },
        "/v1/sessions/{session_id}/unarchive": {
            "post": d.v1("unarchiveSession", "Unarchive a session: listed by default again",
                         _ok(200, "Session", "The session, not archived"), 404, 503, parameters=[_SESSION_ID]),
        },
        "/v1/sessions/{session_id}/append": {
            "post": d.v1("appendEvent", "Append an event", _ok(201, "AppendResult", "Committed (or deduped)"),
                         400, 404, 409, 413, 429, 503, parameters=[_SESSION_ID],
                         requestBody=_body(APPEND, required=True)),
        },
        "/v1/sessions/{session_id}/tail": {
            "get": d.v1("tailSession", "Tail a session over WebSocket or SSE: replay after cursor, then live",
                        {"101": {"description": "Switching protocols; text frames carry Event objects "
                                                "(batch_size 1) or JSON arrays of them"},
                         "200": {"description": _SSE_STREAM,
                                 "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
                        400, 404, 426, 503, parameters=[
                            _SESSION_ID, _query("cursor", TAIL_CURSOR.schema(), 0),
                            _query("batch_size", TAIL_BATCH_SIZE.schema(), 1), *_HANDSHAKE, *_SSE]),
        },
        "/v1/socket/websocket": {
            "get": d.v1("phoenixSocket", "A Phoenix Channels V2 socket: channels tail:<session_id> and lifecycle "
                        "(docs/api.md, \"Phoenix channels\")",
                        {"101": {"description": "Switching protocols; text frames carry V2 messages "
                                                "[join_ref, ref, topic, event, payload]"}},
                        400, 426, 503, parameters=[
                            _query("vsn", {"type": "string", "enum": ["2.0.0"]}, "2.0.0"),
                            {**_query("token", {"type": "string"}),
                             "description": "The socket's bearer token (jwt mode; phoenix.js sends it in params)"},
                            *_HANDSHAKE]),
        },
        "/v1/sessions/{session_id}/events": {
            "get": d.v1("readEvents", "Read committed events after cursor (long-poll with wait_ms)",
                        _ok(200, "EventPage", "One page, empty when wait_ms ended with nothing new"),
                        400, 404, 503, parameters=[
                            _SESSION_ID, _query("cursor", TAIL_CURSOR.schema(), 0),
                            _query("limit", EVENTS_LIMIT.schema(), 100),
                            {**_query("wait_ms", EVENTS_WAIT_MS.schema(), 0),
                             "description": "When nothing follows cursor, hold the request until an event "
                                            "commits or wait_ms passes"}]),
        },
        "/api/v1/session-tokens": {
            "post": d.v1("issueSessionToken",
                         "Mint a token for one principal on one session (the TypeScript SDK's session({identity})); "
                         "in jwt mode the bearer is a service token with auth:issue and the principal gets its tenant",
                         _ok(201, "SessionToken", "Token"), 400, 413, *([503] if jwt else []),
                         requestBody=_body(session_token_body, required=True)),
        },
        "/health/live": {"get": _open("healthLive", "Liveness", _ok(200, "Health", "Alive"))},
        "/health/ready": {"get": _open("healthReady", "Readiness", {
            **_ok(200, "Health", "Ready"), **_ok(503, "Health", "Starting or draining")})},
        "/metrics": {"get": _open("metrics", "Prometheus metrics", {
            "200": {"description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/openapi.json": {"get": _open("openapi", "This document", {
            "200": {"description": "OpenAPI 3", "content": _content({"type": "object"})}})},
    }
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Starcite", "version": "0.1.0",
                 "description": "Durable, ordered session streams: append over REST, tail over WebSocket "
                                "or SSE, or read pages (long-poll). "
                                f"Auth: {'jwt (bearer token)' if jwt else 'none'}."},
        "components": {"schemas": dict(_SCHEMAS)},
        "paths": paths,
    }
    if jwt:
        paths["/v1/auth/issue"] = {"post": d.v1(
            "issueToken", "Mint a principal token (service token with auth:issue)",
            _ok(201, "IssueResult", "Token"), 400, 413, 503, requestBody=_body(issue_body, required=True))}
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "accessToken": {"type": "apiKey", "in": "query", "name": "access_token"}}
        spec["security"] = [{"bearer": []}, {"accessToken": []}]
    return spec
