"""Logic shared by the archive adapters: chunk math, key layout, NDJSON, merge-by-seq, paging.

Owns: the archive's on-disk/object layout (``events/v1/<b64 id>/<chunk_start>.ndjson``
holding up to `CHUNK_SIZE` events, ``sessions/v1/<b64 id>.json``), the one
NDJSON and JSON encoding every adapter uses, the idempotent merge of events by
seq, the opaque list cursor, and the page-taking loop over session records.
Must not: do any I/O, locking or caching, or know which back end is in use.
"""

import base64
import functools
import json
import re

from starcite.adapters.base import decode_session_id, encode_session_id, session_matches

CHUNK_SIZE = 256
EVENTS_DIR = "events/v1"
SESSIONS_DIR = "sessions/v1"
SESSION_SUFFIX = ".json"
CHUNK_SUFFIX = ".ndjson"


class InvalidCursor(ValueError):
    """A list cursor that no adapter could have produced (the API answers 400)."""


# -- chunk math ---------------------------------------------------------------

def chunk_start(seq: int) -> int:
    """First seq of the chunk holding ``seq``: 1, 257, 513, ..."""
    return ((seq - 1) // CHUNK_SIZE) * CHUNK_SIZE + 1


def chunk_end(start: int) -> int:
    return start + CHUNK_SIZE - 1


def clamp_range(from_seq: int, to_seq: int):
    """``(from, to)`` with ``from >= 1``, or None when the range holds no seq."""
    from_seq = max(1, int(from_seq))
    to_seq = int(to_seq)
    return None if to_seq < from_seq else (from_seq, to_seq)


def clamped(read_events):
    """Decorates ``read_events(self, session_id, from_seq, to_seq)``: the range is clamped to seqs >= 1
    and an empty range answers ``[]`` without calling it."""
    @functools.wraps(read_events)
    def wrapper(self, session_id, from_seq, to_seq):
        bounds = clamp_range(from_seq, to_seq)
        return [] if bounds is None else read_events(self, session_id, *bounds)
    return wrapper


def group_by_chunk(events: list) -> dict:
    """``{chunk_start: [events...]}`` in ascending chunk order."""
    groups = {}
    for event in events:
        groups.setdefault(chunk_start(event["seq"]), []).append(event)
    return dict(sorted(groups.items()))


def is_complete_chunk(start: int, events: list) -> bool:
    """True when ``events`` (one chunk's content, sorted) holds every seq of the chunk."""
    return len(events) == CHUNK_SIZE and events[0]["seq"] == start and events[-1]["seq"] == chunk_end(start)


def in_range(events: list, from_seq: int, to_seq: int) -> list:
    return [e for e in events if from_seq <= e["seq"] <= to_seq]


# -- merge ----------------------------------------------------------------------

def merge_by_seq(existing: list, new: list):
    """Union of two event lists keyed by seq; stored events win (they are immutable).

    Returns ``(merged sorted by seq, number of seqs taken from new)``.
    """
    by_seq = {event["seq"]: event for event in existing}
    added = 0
    for event in new:
        if event["seq"] not in by_seq:
            by_seq[event["seq"]] = event
            added += 1
    return [by_seq[seq] for seq in sorted(by_seq)], added


def check_events(events: list) -> None:
    """Reject events that cannot be keyed (a programming error, not an I/O one)."""
    for event in events:
        seq = event.get("seq") if isinstance(event, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"archive event needs an integer seq >= 1, got {seq!r}")


def check_record(record: dict) -> str:
    session_id = record.get("id") if isinstance(record, dict) else None
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("session record needs a non-empty string id")
    return session_id


# -- encoding ---------------------------------------------------------------------

def encode_json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def decode_json(data: bytes):
    return json.loads(data)


def encode_ndjson(events: list) -> bytes:
    """One JSON object per line, in the given (seq) order, newline-terminated."""
    return b"".join(encode_json(event) + b"\n" for event in events)


def decode_ndjson(data: bytes) -> list:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


# -- layout -------------------------------------------------------------------------

def session_events_dir(session_id: str) -> str:
    return f"{EVENTS_DIR}/{encode_session_id(session_id)}"


def chunk_key(session_id: str, start: int) -> str:
    return f"{session_events_dir(session_id)}/{start}{CHUNK_SUFFIX}"


def _stem(name: str, suffix: str):
    """The last path component of ``name`` without ``suffix``; None unless it ends so (or is hidden)."""
    base = name.rsplit("/", 1)[-1]
    if not base.endswith(suffix) or base.startswith("."):
        return None
    return base[: -len(suffix)]


def chunk_starts_from_names(names) -> list:
    """Sorted chunk starts of the names (or keys) ending ``<start>.ndjson``; other names are ignored."""
    stems = (_stem(name, CHUNK_SUFFIX) for name in names)
    return sorted(int(stem) for stem in stems if stem is not None and stem.isdigit())


def session_key(session_id: str) -> str:
    return f"{SESSIONS_DIR}/{encode_session_id(session_id)}{SESSION_SUFFIX}"


def session_id_from_name(name: str):
    """``"<b64>.json"`` (or a full key ending so) -> session id; None for anything else."""
    stem = _stem(name, SESSION_SUFFIX)
    if stem is None:
        return None
    try:
        return decode_session_id(stem)
    except ValueError:
        return None


# -- listing ----------------------------------------------------------------------

def encode_cursor(session_id: str) -> str:
    return encode_session_id(session_id)


# Unpadded base64url: the only cursors `decode_cursor` takes (`/openapi.json` documents this pattern).
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"


def decode_cursor(cursor) -> str:
    """The position a cursor points after; `InvalidCursor` unless it is unpadded base64url.

    A cursor this service returned decodes to the last session id of a page.
    Any other well-formed cursor is a position too (listing resumes after it),
    so every cursor the documented pattern admits is answered: its bytes are
    read as UTF-8 (undecodable bytes replaced) and cut at the first NUL, which
    no session id contains, so the cut changes no page and no back end ever
    receives a NUL.
    """
    if not isinstance(cursor, str) or not cursor or not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return raw.decode("utf-8", "replace").split("\x00", 1)[0]


def take_page(records, limit: int, tenant_id=None, metadata_filters=None, max_scan=None):
    """One page from ``records`` (an iterable in list order, already past the cursor).

    Returns ``(page, next_cursor)``. The cursor is None only when no further
    record matches; when ``max_scan`` records were examined without filling
    the page, the page may be short and the cursor resumes after the last one
    examined (so a walk still yields every match exactly once).
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    filters = metadata_filters or {}
    page, scanned = [], 0
    for record in records:
        scanned += 1
        if session_matches(record, tenant_id, filters):
            if len(page) == limit:
                return page, encode_cursor(page[-1]["id"])
            page.append(record)
        if max_scan is not None and scanned >= max_scan:
            last = page[-1]["id"] if len(page) == limit else record["id"]
            return page, encode_cursor(last)
    return page, None
