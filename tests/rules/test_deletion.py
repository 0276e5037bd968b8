"""Tests of `starcite.core.deletion`: delete, tombstones, expiry, and the create rules around them.

Owns: what a delete removes (the session, its hot events and their bytes, its
expiry), its tombstone (create refused until it is dropped, a retried delete
with its own token answered as the first), `expiry_of` (expires_at, ttl_seconds,
refusals), `expired`/`expire_sessions` with the decision time from the command,
`forget_deleted`, determinism and pickling (old snapshots without the new
fields load). Must not: start actors, Raft or HTTP, or touch the clock.
"""

import pickle

import pytest

from starcite.core import deletion, rules
from starcite.core.rules import GroupState, RuleError
from tests.rules.helpers import T0, T1, append_many, assert_error, assert_invalid, dump, new_group

T2 = "2024-01-01T00:00:02.000000Z"
T9 = "2024-01-01T00:00:09.000000Z"
LATER = "2024-01-01T01:00:00.000000Z"


def create(group, session_id="e1", created_at=T0, request=None, **expiry):
    return deletion.create_session(group, session_id, None, {}, created_at, None, request, **expiry)


# -- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_session_its_events_and_their_bytes(group):
    other = new_group("s1", "s2")
    append_many(group, 5)
    append_many(other, 5, "s2")
    assert group.hot_bytes > 0
    assert deletion.delete_session(group, "s1", T1, request=7) == ("ok", {"id": "s1", "deleted_at": T1})
    assert group.sessions == {} and group.hot_bytes == 0
    assert group.tombstones == {"s1": (T1, 7)}
    assert deletion.deletions_pending(group) == [("s1", T1)]
    assert_error(group.append_event("s1", rules.validate_append({"type": "t", "payload": {}, "producer_id": "p",
                                                                 "producer_seq": 1}), T2, 1), 404, "session_not_found")
    assert group.pending() == []
    deletion.delete_session(other, "s1", T1)
    assert list(other.sessions) == ["s2"] and other.hot_bytes == other.sessions["s2"].hot_bytes > 0


def test_delete_of_an_unknown_or_deleted_session_is_404_except_its_own_retry(group):
    assert_error(deletion.delete_session(group, "nope", T1), 404, "session_not_found")
    deletion.delete_session(group, "s1", T1, request=7)
    assert deletion.delete_session(group, "s1", T2, request=7) == ("ok", {"id": "s1", "deleted_at": T1})
    assert_error(deletion.delete_session(group, "s1", T2, request=8), 404, "session_not_found")
    assert_error(deletion.delete_session(group, "s1", T2), 404, "session_not_found")


def test_a_deleted_id_cannot_be_created_until_its_tombstone_is_dropped(group):
    deletion.delete_session(group, "s1", T1)
    assert_error(group.create_session("s1", None, {}, T2), 409, "session_deleted")
    assert deletion.forget_deleted(group, ["s1", "unknown"]) == 1
    assert deletion.deletions_pending(group) == []
    assert group.create_session("s1", "again", {}, T2)[0] == "ok"
    assert group.sessions["s1"].last_seq == 0


def test_a_create_retried_with_the_deleted_sessions_token_does_not_bring_it_back():
    group = GroupState()
    assert create(group, "c", request=5)[0] == "ok"
    deletion.delete_session(group, "c", T1)
    assert_error(create(group, "c", created_at=T2, request=5), 409, "session_deleted")
    assert "c" not in group.sessions


# -- expiry -------------------------------------------------------------------------------------


def test_expiry_of_forms_and_refusals():
    assert deletion.expiry_of(T0) is None
    assert deletion.expiry_of(T0, ttl_seconds=9) == T9
    assert deletion.expiry_of(T0, expires_at="2024-01-01T02:00:09+02:00") == T9
    assert deletion.expiry_of(T0, expires_at=LATER, ttl_seconds=9) == T9  # the earlier of the two
    assert deletion.expiry_of(T0, expires_at=T1, ttl_seconds=9) == T1
    assert deletion.expiry_of(T1, expires_at=T0) == T0  # in the past: due at once, not refused
    with pytest.raises(RuleError, match="RFC 3339"):
        deletion.expiry_of(T0, expires_at="soon")
    with pytest.raises(RuleError, match="9999"):
        deletion.expiry_of("9999-12-31T23:59:59.000000Z", ttl_seconds=10)


def test_create_validation_of_the_expiry_fields():
    spec = rules.validate_create({"id": "x", "ttl_seconds": 60})
    assert spec["ttl_seconds"] == 60 and spec["expires_at"] is None
    assert rules.validate_create({"expires_at": "2030-01-01T00:00:00Z"})["expires_at"] == "2030-01-01T00:00:00Z"
    for bad in ({"ttl_seconds": 0}, {"ttl_seconds": "60"}, {"ttl_seconds": True}, {"ttl_seconds": 1.5},
                {"ttl_seconds": rules.TTL_SECONDS_MAX + 1}, {"expires_at": "tomorrow"},
                {"expires_at": "2030-01-01T00:00:00"}, {"expires_at": 1700000000}):
        assert_invalid(rules.validate_create, bad, "invalid_session")


