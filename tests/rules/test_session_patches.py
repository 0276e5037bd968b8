"""Tests of a session's record changes in `starcite.core.rules` and the shapes in `starcite.core.records`.

Owns: `validate_patch`, `patch_session` (title set and cleared, metadata merged
shallowly, version +1, expected_version, the immutable tenant, the retried
patch applied once, 404), `set_archived` (idempotent, version unchanged),
the record's `version`/`archived`/`tenant_id`, snapshots from before those
fields, the archived filter (`listed`), `complete_record`, and the event
shape (`render_event`, `event_json_of` for events an earlier build stored).
Must not: start actors, Raft or HTTP, or touch the clock.
"""

import json
import pickle

import pytest

from starcite.core import records, rules
from starcite.core.rules import GroupState
from tests.rules.helpers import T0, T1, assert_error, assert_invalid, do_append

T2 = "2024-01-01T00:00:02.000000Z"


def patched(group, patch_body, session_id="s1", updated_at=T1, request=None):
    return group.patch_session(session_id, rules.validate_patch(patch_body), updated_at, request)


# -- validate_patch ---------------------------------------------------------------


def test_validate_patch_keeps_title_only_when_given_and_null_clears():
    assert rules.validate_patch({"title": "x"}) == {"title": "x", "expected_version": None}
    assert rules.validate_patch({"title": None}) == {"title": None, "expected_version": None}
    assert rules.validate_patch({"metadata": {"a": 1}, "expected_version": 3}) == {
        "metadata": {"a": 1}, "expected_version": 3}


@pytest.mark.parametrize("body, code", [
    ({}, "invalid_session"),
    ({"metadata": {}}, "invalid_metadata"),
    ({"metadata": None}, "invalid_session"),
    ({"expected_version": 1}, "invalid_session"),
    ({"title": 5}, "invalid_session"),
    ({"title": "x", "expected_version": 0}, "invalid_session"),
    ({"title": "x", "expected_version": True}, "invalid_session"),
    ({"metadata": []}, "invalid_metadata"),
    ({"title": "x", "other": 1}, "invalid_session"),
    ([], "invalid_session"),
    (None, "invalid_session"),
])
def test_validate_patch_refuses(body, code):
    assert_invalid(rules.validate_patch, body, code)


def test_create_accepts_and_ignores_creator_principal():
    spec = rules.validate_create({"id": "s", "creator_principal": {"tenant_id": "t", "id": "u", "type": "user"}})
    assert spec == {"id": "s", "title": None, "metadata": {}, "expires_at": None, "ttl_seconds": None}
    assert_invalid(rules.validate_create, {"creator_principal": "me"}, "invalid_session")


# -- patch_session ----------------------------------------------------------------


def test_a_session_starts_at_version_one_not_archived(group):
    record = group.sessions["s1"].record()
    assert (record["version"], record["archived"]) == (1, False)
    assert "tenant_id" not in record


def test_patch_sets_title_merges_metadata_and_counts_versions():
    group = GroupState()
    group.create_session("s1", "T", {"a": 1, "b": {"x": 1}}, T0)
    ok, record, applied = patched(group, {"title": "U", "metadata": {"b": {"y": 2}, "c": 3}})
    assert (ok, applied) == ("ok", True)
    assert record["title"] == "U" and record["metadata"] == {"a": 1, "b": {"y": 2}, "c": 3}
    assert (record["version"], record["updated_at"], record["created_at"]) == (2, T1, T0)
    record = patched(group, {"title": None}, updated_at=T2)[1]
    assert record["title"] is None and record["version"] == 3 and record["metadata"]["a"] == 1
    record = patched(group, {"metadata": {"a": None}})[1]
    assert record["metadata"]["a"] is None and record["version"] == 4  # shallow: a null value is a value


def test_expected_version_conflict_names_the_current_version_and_changes_nothing(group):
    assert patched(group, {"title": "A", "expected_version": 1})[1]["version"] == 2
    result = patched(group, {"title": "B", "expected_version": 1})
    assert_error(result, 409, "expected_version_conflict")
    assert result[4] == {"current_version": 2}
    with pytest.raises(rules.RuleError) as info:
        rules.parse_result(result)
    assert info.value.extra == {"current_version": 2}
    assert group.sessions["s1"].record()["title"] == "A"


def test_the_tenant_of_a_session_never_changes():
    group = GroupState()
    group.create_session("s1", None, {"tenant_id": "acme"}, T0)
    assert group.sessions["s1"].record()["tenant_id"] == "acme"
    assert_error(patched(group, {"metadata": {"tenant_id": "other"}}), 400, "invalid_metadata")
    assert_error(patched(group, {"metadata": {"tenant_id": None}}), 400, "invalid_metadata")
    record = patched(group, {"metadata": {"tenant_id": "acme", "k": "v"}})[1]
    assert record["metadata"] == {"tenant_id": "acme", "k": "v"} and record["tenant_id"] == "acme"
    untenanted = GroupState()
    untenanted.create_session("s1", None, {}, T0)
    assert_error(patched(untenanted, {"metadata": {"tenant_id": "acme"}}), 400, "invalid_metadata")


