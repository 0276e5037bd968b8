"""The Postgres archive's tables and rows: the schema, its SQL, and events and records as rows.

Owns: `MIGRATIONS` (the versioned schema: the ``events`` table, one row per
event, primary key ``(session_id, seq)``; the ``sessions`` table, ``tenant_id``
column, ``metadata`` jsonb with a GIN index), the statements the adapter runs
on them, and the mapping of an event line or a session record to a row and
back. Must not: connect, run SQL, or hold state (`PostgresArchiveAdapter` in
`starcite.adapters.postgres` does the I/O).

Round trip: an event's columns are typed for operators; values a column cannot
hold exactly (the original ``inserted_at`` string, keys outside the known
shape, a non-string ``actor``...) are kept in the ``extra`` jsonb. Every event's
line (its JSON exactly as written) is kept in ``raw`` and is what reads return;
rows written before that (``raw`` NULL) are rebuilt from the columns with
``extra`` laid over them. Events Postgres jsonb cannot store at all (a
``\\u0000`` in a string) have only ``raw``; such session records are kept whole as
JSON text in ``raw`` too.
"""

import datetime
import json

import psycopg2.extras

from starcite.adapters import chunks
from starcite.adapters.base import ArchiveUnavailable

# (version, statements): append only; every statement must be safe to re-run.
MIGRATIONS = [
    (1, [
        """CREATE TABLE IF NOT EXISTS events (
               session_id text COLLATE "C" NOT NULL,
               seq bigint NOT NULL,
               type text,
               payload jsonb,
               actor text,
               producer_id text,
               producer_seq bigint,
               source text,
               metadata jsonb,
               refs jsonb,
               idempotency_key text,
               inserted_at timestamptz,
               extra jsonb,
               raw text,
               archived_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (session_id, seq))""",
        """CREATE TABLE IF NOT EXISTS sessions (
               id text COLLATE "C" PRIMARY KEY,
               tenant_id text COLLATE "C",
               metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
               record jsonb,
               raw text,
               created_at timestamptz,
               updated_at timestamptz,
               archived_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS sessions_tenant_id_idx ON sessions (tenant_id, id)",
        "CREATE INDEX IF NOT EXISTS sessions_metadata_idx ON sessions USING gin (metadata jsonb_path_ops)",
    ]),
]

# event key -> (column, python type the column holds exactly; None: jsonb holds anything)
_EVENT_COLUMNS = [("type", str), ("payload", None), ("actor", str), ("producer_id", str),
                  ("producer_seq", int), ("source", str), ("metadata", None), ("refs", None),
                  ("idempotency_key", str)]
_EVENT_KEYS = {"seq", "inserted_at", *(key for key, _ in _EVENT_COLUMNS)}
INSERT_EVENTS = (f"INSERT INTO events (session_id, seq, {', '.join(k for k, _ in _EVENT_COLUMNS)}, "
                 "inserted_at, extra, raw) VALUES %s ON CONFLICT (session_id, seq) DO NOTHING RETURNING seq")
SELECT_EVENTS = (f"SELECT seq, {', '.join(k for k, _ in _EVENT_COLUMNS)}, extra, raw FROM events "
                 "WHERE session_id = %s AND seq BETWEEN %s AND %s ORDER BY seq")
UPSERT_SESSIONS = """
    INSERT INTO sessions (id, tenant_id, metadata, record, raw, created_at, updated_at) VALUES %s
    ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, metadata = EXCLUDED.metadata,
        record = EXCLUDED.record, raw = EXCLUDED.raw, created_at = EXCLUDED.created_at,
        updated_at = EXCLUDED.updated_at, archived_at = now()"""


# -- row mapping ---------------------------------------------------------------

def as_jsonb(value):
    return psycopg2.extras.Json(value, dumps=lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")))


def jsonb_or_raw(value):
    """``(Json(value), None)``, or ``(None, json text)`` when jsonb cannot hold it (a NUL character)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (None, text) if "\\u0000" in text else (as_jsonb(value), None)


def from_jsonb_or_raw(value, raw):
    return json.loads(raw) if raw is not None else value


def event_row(session_id, seq, line):
    """The row of one event line: the typed columns from its decoded event, the line itself in ``raw``."""
    event = json.loads(line)
    raw = line.decode()
    if "\\u0000" in raw:  # jsonb cannot hold it: the line alone is kept
        return (session_id, seq, *([None] * len(_EVENT_COLUMNS)), None, None, raw)
    extra = {key: value for key, value in event.items() if key not in _EVENT_KEYS}
    columns = []
    for key, kind in _EVENT_COLUMNS:
        value = event.get(key)
        if kind is None:
            columns.append(as_jsonb(value))
        elif value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            columns.append(value)
        else:
            columns.append(None)
            extra[key] = value
    if "inserted_at" in event:
        extra["inserted_at"] = event["inserted_at"]
    return (session_id, seq, *columns, parse_timestamp(event.get("inserted_at")),
            as_jsonb(extra) if extra else None, raw)


def session_row(record):
    """The ``sessions`` row of a record (its id checked): tenant and metadata as columns for the list
    filters (metadata holding a NUL is not filterable: jsonb cannot hold it), the record whole as
    jsonb (or as JSON text when jsonb cannot hold it)."""
    session_id = chunks.check_record(record)
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    metadata_json, _raw = jsonb_or_raw(metadata)  # a NUL elsewhere in the record leaves the filters working
    record_json, raw = jsonb_or_raw(record)
    return (session_id, chunks.record_tenant(record), metadata_json or as_jsonb({}),
            record_json, raw, parse_timestamp(record.get("created_at")), parse_timestamp(record.get("updated_at")))


def line_from_row(session_id, row):
    """``(seq, line)`` of a row: its stored line, or (rows archived before lines were kept) the event
    rebuilt from its columns. A line whose seq is not the row's is refused."""
    seq, *columns, extra, raw = row
    if raw is None:
        event = {"seq": seq, **{key: value for (key, _), value in zip(_EVENT_COLUMNS, columns)}}
        event.update(extra or {})
        return seq, chunks.encode_json(event)
    line = raw.encode()
    if not line.endswith(b"}") or chunks.line_seq(line) != seq:
        raise ArchiveUnavailable(f"postgres: events row ({session_id!r}, {seq}) holds a torn line or one "
                                 f"of another seq")
    return seq, line


def parse_timestamp(value):
    """ISO-8601 string -> aware datetime (naive: UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def filter_candidates(key, value):
    """jsonb documents ``{key: v}`` whose text form could be ``value`` (a string, or a JSON scalar)."""
    candidates = [json.dumps({key: value})]
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, (bool, int, float)) and json.dumps(parsed) == value:
        candidates.append(json.dumps({key: parsed}))
    return candidates
