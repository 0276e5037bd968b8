"""The Postgres peer on the machine's PostgreSQL (127.0.0.1:5432, database
`test`, or ``BENCH_PG_DSN``): a private schema with a sessions table and an
events table, created for the run and dropped at its end.

Owns: the DSN, the schema's lifetime, the append and page-scan statements,
and the server's durability settings (reported, so a fast figure from
``fsync = off`` cannot pass unnoticed). Must not: start or stop PostgreSQL.
"""

import contextlib
import os
import secrets

import psycopg2

DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 dbname=test connect_timeout=5")

# One statement: bump the session's last_seq and insert the event at it (sync commit on).
APPEND_SQL = ("WITH s AS (UPDATE sessions SET last_seq = last_seq + 1 WHERE id = %s RETURNING id, last_seq) "
              "INSERT INTO events (session_id, seq, payload) SELECT id, last_seq, %s::jsonb FROM s RETURNING seq")
# One page of an ordered replay from a cursor (rows come back with payload decoded to dicts).
PAGE_SQL = "SELECT seq, payload FROM events WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s"

_TABLES = ("CREATE TABLE sessions (id text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0)",
           "CREATE TABLE events (session_id text NOT NULL, seq bigint NOT NULL, payload jsonb NOT NULL, "
           "PRIMARY KEY (session_id, seq))")


def session_setup(schema_name: str) -> tuple:
    """Statements every benchmark connection runs first."""
    return (f"SET search_path TO {schema_name}", "SET synchronous_commit TO on")


def settings() -> dict:
    with contextlib.closing(psycopg2.connect(DSN)) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                    "('server_version', 'fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes')")
        return dict(cur.fetchall())


@contextlib.contextmanager
def schema(session_ids=(), events=None, tables=True):
    """A fresh schema (yields its name) with ``session_ids`` registered and, when
    ``events=(session_id, count, payload)``, that many events preloaded; dropped on exit.
    With ``tables=False`` it is empty (for a Starcite node's Postgres archive to fill)."""
    name = f"bench_{os.getpid()}_{secrets.token_hex(4)}"
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {name}")
            cur.execute(f"SET search_path TO {name}")
            for statement in _TABLES if tables else ():
                cur.execute(statement)
            if session_ids:
                cur.execute("INSERT INTO sessions (id) SELECT unnest(%s::text[])", (list(session_ids),))
            if events:
                session_id, count, payload = events
                cur.execute("INSERT INTO events (session_id, seq, payload) "
                            "SELECT %s, g, %s::jsonb FROM generate_series(1, %s) g", (session_id, payload, count))
                cur.execute("UPDATE sessions SET last_seq = %s WHERE id = %s", (count, session_id))
                cur.execute("VACUUM ANALYZE events")
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.close()
