"""/openapi.json is built from the validators' own shapes: unit tests of `starcite.api.http.openapi` and `starcite.core.shapes`.

Owns: the document's structure in each auth mode (security and the issue
route only in jwt mode; the session-token route in both; no /ops), every documented operation being served,
and the property that each shape's check and its JSON Schema agree on
arbitrary JSON values (checked with jsonschema_rs, the validator the OpenAPI
fuzzer uses). The fuzzer itself runs in `tests/test_openapi_fuzz.py`.
Must not: start a node of its own (the live checks use the shared one).
"""

import datetime
import json

import jsonschema_rs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from starcite.core import rules
from starcite.api.auth.session_tokens import session_token_body_shape
from starcite.api.auth.tokens import issue_body_shape
from starcite.api.http.openapi import build_spec
from starcite.core.shapes import Array, Either, Integer, Obj, Text, Timestamp, check_object

PUBLIC_PATHS = {"/v1/sessions", "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/append",
                "/v1/sessions/{session_id}/tail", "/v1/sessions/{session_id}/events",
                "/v1/sessions/{session_id}/archive", "/v1/sessions/{session_id}/unarchive", "/v1/socket/websocket",
                "/health/live", "/health/ready", "/metrics", "/openapi.json",
                "/api/v1/session-tokens"}
ISSUE = issue_body_shape(900)
SESSION_TOKEN = session_token_body_shape(900)
TOKEN_ROUTES = ("/v1/", "/api/v1/")  # what asks for a bearer token in jwt mode


def test_auth_off_document_asks_for_no_token():
    spec = build_spec(None, SESSION_TOKEN)
    assert set(spec["paths"]) == PUBLIC_PATHS
    assert "security" not in spec and "securitySchemes" not in spec["components"]
    for path in spec["paths"].values():
        for operation in path.values():
            assert not {"401", "403"} & set(operation["responses"])


def test_jwt_document_declares_bearer_and_the_issue_route():
    spec = build_spec(ISSUE, SESSION_TOKEN)
    assert set(spec["paths"]) == PUBLIC_PATHS | {"/v1/auth/issue"}
    assert spec["security"] == [{"bearer": []}, {"accessToken": []}]
    assert spec["components"]["securitySchemes"]["accessToken"] == {"type": "apiKey", "in": "query",
                                                                     "name": "access_token"}
    for name, path in spec["paths"].items():
        for operation in path.values():
            assert (operation.get("security") == []) == (not name.startswith(TOKEN_ROUTES)), name
            if name.startswith(TOKEN_ROUTES):
                assert {"401", "403"} <= set(operation["responses"]), name


def test_request_schemas_are_the_validators_shapes():
    spec = build_spec(ISSUE, SESSION_TOKEN)
    body = lambda path, method: spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    assert body("/v1/sessions", "post") == rules.CREATE.schema()
    assert body("/v1/sessions/{session_id}/append", "post") == rules.APPEND.schema()
    assert body("/v1/sessions/{session_id}", "patch") == rules.PATCH.schema()
    assert body("/v1/auth/issue", "post") == ISSUE.schema()
    assert body("/api/v1/session-tokens", "post") == SESSION_TOKEN.schema()
    assert SESSION_TOKEN.schema()["required"] == ["session_id", "principal", "scopes"]
    append = rules.APPEND.schema()
    assert append["required"] == ["type", "payload", "producer_id", "producer_seq"]
    assert append["properties"]["producer_seq"]["minimum"] == 1
    assert append["properties"]["producer_seq"]["maximum"] == 2**63 - 1
    tail = {p["name"]: p for p in spec["paths"]["/v1/sessions/{session_id}/tail"]["get"]["parameters"]}
    assert (tail["cursor"]["schema"]["maximum"], tail["batch_size"]["schema"]["maximum"]) == (2**63 - 1, 1000)
    assert tail["session_id"]["schema"] == rules.SESSION_ID.schema()
    assert tail["Last-Event-ID"]["schema"] == rules.TAIL_CURSOR.schema() and not tail["Upgrade"]["required"]
    responses = spec["paths"]["/v1/sessions/{session_id}/tail"]["get"]["responses"]
    assert set(responses) >= {"101", "200", "400", "404", "426"}
    assert list(responses["200"]["content"]) == ["text/event-stream"]


