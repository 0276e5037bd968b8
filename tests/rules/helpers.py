"""Helpers shared by the rules tests: valid bodies, appends applied to a `GroupState`, comparable dumps.

Owns: the sample timestamps and event keys, building append bodies, applying
them (one or many) to a group, new groups with their sessions created, a
replica's state as plain data, and asserting error tuples and `RuleError`s.
Must not: hold fixtures (those are in conftest.py), start actors, Raft or
HTTP, or touch the clock.
"""

import json

import pytest

from starcite.core import rules
from starcite.core.rules import GroupState, RuleError, SessionState


T0 = "2024-01-01T00:00:00.000000Z"
T1 = "2024-01-01T00:00:01.000000Z"
EVENT_KEYS = {"seq", "cursor", "type", "payload", "actor", "producer_id", "producer_seq", "metadata", "refs",
              "idempotency_key", "inserted_at"}  # "source" only when the append had one


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
