"""Complete HTTP responses the server writes itself, in the API's error shape, for requests the app never saw.

Owns: the bytes of each such answer (`early_response`): a request line or
headers pywsgi refuses (400, 414, 431), a request head that did not arrive
within `STARCITE_HTTP_HEADER_TIMEOUT_MS` (408), a connection past
`STARCITE_MAX_CONNECTIONS` (503 with ``Retry-After``), an error pywsgi hits
before the app answered (500). Every one closes the connection.

Must not: write to a socket or decide when to answer (the handler and the
accept gate do).
"""

import http

from gevent import pywsgi

from starcite.api.http.errors import error_body
from starcite.api.server.http_headers import MAX_HEADERS, MAX_LINE

RETRY_AFTER_S = 1  # what a connection refused at the cap is told

EARLY_ERRORS = {
    400: ("bad_request", "Malformed HTTP request"),
    408: ("request_timeout", "The request head did not arrive in time (STARCITE_HTTP_HEADER_TIMEOUT_MS)"),
    414: ("uri_too_long", f"Request line longer than {pywsgi.MAX_REQUEST_LINE - 1} bytes"),
    431: ("headers_too_large", f"A header line over {MAX_LINE} bytes or more than {MAX_HEADERS} headers"),
    500: ("internal_error", "Internal server error"),
    503: ("too_many_connections", "This node has as many connections open as it takes "
          "(STARCITE_MAX_CONNECTIONS); retry shortly"),
}
_EXTRA_HEADERS = {503: f"Retry-After: {RETRY_AFTER_S}\r\n"}


def early_response(status: int) -> bytes:
    """A complete HTTP/1.1 response with ``Connection: close``, in the API's ``{"error","message"}`` shape."""
    body = error_body(*EARLY_ERRORS[status]).encode()
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"{_EXTRA_HEADERS.get(status, '')}Connection: close\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body
