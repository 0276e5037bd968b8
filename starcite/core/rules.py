"""The session rules: validation, seq assignment, producer dedupe, expected_seq, archive progress, patches.

Owns: every decision about what an append, a create, a patch, an archive or
unarchive, or an archive ack does to a group's state, and the shapes of
session records and events (`event_json_of`: the one renderer of an event). It is pure:
no I/O, no clock, no actors, no Raft. The Raft state machine calls it with
commands that already carry their timestamps, so every replica computes the
same result from the same log.

Must not: read the time, touch files or sockets, or know which node it runs
on. Anything non-deterministic belongs to the caller.
"""

import hashlib
import json

from starcite.core.errors import StarciteError
from starcite.core.records import encode_event, render_event, tenant_of
from starcite.core.shapes import Either, Field, Integer, Obj, Text, Timestamp, check_object

SEQ_LIMIT = 2**63 - 1
TTL_SECONDS_MAX = 100 * 365 * 24 * 3600  # a century: past it, say "no expiry" by leaving the expiry out
# Memory one hot event costs beyond its JSON characters: its objects (the (seq, json, cost) tuple 64,
# the str header 49, two ints 56, the list slot: ~180 by CPython 3.11's sizes) plus what the bench
# `memory` row measured beyond those and the Raft log (allocator rounding and fragmentation: ~140).
# See docs/archives.md "What the cap counts".
HOT_EVENT_OVERHEAD_BYTES = 320
_EVENT_FIELDS = ("type", "payload", "actor", "source", "metadata", "refs", "idempotency_key")


class RuleError(StarciteError):
    """A request the rules refuse."""

    def as_tuple(self):
        base = ("error", self.status, self.code, self.message)
        return base + (self.extra,) if self.extra else base


# -- request shapes: each is both the validator and the OpenAPI schema (`starcite.api.http.openapi`) --------

# A session id is one URL path segment that every client can address: no control characters, no
# separators '/' and '\' (URL parsers treat a backslash as '/'), and not the dot segments '.' and '..',
# which clients resolve before sending (POST /v1/sessions/../append would reach /v1/append). Every other
# character is percent-encoded by a client building the path and reaches the session unchanged. Up to
# 256 ASCII characters, or up to 64 of any other kind (256 bytes of UTF-8 at most either way: archive
# keys are built from it).
_ID_REFUSED = (".", "..")
SESSION_ID = Either((
    Text(min_length=1, max_length=256, alphabet=r"[\x20-\x2e\x30-\x5b\x5d-\x7e]", refused=_ID_REFUSED),
    Text(min_length=1, max_length=64, alphabet=r"[^\x00-\x1f\x7f-\x9f/\\]", refused=_ID_REFUSED),
))
SESSION_ID_RULE = ("1 to 256 printable ASCII characters, or 1 to 64 characters of any script, without control "
                   "characters, '/' or '\\', and not '.' or '..'")
SEQ = Integer(0, SEQ_LIMIT)

