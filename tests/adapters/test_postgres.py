"""Postgres-specific behaviour of `PostgresArchiveAdapter` against the local test database.

Owns: rows being plain SQL for operators, idempotent versioned migrations,
building from `Config`, failing fast when Postgres is unreachable, and
cooperative waiting under gevent. Must not: repeat the shared contract
(test_contract.py).
"""

import os
import socket
import subprocess
import sys
import textwrap

import psycopg2
import pytest

from starcite.adapters import build_adapter
from starcite.adapters.base import ArchiveConfigError, ArchiveUnavailable
from starcite.adapters.postgres import MIGRATIONS, PostgresArchiveAdapter
from starcite.config.settings import load_config
from tests.adapters.archive_helpers import assert_fails_fast, make_events, make_session, run_threads
from tests.server import free_port


def test_rows_are_visible_to_a_plain_query(make_adapter, pg_connect):
    archive = make_adapter("postgres")
    events = make_events(1, 300)
    assert archive.write_events("ses/1", events) == 300
    archive.upsert_session(make_session("ses/1", tenant="acme", project="p"))
    with pg_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM events WHERE session_id = %s ORDER BY seq", ("ses/1",))
        columns = [d.name for d in cur.description]
        rows = [dict(zip(columns, row)) for row in cur.fetchall()]
        cur.execute("SELECT id, tenant_id, metadata->>'project', record->>'title' FROM sessions")
        sessions = cur.fetchall()
    assert [r["seq"] for r in rows] == list(range(1, 301))
    first = rows[0]
    assert (first["type"], first["payload"], first["producer_id"], first["producer_seq"]) == (
        "message.delta", events[0]["payload"], "writer-1", 1)
    assert first["inserted_at"].isoformat() == "2025-01-02T03:04:01.000001+00:00"
    assert sessions == [("ses/1", "acme", "p", "title of ses/1")]


def test_migrations_are_versioned_and_idempotent(make_adapter, pg_connect):
    archive = make_adapter("postgres")
    archive.migrate()
    archive.migrate()
    make_adapter("postgres").check()  # a second node starting on the same schema
    archive.write_events("s", make_events(1, 3))
    with pg_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM starcite_schema_version ORDER BY version")
        assert [v for (v,) in cur.fetchall()] == [v for v, _ in MIGRATIONS]
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' AND schemaname = current_schema()")
        assert {"sessions_tenant_id_idx", "sessions_metadata_idx"} <= {name for (name,) in cur.fetchall()}
    assert archive.read_events("s", 1, 3) == make_events(1, 3)


def test_list_query_uses_the_indexes(make_adapter, pg_connect):
    make_adapter("postgres").check()
    with pg_connect() as conn, conn.cursor() as cur:
        # Each tenant's sessions are a run of 500 ids, and t90's start at s045000: walking the primary key
        # from s010000 would read 35,000 rows before the first match, so only the tenant index is a good
        # plan (with tenants spread evenly the two plans cost about the same and the choice flipped
        # with ANALYZE's random sample).
        cur.execute("""INSERT INTO sessions (id, tenant_id, metadata, record)
                       SELECT 's' || lpad(n::text, 6, '0'), 't' || (n / 500),
                              jsonb_build_object('tenant_id', 't' || (n / 500), 'project', 'p' || (n % 1000)), '{}'
                       FROM generate_series(1, 50000) AS n""")
        cur.execute("ANALYZE sessions")
        cur.execute("EXPLAIN SELECT record FROM sessions WHERE id > 's010000' AND tenant_id = 't90' "
                    "ORDER BY id LIMIT 11")
        assert "sessions_tenant_id_idx" in "\n".join(r for (r,) in cur.fetchall())
        # jsonb containment has no statistics (a fixed 1% guess: 505 of 50,000 rows), so on such a small
        # table the planner may price a sequential scan lower; what matters is that the index can serve
        # the query, so sequential scans are priced out for this one.
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("""EXPLAIN SELECT record FROM sessions WHERE metadata @> '{"project": "p3"}'""")
        assert "sessions_metadata_idx" in "\n".join(r for (r,) in cur.fetchall())


def test_built_from_config(postgres_url, pg_schema):
    config = load_config(environ={"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": postgres_url,
                                  "DB_POOL_SIZE": "3"})
    archive = build_adapter(config)
    try:
        assert isinstance(archive, PostgresArchiveAdapter) and archive.schema is None
    finally:
        archive.close()


def test_schema_in_the_url_options_is_kept_and_created(postgres_url, pg_schema, pg_connect):
    with pg_connect() as conn, conn.cursor() as cur:  # the node creates the schema itself
        cur.execute(f"DROP SCHEMA {pg_schema}")
        conn.commit()
    url = f"{postgres_url}?options=-c%20lock_timeout%3D7000%20-csearch_path%3D{pg_schema}"
    archive = build_adapter(load_config(environ={"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": url}))
    try:
        assert archive.schema == pg_schema
        archive.check()
        archive.write_events("s", make_events(1, 2))
        assert archive._run(lambda cur: _fetchone(cur, "SHOW lock_timeout")) == "7s"  # URL options kept
        assert archive._run(lambda cur: _fetchone(cur, "SHOW statement_timeout")) == "1min"
    finally:
        archive.close()
    with pg_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT seq FROM events WHERE session_id = 's' ORDER BY seq")
        assert cur.fetchall() == [(1,), (2,)]


def test_unreachable_postgres_is_unavailable_quickly():
    archive = PostgresArchiveAdapter(f"postgresql://postgres@127.0.0.1:{free_port()}/test", pool_size=2)
    try:
        for call in (archive.check, lambda: archive.write_events("s", make_events(1, 2)),
                     lambda: archive.read_events("s", 1, 2), lambda: archive.list_sessions(5),
                     lambda: archive.get_session("s")):
            assert_fails_fast(call, ArchiveUnavailable)
    finally:
        archive.close()