def test_an_expiring_session_shows_its_expiry_and_is_due_from_then():
    group = GroupState()
    assert create(group, "e1", ttl_seconds=9)[1]["expires_at"] == T9
    assert create(group, "e2", expires_at=LATER)[0] == "ok"
    assert create(group, "never")[0] == "ok" and "expires_at" not in group.sessions["never"].record()
    assert create(group, "past", created_at=T1, expires_at=T0)[0] == "ok"
    assert deletion.expired(group, T2) == ["past"]
    deletion.expire_sessions(group, ["past"], T2)
    assert deletion.expired(group, T2) == []
    assert deletion.expired(group, T9) == ["e1"]
    assert sorted(deletion.expired(group, LATER)) == ["e1", "e2"]


def test_expire_deletes_only_what_is_due_at_the_commands_time():
    group = GroupState()
    create(group, "e1", ttl_seconds=9)
    create(group, "e2", expires_at=LATER)
    create(group, "never")
    # a command decided at T9 names e2 and never too (e.g. a stale list): only e1 goes
    assert deletion.expire_sessions(group, ["e1", "e2", "never", "gone"], T9) == ["e1"]
    assert sorted(group.sessions) == ["e2", "never"]
    assert group.tombstones == {"e1": (T9, None)}
    assert deletion.expire_sessions(group, ["e1"], LATER) == []  # a repeat changes nothing
    assert deletion.expired(group, LATER) == ["e2"]


def test_deleting_an_expiring_session_drops_its_expiry():
    group = GroupState()
    create(group, "e1", ttl_seconds=9)
    deletion.delete_session(group, "e1", T1)
    assert group.expiries == {} and deletion.expired(group, LATER) == []


def test_set_expiry_moves_or_clears_it():
    group = GroupState()
    create(group, "e1", ttl_seconds=9)
    assert deletion.set_expiry(group, "e1", LATER) and deletion.expired(group, T9) == []
    assert group.sessions["e1"].record()["expires_at"] == LATER
    assert deletion.set_expiry(group, "e1", None) and deletion.expired(group, LATER) == []
    assert "expires_at" not in group.sessions["e1"].record()
    assert not deletion.set_expiry(group, "nope", T9)


def test_a_patch_gives_a_new_expiry_from_its_own_time():
    group = GroupState()
    create(group, "e1", ttl_seconds=9)
    result = deletion.patch_session(group, "e1", rules.validate_patch({"ttl_seconds": 1}), T1)
    assert result[0] == "ok" and result[2] and result[1]["expires_at"] == T2 and result[1]["version"] == 2
    assert deletion.expired(group, T2) == ["e1"]
    both = rules.validate_patch({"ttl_seconds": 3600, "expires_at": T9})  # the earlier wins
    assert deletion.patch_session(group, "e1", both, T1)[1]["expires_at"] == T9
    plain = deletion.patch_session(group, "e1", rules.validate_patch({"title": "t"}), T2)
    assert plain[1]["expires_at"] == T9  # a patch without expiry fields keeps the expiry
    assert_error(deletion.patch_session(group, "nope", rules.validate_patch({"ttl_seconds": 5}), T1), 404,
                 "session_not_found")


# -- replicas -----------------------------------------------------------------------------------


def test_two_replicas_fed_the_same_commands_agree():
    def replay():
        group = new_group("s1", "s2")
        append_many(group, 3)
        create(group, "e1", ttl_seconds=1)
        deletion.delete_session(group, "s1", T1, request=3)
        deletion.expire_sessions(group, ["e1"], T2)
        deletion.forget_deleted(group, ["e1"])
        return dump(group), group.tombstones, group.expiries
    assert replay() == replay()


def test_group_state_pickles_with_tombstones_and_expiries_and_old_snapshots_load():
    group = new_group("s1")
    create(group, "e1", ttl_seconds=9)
    deletion.delete_session(group, "s1", T1)
    copy = pickle.loads(pickle.dumps(group))
    assert copy.tombstones == group.tombstones and copy.expiries == group.expiries
    assert copy.sessions["e1"].expires_at == T9
    old = GroupState()
    old.sessions = new_group("s1").sessions
    state = {"sessions": old.sessions, "hot_bytes": 0}  # a snapshot from before deletion existed
    restored = GroupState.__new__(GroupState)
    restored.__setstate__(state)
    assert restored.tombstones == {} and restored.expiries == {} and list(restored.sessions) == ["s1"]
    session_state = old.sessions["s1"].__getstate__()[:-1]  # a SessionState pickled without expires_at
    restored_session = rules.SessionState.__new__(rules.SessionState)
    restored_session.__setstate__(session_state)
    assert restored_session.expires_at is None and restored_session.id == "s1"
