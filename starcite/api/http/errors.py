"""The one error type of the API and its rendering as ``{"error", "message"}``.

Owns: `ApiError` (the edge's own `StarciteError`) and the handlers installed
on the Falcon app: every `StarciteError` (rules, auth, Raft, archive reads,
the edge) renders as itself; Falcon's own HTTP errors (unknown route,
method) get the same shape. Any
exception that reaches `handle_unexpected` is a bug: it is logged with its
traceback and answered with a generic 500 body (never a stack trace).

Must not: contain business rules.
"""

import json
import logging
import re

import falcon

from starcite.core.errors import StarciteError

log = logging.getLogger("starcite.api")


class ApiError(StarciteError):
    """An error found by the edge itself (bad body, bad parameter, not a WebSocket...)."""


def error_body(code: str, message: str, extra=None) -> str:
    return json.dumps({**(extra or {}), "error": code, "message": message})


def render(resp, status: int, code: str, message: str, headers=None, extra=None):
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = error_body(code, message, extra)
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def _code_from_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (title or "error").lower()).strip("_") or "error"


def install(app):
    def handle_starcite(req, resp, ex, params):
        headers = dict(ex.headers)
        if ex.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        render(resp, ex.status, ex.code, ex.message, headers, ex.extra)

    def handle_http(req, resp, ex, params):
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            ex.status_code, _code_from_title(ex.title))
        method = req.context.get("method") or req.method  # as sent (see `http_edges.EdgesMiddleware`)
        message = ex.description or {404: f"No route for {method} {req.path}",
                                     405: f"{method} is not allowed on {req.path}"}.get(ex.status_code, ex.title)
        render(resp, ex.status_code, code, message, dict(ex.headers or {}))

    def handle_unexpected(req, resp, ex, params):
        log.exception("unhandled error on %s %s", req.method, req.path)
        render(resp, 500, "internal_error", "Internal server error")

    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http)
    app.add_error_handler(StarciteError, handle_starcite)