def test_silent_server_times_out_quickly():
    with socket.socket() as silent:  # accepts TCP connections, never answers the startup message
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        archive = PostgresArchiveAdapter(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/test",
                                         connect_timeout_s=1)
        assert_fails_fast(archive.check, ArchiveUnavailable, match="timeout")
        archive.close()


def test_pool_waits_for_a_free_connection(make_adapter):
    archive = make_adapter("postgres")
    archive.check()
    results = []

    def work(n):
        results.append(archive.write_events(f"p{n}", make_events(1, 50)))

    assert run_threads(work, [(n,) for n in range(32)]) == []  # pool_size is 8
    assert results == [50] * 32


def test_idle_connections_are_reused_and_broken_ones_replaced(make_adapter, pg_connect):
    archive = make_adapter("postgres")
    archive.upsert_session(make_session("s"))

    def backend_pid():
        return archive._run(lambda cur: _fetchone(cur, "SELECT pg_backend_pid()"))

    pid = backend_pid()
    assert [backend_pid() for _ in range(5)] == [pid] * 5
    with pg_connect() as admin, admin.cursor() as cur:  # as if the server restarted under us
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert archive.get_session("s") == make_session("s")  # retried once on a fresh connection
    assert backend_pid() != pid


def _fetchone(cur, sql):
    cur.execute(sql)
    return cur.fetchone()[0]


def test_under_gevent_calls_yield_to_other_greenlets(postgres_url, pg_schema):
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent, time
        from starcite.adapters.postgres import PostgresArchiveAdapter
        archive = PostgresArchiveAdapter({postgres_url!r}, pool_size=4, schema={pg_schema!r})
        archive.check()
        ticks = []
        def ticker():
            while True:
                ticks.append(time.monotonic()); gevent.sleep(0.01)
        def sleeper(n):  # a slow query: the hub must keep running meanwhile
            archive._run(lambda cur: cur.execute("SELECT pg_sleep(0.3)"))
        def writer(n):
            events = [{{"seq": s, "type": "t", "payload": {{}}, "inserted_at": "2025-01-01T00:00:00Z"}}
                      for s in range(1, 101)]
            assert archive.write_events(f"g{{n}}", events) == 100
            assert len(archive.read_events(f"g{{n}}", 1, 100)) == 100
        t = gevent.spawn(ticker)
        started = time.monotonic()
        gevent.joinall([gevent.spawn(sleeper, n) for n in range(4)] + [gevent.spawn(writer, n) for n in range(8)],
                       raise_error=True, timeout=30)
        elapsed = time.monotonic() - started
        t.kill()
        assert elapsed < 1.5, elapsed  # 4 x 0.3 s sleeps ran concurrently, writers queued for the pool
        assert len(ticks) > 15, len(ticks)
        import socket
        silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen(8)
        url = "postgresql://postgres@127.0.0.1:%d/test" % silent.getsockname()[1]
        for unreachable in (PostgresArchiveAdapter(url, connect_timeout_s=1),
                            PostgresArchiveAdapter("postgresql://postgres@127.0.0.1:{free_port()}/test")):
            started = time.monotonic()
            try:
                unreachable.check()
                raise AssertionError("check() passed")
            except Exception as exc:
                assert type(exc).__name__ == "ArchiveUnavailable", exc
            assert time.monotonic() - started < 3.0
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stderr[-3000:]


def test_under_gevent_a_server_gone_silent_times_out(postgres_url, pg_schema):
    # a forwarder that, once frozen, swallows bytes both ways: TCP stays up, no answer ever comes
    pg_port = int(psycopg2.extensions.parse_dsn(postgres_url).get("port") or 5432)
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import socket, time, gevent
        from gevent.server import StreamServer
        from starcite.adapters.base import ArchiveUnavailable
        from starcite.adapters.postgres import PostgresArchiveAdapter
        frozen = []
        def pump(src, dst):
            while True:
                data = src.recv(65536)
                if not data:
                    return
                if not frozen:
                    dst.sendall(data)
        def handle(client, _addr):
            upstream = socket.create_connection(("127.0.0.1", {pg_port}))
            gevent.joinall([gevent.spawn(pump, client, upstream), gevent.spawn(pump, upstream, client)])
        server = StreamServer(("127.0.0.1", 0), handle)
        server.start()
        archive = PostgresArchiveAdapter("postgresql://postgres@127.0.0.1:%d/test" % server.server_port,
                                         schema={pg_schema!r}, query_timeout_s=1)
        archive.check()
        assert archive.write_events("s", [{{"seq": 1, "type": "t", "payload": {{}}}}]) == 1
        frozen.append(True)
        started = time.monotonic()
        try:
            archive.write_events("s", [{{"seq": 2, "type": "t", "payload": {{}}}}])
            raise AssertionError("write passed")
        except ArchiveUnavailable as exc:
            assert "no answer" in str(exc), exc
        assert time.monotonic() - started < 1.8, time.monotonic() - started  # one attempt, not retried
        frozen.clear()
        assert [e["seq"] for e in archive.read_events("s", 1, 5)] in ([1], [1, 2])  # a fresh connection
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stderr[-3000:]


def test_bad_settings_are_config_errors():
    with pytest.raises(ArchiveConfigError, match="postgres.url"):
        PostgresArchiveAdapter("not a dsn at all")
    with pytest.raises(ArchiveConfigError, match="postgres.url"):
        PostgresArchiveAdapter(None)
    with pytest.raises(ArchiveConfigError, match="schema"):
        PostgresArchiveAdapter("postgresql://127.0.0.1/test", schema="x; DROP TABLE events")
