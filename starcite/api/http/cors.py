"""CORS: browsers may call the API from the origins the operator names (`CorsMiddleware`).

Owns: which origins are allowed (`allowed_origins`: `http.cors_origins`, else
``*`` with auth none and none with JWT, where the operator should name the
apps' origins), the answer to a preflight (``OPTIONS`` with
``Access-Control-Request-Method``: 204, the methods GET/HEAD/POST/PATCH/DELETE,
the headers `Authorization`, `Cache-Control` (the TypeScript SDK's token
request sends it), `Content-Type`, `Last-Event-ID` and `X-Request-Id`,
cached for a day), before authentication (a preflight never
carries a token), and ``Access-Control-Allow-Origin`` / ``Vary: Origin`` on
every answer to an allowed origin, with the headers a client may read
(`Retry-After`, `X-Request-Id`).

Must not: authenticate or authorise (a browser request is checked like any
other: CORS only lets the browser hand the answer to the page), or answer
anything but a preflight itself.
"""

ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Cache-Control, Content-Type, Last-Event-ID, X-Request-Id"
EXPOSED_HEADERS = "Retry-After, X-Request-Id"
PREFLIGHT_MAX_AGE_S = "86400"


def allowed_origins(config) -> frozenset:
    """The configured origins, or the default for the auth mode (``{"*"}`` or nothing)."""
    if config.cors_origins is not None:
        return frozenset(origin.rstrip("/") for origin in config.cors_origins)
    return frozenset({"*"}) if config.auth_mode == "none" else frozenset()


class CorsMiddleware:
    def __init__(self, origins: frozenset):
        self.any_origin = "*" in origins
        self.origins = origins

    def _allow(self, req):
        """The Access-Control-Allow-Origin value for this request, or None."""
        origin = req.get_header("Origin")
        if not origin or not (self.any_origin or origin in self.origins):
            return None
        return "*" if self.any_origin else origin

    def process_request(self, req, resp):
        if req.method != "OPTIONS" or not req.get_header("Access-Control-Request-Method"):
            return
        allow = self._allow(req)
        if allow is None:
            return  # not an allowed origin: the route answers as to any OPTIONS, and the browser refuses
        resp.status = 204
        resp.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
        resp.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        resp.set_header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S)
        resp.complete = True  # no authentication, no responder

    def process_response(self, req, resp, resource, req_succeeded):
        allow = self._allow(req)
        if allow is None:
            return
        resp.set_header("Access-Control-Allow-Origin", allow)
        resp.set_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
        if not self.any_origin:
            resp.append_header("Vary", "Origin")