_NON_EMPTY = Text(min_length=1)
REFS = Obj(code="invalid_refs", fields=(
    Field("to_seq", SEQ, "refs.to_seq must be a non-negative integer"),
    Field("step", SEQ, "refs.step must be a non-negative integer"),
    Field("request_id", Text(), "refs.request_id must be a string"),
    Field("sequence_id", Text(), "refs.sequence_id must be a string"),
))
APPEND = Obj(closed=True, code="invalid_event", fields=(
    Field("type", _NON_EMPTY, "type is required and must be a non-empty string", required=True),
    Field("payload", Obj(), "payload is required and must be an object", required=True),
    Field("producer_id", _NON_EMPTY, "producer_id is required and must be a non-empty string", required=True),
    Field("producer_seq", Integer(1, SEQ_LIMIT), "producer_seq is required and must be an integer >= 1",
          required=True),
    Field("actor", _NON_EMPTY, "actor must be a non-empty string"),
    Field("source", _NON_EMPTY, "source must be a non-empty string"),
    Field("metadata", Obj(), "metadata must be an object", code="invalid_metadata"),
    Field("refs", REFS, "refs must be an object", code="invalid_refs"),
    Field("idempotency_key", Text(), "idempotency_key must be a string"),
    Field("expected_seq", SEQ, "expected_seq must be an integer >= 0"),
))
CREATE = Obj(closed=True, code="invalid_session", fields=(
    Field("id", SESSION_ID, f"id must be {SESSION_ID_RULE}"),
    Field("title", Text(), "title must be a string"),
    Field("metadata", Obj(), "metadata must be an object", code="invalid_metadata"),
    # Sent by the newest TypeScript SDK; accepted and ignored, as upstream does: the creator is the
    # token's principal (or none with auth off), never what the body claims.
    Field("creator_principal", Obj(), "creator_principal must be an object"),
    Field("expires_at", Timestamp(), "expires_at must be an RFC 3339 time with an offset"),
    Field("ttl_seconds", Integer(1, TTL_SECONDS_MAX), f"ttl_seconds must be an integer from 1 to {TTL_SECONDS_MAX}"),
))
PATCH = Obj(closed=True, code="invalid_session", any_of=("title", "metadata", "expires_at", "ttl_seconds"),
            any_of_message="a patch needs title, a non-empty metadata, expires_at or ttl_seconds", fields=(
    Field("title", Text(), "title must be a string or null", null_is_value=True),
    Field("metadata", Obj(min_properties=1), "metadata must be a non-empty object", code="invalid_metadata"),
    Field("expected_version", Integer(1, SEQ_LIMIT), "expected_version must be an integer >= 1"),
    # A new expiry, from the patch's time (the earlier of the two when both are given; `deletion.patch_session`).
    Field("expires_at", Timestamp(), "expires_at must be an RFC 3339 time with an offset"),
    Field("ttl_seconds", Integer(1, TTL_SECONDS_MAX), f"ttl_seconds must be an integer from 1 to {TTL_SECONDS_MAX}"),
))
# Query parameters.
LIST_LIMIT = Integer(1, 1000)
TAIL_CURSOR = SEQ
TAIL_BATCH_SIZE = Integer(1, 1000)
EVENTS_LIMIT = Integer(1, 1000)
EVENTS_WAIT_MS = Integer(0, 30000)


def validate_append(body) -> dict:
    """Check an append body; return the normalised append input (no seq, no time yet)."""
    check_object(body, APPEND, "body must be a JSON object", RuleError)
    return {
        "type": body["type"],
        "payload": body["payload"],
        "actor": body.get("actor"),
        "producer_id": body["producer_id"],
        "producer_seq": body["producer_seq"],
        "source": body.get("source"),
        "metadata": body.get("metadata") or {},
        "refs": body.get("refs") or {},
        "idempotency_key": body.get("idempotency_key"),
        "expected_seq": body.get("expected_seq"),
    }


def validate_create(body) -> dict:
    """Check a create body (the API passes ``{}`` when there is none); return ``{id|None, title, metadata,
    expires_at|None, ttl_seconds|None}`` (the expiry is worked out by the command: `deletion.expiry_of`)."""
    check_object(body, CREATE, "body must be a JSON object", RuleError)
    return {"id": body.get("id"), "title": body.get("title"), "metadata": body.get("metadata") or {},
            "expires_at": body.get("expires_at"), "ttl_seconds": body.get("ttl_seconds")}


