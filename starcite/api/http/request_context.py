"""Request context: the request id of every request and its session's log fields.

Owns: `RequestContextMiddleware`, the first Falcon middleware: it takes the
request id from a sanitised ``X-Request-Id`` or makes one
(`logs.request_id_from`), returns it in the ``X-Request-Id`` response header,
binds it, and once the route is known the session id and its group, to the
log context of the request, and leaves that context in the WSGI environ
(``starcite.log_context``) for the access line. Must not: authenticate,
refuse a request or log anything itself.
"""

from starcite.telemetry import logs
from starcite.cluster.placement import group_for

REQUEST_ID_HEADER = "X-Request-Id"
ENVIRON_KEY = "starcite.log_context"
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class RequestContextMiddleware:
    def __init__(self, num_groups: int):
        self.num_groups = num_groups

    def process_request(self, req, resp):
        # The environ itself: Falcon's get_header raises and catches a KeyError for a missing
        # header, and most requests send none.
        request_id = logs.request_id_from(req.env.get(_REQUEST_ID_ENVIRON))
        req.context.request_id = request_id
        req.env[ENVIRON_KEY] = {"request_id": request_id}
        logs.bind_request(request_id)
        resp.set_header(REQUEST_ID_HEADER, request_id)

    def process_resource(self, req, resp, resource, params):
        session_id = params.get("session_id")
        if session_id:
            group = group_for(session_id, self.num_groups)
            logs.bind_session(session_id, group)
            req.env[ENVIRON_KEY].update(session_id=session_id, group=group)

    def process_response(self, req, resp, resource, req_succeeded):
        # Error responses are rendered after process_request: set the header again, to be sure.
        request_id = req.context.get("request_id")
        if request_id:
            resp.set_header(REQUEST_ID_HEADER, request_id)
