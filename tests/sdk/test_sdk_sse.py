"""The SDK's SSE tail without a server: the event-stream parser, `SseTail`, and both tail loops on a mock transport.

Owns: `_sse.SseParser` (lines split across chunks at any byte, CRLF, LF and
CR line ends, comments, multi-line data, ``id``, ``event``, ``retry``, a BOM,
an unfinished message at the end), `_sse.SseTail` (refusals, stream error
events, gaps, the reconnect delay), and the sync and asyncio `tail(...,
transport="sse")` loops against a scripted `httpx.MockTransport` (each
reconnect from the last delivered seq, no event twice, `TokenExpired`).
Must not: start a server or use the network.
"""

import asyncio
import json

import httpx
import pytest

import starcite_client as sc
from starcite_client import _core, _sse
from starcite_client._sse import SseMessage, SseParser


def parse(*chunks: bytes) -> list[SseMessage]:
    parser = SseParser()
    return [message for chunk in chunks for message in parser.feed(chunk)]


STREAM = (b"retry: 1500\r\n: keep-alive\r\n\r\nid: 1\r\ndata: {\"seq\": 1}\r\n\r\n"
          b"event: error\ndata: line one\ndata:line two\ndata\n\n: keep-alive\rid: 3\rdata: x\r\r")
EXPECTED = [SseMessage("message", '{"seq": 1}', "1"), SseMessage("error", "line one\nline two\n", "1"),
            SseMessage("message", "x", "3")]


