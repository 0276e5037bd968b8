"""Logic shared by the archive adapters: chunk math, key layout, NDJSON, merge-by-seq, paging.

Owns: the archive's object layout (``events/v1/<b64 id>/<chunk_start>.ndjson``
holding up to `CHUNK_SIZE` events, ``sessions/v1/<b64 id>.json``: S3's keys, and
the local archive's files before it kept chunks and records in a database), the one
NDJSON and JSON encoding every adapter uses, event lines (``(seq, bytes)``: the
event's stored JSON, passed through unchanged), the checks that refuse a torn or
misplaced chunk, the idempotent merge of lines by seq, the opaque list cursor,
and the page-taking loop over session records (fetched a page at a time), with the
session id's key encoding and the tenant, metadata and predicate filters it applies.
Must not: do any I/O, locking or caching, or know which back end is in use.
"""

import base64
import functools
import json
import re

CHUNK_SIZE = 256
EVENTS_DIR = "events/v1"
SESSIONS_DIR = "sessions/v1"
SESSION_SUFFIX = ".json"
CHUNK_SUFFIX = ".ndjson"


# -- session ids and filters -------------------------------------------------

def encode_session_id(session_id: str) -> str:
    """base64url (no padding) of the session id: safe in object keys and cursors."""
    return base64.urlsafe_b64encode(session_id.encode()).rstrip(b"=").decode()


def decode_session_id(encoded: str) -> str:
    pad = "=" * (-len(encoded) % 4)
    return base64.urlsafe_b64decode(encoded + pad).decode()


def session_matches(record: dict, tenant_id, metadata_filters: dict) -> bool:
    """True when ``record`` belongs to ``tenant_id`` (None: any) and every filter holds exactly."""
    meta = record.get("metadata") or {}
    if tenant_id is not None and meta.get("tenant_id") != tenant_id:
        return False
    return all(key in meta and _filter_value(meta[key]) == value for key, value in metadata_filters.items())


def _filter_value(value) -> str:
    """Metadata filters arrive as query strings: compare on the string form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def group_by_chunk(lines: list) -> dict:
    """``{chunk_start: [(seq, line), ...]}`` in ascending chunk order."""
    groups = {}
    for entry in lines:
        groups.setdefault(chunk_start(entry[0]), []).append(entry)
    return dict(sorted(groups.items()))


def is_complete_chunk(start: int, lines: list) -> bool:
    """True when ``lines`` (one chunk's content, sorted) holds every seq of the chunk."""
    return len(lines) == CHUNK_SIZE and lines[0][0] == start and lines[-1][0] == chunk_end(start)


def in_range(lines: list, from_seq: int, to_seq: int) -> list:
    """The ``(seq, line)`` entries of a sorted list with ``from_seq <= seq <= to_seq``."""
    if not lines or (lines[0][0] >= from_seq and lines[-1][0] <= to_seq):
        return lines
    return [entry for entry in lines if from_seq <= entry[0] <= to_seq]


# -- merge ----------------------------------------------------------------------

def merge_by_seq(existing: list, new: list):
    """Union of two ``(seq, line)`` lists keyed by seq; stored lines win (events are immutable).

    Returns ``(merged sorted by seq, number of seqs taken from new)``.
    """
    by_seq = dict(existing)
    added = 0
    for seq, line in new:
        if seq not in by_seq:
            by_seq[seq] = line
            added += 1
    return [(seq, by_seq[seq]) for seq in sorted(by_seq)], added


def check_lines(lines: list) -> None:
    """Reject entries that cannot be stored as they are (a programming error, not an I/O one):
    each must be ``(seq, line)`` with an integer seq >= 1 and one JSON object line of that seq."""
    for entry in lines:
        seq, line = entry if isinstance(entry, tuple) and len(entry) == 2 else (None, None)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"archive event needs an integer seq >= 1, got {seq!r}")
        if not isinstance(line, bytes) or b"\n" in line or line_seq(line) != seq:
            raise ValueError(f"archive line of seq {seq} must be one JSON object line holding that seq")


