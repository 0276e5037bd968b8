"""The one error type of the API and its rendering as ``{"error", "message"}``.

Owns: `ApiError`, the mapping of internal exceptions (rule refusals, Raft
unavailability, archive read failures, auth errors, Falcon's own HTTP
errors) to status codes, and the handlers installed on the Falcon app. Any
exception that reaches `handle_unexpected` is a bug: it is logged with its
traceback and answered with a generic 500 body (never a stack trace).

Must not: contain business rules.
"""

import json
import logging
import re

import falcon

log = logging.getLogger("starcite.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def render(resp, status: int, code: str, message: str, headers=None):
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"error": code, "message": message})
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def _code_from_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (title or "error").lower()).strip("_") or "error"


def install(app):
    from starcite.actors.raft_group import RaftUnavailable
    from starcite.node import ArchiveReadError
    from starcite.rules import RuleError

    def handle_api(req, resp, ex, params):
        render(resp, ex.status, ex.code, ex.message, ex.headers)

    def handle_rule(req, resp, ex, params):
        render(resp, ex.status, ex.code, ex.message)

    def handle_raft(req, resp, ex, params):
        render(resp, 503, ex.code, ex.message, {"Retry-After": "1"})

    def handle_archive(req, resp, ex, params):
        render(resp, 503, "archive_read_unavailable", str(ex), {"Retry-After": "1"})

    def handle_http(req, resp, ex, params):
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            ex.status_code, _code_from_title(ex.title))
        message = ex.description or {404: f"No route for {req.method} {req.path}",
                                     405: f"{req.method} is not allowed on {req.path}"}.get(ex.status_code, ex.title)
        render(resp, ex.status_code, code, message, dict(ex.headers or {}))

    def handle_unexpected(req, resp, ex, params):
        log.exception("unhandled error on %s %s", req.method, req.path)
        render(resp, 500, "internal_error", "Internal server error")

    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http)
    app.add_error_handler(ApiError, handle_api)
    app.add_error_handler(RuleError, handle_rule)
    app.add_error_handler(RaftUnavailable, handle_raft)
    app.add_error_handler(ArchiveReadError, handle_archive)
    try:
        from starcite.api.auth import AuthError
    except ImportError:
        return

    def handle_auth(req, resp, ex, params):
        headers = {"WWW-Authenticate": "Bearer"} if ex.status == 401 else None
        render(resp, ex.status, ex.code, ex.message, headers)

    app.add_error_handler(AuthError, handle_auth)
