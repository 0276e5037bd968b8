"""Unit and property tests of `starcite.rules`, the pure session rules (SPEC §2).

Owns: validation of append/create bodies, seq assignment, producer dedupe,
expected_seq, archive acks and hot-tier accounting, determinism and pickling
of `GroupState`. Must not: start actors, Raft, HTTP or touch the clock.
"""

import json
import pickle

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from starcite import rules
from starcite.rules import SEQ_LIMIT, GroupState, RuleError, SessionState

T0 = "2024-01-01T00:00:00.000000Z"
T1 = "2024-01-01T00:00:01.000000Z"
EVENT_KEYS = {"seq", "type", "payload", "actor", "producer_id", "producer_seq", "source", "metadata", "refs",
              "idempotency_key", "inserted_at"}


# -- helpers ------------------------------------------------------------------


def body(producer_id="p1", producer_seq=1, **extra):
    """A valid append body; ``extra`` adds or overrides fields."""
    return {"type": "note", "payload": {"text": "hi"}, "producer_id": producer_id, "producer_seq": producer_seq,
            **extra}


def nbytes_of(append):
    return len(json.dumps(append["payload"]))


def do_append(group, session_id="s1", inserted_at=T1, **fields):
    """Validate ``body(**fields)`` and apply it to ``group``; return the raw result tuple."""
    append = rules.validate_append(body(**fields))
    return group.append_event(session_id, append, inserted_at, nbytes_of(append))


def append_many(group, count, session_id="s1", producer_id="p1"):
    """Append ``count`` events from one producer (continuing its producer_seq)."""
    known = group.sessions[session_id].producers.get(producer_id)
    start = known[0] + 1 if known else 1
    return [do_append(group, session_id, producer_id=producer_id, producer_seq=start + i, payload={"i": i})
            for i in range(count)]


def new_group(*session_ids):
    group = GroupState()
    for session_id in session_ids or ("s1",):
        assert group.create_session(session_id, f"title {session_id}", {}, T0)[0] == "ok"
    return group


def dump(group):
    """Everything a replica holds, as plain comparable data."""
    return {"hot_bytes": group.hot_bytes,
            "sessions": {sid: {name: getattr(s, name) for name in SessionState.__slots__}
                         for sid, s in group.sessions.items()}}


def hot_seqs(state):
    return [entry[0] for entry in state.hot]


def assert_error(result, status, code):
    assert result[:3] == ("error", status, code), result
    return result[3]


def assert_invalid(validate, value, code):
    with pytest.raises(RuleError) as info:
        validate(value)
    assert (info.value.status, info.value.code) == (400, code)
    return info.value.message


@pytest.fixture
def group():
    return new_group()


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
    assert rules.validate_create({}) == {"id": None, "title": None, "metadata": {}}


@pytest.mark.parametrize("session_id", ["ses_1", "x" * 256, "with space", "...", ".a", "a.", "%2e%2e", "%2F",
                                        "tenant:acme|thread#42?x=1&y=2", "~!*'()[]{}<>;@$,+=^`\"|"])
def test_validate_create_accepts(session_id):
    full = {"id": session_id, "title": "T", "metadata": {"tenant_id": "acme"}}
    assert rules.validate_create(full) == full


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


# -- create_session ---------------------------------------------------------------


