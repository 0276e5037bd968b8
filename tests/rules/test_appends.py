"""Tests of sessions and appends in `starcite.core.rules`: seq assignment, producer dedupe, expected_seq.

Owns: `create_session` (its record, 409 on an existing id), `append_event` and
`append_events` (gap-free seqs across producers, the event JSON and the
record it updates, hot-tier costs, independent sessions, 404), producer
sequencing (gaps, rewinds, exact retries deduped, replays with other
content refused) and expected_seq, and that a refused append changes
nothing. Must not: start actors, Raft or HTTP, or touch the clock.
"""

import json
import pickle

import pytest

from starcite.core import rules
from starcite.core.rules import SEQ_LIMIT, GroupState
from tests.rules.helpers import (EVENT_KEYS, T0, T1, append_many, assert_error, body, do_append, dump,
                                 hot_seqs)


# -- create_session ---------------------------------------------------------------


def test_create_session_returns_record():
    group = GroupState()
    assert group.create_session("s1", "T", {"a": 1}, T0) == ("ok", {
        "id": "s1", "title": "T", "metadata": {"a": 1}, "last_seq": 0, "created_at": T0, "updated_at": T0,
        "version": 1, "archived": False})
    assert group.create_session("s2", None, {}, T0, creator_principal={"id": "u"})[1]["creator_principal"] == {
        "id": "u"}


def test_create_existing_session_is_409_and_keeps_original(group):
    append_many(group, 2)
    message = assert_error(group.create_session("s1", "other", {"b": 2}, T1), 409, "session_exists")
    assert "s1" in message
    assert group.sessions["s1"].record()["title"] == "title s1"
    assert group.sessions["s1"].last_seq == 2


# -- append_event: seq assignment -----------------------------------------------------


def test_seq_starts_at_one_without_gaps_across_producers(group):
    results = [do_append(group, producer_id=p, producer_seq=n) for n in (1, 2) for p in ("a", "b", "c")]
    assert [r[1] for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r[2] for r in results] == [1, 2, 3, 4, 5, 6]
    assert all(r[0] == "ok" and r[3] is False for r in results)
    assert hot_seqs(group.sessions["s1"]) == [1, 2, 3, 4, 5, 6]


def test_append_returns_the_event_json_and_updates_record(group):
    result = do_append(group, inserted_at="2024-05-05T05:05:05Z", actor="agent:x", refs={"to_seq": 0})
    event = json.loads(result[4])
    assert set(event) == EVENT_KEYS
    assert event == {"seq": 1, "cursor": 1, "type": "note", "payload": {"text": "hi"}, "actor": "agent:x",
                     "producer_id": "p1", "producer_seq": 1, "metadata": {}, "refs": {"to_seq": 0},
                     "idempotency_key": None, "inserted_at": "2024-05-05T05:05:05Z"}
    record = group.sessions["s1"].record()
    assert (record["last_seq"], record["updated_at"], record["created_at"]) == (1, "2024-05-05T05:05:05Z", T0)
    assert group.sessions["s1"].hot == [(1, result[4], len(result[4]) + rules.HOT_EVENT_OVERHEAD_BYTES)]


def test_hot_entries_from_an_older_snapshot_are_evicted_with_what_they_charged(group):
    """Snapshots taken before costs were counted hold the request body size in ``hot[i][2]``."""
    append_many(group, 2)
    state = group.sessions["s1"]
    state.hot = [(seq, event_json, 14) for seq, event_json, _cost in state.hot]  # as an old snapshot held them
    state.hot_bytes = group.hot_bytes = 28
    restored = pickle.loads(pickle.dumps(group))
    append_many(restored, 1, producer_id="p2")
    new_cost = restored.sessions["s1"].hot[-1][2]
    assert new_cost == len(restored.sessions["s1"].hot[-1][1]) + rules.HOT_EVENT_OVERHEAD_BYTES
    assert restored.hot_bytes == 28 + new_cost
    assert restored.ack_archived("s1", 2) == ("ok", 2, 2) and restored.hot_bytes == new_cost
    assert restored.ack_archived("s1", 3) == ("ok", 3, 1) and restored.hot_bytes == 0