def event_lines(events: list) -> list:
    """``[(seq, line)]`` of event dicts (the stored encoding of each); dicts without a usable seq refused."""
    for event in events:
        seq = event.get("seq") if isinstance(event, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"archive event needs an integer seq >= 1, got {seq!r}")
    return [(event["seq"], encode_json(event)) for event in events]


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


def encode_chunk(lines: list) -> bytes:
    """A chunk's stored bytes: each ``(seq, line)``'s line in the given (seq) order, newline-terminated."""
    return b"".join(line + b"\n" for _seq, line in lines)


def decode_lines(lines: list) -> list:
    """The event dicts of ``[(seq, line)]``."""
    return [json.loads(line) for _seq, line in lines]


class CorruptChunk(ValueError):
    """Stored chunk bytes that are torn or not the chunk their key names: never served."""


# A stored line starts with its seq (the one event encoding puts it first): read it without decoding.
_SEQ_PREFIX = re.compile(rb'\{"seq":([1-9][0-9]{0,18})[,}]')


def line_seq(line: bytes):
    """The seq of one event line, or None when the line is not a JSON object holding an integer seq."""
    match = _SEQ_PREFIX.match(line)
    if match is not None:
        return int(match.group(1))
    try:  # a line written with another key order: decode it once
        value = json.loads(line)
    except ValueError:
        return None
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 else None


def decode_chunk(start: int, data: bytes) -> list:
    """``[(seq, line)]`` of one stored chunk, checked without decoding any event.

    `CorruptChunk` unless the bytes end in a newline (a torn write does not), every line is an
    object ``{"seq":N,...}``, and the seqs ascend strictly inside the chunk ``start`` names.
    """
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise CorruptChunk(f"chunk {start} is torn (no final newline)")
    out, previous, last = [], start - 1, chunk_end(start)
    for line in data[:-1].split(b"\n"):
        seq = line_seq(line) if line.endswith(b"}") else None
        if seq is None:
            raise CorruptChunk(f"chunk {start} holds a line that is not an event: {line[:60]!r}")
        if not previous < seq <= last:
            raise CorruptChunk(f"chunk {start} holds seq {seq} after {previous}: not the chunk its key names")
        out.append((seq, line))
        previous = seq
    return out


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


def take_page(records, limit: int, tenant_id=None, metadata_filters=None, max_scan=None, predicate=None):
    """One page from ``records`` (an iterable in list order, already past the position listed after).

    Returns ``(page, next_after_id)``. ``next_after_id`` is None only when no further record
    matches; when ``max_scan`` records were examined without filling the page, the page may be
    short and listing resumes after the last one examined (so a walk still yields every match
    exactly once).
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    filters = metadata_filters or {}
    page, scanned = [], 0
    for record in records:
        scanned += 1
        if session_matches(record, tenant_id, filters) and (predicate is None or predicate(record)):
            if len(page) == limit:
                return page, page[-1]["id"]
            page.append(record)
        if max_scan is not None and scanned >= max_scan:
            return page, (page[-1]["id"] if len(page) == limit else record["id"])
    return page, None


def record_tenant(record: dict):
    """The tenant a record is fenced by: its ``metadata.tenant_id`` when that is a string, else None."""
    metadata = record.get("metadata")
    tenant_id = metadata.get("tenant_id") if isinstance(metadata, dict) else None
    return tenant_id if isinstance(tenant_id, str) else None


def records_in_pages(fetch, after_id, batch: int):
    """Every record ``fetch(after_id, batch)`` pages out (each call the next ``batch`` records in list
    order after the id given), fetched lazily one page at a time."""
    while True:
        page = fetch(after_id, batch)
        yield from page
        if len(page) < batch:
            return
        after_id = page[-1]["id"]


def latest_records(records: list) -> dict:
    """``{id: record}`` of a batch of session records (each id checked), the last record of an id winning."""
    latest = {}
    for record in records:
        latest[check_record(record)] = record
    return latest