def test_create_session_returns_record():
    group = GroupState()
    assert group.create_session("s1", "T", {"a": 1}, T0) == ("ok", {
        "id": "s1", "title": "T", "metadata": {"a": 1}, "last_seq": 0, "created_at": T0, "updated_at": T0})
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
    assert event == {"seq": 1, "type": "note", "payload": {"text": "hi"}, "actor": "agent:x", "producer_id": "p1",
                     "producer_seq": 1, "source": None, "metadata": {}, "refs": {"to_seq": 0},
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


# -- ack_archived, pending, hot_range ----------------------------------------------------------


def test_ack_evicts_hot_events_and_frees_bytes(group):
    append_many(group, 5)
    state = group.sessions["s1"]
    total = state.hot_bytes
    assert total == group.hot_bytes == sum(e[2] for e in state.hot) > 0
    assert group.ack_archived("s1", 3) == ("ok", 3, 3)
    assert hot_seqs(state) == [4, 5]
    assert state.hot_bytes == group.hot_bytes == sum(e[2] for e in state.hot) < total
    assert state.archived_seq == 3


@pytest.mark.parametrize("acks, archived, trimmed", [
    ([5, 3], 5, 0),
    ([5, 5], 5, 0),
    ([100], 10, 10),
    ([0], 0, 0),
    ([-3], 0, 0),
    ([2, 4], 4, 2),
])
def test_ack_never_moves_backwards_or_past_last_seq(group, acks, archived, trimmed):
    append_many(group, 10)
    results = [group.ack_archived("s1", upto) for upto in acks]
    assert results[-1] == ("ok", archived, trimmed)
    assert hot_seqs(group.sessions["s1"]) == list(range(archived + 1, 11))


def test_ack_on_empty_session(group):
    assert group.ack_archived("s1", 7) == ("ok", 0, 0)
    assert group.sessions["s1"].archived_seq == 0


def test_appends_after_full_ack_continue_the_hot_tier(group):
    append_many(group, 3)
    group.ack_archived("s1", 3)
    assert (group.sessions["s1"].hot, group.hot_bytes) == ([], 0)
    append_many(group, 2)
    assert hot_seqs(group.sessions["s1"]) == [4, 5]


def test_pending_lists_sessions_with_unarchived_events():
    group = new_group("a", "b", "c")
    append_many(group, 3, "a")
    append_many(group, 2, "b")
    group.ack_archived("a", 1)
    group.ack_archived("b", 2)
    assert group.pending() == [("a", 1, 3)]


@pytest.mark.parametrize("after, limit, expected", [
    (0, 100, [5, 6, 7, 8, 9, 10]),
    (-5, 100, [5, 6, 7, 8, 9, 10]),
    (4, 100, [5, 6, 7, 8, 9, 10]),
    (6, 2, [7, 8]),
    (9, 5, [10]),
    (10, 5, []),
    (20, 5, []),
    (0, 0, []),
])
def test_hot_range(group, after, limit, expected):
    append_many(group, 10)
    group.ack_archived("s1", 4)
    entries = group.sessions["s1"].hot_range(after, limit)
    assert [e[0] for e in entries] == expected
    assert all(json.loads(e[1])["seq"] == e[0] for e in entries)


def test_hot_range_of_empty_hot_tier(group):
    assert group.sessions["s1"].hot_range(0, 10) == []


# -- parse_result -------------------------------------------------------------------------------


def test_parse_result_raises_error_tuples():
    with pytest.raises(RuleError) as info:
        rules.parse_result(RuleError(409, "expected_seq_conflict", "Expected seq 1, current seq is 2").as_tuple())
    assert (info.value.status, info.value.code, info.value.message) == (
        409, "expected_seq_conflict", "Expected seq 1, current seq is 2")
    assert str(info.value) == "Expected seq 1, current seq is 2"


@pytest.mark.parametrize("result", [("ok", 1, 1, False, "{}"), ("ok", {"id": "s"}), ("ok", 3, 0)])
def test_parse_result_returns_ok_tuples(result):
    assert rules.parse_result(result) is result


# -- determinism and snapshots ---------------------------------------------------------------------


def scripted_commands(group):
    """A fixed mix of creates, appends, retries, conflicts and acks; returns every result."""
    out = [group.create_session("s2", "two", {"m": 1}, T0), group.create_session("s1", "dup", {}, T0)]
    for n in range(1, 6):
        out.append(do_append(group, "s1", producer_seq=n, payload={"n": n}, actor="a"))
        out.append(do_append(group, "s2", producer_id=f"p{n % 2}", producer_seq=(n + 1) // 2, payload={"n": n}))
    out += [do_append(group, "s1", producer_seq=5, payload={"n": 5}, actor="a"),
            do_append(group, "s1", producer_seq=5, payload={"n": 6}),
            do_append(group, "s1", producer_seq=9),
            do_append(group, "s2", producer_id="z", expected_seq=1),
            group.ack_archived("s1", 3), group.ack_archived("s2", 99), group.ack_archived("s1", 2)]
    return out


def test_two_groups_fed_the_same_commands_are_identical():
    left, right = new_group(), new_group()
    assert scripted_commands(left) == scripted_commands(right)
    assert dump(left) == dump(right)
    assert [s.hot for s in left.sessions.values()] == [s.hot for s in right.sessions.values()]


def test_state_survives_pickle_round_trip():
    group = new_group()
    scripted_commands(group)
    restored = pickle.loads(pickle.dumps(group))
    assert dump(restored) == dump(group)
    assert restored.pending() == group.pending()
    # The restored copy keeps behaving exactly like the original.
    assert scripted_commands(restored)[2:] == scripted_commands(group)[2:]
    assert dump(restored) == dump(group)


# -- property: random producers, retries, skips and acks --------------------------------------------

SESSIONS = ("s1", "s2")
PRODUCERS = ("p1", "p2", "p3")
payloads = st.fixed_dictionaries({"v": st.integers(0, 3)}, optional={"t": st.sampled_from(["x", "é"])})


class AppendMachine(RuleBasedStateMachine):
    """Drives a `GroupState` (plus a twin fed the same commands) against a simple model."""

    @initialize()
    def setup(self):
        self.group, self.twin = new_group(*SESSIONS), new_group(*SESSIONS)
        self.last_sent = {}  # (session, producer) -> (body fields, seq it got)
        self.committed = {s: [] for s in SESSIONS}  # seqs handed out, in order
        self.archived = dict.fromkeys(SESSIONS, 0)

    def apply(self, session_id, fields):
        append = rules.validate_append(body(**fields))
        results = [g.append_event(session_id, append, T1, nbytes_of(append)) for g in (self.group, self.twin)]
        assert results[0] == results[1]
        return results[0]

    def last_seq(self, session_id):
        return len(self.committed[session_id])

    def next_producer_seq(self, session_id, producer_id):
        sent = self.last_sent.get((session_id, producer_id))
        return sent[0]["producer_seq"] + 1 if sent else 1

    @rule(session_id=st.sampled_from(SESSIONS), producer_id=st.sampled_from(PRODUCERS), payload=payloads,
          with_expected=st.booleans())
    def append_next(self, session_id, producer_id, payload, with_expected):
        fields = {"producer_id": producer_id, "producer_seq": self.next_producer_seq(session_id, producer_id),
                  "payload": payload}
        if with_expected:
            fields["expected_seq"] = self.last_seq(session_id)
        result = self.apply(session_id, fields)
        seq = self.last_seq(session_id) + 1
        assert result[:4] == ("ok", seq, seq, False)
        assert seq not in self.committed[session_id]
        self.committed[session_id].append(seq)
        self.last_sent[(session_id, producer_id)] = (fields, seq)

    @precondition(lambda self: self.last_sent)
    @rule(data=st.data(), stale_expected=st.booleans())
    def retry_exactly(self, data, stale_expected):
        key = data.draw(st.sampled_from(sorted(self.last_sent)))
        fields, seq = self.last_sent[key]
        if stale_expected:
            fields = {**fields, "expected_seq": max(0, seq - 1)}
        assert self.apply(key[0], fields) == ("ok", seq, self.last_seq(key[0]), True, None)

    @precondition(lambda self: self.last_sent)
    @rule(data=st.data(), payload=payloads)
    def retry_with_other_content(self, data, payload):
        key = data.draw(st.sampled_from(sorted(self.last_sent)))
        fields = self.last_sent[key][0]
        if payload == fields["payload"]:
            payload = {**payload, "changed": True}
        assert_error(self.apply(key[0], {**fields, "payload": payload}), 409, "producer_replay_conflict")

    @rule(session_id=st.sampled_from(SESSIONS), producer_id=st.sampled_from(PRODUCERS),
          delta=st.sampled_from([-3, -2, 1, 2, 5]))
    def skip_or_rewind(self, session_id, producer_id, delta):
        expected = self.next_producer_seq(session_id, producer_id)
        sent = expected + delta if expected + delta >= 1 else expected + 1
        message = assert_error(self.apply(session_id, {"producer_id": producer_id, "producer_seq": sent}),
                               409, "producer_seq_conflict")
        assert f"Expected producer_seq {expected}" in message

    @rule(session_id=st.sampled_from(SESSIONS), producer_id=st.sampled_from(PRODUCERS),
          offset=st.sampled_from([-2, -1, 1, 3]))
    def stale_expected_seq(self, session_id, producer_id, offset):
        expected_seq = max(0, self.last_seq(session_id) + offset)
        if expected_seq == self.last_seq(session_id):
            expected_seq += 1
        fields = {"producer_id": producer_id, "producer_seq": self.next_producer_seq(session_id, producer_id),
                  "expected_seq": expected_seq}
        message = assert_error(self.apply(session_id, fields), 409, "expected_seq_conflict")
        assert message == f"Expected seq {expected_seq}, current seq is {self.last_seq(session_id)}"

    @rule(session_id=st.sampled_from(SESSIONS), data=st.data())
    def ack(self, session_id, data):
        upto = data.draw(st.integers(-1, self.last_seq(session_id) + 2))
        results = [g.ack_archived(session_id, upto) for g in (self.group, self.twin)]
        assert results[0] == results[1]
        new = max(self.archived[session_id], min(upto, self.last_seq(session_id)))
        assert results[0] == ("ok", new, new - self.archived[session_id])
        self.archived[session_id] = new

    @rule()
    def snapshot_and_restore(self):
        self.group = pickle.loads(pickle.dumps(self.group))

    @invariant()
    def seqs_are_gap_free_and_hot_tier_is_exact(self):
        for session_id in SESSIONS:
            state = self.group.sessions[session_id]
            assert self.committed[session_id] == list(range(1, state.last_seq + 1))
            assert state.archived_seq == self.archived[session_id]
            assert hot_seqs(state) == list(range(state.archived_seq + 1, state.last_seq + 1))
            assert [json.loads(e[1])["seq"] for e in state.hot] == hot_seqs(state)
            assert state.hot_bytes == sum(e[2] for e in state.hot)
        assert self.group.hot_bytes == sum(s.hot_bytes for s in self.group.sessions.values())
        assert self.group.pending() == [(s, self.archived[s], self.last_seq(s)) for s in SESSIONS
                                        if self.last_seq(s) > self.archived[s]]

    @invariant()
    def twin_is_identical(self):
        assert dump(self.group) == dump(self.twin)


TestAppendMachine = AppendMachine.TestCase
TestAppendMachine.settings = settings(max_examples=200, stateful_step_count=50, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