def validate_patch(body) -> dict:
    """Check a PATCH body; return ``{title?, metadata?, expires_at?, ttl_seconds?, expected_version}``:
    ``title`` only when the body has it (``None`` clears it), ``metadata`` only when given (merged
    shallowly), the expiry fields when given. A patch that changes nothing (none of those; an empty
    metadata) is 400, as upstream has it."""
    check_object(body, PATCH, "body must be a JSON object", RuleError)
    patch = {"expected_version": body.get("expected_version")}
    if "title" in body:
        patch["title"] = body["title"]
    if body.get("metadata") is not None:
        patch["metadata"] = body["metadata"]
    for field in ("expires_at", "ttl_seconds"):
        if body.get(field) is not None:
            patch[field] = body[field]
    return patch


def hot_cost(event_json: str) -> int:
    """Bytes one hot event is charged against the cap: its JSON plus `HOT_EVENT_OVERHEAD_BYTES`."""
    return len(event_json) + HOT_EVENT_OVERHEAD_BYTES


def fingerprint(append: dict) -> bytes:
    """Digest of the content a producer retry must repeat exactly."""
    content = json.dumps([append.get(k) for k in _EVENT_FIELDS], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(content.encode(), digest_size=16).digest()


class SessionState:
    """One session inside a group: its record, producer cursors and hot events.

    ``hot`` holds ``(seq, event_json, cost)`` for committed events that are not
    yet archived; ``hot[0]`` has seq ``archived_seq + 1`` once anything is hot.
    ``cost`` is what the event holds in memory (`hot_cost`); ``hot_bytes`` their sum.
    Entries restored from a snapshot taken before costs were counted carry the
    request body size there instead; they are evicted with what they added.
    """

    __slots__ = ("id", "title", "metadata", "created_at", "updated_at", "creator_principal",
                 "last_seq", "archived_seq", "producers", "hot", "hot_bytes", "create_request",
                 "version", "archived", "patch_request", "expires_at")

    def __init__(self, session_id, title, metadata, created_at, creator_principal=None, create_request=None):
        self.id = session_id
        self.title = title
        self.metadata = metadata
        self.created_at = created_at
        self.updated_at = created_at
        self.creator_principal = creator_principal
        self.last_seq = 0
        self.archived_seq = 0
        self.producers = {}  # producer_id -> (producer_seq, seq, fingerprint, request)
        self.hot = []
        self.hot_bytes = 0
        self.create_request = create_request  # the request token of the create (see `create_session`)
        self.version = 1          # +1 per patch (`patch_session`)
        self.archived = False     # hidden from the default listing (`set_archived`)
        self.patch_request = None  # the request token of the last patch (see `patch_session`)
        self.expires_at = None  # when the session is deleted by expiry (`starcite.core.deletion`), or None

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state):
        # Slots absent from snapshots written before they existed (the state is a prefix of the slots).
        self.create_request = self.patch_request = self.expires_at = None
        self.version, self.archived = 1, False
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)

    def record(self) -> dict:
        rec = {"id": self.id, "title": self.title, "metadata": self.metadata, "last_seq": self.last_seq,
               "created_at": self.created_at, "updated_at": self.updated_at, "version": self.version,
               "archived": self.archived}
        tenant_id = tenant_of(self.metadata)
        if tenant_id is not None:
            rec["tenant_id"] = tenant_id
        if self.creator_principal is not None:
            rec["creator_principal"] = self.creator_principal
        if self.expires_at is not None:
            rec["expires_at"] = self.expires_at
        return rec

    def hot_range(self, after_seq: int, limit: int) -> list:
        """Hot ``(seq, json, cost)`` entries with seq > after_seq, at most ``limit``."""
        if not self.hot:
            return []
        start = max(0, after_seq + 1 - self.hot[0][0])
        return self.hot[start:start + limit]


