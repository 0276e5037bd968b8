"""The rules of a session's end: delete, expiry and the tombstones a deletion leaves.

Owns: what `DELETE /v1/sessions/:id` and an expiry do to a group's state
(`delete_session`, `expire_sessions`), the expiry time a create asks for
(`expiry_of`), the tombstones (`GroupState.tombstones`: session id ->
``(deleted_at, request)``) that keep a deleted session deleted until the
archive's copy is gone (`deletions_pending`, `forget_deleted`), and which
sessions are due (`expired`). Pure, like `starcite.core.rules`: every time
comes with the command (``deleted_at``, ``decided_at``), so every replica
decides the same from the same log.

Why tombstones: the session leaves memory at once, but its archive copy is
removed later by the leader's archiver (which may be down, or fail over). The
tombstone, replicated and in every snapshot, is the to-do list a new leader
resumes, and while it exists the id cannot be created again (409
``session_deleted``), so nothing can write under the id before the old copy
is gone. Once the archive confirms, a second command (`forget_deleted`)
drops the tombstone and the id is free again. `set_expiry` is the hook a
`PATCH` of the expiry will call.

Must not: read the clock, do I/O, or know about Raft, actors or nodes.
"""

import datetime

from starcite.core.rules import RuleError
from starcite.core.shapes import utc_timestamp


def create_session(group, session_id, title, metadata, created_at, creator_principal=None, request=None,
                   expires_at=None, ttl_seconds=None):
    """`GroupState.create_session` with the expiry the create asked for (`expiry_of`): its result, or the
    error tuple of a refused expiry."""
    try:
        at = expiry_of(created_at, expires_at, ttl_seconds)
    except RuleError as exc:
        return exc.as_tuple()
    return group.create_session(session_id, title, metadata, created_at, creator_principal, request, at)


def expiry_of(created_at: str, expires_at=None, ttl_seconds=None):
    """The session's ``expires_at`` (the node's UTC form) from a create's ``expires_at`` (RFC 3339) and/or
    ``ttl_seconds`` (from ``created_at``): the earlier of the two, or None for no expiry. A time at or
    before ``created_at`` is kept: the session expires at the leader's next expiry check (a client whose
    clock runs behind the node's is not refused)."""
    times = []
    if ttl_seconds is not None:
        try:
            times.append(utc_timestamp((_parse(created_at) + datetime.timedelta(seconds=ttl_seconds)).isoformat()))
        except OverflowError:
            raise RuleError(400, "invalid_session", "ttl_seconds goes past the year 9999") from None
    if expires_at is not None:
        at = utc_timestamp(expires_at)
        if at is None:
            raise RuleError(400, "invalid_session", "expires_at must be an RFC 3339 time with an offset")
        times.append(at)
    return min(times) if times else None


def _parse(iso: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def patch_session(group, session_id, patch: dict, updated_at: str, request=None):
    """`GroupState.patch_session`, and a patch's ``expires_at`` / ``ttl_seconds``: the session's new expiry,
    worked out from the patch's time (`expiry_of`), replaces the old one."""
    expiring = "expires_at" in patch or "ttl_seconds" in patch
    if expiring:
        try:
            expires_at = expiry_of(updated_at, patch.get("expires_at"), patch.get("ttl_seconds"))
        except RuleError as exc:
            return exc.as_tuple()
    result = group.patch_session(session_id, patch, updated_at, request)
    if expiring and result[0] == "ok" and result[2]:
        set_expiry(group, session_id, expires_at)
        result = ("ok", group.sessions[session_id].record(), True)
    return result


def set_expiry(group, session_id, expires_at) -> bool:
    """Give ``session_id`` a new ``expires_at`` (already worked out, `expiry_of`; None: it never expires).
    False when there is no such session."""
    state = group.sessions.get(session_id)
    if state is None:
        return False
    state.expires_at = expires_at
    if expires_at is None:
        group.expiries.pop(session_id, None)
    else:
        group.expiries[session_id] = expires_at
    return True


def delete_session(group, session_id, deleted_at: str, request=None):
    """Remove the session and all its events from ``group`` and leave its tombstone.

    Returns ``("ok", {"id", "deleted_at"})``, or 404 when there is no such session. A repeat carrying
    the same ``request`` token (the node's retry of this very command across a leader change, its
    first attempt committed) is answered as the first attempt was."""
    state = group.sessions.pop(session_id, None)
    if state is None:
        tomb = group.tombstones.get(session_id)
        if tomb is not None and request is not None and tomb[1] == request:
            return ("ok", {"id": session_id, "deleted_at": tomb[0]})
        return RuleError(404, "session_not_found", f"Session {session_id} not found").as_tuple()
    group.hot_bytes -= state.hot_bytes
    group.expiries.pop(session_id, None)
    group.tombstones[session_id] = (deleted_at, request)
    return ("ok", {"id": session_id, "deleted_at": deleted_at})


def expire_sessions(group, session_ids, decided_at: str) -> list:
    """Delete each of ``session_ids`` whose expiry is at or before ``decided_at`` (the leader's clock,
    carried by the command); the others are left alone (their expiry moved, or they are gone). Returns
    the ids deleted."""
    due = [session_id for session_id in session_ids
           if group.expiries.get(session_id) is not None and group.expiries[session_id] <= decided_at]
    for session_id in due:
        delete_session(group, session_id, decided_at)
    return due


def expired(group, now: str) -> list:
    """Ids of the sessions whose expiry is at or before ``now``."""
    return [session_id for session_id, at in group.expiries.items() if at <= now]


def deletions_pending(group) -> list:
    """``[(session_id, deleted_at)]``: deleted sessions whose archive copy is not confirmed gone."""
    return [(session_id, tomb[0]) for session_id, tomb in group.tombstones.items()]


def forget_deleted(group, session_ids) -> int:
    """Drop the tombstones of ``session_ids`` (their archive copies are confirmed gone): the ids can
    be created again. Returns how many were dropped."""
    return sum(group.tombstones.pop(session_id, None) is not None for session_id in session_ids)
