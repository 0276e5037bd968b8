"""The OpenAPI 3 description served at `/openapi.json`.

Owns: the machine-readable contract of SPEC.md §2 and §3. Must not: drift
from the resources; `tests/test_api.py` checks every route is described.
"""


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema_ref, description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ERRORS = {"400": _error("Invalid request"), "401": _error("Missing or invalid token"),
           "403": _error("Forbidden by scope, session or tenant"), "404": _error("Session not found")}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Starcite", "version": "0.1.0",
             "description": "Durable, ordered session streams: append over REST, tail over WebSocket."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Session": {"type": "object", "required": ["id", "metadata", "last_seq", "created_at", "updated_at"],
                        "properties": {
                            "id": {"type": "string"}, "title": {"type": "string", "nullable": True},
                            "metadata": {"type": "object"}, "last_seq": {"type": "integer", "minimum": 0},
                            "created_at": {"type": "string", "format": "date-time"},
                            "updated_at": {"type": "string", "format": "date-time"},
                            "creator_principal": {"type": "object"}}},
            "CreateSession": {"type": "object", "additionalProperties": False, "properties": {
                "id": {"type": "string", "minLength": 1}, "title": {"type": "string"},
                "metadata": {"type": "object"}}},
            "SessionPage": {"type": "object", "required": ["sessions", "next_cursor"], "properties": {
                "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
                "next_cursor": {"type": "string", "nullable": True}}},
            "Refs": {"type": "object", "properties": {
                "to_seq": {"type": "integer", "minimum": 0}, "step": {"type": "integer", "minimum": 0},
                "request_id": {"type": "string"}, "sequence_id": {"type": "string"}}},
            "Append": {"type": "object", "additionalProperties": False,
                       "required": ["type", "payload", "producer_id", "producer_seq"], "properties": {
                           "type": {"type": "string", "minLength": 1}, "payload": {"type": "object"},
                           "producer_id": {"type": "string", "minLength": 1},
                           "producer_seq": {"type": "integer", "minimum": 1},
                           "actor": {"type": "string", "minLength": 1}, "source": {"type": "string", "minLength": 1},
                           "metadata": {"type": "object"}, "refs": {"$ref": "#/components/schemas/Refs"},
                           "idempotency_key": {"type": "string"},
                           "expected_seq": {"type": "integer", "minimum": 0}}},
            "AppendResult": {"type": "object", "required": ["seq", "last_seq", "deduped"], "properties": {
                "seq": {"type": "integer"}, "last_seq": {"type": "integer"}, "deduped": {"type": "boolean"}}},
            "Event": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "type": {"type": "string"}, "payload": {"type": "object"},
                "actor": {"type": "string", "nullable": True}, "producer_id": {"type": "string"},
                "producer_seq": {"type": "integer"}, "source": {"type": "string", "nullable": True},
                "metadata": {"type": "object"}, "refs": {"type": "object"},
                "idempotency_key": {"type": "string", "nullable": True},
                "inserted_at": {"type": "string", "format": "date-time"}}},
            "IssueRequest": {"type": "object", "required": ["principal", "scopes"], "properties": {
                "principal": {"type": "object", "required": ["tenant_id", "id", "type"], "properties": {
                    "tenant_id": {"type": "string"}, "id": {"type": "string"},
                    "type": {"type": "string", "enum": ["user", "agent"]}}},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "session_ids": {"type": "array", "items": {"type": "string"}},
                "ttl_seconds": {"type": "integer", "minimum": 1}}},
            "IssueResult": {"type": "object", "required": ["token", "expires_at"], "properties": {
                "token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}}},
            "Health": {"type": "object", "properties": {
                "status": {"type": "string"}, "mode": {"type": "string"}, "reason": {"type": "string"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/sessions": {
            "post": {"summary": "Create a session", "operationId": "createSession",
                     "requestBody": {"content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/CreateSession"}}}},
                     "responses": {"201": _json("Session", "Created"), "409": _error("session_exists"),
                                   **_ERRORS}},
            "get": {"summary": "List sessions", "operationId": "listSessions",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                    "maximum": 1000, "default": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "metadata", "in": "query", "style": "deepObject", "explode": True,
                         "description": "Exact-match filters written metadata.<key>=<value>",
                         "schema": {"type": "object", "additionalProperties": {"type": "string"}}}],
                    "responses": {"200": _json("SessionPage", "One page"), **_ERRORS}},
        },
        "/v1/sessions/{session_id}": {
            "get": {"summary": "Get a session", "operationId": "getSession", "parameters": [_SESSION_ID],
                    "responses": {"200": _json("Session", "The session"), **_ERRORS}}},
        "/v1/sessions/{session_id}/append": {
            "post": {"summary": "Append an event", "operationId": "appendEvent", "parameters": [_SESSION_ID],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Append"}}}},
                     "responses": {"201": _json("AppendResult", "Committed (or deduped)"),
                                   "409": _error("producer_seq_conflict, producer_replay_conflict, "
                                                 "expected_seq_conflict"),
                                   "413": _error("Body too large"), "429": _error("event_store_backpressure"),
                                   "503": _error("raft_unavailable / raft_timeout: retry with the same "
                                                 "producer_seq"), **_ERRORS}}},
        "/v1/sessions/{session_id}/tail": {
            "get": {"summary": "Tail a session over WebSocket (replay, then live)", "operationId": "tailSession",
                    "parameters": [
                        _SESSION_ID,
                        {"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                        {"name": "batch_size", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1}},
                        {"name": "access_token", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"101": {"description": "Switching protocols; frames carry Event objects "
                                                         "(batch_size 1) or arrays of them"},
                                  "426": _error("Not a WebSocket upgrade"), **_ERRORS}}},
        "/v1/auth/issue": {
            "post": {"summary": "Mint a principal token", "operationId": "issueToken",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/IssueRequest"}}}},
                     "responses": {"201": _json("IssueResult", "Token"), **_ERRORS}}},
        "/health/live": {"get": {"summary": "Liveness", "security": [],
                                 "responses": {"200": _json("Health", "Alive")}}},
        "/health/ready": {"get": {"summary": "Readiness", "security": [],
                                  "responses": {"200": _json("Health", "Ready"),
                                                "503": _json("Health", "Starting or draining")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
}