class GroupState:
    """All sessions of one Raft group; the only object the state machine replicates."""

    def __init__(self):
        self.sessions = {}
        self.hot_bytes = 0
        self.tombstones = {}  # deleted session id -> (deleted_at, request): see `starcite.core.deletion`
        self.expiries = {}    # session id -> expires_at, for the sessions that expire

    def __setstate__(self, state):
        self.tombstones, self.expiries = {}, {}  # absent from snapshots written before deletion existed
        self.__dict__.update(state)

    # -- commands ---------------------------------------------------------

    def create_session(self, session_id, title, metadata, created_at, creator_principal=None, request=None,
                       expires_at=None):
        """Returns ``("ok", record)`` or an error tuple.

        ``request`` is the token of the API request this create belongs to (`same_request`): a
        node that retries the create after a leader change, not knowing whether its first
        attempt committed, finds its own session and answers it as created, not 409. A deleted
        session's id is refused (409 ``session_deleted``) until its tombstone is dropped.
        ``expires_at``: when it expires (already worked out, `deletion.expiry_of`), or None."""
        existing = self.sessions.get(session_id)
        if existing is not None:
            if same_request(existing.create_request, request):
                return ("ok", existing.record())
            return RuleError(409, "session_exists", f"Session {session_id} already exists").as_tuple()
        if session_id in self.tombstones:
            return RuleError(409, "session_deleted", f"Session {session_id} was deleted and its archive copy is "
                             f"not gone yet; the id can be used again once it is").as_tuple()
        state = SessionState(session_id, title, metadata, created_at, creator_principal, request)
        if expires_at is not None:
            state.expires_at = expires_at
            self.expiries[session_id] = expires_at
        self.sessions[session_id] = state
        return ("ok", state.record())

    def append_event(self, session_id, append: dict, inserted_at: str, nbytes: int):
        """Apply one validated append. Returns ``("ok", seq, last_seq, deduped, event_json|None)`` or an error.

        ``nbytes`` (the request body size) is part of the replicated command; the hot tier
        charges the event's `hot_cost` instead, which is what it really holds.

        A repeat of the producer's last ``producer_seq`` with the same content is answered with
        the original seq. ``deduped`` is True when that seq was committed by another request
        (the client's own earlier try); a repeat carrying the same ``append["request"]`` token
        is the node's retry of this very request across a leader change (its first attempt
        committed, but the answer was lost), and is answered as the first attempt would have
        been, ``deduped`` False."""
        state = self.sessions.get(session_id)
        if state is None:
            return RuleError(404, "session_not_found", f"Session {session_id} not found").as_tuple()
        producer_id = append["producer_id"]
        producer_seq = append["producer_seq"]
        known = state.producers.get(producer_id)
        digest = fingerprint(append)
        if known is not None and producer_seq == known[0]:
            if digest == known[2]:
                own_retry = len(known) > 3 and same_request(known[3], append.get("request"))
                return ("ok", known[1], state.last_seq, not own_retry, None)
            return RuleError(409, "producer_replay_conflict",
                             f"producer_seq {producer_seq} of producer {producer_id} was already used "
                             f"with different content").as_tuple()
        expected = 1 if known is None else known[0] + 1
        if producer_seq != expected:
            return RuleError(409, "producer_seq_conflict",
                             f"Expected producer_seq {expected} for producer {producer_id}, "
                             f"got {producer_seq}", extra={"expected_producer_seq": expected}).as_tuple()
        expected_seq = append.get("expected_seq")
        if expected_seq is not None and expected_seq != state.last_seq:
            return RuleError(409, "expected_seq_conflict",
                             f"Expected seq {expected_seq}, current seq is {state.last_seq}").as_tuple()
        seq = state.last_seq + 1
        event_json = encode_event(render_event(seq, append, inserted_at))
        state.last_seq = seq
        state.updated_at = inserted_at
        state.producers[producer_id] = (producer_seq, seq, digest, append.get("request"))
        cost = hot_cost(event_json)
        state.hot.append((seq, event_json, cost))
        state.hot_bytes += cost
        self.hot_bytes += cost
        return ("ok", seq, seq, False, event_json)

    def append_events(self, items):
        """Apply ``[(session_id, append, inserted_at, nbytes), ...]`` in order; one result each."""
        return [self.append_event(*item) for item in items]

    def patch_session(self, session_id, patch: dict, updated_at: str, request=None):
        """Apply one validated patch (`validate_patch`). Returns ``("ok", record, applied)`` or an error.

        ``title`` (when present) replaces the title, ``None`` clears it; ``metadata`` is merged
        shallowly; the version goes up by one. An ``expected_version`` other than the current one is
        409 ``expected_version_conflict`` with ``current_version``. A session's tenant
        (``metadata.tenant_id``) never changes: the tenant fence reads any replica's record. A repeat
        carrying the same ``request`` token is the node's retry of this very patch (`same_request`):
        answered with the record, ``applied`` False, and not applied twice."""
        state = self.sessions.get(session_id)
        if state is None:
            return RuleError(404, "session_not_found", f"Session {session_id} not found").as_tuple()
        if same_request(state.patch_request, request):
            return ("ok", state.record(), False)
        expected = patch.get("expected_version")
        if expected is not None and expected != state.version:
            return RuleError(409, "expected_version_conflict",
                             f"Expected version {expected}, current version is {state.version}",
                             extra={"current_version": state.version}).as_tuple()
        metadata = patch.get("metadata")
        if metadata is not None and "tenant_id" in metadata and metadata["tenant_id"] != state.metadata.get("tenant_id"):
            return RuleError(400, "invalid_metadata", "metadata.tenant_id of a session cannot change").as_tuple()
        if "title" in patch:
            state.title = patch["title"]
        if metadata is not None:
            state.metadata = {**state.metadata, **metadata}
        state.version += 1
        state.updated_at = updated_at
        state.patch_request = request
        return ("ok", state.record(), True)

    def set_archived(self, session_id, archived: bool, updated_at: str):
        """Archive or unarchive a session. Returns ``("ok", record, changed)`` or 404. Idempotent:
        archiving an archived session changes nothing. The version is not bumped (it counts patches)."""
        state = self.sessions.get(session_id)
        if state is None:
            return RuleError(404, "session_not_found", f"Session {session_id} not found").as_tuple()
        changed = state.archived != bool(archived)
        if changed:
            state.archived = bool(archived)
            state.updated_at = updated_at
        return ("ok", state.record(), changed)

    def ack_archived(self, session_id, upto_seq: int):
        """Record that events up to ``upto_seq`` are archived and evict them from the hot tier.

        Returns ``("ok", archived_seq, trimmed_count)``. Acks never move backwards and
        never pass ``last_seq``.
        """
        state = self.sessions.get(session_id)
        if state is None:
            return RuleError(404, "session_not_found", f"Session {session_id} not found").as_tuple()
        upto = min(upto_seq, state.last_seq)
        if upto <= state.archived_seq:
            return ("ok", state.archived_seq, 0)
        hot = state.hot
        cut = 0
        freed = 0
        while cut < len(hot) and hot[cut][0] <= upto:
            freed += hot[cut][2]
            cut += 1
        del hot[:cut]
        state.hot_bytes -= freed
        self.hot_bytes -= freed
        state.archived_seq = upto
        return ("ok", upto, cut)

    # -- queries ----------------------------------------------------------

    def pending(self):
        """``[(session_id, archived_seq, last_seq)]`` for sessions with unarchived events."""
        return [(s.id, s.archived_seq, s.last_seq) for s in self.sessions.values() if s.last_seq > s.archived_seq]


def same_request(recorded, request) -> bool:
    """Whether a command repeats one already applied for the same API request: both carry the
    node's random token for that request (`None`, a command from a client-side retry or from
    before tokens existed, never matches)."""
    return request is not None and recorded == request


def parse_result(result):
    """Raise `RuleError` for an error tuple; return the tuple otherwise."""
    if result and result[0] == "error":
        raise RuleError(result[1], result[2], result[3], extra=result[4] if len(result) > 4 else None)
    return result
