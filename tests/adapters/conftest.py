"""Fixtures for the archive adapter tests: a moto S3 server, per-test buckets and Postgres schemas.

Owns: the fixtures around `tests.adapters.services` (a session-wide moto
server, private servers a test may stop, a bucket per test, a Postgres schema
per test) and building each adapter kind for the contract tests. Must not:
skip when a service is missing, use anything but loopback addresses, or wait
without a bound.
"""

import contextlib
import sqlite3

import psycopg2
import pytest

from starcite.adapters import chunks
from starcite.adapters.local import LocalArchiveAdapter
from starcite.adapters.postgres import PostgresArchiveAdapter
from starcite.adapters.s3 import S3ArchiveAdapter
from tests.adapters.services import S3_KEY, S3_SECRET, MotoServer, check_postgres, postgres_schema
from tests.server import free_port


@pytest.fixture(scope="session")
def moto():
    server = MotoServer()
    yield server
    server.stop()


@contextlib.contextmanager
def tracked(build, close):
    """A factory that calls ``build``, remembering what it built, and ``close``-s all of it on exit."""
    built = []

    def make(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    try:
        yield make
    finally:
        for thing in built:
            close(thing)


@pytest.fixture
def private_moto():
    """``private_moto()`` -> a fresh `MotoServer` a test may stop; all reaped at teardown."""
    with tracked(MotoServer, MotoServer.stop) as start:
        yield start


@pytest.fixture
def s3_bucket(moto):
    return moto.make_bucket()


@pytest.fixture(scope="session")
def postgres_url():
    return check_postgres()


@pytest.fixture
def pg_schema(postgres_url):
    with postgres_schema(postgres_url) as schema:
        yield schema


@pytest.fixture
def pg_connect(postgres_url, pg_schema):
    """Plain psycopg2 connections on the test schema (what an operator would use)."""
    with tracked(lambda: psycopg2.connect(postgres_url, connect_timeout=5, options=f"-c search_path={pg_schema}"),
                 lambda conn: conn.close()) as connect:
        yield connect


@pytest.fixture
def make_adapter(request, tmp_path):
    """``make_adapter(kind)`` -> a fresh adapter of that kind on fresh storage; closed at teardown.

    Adapters of one kind made in the same test share their storage (two nodes on one archive).
    """
    storage = {}

    def build(kind, **kwargs):
        if kind == "local":
            return LocalArchiveAdapter(str(tmp_path / "archive"), **kwargs)
        if kind == "s3":
            moto = request.getfixturevalue("moto")
            if "bucket" not in storage:
                storage["bucket"] = moto.make_bucket()
            # the contract hammers one object from 4 threads; a real archive has one writer per session
            return moto.adapter(storage["bucket"], **{"max_write_retries": 20, **kwargs})
        if kind == "postgres":
            return PostgresArchiveAdapter(request.getfixturevalue("postgres_url"), pool_size=8,
                                          schema=request.getfixturevalue("pg_schema"), **kwargs)
        raise ValueError(kind)

    with tracked(build, lambda adapter: adapter.close()) as make:
        yield make


KINDS = ["local", "s3", "postgres"]


@pytest.fixture(params=KINDS)
def archive(request, make_adapter):
    """Each adapter in turn, on fresh storage: the contract tests run against all of them."""
    return make_adapter(request.param)


@pytest.fixture
def unreachable_adapter(request, tmp_path):
    """``unreachable_adapter(kind)`` -> an adapter of that kind whose archive cannot be reached: a
    local directory that is a file, an S3 endpoint and a Postgres port where nothing listens."""
    built = []

    def build(kind):
        if kind == "local":
            (tmp_path / "not-a-directory").write_bytes(b"")
            built.append(LocalArchiveAdapter(str(tmp_path / "not-a-directory" / "archive")))
        elif kind == "s3":
            built.append(S3ArchiveAdapter("bucket", endpoint=f"http://127.0.0.1:{free_port()}", access_key_id=S3_KEY,
                                          secret_access_key=S3_SECRET, timeout_s=2.0))
        else:
            built.append(PostgresArchiveAdapter(f"postgresql://postgres@127.0.0.1:{free_port()}/test", pool_size=2))
        return built[-1]

    yield build
    for adapter in built:
        adapter.close()


@pytest.fixture
def store_chunk_bytes(request):
    """``store_chunk_bytes(kind, adapter, session_id, start, data)``: put ``data`` where the archive keeps
    chunk ``start`` of the session, bypassing every check (a torn write, a corrupt or misplaced object).
    Local: the chunk's row in the database. Postgres has no chunks: each line of ``data`` replaces the row of seq ``start + i``."""
    def store(kind, adapter, session_id, start, data):
        key = chunks.chunk_key(session_id, start)
        if kind == "local":
            adapter.write_lines(session_id, [])  # the database exists
            with contextlib.closing(sqlite3.connect(adapter.path)) as db, db:
                db.execute("INSERT OR REPLACE INTO chunks (session_id, start, data) VALUES (?, ?, ?)",
                           (session_id, start, data))
        elif kind == "s3":
            adapter._put(adapter._key(key), data, "application/x-ndjson", {})
        else:
            rows = [(session_id, start + i, line.decode("utf-8", "replace"))
                    for i, line in enumerate(data.split(b"\n")) if line]
            adapter._run(lambda cur: (
                cur.execute("DELETE FROM events WHERE session_id = %s AND seq BETWEEN %s AND %s",
                            (session_id, start, chunks.chunk_end(start))),
                cur.executemany("INSERT INTO events (session_id, seq, raw) VALUES (%s, %s, %s)", rows)))
    return store
