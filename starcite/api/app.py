"""The Falcon application: routes, middleware, error rendering.

Owns: `create_app(node, config)`, wiring each route of SPEC.md §2 to its
resource, and two middleware: `AccessMiddleware` (turns the bearer token of
every `/v1` request into an `Access`) and `MetricsMiddleware` (request
latency histogram by route template). Must not: contain endpoint logic.
"""

import time

import falcon

from starcite.api import errors, ops
from starcite.api.access import OPEN, build_gate
from starcite.api.auth import extract_token
from starcite.api.resources import (AppendResource, AuthIssueResource, HealthLiveResource, HealthReadyResource,
                                    MetricsResource, OpenApiResource, SessionResource, SessionsResource)
from starcite.api.tail import TailResource


class AccessMiddleware:
    """`/v1/*` only: health, metrics, openapi and ops never need a token.

    The token comes from `Authorization: Bearer` or the `access_token` query
    parameter (the only way a browser WebSocket can send one); a refusal is
    raised here, so a tail upgrade is refused with plain HTTP 401/403.
    """

    def __init__(self, gate):
        self.gate = gate

    def process_request(self, req, resp):
        req.context.access = OPEN
        req.context.upgraded = False
        req.context.authenticated = False
        if req.path.lstrip("/").startswith("v1/"):  # the router ignores leading slashes: //v1/... is /v1/...
            self._authenticate(req)

    def process_resource(self, req, resp, resource, params):
        # Fail closed on the matched route as well, whatever the raw path looked like.
        if (req.uri_template or "").startswith("/v1/") and not req.context.authenticated:
            self._authenticate(req)

    def _authenticate(self, req):
        req.context.access = self.gate.access(extract_token(req.get_header, req.params))
        req.context.authenticated = True


class MetricsMiddleware:
    """Request latency by route, and the node's count of requests in flight (for shutdown)."""

    def __init__(self, node):
        self.node = node
        self.histogram = node.metrics.request_latency

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()
        self.node.inflight += 1

    def process_response(self, req, resp, resource, req_succeeded):
        started = req.context.get("started")
        if started is None:
            return
        self.node.inflight -= 1
        if req.context.get("upgraded"):
            return
        route = req.uri_template or "unmatched"
        self.histogram.labels(route, req.method, resp.status[:3] if isinstance(resp.status, str)
                              else str(resp.status)).observe(time.perf_counter() - started)


def create_app(node, config):
    gate = build_gate(config)
    app = falcon.App(middleware=[MetricsMiddleware(node), AccessMiddleware(gate)],
                     cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    errors.install(app)
    max_body = config.max_body_bytes
    app.add_route("/v1/sessions", SessionsResource(node, max_body))
    app.add_route("/v1/sessions/{session_id}", SessionResource(node))
    app.add_route("/v1/sessions/{session_id}/append", AppendResource(node, max_body))
    tails = TailResource(node, gate)
    node.gauge_sources.append(tails.counts)  # the edge's share of the tail gauges on /metrics
    app.add_route("/v1/sessions/{session_id}/tail", tails)
    app.add_route("/v1/auth/issue", AuthIssueResource(gate, max_body))
    app.add_route("/health/live", HealthLiveResource())
    app.add_route("/health/ready", HealthReadyResource(node))
    app.add_route("/metrics", MetricsResource(node))
    app.add_route("/openapi.json", OpenApiResource())
    ops.add_routes(app, node)
    return app
