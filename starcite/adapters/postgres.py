"""`PostgresArchiveAdapter`: the archive in Postgres tables, through psycopg2.

Owns: running the schema's migrations (versioned in ``starcite_schema_version``,
idempotently under an advisory lock on first use), writing events (batch
``INSERT ... ON CONFLICT DO NOTHING`` into ``events``, so operators can
``SELECT * FROM events WHERE session_id = $1 ORDER BY seq``) and session
records (id-ordered cursor pages of ``sessions``, fenced by ``tenant_id`` and
filtered on the ``metadata`` GIN index), its own bounded connection pool (opened on
demand, idle connections kept; psycopg2's pools keep only ``minconn`` idle
and open those eagerly) that waits cooperatively under gevent, and mapping every database failure to
`ArchiveUnavailable`. The URL's own libpq ``options`` are kept (a schema named
by ``search_path`` there is created at start-up). The tables, their SQL and the
row mapping are `starcite.adapters.postgres_rows`. Must not: cache event data,
hold a connection across calls, block the gevent hub inside libpq (it installs
gevent's wait callback when the process is monkey-patched), or wait on a
silent server without a bound (every wait gives up after ``query_timeout_s``).
"""

import contextlib
import re
import sys
import threading
import zlib

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from starcite.adapters import chunks
from starcite.adapters.base import ArchiveAdapter, ArchiveConfigError, ArchiveUnavailable
from starcite.adapters.postgres_rows import (INSERT_EVENTS, MIGRATIONS, SELECT_EVENTS, UPSERT_SESSION, as_jsonb,
                                             event_row, filter_candidates, from_jsonb_or_raw, jsonb_or_raw,
                                             line_from_row, parse_timestamp)

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CONNECT_TIMEOUT_S = 5
_STATEMENT_TIMEOUT_MS = 60_000
# under gevent, the longest wait for any answer on an open connection: a server (or network path)
# that accepts bytes but never answers must not hang the archiver; longer than statement_timeout,
# so a merely slow statement is cancelled by the server first
_QUERY_TIMEOUT_S = _STATEMENT_TIMEOUT_MS / 1000 + 15
_POOL_WAIT_S = 10.0



