"""Tests of archive acks, the hot tier and replicated state in `starcite.core.rules`.

Owns: `ack_archived` (eviction, byte accounting, never backwards or past
last_seq), `pending`, `hot_range` bounds, `parse_result`, determinism of two
groups fed the same commands, pickling of `GroupState`, and the stateful
property test of random producers, retries, skips and acks against a model.
Must not: start actors, Raft or HTTP, or touch the clock.
"""

import json
import pickle

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from starcite.core import rules
from starcite.core.rules import RuleError
from tests.rules.helpers import (T0, T1, append_many, assert_error, body, do_append, dump, hot_seqs, nbytes_of,
                                 new_group)


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
