"""Session ids are URL path segments: every id the rules accept can be addressed, none escapes its path.

Owns: the id rule of `starcite.core.rules.SESSION_ID` seen from a client. Dot
segments ('.', '..') are resolved by clients even when the rest of a path is
percent-encoded, so POST /v1/sessions/../append would reach /v1/append: they
are refused on create. Every accepted id, percent-encoded as one segment,
reaches the server as that segment and decodes back to the id (property
test over the whole rule), and a real node serves tricky ids by path.
Must not: reach anything but 127.0.0.1.
"""

import urllib.parse

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from starcite.core.rules import SESSION_ID

BASE = "http://127.0.0.1:4000"
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
TRICKY = ["...", ".a", "a.", ". .", "%2e%2e", "%2E.", ".%2e", "a%2Fb", "%", "%25", "?x=1", "#frag", " ", " lead",
          "trail ", ";", "..;", "~", "a+b", "@:!$&'()*,=", "[]{}<>|^`\""]


def sent_path(session_id: str, tail: str = "/append") -> str:
    """The path a `requests` client sends for this id quoted as one segment."""
    url = f"{BASE}/v1/sessions/{urllib.parse.quote(session_id, safe='')}{tail}"
    return requests.Request("POST", url).prepare().path_url


@settings(max_examples=500, deadline=None)
@given(st.text(ASCII, min_size=1, max_size=256).filter(SESSION_ID.accepts))
def test_every_accepted_id_reaches_its_own_path(session_id):
    path = sent_path(session_id)
    prefix, segment, action = path.rsplit("/", 2)
    assert (prefix, action) == ("/v1/sessions", "append"), path
    assert urllib.parse.unquote(segment) == session_id


@pytest.mark.parametrize("session_id", [".", ".."])
def test_dot_segments_are_refused_because_clients_resolve_them(session_id):
    assert not SESSION_ID.accepts(session_id)
    assert sent_path(session_id) != f"/v1/sessions/{session_id}/append"  # e.g. ".." -> /v1/append


@pytest.mark.parametrize("session_id", ["a/b", "a\\b", "\\..", "..\\", "\t", "x" * 257, "\u00e9" * 65, "a\ud800",
                                        "a\x85b", ""])
def test_separators_controls_and_overlong_ids_are_refused(session_id):
    assert not SESSION_ID.accepts(session_id)


@pytest.mark.parametrize("session_id", ["a\u00e9", "\u00fcn\u00efcode", "\u4f1a\u8bdd-1", "\u00e9" * 64, "x" * 256])
def test_ids_in_any_script_are_accepted(session_id):
    assert SESSION_ID.accepts(session_id)


@pytest.mark.parametrize("session_id", [".", ".."])
def test_create_refuses_dot_segment_ids(shared_server, session_id):
    response = shared_server.request("POST", "/v1/sessions", {"id": session_id})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_session"


def test_tricky_ids_are_served_by_path(shared_server, sid):
    for n, tricky in enumerate(TRICKY):
        session_id = f"{tricky}{sid[:8]}{n}" if tricky.strip() else f"{sid[:8]}{n}{tricky}"
        assert SESSION_ID.accepts(session_id), session_id
        assert shared_server.create(session_id)["id"] == session_id
        segment = urllib.parse.quote(session_id, safe="")
        got = shared_server.request("GET", f"/v1/sessions/{segment}")
        assert got.status_code == 200 and got.json()["id"] == session_id, (session_id, got.text)
        appended = shared_server.append(segment, 1)
        assert appended.status_code == 201 and appended.json()["seq"] == 1, (session_id, appended.text)