def test_a_stream_parses_the_same_however_it_is_cut():
    assert parse(STREAM) == EXPECTED
    for cut in range(len(STREAM) + 1):
        assert parse(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut
    assert parse(*(STREAM[i:i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_crlf_split_between_chunks_is_one_line_end():
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SseMessage("message", "a\nb", "")]
    assert parse(b"data: a\r", b"\r") == [SseMessage("message", "a", "")]  # CR CR: a line, then a blank one


def test_fields_as_the_spec_reads_them():
    parser = SseParser()
    assert parser.feed(b"retry: 250\nretry: soon\nretry: 1e3\n\n") == []  # only ASCII digits set it
    assert parser.retry == 250
    assert parser.feed(b"data:  two spaces\nunknown: x\nevent\n\n") == [SseMessage("message", " two spaces", "")]
    assert parser.feed(b"id: 7\n\n") == [] and parser.last_event_id == "7"  # no data: nothing dispatched
    assert parser.feed(b"event: custom\ndata: {}\n\n") == [SseMessage("custom", "{}", "7")]
    assert parser.feed(b"id: bad\0id\ndata: y\n\n") == [SseMessage("message", "y", "7")]
    assert parser.feed(b"data: \xc3") == [] and parser.feed(b"\xa9t\xc3\xa9\n\n") == [SseMessage("message",
                                                                                              "\u00e9t\u00e9", "7")]


def test_a_bom_opens_the_stream_and_a_reset_drops_a_half_sent_message():
    parser = SseParser()
    assert parser.feed(b"\xef\xbb\xbfdata: a\n\n") == [SseMessage("message", "a", "")]
    parser.feed(b"retry: 9\nid: 4\n\ndata: half")
    parser.reset()  # a new connection
    assert parser.feed(b"\n\n") == [] and (parser.retry, parser.last_event_id) == (9, "4")


def message(seq: int) -> bytes:
    return f"id: {seq}\ndata: {json.dumps({'seq': seq, 'type': 'm'})}\n\n".encode()


def test_sse_tail_delivers_each_event_once_and_reconnects_on_a_gap():
    tail = _sse.SseTail("s/1", 1, 5.0)
    request = tail.request()
    assert (request["url"], request["params"], request["headers"]["Accept"]) == ("/v1/sessions/s%2F1/tail",
                                                                                 {"cursor": 1}, "text/event-stream")
    assert request["timeout"].read == _sse.SSE_READ_TIMEOUT
    delivered = []
    with pytest.raises(_core.TailGap):
        for event in tail.feed(message(1) + message(2) + message(3) + message(5) + message(6)):
            delivered.append(event["seq"])
    assert delivered == [2, 3] and tail.position.last_seq == 3
    assert tail.request()["params"] == {"cursor": 3}


def test_sse_tail_error_events():
    tail = _sse.SseTail("s", 0, 5.0)
    with pytest.raises(sc.TokenExpired) as info:
        list(tail.feed(b'event: error\ndata: {"error":"token_expired","message":"gone"}\n\n'))
    assert (info.value.status, info.value.code, info.value.message) == (401, "token_expired", "gone")
    for data in (b'{"error":"archive_read_unavailable","message":"m"}', b'{"error":"internal_error"}', b"junk"):
        with pytest.raises(_core.TailReconnect):
            list(tail.feed(b"event: error\ndata: " + data + b"\n\n"))
    assert list(tail.feed(b"event: ping\ndata: {}\n\n")) == []  # an unknown type is ignored


def test_sse_tail_refusals_and_delays():
    tail = _sse.SseTail("s", 0, 5.0)
    body = json.dumps({"error": "session_not_found", "message": "no"}).encode()
    with pytest.raises(sc.SessionNotFound):
        tail.opened(404, httpx.Headers({"content-type": "application/json"}), body)
    with pytest.raises(sc.Unauthorized):
        tail.opened(401, httpx.Headers(), b'{"error":"invalid_token","message":"m"}')
    with pytest.raises(sc.BadRequest):
        tail.opened(400, httpx.Headers(), b'{"error":"invalid_cursor","message":"m"}')
    with pytest.raises(_core.TailReconnect):
        tail.opened(503, httpx.Headers({"retry-after": "3"}), b'{"error":"node_stopping","message":"m"}')
    assert 3.0 <= tail.next_delay() <= _core.TAIL_BACKOFF_MAX  # Retry-After, once
    assert tail.next_delay() < 1.0
    with pytest.raises(sc.StarciteError, match="not_an_event_stream"):
        tail.opened(200, httpx.Headers({"content-type": "application/json"}), b"")
    tail.opened(200, httpx.Headers({"content-type": "text/event-stream; charset=utf-8"}), b"")
    list(tail.feed(b"retry: 900\n\n"))
    assert 0.9 <= tail.next_delay() <= _core.TAIL_BACKOFF_MAX
    list(tail.feed(b"retry: 60000\n\n"))
    assert tail.next_delay() == _core.TAIL_BACKOFF_MAX  # the server's retry is capped


def test_an_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="carrier-pigeon"):
        sc.Starcite("http://127.0.0.1:9").session("s").tail(transport="carrier-pigeon")


# -- both loops against a scripted server ---------------------------------------------------

def event_stream(*parts: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(parts))


class Script:
    """One answer per connection, and what each request asked for."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = [
            lambda: event_stream(b"retry: 10\n\n", message(1), b": keep-alive\n\n", message(2)),  # then EOF
            lambda: httpx.Response(503, json={"error": "node_stopping", "message": "m"}),
            lambda: (_ for _ in ()).throw(httpx.ConnectError("refused")),
            lambda: event_stream(message(2), message(3), message(5)),  # a duplicate, then a gap
            lambda: event_stream(message(4), b'event: error\ndata: {"error":"tail_unavailable"}\n\n', message(9)),
            lambda: event_stream(message(5), b'event: error\ndata: {"error":"token_expired","message":"m"}\n\n'),
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers[len(self.requests) - 1]()

    def check(self, seen: list[int]) -> None:
        assert seen == [1, 2, 3, 4, 5]
        assert [int(r.url.params["cursor"]) for r in self.requests] == [0, 2, 2, 2, 3, 4]
        for request in self.requests:
            assert request.headers["accept"] == "text/event-stream" and "upgrade" not in request.headers
            assert request.headers["authorization"] == "Bearer tok"
            assert request.url.path == "/v1/sessions/s1/tail"


def test_the_sync_sse_loop_reconnects_from_the_last_delivered_seq():
    script, seen = Script(), []
    with sc.Starcite("http://starcite.test", token="tok") as client:
        client.http = httpx.Client(base_url=client.base_url, headers=client.headers,
                                   transport=httpx.MockTransport(script))
        with pytest.raises(sc.TokenExpired):
            for event in client.session("s1").tail(cursor=0, transport="sse"):
                seen.append(event["seq"])
    script.check(seen)


def test_the_async_sse_loop_reconnects_from_the_last_delivered_seq():
    script, seen = Script(), []

    async def main() -> None:
        async with sc.AsyncStarcite("http://starcite.test", token="tok") as client:
            client.http = httpx.AsyncClient(base_url=client.base_url, headers=client.headers,
                                            transport=httpx.MockTransport(script))
            with pytest.raises(sc.TokenExpired):
                async for event in client.session("s1").tail(cursor=0, transport="sse"):
                    seen.append(event["seq"])
    asyncio.run(asyncio.wait_for(main(), 30))
    script.check(seen)


def test_a_refused_sse_tail_raises_at_once():
    requests = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(404, json={"error": "session_not_found", "message": "m"})
    with sc.Starcite("http://starcite.test") as client:
        client.http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(refuse))
        with pytest.raises(sc.SessionNotFound):
            next(client.session("nope").tail(transport="sse"))
    assert len(requests) == 1
