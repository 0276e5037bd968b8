"""The edges of HTTP that no route owns: HEAD, OPTIONS, odd methods.

Owns: `add_head_responders` (HEAD on every GET route answers the GET's status
and headers without the body, RFC 9110 §9.3.2; Falcon suppresses the body
and keeps the Content-Length), and `EdgesMiddleware`: OPTIONS answers
`204` with `Allow` (no body, so no content type), `OPTIONS *` lists the
server's methods, an absolute-form target (`GET http://host/path`) is routed
by its path, and a method Falcon does not know (`FOO`, `PROPFIND`...)
gets the same JSON `405` with `Allow` as a known one the route lacks, instead
of a bare 400. Malformed requests that never reach the app (a request line
over 8 KiB, broken headers) are answered in JSON by `starcite.api.server.worker`.

Must not: contain endpoint logic or change what a GET answers.
"""

import falcon

_UNSUPPORTED_KNOWN_METHOD = "TRACE"  # no route implements it: Falcon answers 405 with the route's Allow
SERVER_METHODS = "GET, HEAD, POST, PATCH, OPTIONS"


def add_head_responders(resource):
    """Give `resource` an `on_head*` for each `on_get*` it has (unless it defines its own)."""
    for name in dir(resource):
        if name.startswith("on_get"):
            head = "on_head" + name[len("on_get"):]
            if not hasattr(resource, head):
                setattr(resource, head, getattr(resource, name))
    return resource


class EdgesMiddleware:
    def process_request(self, req, resp):
        req.context.method = req.method  # what the client sent, for error messages
        if req.path.startswith(("http://", "https://")):  # absolute-form target (RFC 9112 §3.2.2)
            req.path = "/" + req.path.split("://", 1)[1].partition("/")[2]
        if req.method == "OPTIONS" and req.path == "*":
            resp.status = falcon.HTTP_204
            resp.set_header("Allow", SERVER_METHODS)
            resp.complete = True
        elif req.method not in falcon.COMBINED_METHODS:
            req.method = _UNSUPPORTED_KNOWN_METHOD

    def process_response(self, req, resp, resource, req_succeeded):
        if req.method == "OPTIONS" and resp.status in (200, falcon.HTTP_200) and resource is not None:
            resp.status = falcon.HTTP_204  # Falcon's default OPTIONS: an empty 200 typed application/json