class PostgresArchiveAdapter(ArchiveAdapter):
    blocking_io = False  # libpq yields to the hub through gevent's wait callback

    def __init__(self, url, pool_size=10, schema=None, connect_timeout_s=_CONNECT_TIMEOUT_S,
                 query_timeout_s=_QUERY_TIMEOUT_S):
        if not url:
            raise ArchiveConfigError("DATABASE_URL (postgres.url): required when archive adapter is postgres")
        if schema is not None and not _SCHEMA_RE.match(schema):
            raise ArchiveConfigError(f"postgres schema {schema!r}: use lower-case letters, digits and _")
        try:
            url_options = psycopg2.extensions.parse_dsn(url).get("options") or ""
        except psycopg2.Error as exc:
            raise ArchiveConfigError(f"DATABASE_URL (postgres.url): {_one_line(exc)}") from None
        # libpq's ``options`` from the URL (e.g. ``?options=-csearch_path%3Dstarcite``) are kept: the
        # keyword below would otherwise replace them. A single schema named there is created at start-up.
        self.schema = schema if schema is not None else _schema_from_options(url_options)
        options = " ".join(part for part in (f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}", url_options,
                                             f"-c search_path={schema}" if schema else "") if part)
        self.flush_concurrency = max(1, min(8, pool_size - 1))
        _install_gevent_wait_callback()
        self._connect_args = dict(dsn=url, connect_timeout=connect_timeout_s, options=options, keepalives=1,
                                  keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                                  application_name="starcite-archive", connection_factory=_TimedConnection)
        self.query_timeout_s = query_timeout_s
        # the pool: at most pool_size connections, opened on demand (not here), idle ones reused LIFO
        self._slots = threading.BoundedSemaphore(max(1, pool_size))
        self._idle = []
        self._idle_lock = threading.Lock()
        self._closed = False
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    @classmethod
    def from_config(cls, config):
        return cls(config.postgres_url, pool_size=config.db_pool_size)

    # -- events ---------------------------------------------------------------

    def write_lines(self, session_id, lines):
        chunks.check_lines(lines)
        if not lines:
            return 0
        rows = [event_row(session_id, seq, line) for seq, line in lines]
        return len(self._run(lambda cur: psycopg2.extras.execute_values(
            cur, INSERT_EVENTS, rows, page_size=1000, fetch=True)))

    @chunks.clamped
    def read_lines(self, session_id, from_seq, to_seq):
        rows = self._run(lambda cur: _fetchall(cur, SELECT_EVENTS, (session_id, from_seq, to_seq)))
        return [line_from_row(session_id, row) for row in rows]

    # -- sessions -------------------------------------------------------------

    def upsert_session(self, record):
        session_id = chunks.check_record(record)
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        tenant_id = metadata.get("tenant_id")
        record_json, raw = jsonb_or_raw(record)
        params = (session_id, tenant_id if isinstance(tenant_id, str) else None,
                  as_jsonb(metadata if raw is None else {}), record_json, raw,
                  parse_timestamp(record.get("created_at")), parse_timestamp(record.get("updated_at")))
        self._run(lambda cur: cur.execute(UPSERT_SESSION, params))

    def get_session(self, session_id):
        rows = self._run(lambda cur: _fetchall(cur, "SELECT record, raw FROM sessions WHERE id = %s",
                                               (session_id,)))
        return from_jsonb_or_raw(*rows[0]) if rows else None

    def list_sessions(self, limit, cursor=None, tenant_id=None, metadata_filters=None):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        where, params = ["TRUE"], []
        if cursor is not None:
            where.append("id > %s")
            params.append(chunks.decode_cursor(cursor))
        if tenant_id is not None:
            where.append("tenant_id = %s")
            params.append(tenant_id)
        for key, value in (metadata_filters or {}).items():
            candidates = filter_candidates(key, str(value))
            # the @> terms let the GIN index find candidates; ->> keeps session_matches' exact semantics
            where.append(f"({' OR '.join(['metadata @> %s'] * len(candidates))}) AND metadata ->> %s = %s")
            params.extend([*candidates, key, str(value)])
        sql = f"SELECT record, raw FROM sessions WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"
        rows = self._run(lambda cur: _fetchall(cur, sql, (*params, limit + 1)))
        records = [from_jsonb_or_raw(*row) for row in rows]
        if len(records) > limit:
            return records[:limit], chunks.encode_cursor(records[limit - 1]["id"])
        return records, None

    def delete_session(self, session_id):
        def delete(cur):
            cur.execute("DELETE FROM events WHERE session_id = %s", (session_id,))
            cur.execute("DELETE FROM sessions WHERE id = %s", (session_id,))
        self._run(delete)  # one transaction: the events and the record go together

    # -- connections and schema ----------------------------------------------

    def check(self):
        self._ensure_schema()

    def migrate(self):
        """Bring the schema to the latest version (idempotent; safe from several nodes at once)."""
        lock_key = zlib.crc32(f"starcite-schema:{self.schema or 'default'}".encode())
        with self._connection() as conn:
            conn.wait_timeout = None  # an index build may take a while
            try:
                self._migrate(conn, lock_key)
            finally:
                conn.wait_timeout = self.query_timeout_s

    def _migrate(self, conn, lock_key):
        with conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            if self.schema:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            cur.execute("CREATE TABLE IF NOT EXISTS starcite_schema_version ("
                        "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) FROM starcite_schema_version")
            current = cur.fetchone()[0]
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        cur.execute(statement)
                    cur.execute("INSERT INTO starcite_schema_version (version) VALUES (%s)", (version,))
        conn.commit()

    def _ensure_schema(self):
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self.migrate()
                self._schema_ready = True

    def _run(self, work):
        """``work(cursor)`` in its own transaction, committed; retried once on a fresh connection
        when the connection broke (a pooled connection outlived a server restart)."""
        self._ensure_schema()
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    with conn.cursor() as cur:
                        result = work(cur)
                    conn.commit()
                    return result
            except ArchiveUnavailable as exc:
                cause = exc.__cause__
                retry = (isinstance(cause, (psycopg2.OperationalError, psycopg2.InterfaceError))
                         and not isinstance(cause, psycopg2.extensions.QueryCanceledError))
                if attempt == 2 or not retry:
                    raise

    @contextlib.contextmanager
    def _connection(self):
        """A pooled connection; waits (cooperatively) for a free slot; database errors -> ArchiveUnavailable.

        A connection goes back to the pool only when the work succeeded and left it idle.
        """
        if not self._slots.acquire(timeout=_POOL_WAIT_S):
            raise ArchiveUnavailable(f"postgres: no free connection in the pool after {_POOL_WAIT_S:.0f}s")
        conn, reusable = None, False
        try:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = psycopg2.connect(**self._connect_args)
                conn.wait_timeout = self.query_timeout_s
            yield conn
            reusable = True
        except psycopg2.Error as exc:
            raise ArchiveUnavailable(f"postgres: {_one_line(exc) or type(exc).__name__}") from exc
        finally:
            if conn is not None:
                idle = (reusable and not conn.closed
                        and conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE)
                with self._idle_lock:
                    if idle and not self._closed:
                        self._idle.append(conn)
                        conn = None
                if conn is not None:
                    conn.close()
            self._slots.release()

    def close(self):
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# -- helpers -----------------------------------------------------------------

