"""The Falcon application: routes, middleware, error rendering.

Owns: `create_app(node, config)`, wiring each route of SPEC.md §2 to its
resource, and the middleware: `RequestContextMiddleware` (request id and log
context, first), `CorsMiddleware` (starcite/api/http/cors.py: preflights are
answered before anything else runs), `MetricsMiddleware` (request latency histogram by route
template), `EdgesMiddleware` (starcite/api/http/edges.py) and
`AccessMiddleware` (turns the bearer token of every `/v1` and `/api/v1` request into an
`Access`). Must not: contain endpoint logic.
"""

import time

import falcon

from starcite.api.http import errors
from starcite.api.auth.access import OPEN, build_gate
from starcite.api.auth.session_tokens import SessionTokens
from starcite.api.auth.tokens import extract_token
from starcite.api.http.cors import CorsMiddleware, allowed_origins
from starcite.api.http.edges import EdgesMiddleware, add_head_responders
from starcite.api.http.openapi import build_spec
from starcite.api.http.request_context import RequestContextMiddleware
from starcite.api.http.session_tokens import SessionTokensResource
from starcite.api.http.resources import (AppendResource, ArchiveResource, AuthIssueResource, EventsResource, HealthLiveResource,
                                    HealthReadyResource, MetricsResource, OpenApiResource, SessionResource,
                                    SessionsResource)
from starcite.api.tails.phoenix_resource import SOCKET_PATH, PhoenixSocketResource
from starcite.api.tails.resource import TailResource
from starcite.core.errors import StarciteError


# The routes behind a bearer token: the API, and the newest TypeScript SDK's token endpoint.
TOKEN_PREFIXES = ("v1/", "api/v1/")


class AccessMiddleware:
    """`/v1/*` and `/api/v1/*` only: health, metrics and openapi never need a token (ops is not on this app at all).

    The token comes from `Authorization: Bearer` or the `access_token` query
    parameter (the only way a browser WebSocket can send one), or on the Phoenix
    socket its `token` parameter; a refusal is
    raised here, so a tail upgrade is refused with plain HTTP 401/403.
    """

    def __init__(self, gate):
        self.gate = gate

    def process_request(self, req, resp):
        req.context.access = OPEN
        req.context.upgraded = False
        req.context.authenticated = False
        if req.path.lstrip("/").startswith(TOKEN_PREFIXES):  # the router ignores leading slashes: //v1/... is /v1/...
            self._authenticate(req)

    def process_resource(self, req, resp, resource, params):
        # Fail closed on the matched route as well, whatever the raw path looked like.
        if (req.uri_template or "").lstrip("/").startswith(TOKEN_PREFIXES) and not req.context.authenticated:
            self._authenticate(req)

    def _authenticate(self, req):
        # Without an authenticator (auth_mode none) every request is OPEN: the token is not even read
        # (Falcon's get_header raises and catches a KeyError for a missing header, and req.params
        # parses the query string: ~1% of the worker per append).
        token = None
        if self.gate.authenticator is not None:
            token = extract_token(req.get_header, req.params)
            if token is None and req.path == SOCKET_PATH:
                token = req.get_param("token")  # the Phoenix socket's own parameter (phoenix.js `params`)
        req.context.access = self.gate.access(token)
        req.context.authenticated = True


class MetricsMiddleware:
    """Request latency by route, the node's count of requests in flight (for shutdown), and the
    refusal of new requests once the node is stopping."""

    def __init__(self, node):
        self.node = node
        self.histogram = node.metrics.request_latency
        self.series = {}  # (route, method, status) -> the histogram's child (prometheus' labels() locks per call)

    def process_request(self, req, resp):
        if self.node.stopping and not req.path.startswith("/health/"):
            # A keep-alive connection keeps bringing requests while the node stops: answer them
            # at once (the client retries elsewhere) instead of starting work that shutdown kills.
            resp.set_header("Connection", "close")
            raise StarciteError(503, "node_stopping", "This node is shutting down; retry on another node",
                                {"Retry-After": "1"})
        req.context.started = time.perf_counter()
        self.node.inflight += 1

    def process_response(self, req, resp, resource, req_succeeded):
        started = req.context.get("started")
        if started is None:
            return
        self.node.inflight -= 1
        if req.context.get("upgraded"):
            return
        key = (req.uri_template or "unmatched", req.method,
               resp.status[:3] if isinstance(resp.status, str) else str(resp.status))
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = self.histogram.labels(*key)
        series.observe(time.perf_counter() - started)


def create_app(node, config):
    gate = build_gate(config)
    app = falcon.App(middleware=[RequestContextMiddleware(config.num_groups), CorsMiddleware(allowed_origins(config)),
                                 MetricsMiddleware(node),
                                 EdgesMiddleware(), AccessMiddleware(gate)],
                     cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    app.req_options.keep_blank_qs_values = True  # `limit=` is a bad limit, not an absent one
    errors.install(app)
    max_body = config.max_body_bytes
    authenticator = gate.authenticator
    session_tokens = SessionTokens(config, authenticator)
    tails = TailResource(node, gate, config.sse_keepalive_ms, config.sse_retry_ms, config.tail_ws_ping_ms)
    node.gauge_sources.append(tails.counts)  # the edge's share of the tail gauges on /metrics
    phoenix = PhoenixSocketResource(node, gate, config.tail_ws_ping_ms)
    node.gauge_sources.append(phoenix.counts)
    routes = {
        "/v1/sessions": SessionsResource(node, max_body),
        "/v1/sessions/{session_id}": SessionResource(node, max_body),
        "/v1/sessions/{session_id}/archive": ArchiveResource(node, True),
        "/v1/sessions/{session_id}/unarchive": ArchiveResource(node, False),
        "/v1/sessions/{session_id}/append": AppendResource(node, max_body),
        "/v1/sessions/{session_id}/tail": tails,
        "/v1/sessions/{session_id}/events": EventsResource(node),
        SOCKET_PATH: phoenix,
        "/v1/auth/issue": AuthIssueResource(gate, max_body),
        "/api/v1/session-tokens": SessionTokensResource(session_tokens, max_body),
        "/health/live": HealthLiveResource(),
        "/health/ready": HealthReadyResource(node),
        "/metrics": MetricsResource(node),
        "/openapi.json": OpenApiResource(build_spec(authenticator.issue_body if authenticator else None,
                                                    session_tokens.body)),
    }
    for template, resource in routes.items():
        app.add_route(template, add_head_responders(resource))
    return app
