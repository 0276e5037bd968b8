"""The request-header reader that replaces pywsgi's email.parser path."""

import io

import pytest

from starcite.api.server.http_headers import MAX_HEADERS, MAX_LINE, read_headers


def parse(raw: bytes):
    return read_headers(io.BytesIO(raw))


def test_reads_until_the_blank_line_and_leaves_the_body():
    fp = io.BytesIO(b"Host: x\r\nContent-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\n\r\nhello")
    headers = read_headers(fp)
    assert headers.status == ""
    assert headers.get("content-length") == "5" and headers.getheader("HOST") == "x"
    assert headers.get("X-MULTI") == "a"  # first wins, like email.message
    assert fp.read() == b"hello"
    assert headers.headers == ["Host: x\r\n", "Content-Length: 5\r\n", "X-Multi: a\r\n", "x-multi: b\r\n"]
    assert headers.items()[0] == ("Host", "x") and "host" in headers and "nope" not in headers


def test_delete_removes_every_occurrence_and_typeheader():
    headers = parse(b"Content-Length: 1\r\ncontent-length: 2\r\nContent-Type: application/json\r\n\r\n")
    del headers["content-length"]
    assert headers.get("content-length") is None
    assert headers.typeheader == "application/json"


def test_folded_lines_join_and_bare_lf_ends():
    headers = parse(b"X-Long: a\n  b\n\n")
    assert headers.get("x-long") == "a b"


@pytest.mark.parametrize("raw,status", [
    (b"X: " + b"a" * MAX_LINE + b"\r\n\r\n", "Line too long"),
    (b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", "Too many headers"),
    (b"no colon here\r\n\r\n", "Invalid header line"),
    (b" X: leading space\r\n\r\n", "Invalid header line"),
    (b": empty name\r\n\r\n", "Invalid header line"),
])
def test_bad_header_blocks_set_a_status(raw, status):
    assert parse(raw).status.startswith(status)


def test_eof_ends_the_block():
    assert parse(b"Host: x\r\n").get("host") == "x"
