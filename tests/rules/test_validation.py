"""Tests of the request validation in `starcite.core.rules`: append and create bodies (SPEC §2).

Owns: `validate_append` (normalised fields, required and optional ones,
refused values and the error code each gets, boundary values, unknown
fields) and `validate_create` (accepted and refused session ids, titles and
metadata). Must not: apply anything to a `GroupState`, start actors, Raft or
HTTP, or touch the clock.
"""

import pytest

from starcite.core import rules
from starcite.core.rules import SEQ_LIMIT
from tests.rules.helpers import assert_invalid, body


# -- validate_append ------------------------------------------------------------


def test_validate_append_minimal_body_is_normalised():
    assert rules.validate_append(body()) == {
        "type": "note", "payload": {"text": "hi"}, "actor": None, "producer_id": "p1", "producer_seq": 1,
        "source": None, "metadata": {}, "refs": {}, "idempotency_key": None, "expected_seq": None}


def test_validate_append_keeps_every_optional_field():
    full = body(actor="agent:1", source="api", metadata={"k": "v"}, idempotency_key="idem",
                expected_seq=0, refs={"to_seq": 0, "step": 3, "request_id": "r", "sequence_id": "q"})
    assert rules.validate_append(full) == full


@pytest.mark.parametrize("field", ["actor", "source", "metadata", "refs", "idempotency_key", "expected_seq"])
def test_validate_append_treats_null_optional_as_absent(field):
    assert rules.validate_append(body(**{field: None})) == rules.validate_append(body())


@pytest.mark.parametrize("field", ["type", "payload", "producer_id", "producer_seq"])
def test_validate_append_requires_field(field):
    incomplete = body()
    del incomplete[field]
    assert field in assert_invalid(rules.validate_append, incomplete, "invalid_event")


@pytest.mark.parametrize("field, value, code", [
    ("type", "", "invalid_event"),
    ("type", 5, "invalid_event"),
    ("type", None, "invalid_event"),
    ("payload", [], "invalid_event"),
    ("payload", "text", "invalid_event"),
    ("payload", None, "invalid_event"),
    ("producer_id", "", "invalid_event"),
    ("producer_id", 7, "invalid_event"),
    ("producer_seq", 0, "invalid_event"),
    ("producer_seq", -1, "invalid_event"),
    ("producer_seq", True, "invalid_event"),
    ("producer_seq", False, "invalid_event"),
    ("producer_seq", 1.0, "invalid_event"),
    ("producer_seq", "1", "invalid_event"),
    ("producer_seq", None, "invalid_event"),
    ("producer_seq", SEQ_LIMIT + 1, "invalid_event"),
    ("producer_seq", 10**30, "invalid_event"),
    ("actor", "", "invalid_event"),
    ("actor", 5, "invalid_event"),
    ("source", "", "invalid_event"),
    ("source", ["api"], "invalid_event"),
    ("idempotency_key", 5, "invalid_event"),
    ("expected_seq", -1, "invalid_event"),
    ("expected_seq", True, "invalid_event"),
    ("expected_seq", 1.5, "invalid_event"),
    ("expected_seq", "3", "invalid_event"),
    ("expected_seq", SEQ_LIMIT + 1, "invalid_event"),
    ("metadata", [], "invalid_metadata"),
    ("metadata", "x", "invalid_metadata"),
    ("metadata", 5, "invalid_metadata"),
    ("metadata", True, "invalid_metadata"),
    ("refs", [], "invalid_refs"),
    ("refs", "r", "invalid_refs"),
    ("refs", 3, "invalid_refs"),
    ("refs", {"to_seq": -1}, "invalid_refs"),
    ("refs", {"to_seq": True}, "invalid_refs"),
    ("refs", {"to_seq": 1.0}, "invalid_refs"),
    ("refs", {"to_seq": SEQ_LIMIT + 1}, "invalid_refs"),
    ("refs", {"step": "1"}, "invalid_refs"),
    ("refs", {"step": False}, "invalid_refs"),
    ("refs", {"request_id": 5}, "invalid_refs"),
    ("refs", {"sequence_id": []}, "invalid_refs"),
])
def test_validate_append_rejects_bad_value(field, value, code):
    message = assert_invalid(rules.validate_append, body(**{field: value}), code)
    assert field in message


@pytest.mark.parametrize("field, value", [
    ("producer_seq", 1),
    ("producer_seq", SEQ_LIMIT),
    ("expected_seq", 0),
    ("expected_seq", SEQ_LIMIT),
    ("payload", {}),
    ("metadata", {}),
    ("idempotency_key", ""),
    ("refs", {}),
    ("refs", {"to_seq": 0, "step": 0}),
    ("refs", {"to_seq": SEQ_LIMIT}),
    ("refs", {"request_id": "", "sequence_id": ""}),
])
def test_validate_append_accepts_boundary_value(field, value):
    assert rules.validate_append(body(**{field: value}))[field] == value


@pytest.mark.parametrize("field", ["seq", "inserted_at", "last_seq", "extra"])
def test_validate_append_rejects_unknown_field(field):
    assert repr(field) in assert_invalid(rules.validate_append, body(**{field: 1}), "invalid_event")


@pytest.mark.parametrize("value", [None, [], "text", 5, True])
def test_validate_append_requires_an_object(value):
    assert_invalid(rules.validate_append, value, "invalid_event")


# -- validate_create ------------------------------------------------------------


def test_validate_create_empty_body():
    assert rules.validate_create({}) == {"id": None, "title": None, "metadata": {}, "expires_at": None,
                                         "ttl_seconds": None}


@pytest.mark.parametrize("session_id", ["ses_1", "x" * 256, "with space", "...", ".a", "a.", "%2e%2e", "%2F",
                                        "tenant:acme|thread#42?x=1&y=2", "~!*'()[]{}<>;@$,+=^`\"|"])
def test_validate_create_accepts(session_id):
    full = {"id": session_id, "title": "T", "metadata": {"tenant_id": "acme"}}
    assert rules.validate_create(full) == {**full, "expires_at": None, "ttl_seconds": None}


@pytest.mark.parametrize("value, code", [
    (None, "invalid_session"),
    ([], "invalid_session"),
    ("x", "invalid_session"),
    ({"id": ""}, "invalid_session"),
    ({"id": 5}, "invalid_session"),
    ({"id": "x" * 257}, "invalid_session"),
    ({"id": "a\nb"}, "invalid_session"),
    ({"id": "a\x00b"}, "invalid_session"),
    ({"id": "a/b"}, "invalid_session"),
    ({"id": "ü" * 129}, "invalid_session"),
    ({"id": "."}, "invalid_session"),
    ({"id": ".."}, "invalid_session"),
    ({"id": "a\\b"}, "invalid_session"),
    ({"id": "\\"}, "invalid_session"),
    ({"id": "a\x7fb"}, "invalid_session"),
    ({"title": 5}, "invalid_session"),
    ({"metadata": []}, "invalid_metadata"),
    ({"metadata": "m"}, "invalid_metadata"),
    ({"last_seq": 3}, "invalid_session"),
])
def test_validate_create_rejects(value, code):
    assert_invalid(rules.validate_create, value, code)