def test_encode_event_is_compact_and_keeps_unicode():
    assert rules.encode_event({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


def test_sessions_are_independent(group):
    group.create_session("s2", None, {}, T0)
    append_many(group, 3, "s1")
    assert do_append(group, "s2", producer_id="p1", producer_seq=1)[:4] == ("ok", 1, 1, False)
    assert (group.sessions["s1"].last_seq, group.sessions["s2"].last_seq) == (3, 1)


def test_unknown_session_is_404(group):
    message = assert_error(do_append(group, "nope"), 404, "session_not_found")
    assert "nope" in message
    assert_error(group.ack_archived("nope", 1), 404, "session_not_found")


def test_append_events_applies_in_order_with_one_result_each(group):
    items = [("s1", rules.validate_append(body(producer_seq=n)), T1, 10) for n in (1, 3, 2)]
    results = group.append_events(items)
    assert results[0][:4] == ("ok", 1, 1, False)
    assert_error(results[1], 409, "producer_seq_conflict")
    assert results[2][:4] == ("ok", 2, 2, False)


# -- append_event: producer sequencing ---------------------------------------------------


@pytest.mark.parametrize("committed, sent", [(0, 2), (0, 5), (3, 5), (3, 2), (3, 1), (3, 100)])
def test_producer_gap_or_rewind_is_conflict_naming_expected(group, committed, sent):
    append_many(group, committed)
    result = do_append(group, producer_seq=sent)
    message = assert_error(result, 409, "producer_seq_conflict")
    assert f"Expected producer_seq {committed + 1}" in message
    assert result[4] == {"expected_producer_seq": committed + 1}  # the body field (`StarciteError.extra`)
    assert "p1" in message and str(sent) in message


def test_exact_retry_of_last_producer_seq_is_deduped(group):
    first = do_append(group, producer_seq=1, payload={"a": 1})
    do_append(group, producer_id="other", producer_seq=1)
    before = dump(group)
    retry = do_append(group, producer_seq=1, payload={"a": 1}, inserted_at="2030-01-01T00:00:00Z")
    assert retry == ("ok", first[1], 2, True, None)
    assert dump(group) == before


def test_retry_with_reordered_payload_keys_is_the_same_content(group):
    do_append(group, payload={"a": 1, "b": {"c": 2, "d": 3}})
    assert do_append(group, payload={"b": {"d": 3, "c": 2}, "a": 1})[3] is True


@pytest.mark.parametrize("field, value", [
    ("type", "other"),
    ("payload", {"text": "bye"}),
    ("payload", {"text": "hi", "extra": None}),
    ("actor", "agent:2"),
    ("source", "cli"),
    ("metadata", {"k": "v"}),
    ("refs", {"to_seq": 0}),
    ("idempotency_key", "idem"),
])
def test_same_producer_seq_with_other_content_is_replay_conflict(group, field, value):
    do_append(group)
    before = dump(group)
    message = assert_error(do_append(group, **{field: value}), 409, "producer_replay_conflict")
    assert "p1" in message and "1" in message
    assert dump(group) == before


def test_only_the_last_producer_seq_is_deduped(group):
    append_many(group, 2)
    assert_error(do_append(group, producer_seq=1, payload={"i": 0}), 409, "producer_seq_conflict")


def test_a_huge_producer_seq_is_a_conflict_not_a_crash(group):
    assert_error(do_append(group, producer_seq=SEQ_LIMIT), 409, "producer_seq_conflict")


# -- append_event: expected_seq ---------------------------------------------------------


@pytest.mark.parametrize("committed", [0, 1, 42])
def test_matching_expected_seq_appends(group, committed):
    append_many(group, committed)
    assert do_append(group, producer_id="q", expected_seq=committed)[:4] == ("ok", committed + 1, committed + 1,
                                                                              False)


@pytest.mark.parametrize("committed, expected", [(42, 41), (42, 43), (0, 1), (5, 0)])
def test_mismatched_expected_seq_is_conflict(group, committed, expected):
    append_many(group, committed)
    message = assert_error(do_append(group, producer_id="q", expected_seq=expected), 409, "expected_seq_conflict")
    assert message == f"Expected seq {expected}, current seq is {committed}"


def test_dedupe_is_checked_before_expected_seq(group):
    first = do_append(group, expected_seq=0)
    append_many(group, 3, producer_id="other")
    assert do_append(group, expected_seq=0) == ("ok", first[1], 4, True, None)


@pytest.mark.parametrize("bad", [
    {"producer_seq": 3},
    {"producer_seq": 2, "expected_seq": 0},
    {"producer_seq": 1, "payload": {"changed": True}},
])
def test_refused_append_has_no_side_effect(group, bad):
    do_append(group)
    before = dump(group)
    assert do_append(group, **bad)[0] == "error"
    assert dump(group) == before
    assert do_append(group, producer_seq=2, expected_seq=1)[:4] == ("ok", 2, 2, False)


# -- the node's own retries (a request token in the command) ---------------------------


def test_a_retried_append_that_finds_its_own_commit_is_not_deduped(group):
    """The node retried across a leader change: the first attempt committed, its answer was lost."""
    append = dict(rules.validate_append(body(payload={"a": 1})), request=7)
    first = group.append_event("s1", append, T1, 10)
    do_append(group, producer_id="other", producer_seq=1)
    before = dump(group)
    retry = group.append_event("s1", dict(append), "2030-01-01T00:00:00Z", 10)
    assert retry == ("ok", first[1], 2, False, None)
    assert dump(group) == before


@pytest.mark.parametrize("token", [8, None], ids=["another-request", "no-token"])
def test_a_repeat_from_another_request_is_deduped(group, token):
    append = rules.validate_append(body(payload={"a": 1}))
    group.append_event("s1", dict(append, request=7), T1, 10)
    assert group.append_event("s1", dict(append, request=token), T1, 10)[3] is True


def test_a_retried_create_that_finds_its_own_session_is_created_not_409(group):
    assert group.create_session("s9", "T", {}, T0, None, 42) == ("ok", group.sessions["s9"].record())
    append_many(group, 2, session_id="s9")
    assert group.create_session("s9", "T", {}, T1, None, 42) == ("ok", group.sessions["s9"].record())
    assert group.sessions["s9"].last_seq == 2
    assert_error(group.create_session("s9", "T", {}, T1, None, 43), 409, "session_exists")
    assert_error(group.create_session("s9", "T", {}, T1, None, None), 409, "session_exists")


def test_state_pickled_before_request_tokens_loads_and_dedupes():
    """Snapshots written before the tokens: sessions without create_request, producers as 3-tuples."""
    group = GroupState()
    group.create_session("s1", "T", {}, T0)
    do_append(group, payload={"a": 1})
    state = group.sessions["s1"]
    state.producers = {p: known[:3] for p, known in state.producers.items()}
    old = pickle.loads(pickle.dumps(group))
    old.sessions["s1"].__setstate__(state.__getstate__()[:-1])  # no create_request slot
    assert old.sessions["s1"].create_request is None
    assert do_append(old, payload={"a": 1})[3] is True
    assert_error(old.create_session("s1", "T", {}, T1, None, 5), 409, "session_exists")
