"""Falcon resources: one small class per route of SPEC.md §2.

Owns: request parsing (bounded bodies, JSON, query parameters), calling the
`Node`, and rendering JSON responses. Errors are raised (`ApiError`,
`RuleError`, ...) and rendered by `starcite.api.http.errors`. Must not: decide
session rules or talk to actors directly.
"""

import json

import falcon

from starcite.api.http.errors import ApiError
from starcite.core.records import ARCHIVED_FILTERS
from starcite.core.rules import (EVENTS_LIMIT, EVENTS_WAIT_MS, LIST_LIMIT, TAIL_CURSOR, validate_append,
                                 validate_create, validate_patch)
from starcite.core.shapes import Integer


def send_json(resp, status, body):
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def read_json(req, max_bytes: int):
    """The request body as JSON (None when empty) and its size; 413/400 on bad bodies."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "payload_too_large", f"Request body exceeds {max_bytes} bytes")
    # Without a Content-Length (chunked), Falcon's bounded stream is empty: read the
    # server's de-chunking input directly, never more than the limit plus one byte.
    stream = req.bounded_stream if length is not None else req.stream
    try:
        raw = stream.read(max_bytes + 1)
    except (OSError, ValueError) as exc:  # broken chunked framing: the connection cannot be reused
        raise ApiError(400, "bad_request", f"Malformed request body: {exc}", {"Connection": "close"}) from None
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"Request body exceeds {max_bytes} bytes")
    if not raw.strip():
        return None, 0
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float), len(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"Malformed JSON body: {exc}") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"Malformed JSON body: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "Malformed JSON body: nested too deeply") from None


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def int_param(req, name, default, shape: Integer, code="invalid_request"):
    """A query parameter in the bounds of `shape` (decimal digits), `default` when absent; else 400."""
    raw = req.get_param(name)
    if raw is None:
        return default
    value = shape.parse(raw)
    if value is None:
        raise ApiError(400, code, f"{name} must be an integer from {shape.minimum} to {shape.maximum}")
    return value


def metadata_filter_key(name: str):
    """`metadata.<key>` or `metadata[<key>]` (OpenAPI's deepObject) -> key; None for other names."""
    if name.startswith("metadata."):
        return name[len("metadata."):]
    if name.startswith("metadata[") and name.endswith("]"):
        return name[len("metadata["):-1]
    return None


class SessionsResource:
    def __init__(self, node, max_body):
        self.node, self.max_body = node, max_body

    def on_post(self, req, resp):
        access = req.context.access
        access.scope("session:create")
        body, nbytes = read_json(req, self.max_body)
        spec = validate_create(body if nbytes else {})  # no body: all defaults; a JSON null is not an object
        access.create_session_id(spec["id"])
        spec["metadata"] = access.create_metadata(spec["metadata"])
        record = self.node.create_session(spec, access.creator())
        send_json(resp, falcon.HTTP_201, record)

    def on_get(self, req, resp):
        access = req.context.access
        access.scope("session:read")
        filters = {}
        for name, value in req.params.items():
            if isinstance(value, list):
                raise ApiError(400, "invalid_request", f"query parameter {name!r} given more than once")
            key = metadata_filter_key(name)
            if key is not None:
                if key in filters:
                    raise ApiError(400, "invalid_request", f"metadata filter {key!r} given more than once")
                filters[key] = value
            elif name == "metadata" and value == "":
                continue  # an empty deepObject: some clients send `metadata=` for "no filters"
            elif name not in ("limit", "cursor", "archived", "access_token"):  # access_token: the bearer token
                raise ApiError(400, "invalid_request", f"unknown query parameter {name!r}")
        limit = int_param(req, "limit", 100, LIST_LIMIT)
        cursor = req.get_param("cursor") or None
        archived = req.get_param("archived") or "false"
        if archived not in ARCHIVED_FILTERS:
            raise ApiError(400, "invalid_request", "archived must be one of false, true, all")
        locked = access.locked_sessions()
        records, next_cursor = self.node.list_sessions(limit, cursor, access.tenant(), filters, archived)
        if locked is not None:
            records = [r for r in records if r["id"] in locked]
        send_json(resp, falcon.HTTP_200, {"sessions": records, "next_cursor": next_cursor})


class SessionResource:
    def __init__(self, node, max_body):
        self.node, self.max_body = node, max_body

    def on_get(self, req, resp, session_id):
        access = req.context.access
        access.scope("session:read")
        record = self.node.require_session(session_id)
        access.session(record)
        send_json(resp, falcon.HTTP_200, record)

    def on_patch(self, req, resp, session_id):
        access = req.context.access
        access.manage(lambda: self.node.require_session(session_id, fresh=False))  # a tenant never changes
        body, _nbytes = read_json(req, self.max_body)
        send_json(resp, falcon.HTTP_200, self.node.patch_session(session_id, validate_patch(body)))

    def on_delete(self, req, resp, session_id):
        """The session and every event go (a Raft command); its tails close, later reads are 404."""
        access = req.context.access
        access.scope("session:delete")
        if access.enabled:  # the tenant fence, before anything is deleted
            access.session(self.node.require_session(session_id))
        send_json(resp, falcon.HTTP_200, {**self.node.delete_session(session_id), "deleted": True})


class ArchiveResource:
    """`POST /v1/sessions/:id/archive` (``archived`` True) or `/unarchive` (False). Any body is ignored
    (the SDK sends ``{}``)."""

    def __init__(self, node, archived: bool):
        self.node, self.archived = node, archived

    def on_post(self, req, resp, session_id):
        req.context.access.manage(lambda: self.node.require_session(session_id, fresh=False))
        send_json(resp, falcon.HTTP_200, self.node.set_archived(session_id, self.archived))


class AppendResource:
    def __init__(self, node, max_body):
        self.node, self.max_body = node, max_body

    def on_post(self, req, resp, session_id):
        access = req.context.access
        access.scope("session:append")
        body, nbytes = read_json(req, self.max_body)
        append = validate_append(body)
        if access.enabled:  # the tenant fence: a record's tenant never changes, so any replica's will do
            access.session(self.node.require_session(session_id, fresh=False))
            append["actor"] = access.actor(append["actor"])
        send_json(resp, falcon.HTTP_201, self.node.append(session_id, append, nbytes))


class EventsResource:
    """`GET /v1/sessions/:id/events`: one page of the tail's events, held up to wait_ms when empty."""

    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp, session_id):
        access = req.context.access
        access.scope("session:read")
        cursor = int_param(req, "cursor", 0, TAIL_CURSOR, "invalid_cursor")
        limit = int_param(req, "limit", 100, EVENTS_LIMIT, "invalid_limit")
        wait_ms = int_param(req, "wait_ms", 0, EVENTS_WAIT_MS, "invalid_wait_ms")
        if access.enabled:  # the tenant fence (the page itself is read fresh)
            access.session(self.node.require_session(session_id, fresh=False))
        events, last_seq = self.node.reads.events_page(session_id, cursor, limit, wait_ms)
        next_cursor = events[-1][0] if events else cursor
        # The events are stored as their JSON text: spliced in, never decoded and re-encoded.
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON
        resp.text = (f'{{"events":[{",".join(event_json for _seq, event_json in events)}],'
                     f'"next_cursor":{next_cursor},"last_seq":{last_seq}}}')


class AuthIssueResource:
    def __init__(self, gate, max_body):
        self.gate, self.max_body = gate, max_body

    def on_post(self, req, resp):
        access = req.context.access
        if not access.enabled:
            raise ApiError(404, "auth_disabled", "Token issuing needs STARCITE_AUTH_MODE=jwt")
        access.issuer()  # 403 before the body is even read
        body, _ = read_json(req, self.max_body)
        send_json(resp, falcon.HTTP_201, self.gate.authenticator.issue_principal_token(access.ctx, body))


class HealthLiveResource:
    def on_get(self, req, resp):
        send_json(resp, falcon.HTTP_200, {"status": "ok"})


class HealthReadyResource:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        ready, reason = self.node.views.readiness()
        if ready:
            send_json(resp, falcon.HTTP_200, {"status": "ok", "mode": self.node.mode})
        else:
            send_json(resp, falcon.HTTP_503, {"status": "starting", "mode": self.node.mode, "reason": reason})


class MetricsResource:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        from prometheus_client import CONTENT_TYPE_LATEST
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = self.node.views.metrics_text()


class OpenApiResource:
    def __init__(self, spec: dict):
        self.body = json.dumps(spec)

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = self.body