def test_a_retried_patch_with_its_own_request_token_is_applied_once(group):
    first = patched(group, {"title": "A", "expected_version": 1}, request=7)
    again = patched(group, {"title": "A", "expected_version": 1}, request=7)
    assert first[1]["version"] == again[1]["version"] == 2 and again[2] is False
    assert_error(patched(group, {"title": "A", "expected_version": 1}, request=8), 409,
                 "expected_version_conflict")


def test_patch_and_archive_of_an_unknown_session_are_404(group):
    assert_error(patched(group, {"title": "x"}, session_id="nope"), 404, "session_not_found")
    assert_error(group.set_archived("nope", True, T1), 404, "session_not_found")


# -- set_archived -----------------------------------------------------------------


def test_archive_and_unarchive_are_idempotent_and_keep_the_version(group):
    ok, record, changed = group.set_archived("s1", True, T1)
    assert (ok, changed, record["archived"], record["version"], record["updated_at"]) == ("ok", True, True, 1, T1)
    assert group.set_archived("s1", True, T2)[1:] == (record, False)
    ok, record, changed = group.set_archived("s1", False, T2)
    assert (changed, record["archived"], record["updated_at"]) == (True, False, T2)


def test_an_archived_session_still_takes_appends(group):
    group.set_archived("s1", True, T1)
    assert do_append(group)[:2] == ("ok", 1)
    assert group.sessions["s1"].record()["archived"] is True


# -- snapshots of an earlier build --------------------------------------------------


def test_state_pickled_before_versions_loads_with_version_one_not_archived(group):
    patched(group, {"title": "A"})
    group.set_archived("s1", True, T1)
    state = group.sessions["s1"]
    old_state = state.__getstate__()[:-4]  # no version, archived, patch_request, expires_at slots
    restored = pickle.loads(pickle.dumps(group))
    restored.sessions["s1"].__setstate__(old_state)
    record = restored.sessions["s1"].record()
    assert (record["version"], record["archived"], record["title"]) == (1, False, "A")
    assert patched(restored, {"title": "B", "expected_version": 1})[1]["version"] == 2
    reloaded = pickle.loads(pickle.dumps(group))
    assert reloaded.sessions["s1"].record() == group.sessions["s1"].record()


# -- the archived filter and records from the index ---------------------------------


@pytest.mark.parametrize("archived, filter_, shown", [
    (False, "false", True), (True, "false", False), (False, "true", False), (True, "true", True),
    (False, "all", True), (True, "all", True)])
def test_listed(archived, filter_, shown):
    assert records.listed({"archived": archived}, filter_) is shown


def test_complete_record_fills_what_an_earlier_build_did_not_index():
    assert records.complete_record({"id": "s", "metadata": {"tenant_id": "t"}}) == {
        "id": "s", "metadata": {"tenant_id": "t"}, "version": 1, "archived": False, "tenant_id": "t"}
    assert "tenant_id" not in records.complete_record({"id": "s", "metadata": {}})


# -- the event shape ----------------------------------------------------------------


def test_events_carry_a_cursor_a_default_actor_and_no_null_source(group):
    event = json.loads(do_append(group)[4])
    assert event["cursor"] == event["seq"] == 1
    assert event["actor"] == records.DEFAULT_ACTOR == "service:service"
    assert "source" not in event
    event = json.loads(do_append(group, producer_seq=2, source="cli", actor="user:u")[4])
    assert (event["source"], event["actor"]) == ("cli", "user:u")


def test_event_json_of_renders_an_earlier_builds_event_again_and_passes_current_ones():
    old = ('{"seq":4,"type":"t","payload":{"cursor":1},"actor":null,"producer_id":"p","producer_seq":2,'
           '"source":null,"metadata":{},"refs":{},"idempotency_key":null,"inserted_at":"' + T0 + '"}')
    event = json.loads(records.event_json_of(old))
    assert event == {"seq": 4, "cursor": 4, "type": "t", "payload": {"cursor": 1}, "actor": "service:service",
                     "producer_id": "p", "producer_seq": 2, "metadata": {}, "refs": {}, "idempotency_key": None,
                     "inserted_at": T0}
    current = records.event_json_of(old)
    assert records.event_json_of(current) is current
    kept = json.loads(records.event_json_of(old.replace('"source":null', '"source":"web"')
                                            .replace('"actor":null', '"actor":"agent:a"')))
    assert (kept["source"], kept["actor"]) == ("web", "agent:a")
