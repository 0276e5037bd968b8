"""The shapes of what leaves the store: events as they are stored and sent, and session records.

Owns: the one renderer of an event (`render_event`, `encode_event`, and
`event_json_of`, which renders events stored by an earlier build again), a
session's tenant (`tenant_of`), the archived filter of a listing (`listed`),
and completing a record an earlier build indexed (`complete_record`). Pure:
no I/O, no clock. Must not: decide what a command does to a session (that is
`starcite.core.rules`).
"""

import json

# The actor of an event appended without one while auth is off (upstream Starcite's: the SDK's event
# schema needs an actor, and drops a whole batch holding a null one).
DEFAULT_ACTOR = "service:service"


def encode_event(event: dict) -> str:
    """The one JSON encoding of an event: stored in the hot tier, sent on tails."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def render_event(seq, append: dict, inserted_at: str) -> dict:
    """An event as it is stored and sent: ``cursor`` (= seq) beside ``seq``, the actor never null
    (`DEFAULT_ACTOR`), no ``source`` key when there is none."""
    event = {
        "seq": seq,
        "cursor": seq,
        "type": append["type"],
        "payload": append["payload"],
        "actor": append.get("actor") or DEFAULT_ACTOR,
        "producer_id": append["producer_id"],
        "producer_seq": append["producer_seq"],
        "source": append.get("source"),
        "metadata": append.get("metadata") or {},
        "refs": append.get("refs") or {},
        "idempotency_key": append.get("idempotency_key"),
        "inserted_at": inserted_at,
    }
    if event["source"] is None:
        del event["source"]
    return event


def event_json_of(event_json: str) -> str:
    """An event's JSON as it is sent today. Events stored by an earlier build (in the archive, the
    hot tier, a snapshot) have no ``cursor`` and may hold a null actor or source: they are rendered
    again (`render_event`); current ones, which have ``cursor`` right after ``seq``, pass unchanged."""
    comma = event_json.find(",")
    if event_json.startswith('"cursor":', comma + 1):
        return event_json
    old = json.loads(event_json)
    return encode_event(render_event(old["seq"], old, old.get("inserted_at")))


def tenant_of(metadata) -> str | None:
    """A session's tenant: its ``metadata.tenant_id`` (set from the token under JWT), or None."""
    tenant_id = (metadata or {}).get("tenant_id")
    return tenant_id if isinstance(tenant_id, str) and tenant_id else None


ARCHIVED_FILTERS = ("false", "true", "all")


def listed(record: dict, archived_filter: str) -> bool:
    """Whether a session record belongs in a listing with ``archived=<archived_filter>``: ``false`` (the
    default) the active sessions only, ``true`` the archived ones only, ``all`` both."""
    if archived_filter == "all":
        return True
    return bool(record.get("archived", False)) == (archived_filter == "true")


def complete_record(record: dict) -> dict:
    """A session record from the archive's index, with the fields an earlier build did not write
    (`version` 1, `archived` false, `tenant_id` from the metadata)."""
    record.setdefault("version", 1)
    record.setdefault("archived", False)
    tenant_id = tenant_of(record.get("metadata"))
    if tenant_id is not None:
        record.setdefault("tenant_id", tenant_id)
    return record