def _fetchall(cur, sql, params):
    cur.execute(sql, params)
    return cur.fetchall()


def _one_line(exc):
    """libpq's multi-line messages as one line (logs, the start-up error)."""
    return " ".join(str(exc).split())


def _schema_from_options(options):
    """The schema of a ``-c search_path=<one schema>`` (or ``--search_path=...``) in libpq options, or None."""
    tokens = options.split()
    for n, token in enumerate(tokens):
        if token == "-c":
            setting = tokens[n + 1] if n + 1 < len(tokens) else ""
        elif token.startswith(("-c", "--")):
            setting = token[2:]
        else:
            continue
        name, _, value = setting.partition("=")
        if name.replace("-", "_") == "search_path":
            return value if _SCHEMA_RE.match(value) else None
    return None


# -- gevent --------------------------------------------------------------------

class _TimedConnection(psycopg2.extensions.connection):
    """A connection whose waits for the server (under gevent) give up after ``wait_timeout`` seconds."""

    wait_timeout = None


def _install_gevent_wait_callback():
    """Make libpq calls yield to the gevent hub when the process is monkey-patched (process-wide)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is None or not gevent_monkey.is_module_patched("socket"):
        return
    from gevent.socket import wait_read, wait_write

    def wait(conn):
        # libpq ignores connect_timeout on this (async) path: bound the connection phase here,
        # and every later wait by the connection's wait_timeout
        connecting = conn.status == psycopg2.extensions.STATUS_SETUP
        if connecting:
            timeout = float(psycopg2.extensions.parse_dsn(conn.dsn).get("connect_timeout") or _CONNECT_TIMEOUT_S)
        else:
            timeout = getattr(conn, "wait_timeout", None)
        while True:
            state = conn.poll()
            try:
                if state == psycopg2.extensions.POLL_OK:
                    return
                if state == psycopg2.extensions.POLL_READ:
                    wait_read(conn.fileno(), timeout=timeout)
                elif state == psycopg2.extensions.POLL_WRITE:
                    wait_write(conn.fileno(), timeout=timeout)
                else:
                    raise psycopg2.OperationalError(f"bad poll state {state!r}")
            except OSError as exc:  # socket.timeout from gevent
                if connecting:
                    raise psycopg2.OperationalError(f"connection timed out after {timeout}s") from exc
                # not retried by _run: the statement may still be running on a server that went silent
                raise psycopg2.extensions.QueryCanceledError(f"no answer from the server in {timeout}s") from exc

    psycopg2.extensions.set_wait_callback(wait)