def test_every_documented_operation_is_served(shared_server):
    for path, operations in build_spec(None, SESSION_TOKEN)["paths"].items():
        for method in operations:
            response = shared_server.request(method.upper(), path.replace("{session_id}", "no-such-session"))
            assert response.status_code not in (405, 500), (method, path, response.text)
            if response.status_code == 404:
                assert response.json()["error"] == "session_not_found", (method, path)


# -- each shape's check agrees with its schema ------------------------------------------------------

def json_schema(openapi: dict) -> dict:
    """OpenAPI 3.0 -> JSON Schema: `nullable: true` becomes "or null"."""
    if isinstance(openapi, list):
        return [json_schema(item) for item in openapi]
    if not isinstance(openapi, dict):
        return openapi
    schema = {key: json_schema(value) for key, value in openapi.items() if key != "nullable"}
    return {"anyOf": [schema, {"type": "null"}]} if openapi.get("nullable") else schema


# Integral floats (1.0) are left out: JSON Schema drafts disagree on whether they are integers.
SCALARS = st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.text(max_size=5) | st.sampled_from(
    ["", ".", "..", "a/b", "ü", "ü" * 65, "a\x85b", "a\tb", "x" * 257, "user", "agent", "session:read", "auth:issue"]) | st.floats(
    allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                         max_size=3), max_leaves=8)


def valid(shape):
    """Values `shape` should accept, drawn from its own bounds."""
    if isinstance(shape, Either):
        return st.one_of([valid(option) for option in shape.shapes])
    if isinstance(shape, Text):
        if shape.choices:
            return st.sampled_from(shape.choices)
        alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E) if shape.alphabet else st.characters()
        return st.text(alphabet, min_size=shape.min_length, max_size=min(shape.max_length or 8, 8) or 1)
    if isinstance(shape, Integer):
        return st.integers(shape.minimum, shape.maximum) | st.sampled_from([shape.minimum, shape.maximum])
    if isinstance(shape, Array):
        return st.lists(valid(shape.items), min_size=shape.min_items, max_size=3)
    if isinstance(shape, Timestamp):
        return st.datetimes(timezones=st.just(datetime.timezone.utc)).map(datetime.datetime.isoformat)
    return candidates(shape) if shape.fields else st.dictionaries(st.text(max_size=3), JSON, max_size=2)


def candidates(shape: Obj):
    """Objects near `shape`: each field mostly valid, sometimes anything; required ones sometimes missing."""
    def near(field):
        return valid(field.shape) | valid(field.shape) | valid(field.shape) | JSON
    required = {f.name: near(f) for f in shape.fields if f.required}
    optional = {f.name: near(f) for f in shape.fields if not f.required}
    body = st.fixed_dictionaries(required, optional={**optional, "stray": JSON})
    return body | body | body | st.fixed_dictionaries({}, optional={**required, **optional}) | JSON


@pytest.mark.parametrize("shape", [rules.APPEND, rules.CREATE, rules.PATCH, ISSUE, SESSION_TOKEN],
                         ids=["append", "create", "patch", "issue", "session-token"])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_check_and_schema_agree(shape, data):
    value = data.draw(candidates(shape))
    # A lone surrogate ("\ud800" in JSON) is refused by every check (nothing downstream could encode it),
    # which no JSON Schema can say: the one place where the check is stricter than its schema.
    assume(_encodable(value))
    validator = jsonschema_rs.Draft4Validator(json_schema(shape.schema()))
    assert _passes(shape, value) == validator.is_valid(value), value


def _encodable(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _passes(shape, value) -> bool:
    try:
        check_object(value, shape, "not an object")
    except Exception:  # noqa: BLE001 - any refusal
        return False
    return True
