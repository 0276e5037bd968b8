"""The edges of HTTP on a real node, byte for byte: every answer is a clean JSON 4xx or what HTTP requires.

Owns: HEAD (the GET's status and headers, no body), OPTIONS (204 + Allow,
`OPTIONS *`), odd and unknown methods (405 + Allow), requests pywsgi refuses
before the app (414 request line, 431 headers, 400 malformed) answered in
the `{"error", "message"}` shape, encoded slashes, dot segments, double and
trailing slashes, absolute-form targets. Never a 500, never an HTML page.
Requests are written on raw sockets, so no client normalises them first.
Must not: reach anything but 127.0.0.1.
"""

import http.client
import json
import socket

import pytest

HANDSHAKE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


@pytest.fixture(scope="module")
def server(shared_server):
    shared_server.create("edges")
    return shared_server


def raw(server, request: bytes, method="GET"):
    """Send `request` as is; return ``(status, headers, body)`` of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def send(server, method, target, headers="", body=b"", version="HTTP/1.1"):
    head = f"{method} {target} {version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    return raw(server, head.encode("latin-1") + body, method)


def json_error(status, headers, body):
    assert headers.get("content-type", "").startswith("application/json"), (status, headers)
    payload = json.loads(body)
    assert set(payload) == {"error", "message"} and payload["message"], payload
    return payload["error"]


@pytest.mark.parametrize("target", ["/health/live", "/health/ready", "/metrics", "/openapi.json", "/v1/sessions",
                                    "/v1/sessions/edges", "/v1/sessions/nope", "/v1/sessions/edges/tail",
                                    "/v1/sessions?limit=0", "/nope"])
def test_head_answers_the_get_headers_without_a_body(server, target):
    get_status, get_headers, get_body = send(server, "GET", target)
    status, headers, body = send(server, "HEAD", target)
    assert status == get_status and body == b""
    for name in ("content-type", "allow", "upgrade"):
        assert headers.get(name) == get_headers.get(name), name
    if status < 300 and target != "/metrics":  # metrics move between the two requests; errors name the method
        assert int(headers["content-length"]) == len(get_body)


def test_head_never_opens_a_tail(server):
    status, headers, body = send(server, "HEAD", "/v1/sessions/edges/tail", HANDSHAKE)
    assert status == 400 and body == b"" and headers["content-type"].startswith("application/json")
    status, headers, body = send(server, "GET", "/v1/sessions/edges/tail?cursor=x", HANDSHAKE)
    assert status == 400 and json_error(status, headers, body) == "invalid_cursor"


def test_a_9000_byte_path_is_414_in_json(server):
    status, headers, body = send(server, "GET", "/" + "a" * 9000)
    assert status == 414 and json_error(status, headers, body) == "uri_too_long"


@pytest.mark.parametrize("headers", ["X-Big: " + "a" * 70000 + "\r\n", "".join(f"H{i}: v\r\n" for i in range(101))])
def test_oversized_headers_are_431_in_json(server, headers):
    status, response_headers, body = send(server, "GET", "/health/live", headers)
    assert status == 431 and json_error(status, response_headers, body) == "headers_too_large"


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /health/live HTTP/2.0\r\n\r\n",
    b"GET /health/live HTTP/1.1\r\nbad header line\r\n\r\n",
    b"HEAD /health/live HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /health/live HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/sessions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
])
def test_malformed_requests_are_400_in_json(server, request_bytes):
    status, headers, body = raw(server, request_bytes)
    assert status == 400 and json_error(status, headers, body) in ("bad_request", "invalid_json")


def test_options(server):
    status, headers, body = send(server, "OPTIONS", "/v1/sessions")
    assert status == 204 and body == b"" and "content-type" not in headers
    assert set(headers["allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "POST"}
    status, headers, body = send(server, "OPTIONS", "/v1/sessions/edges/append")
    assert status == 204 and "POST" in headers["allow"] and "GET" not in headers["allow"]
    status, headers, body = send(server, "OPTIONS", "*")
    assert status == 204 and "GET" in headers["allow"]
    status, headers, body = send(server, "OPTIONS", "/nope")
    assert status == 404 and json_error(status, headers, body) == "not_found"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE", "QUERY", "FOO", "PROPFIND", "BREW"])
def test_odd_methods_are_405_with_allow(server, method):
    status, headers, body = send(server, method, "/v1/sessions")
    assert status == 405 and json_error(status, headers, body) == "method_not_allowed"
    assert json.loads(body)["message"] == f"{method} is not allowed on /v1/sessions"
    assert "GET" in headers["allow"] and "POST" in headers["allow"]
    status, headers, body = send(server, method, "/nope")
    assert status == 404 and json_error(status, headers, body) == "not_found"


@pytest.mark.parametrize("method, target, expected", [
    ("GET", "/v1/sessions/a%2Fb", 404),           # an encoded slash is a slash: no such route
    ("GET", "/v1/sessions/edges%2Fappend", 405),  # ... so this is GET on the append route
    ("POST", "/v1/sessions/a%2fb/append", 404),
    ("GET", "/v1/sessions/%2e%2e", 404),          # an encoded dot segment is an id, and no such session
    ("GET", "/v1/sessions/../health/live", 404),  # a raw dot segment is not resolved by the server
    ("GET", "/v1//sessions", 404),
    ("GET", "/v1/sessions//edges", 404),
    ("GET", "/v1/sessions/edges//", 404),        # one trailing slash is stripped, not two
    ("GET", "//v1/sessions", 200),
    ("GET", "/v1/sessions/", 200),
    ("GET", "/health/live/", 200),
    ("GET", "/v1/sessions/edges?", 200),
    ("GET", "/v1/sessions%3Flimit=1", 404),
    ("GET", "http://127.0.0.1/v1/sessions/edges", 200),  # absolute-form
    ("GET", "/v1/sessions/edges#frag", 404),
])
def test_paths(server, method, target, expected):
    status, headers, body = send(server, method, target, "Content-Length: 2\r\n" if method == "POST" else "",
                                 b"{}" if method == "POST" else b"")
    assert status == expected, (target, body)
    assert headers["content-type"].startswith("application/json")
    if status >= 400:
        json_error(status, headers, body)
    else:
        assert "error" not in json.loads(body)


def test_zz_no_edge_caused_a_500(server):
    assert "Traceback" not in server.output()
    assert 'status="500"' not in server.request("GET", "/metrics").text
