"""Local-specific behaviour of `LocalArchiveAdapter`: the database on disk and its durability habits.

Owns: the one database file and its rows, sessions surviving a restart and
seen across processes, very long ids, id order of listings, a deleted
session's bytes gone from every file, an outage (the directory swapped or
the file gone) never read as an empty archive, and running in gevent's hub
threadpool (as the node runs it) without blocking the hub. The import of the
older layout is test_local_import.py. Must not: repeat the shared contract
(test_contract*.py).
"""

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from starcite.adapters import ArchiveUnavailable, build_adapter
from starcite.adapters.local import DB_NAME, LocalArchiveAdapter
from starcite.config.settings import load_config
from tests.adapters.archive_helpers import make_events, make_session


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in os.walk(root) for f in files)


def _rows(archive, sql):
    with contextlib.closing(sqlite3.connect(archive.path)) as db:
        return db.execute(sql).fetchall()


def test_the_archive_is_one_database_of_chunks_and_records(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    session_id = "org/ses 1 ✓"
    archive.write_events(session_id, make_events(1, 300))
    archive.write_events(session_id, make_events(290, 520))
    archive.upsert_session(make_session(session_id, tenant="acme"))
    assert set(_files(tmp_path)) <= {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}
    assert _rows(archive, "SELECT session_id, start FROM chunks ORDER BY start") == [
        (session_id, 1), (session_id, 257), (session_id, 513)]
    data = _rows(archive, "SELECT data FROM chunks WHERE start = 257")[0][0]
    assert [json.loads(line) for line in data.splitlines()] == make_events(257, 512)
    (record_id, tenant, record), = _rows(archive, "SELECT id, tenant_id, record FROM sessions")
    assert (record_id, tenant, json.loads(record)) == (session_id, "acme", make_session(session_id, tenant="acme"))


def test_restart_reads_sessions_and_events_from_disk(tmp_path):
    first = LocalArchiveAdapter(str(tmp_path))
    for i in range(30):
        first.upsert_session(make_session(f"s{i:02d}", tenant="t"))
    first.write_events("s00", make_events(1, 10))
    first.close()
    second = LocalArchiveAdapter(str(tmp_path))
    records, cursor = second.list_sessions(100, tenant_id="t")
    assert [r["id"] for r in records] == [f"s{i:02d}" for i in range(30)] and cursor is None
    assert second.read_events("s00", 1, 10) == make_events(1, 10)


def test_sessions_written_by_another_process_are_found(tmp_path):
    reader = LocalArchiveAdapter(str(tmp_path))
    assert reader.list_sessions(10) == ([], None)
    LocalArchiveAdapter(str(tmp_path)).upsert_session(make_session("later"))
    assert reader.get_session("later") == make_session("later")
    assert [r["id"] for r in reader.list_sessions(10)[0]] == ["later"]


def test_listing_is_in_id_order(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    ids = ["b", "a", "Z", "_x", "-y", "ä", "a/b", "aa", "\U0001f680", "\uffff"]
    for session_id in ids:
        archive.upsert_session(make_session(session_id))
    assert [r["id"] for r in archive.list_sessions(100)[0]] == sorted(ids)


def test_very_long_ids(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    ids = sorted(["long-" * 150, "z" * 180, "z" * 360, "z" * 361, "ü" * 5000])
    for session_id in ids:
        archive.write_events(session_id, make_events(1, len(session_id) % 7 + 1))
        archive.upsert_session(make_session(session_id))
    reopened = LocalArchiveAdapter(str(tmp_path))
    assert reopened.list_sessions(10)[0] == [make_session(session_id) for session_id in ids]
    for session_id in ids:
        assert reopened.read_events(session_id, 1, 10) == make_events(1, len(session_id) % 7 + 1)


def test_built_from_config(tmp_path):
    config = load_config(environ={"STARCITE_DATA_DIR": str(tmp_path)})
    archive = build_adapter(config)
    archive.check()
    archive.write_events("s", make_events(1, 1))
    assert (tmp_path / "archive" / DB_NAME).exists()


def test_a_deleted_session_leaves_no_byte_in_any_file(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    marker = "personal-data-" + "q" * 40
    archive.write_events("kept", make_events(1, 50))
    archive.write_events("gdpr", make_events(1, 600, payload={"text": marker}))  # overflow pages too
    archive.upsert_session(make_session("gdpr", note=marker))
    size_with = sum(os.path.getsize(tmp_path / name) for name in _files(tmp_path))
    archive.delete_session("gdpr")
    for name in _files(tmp_path):
        assert marker.encode() not in (tmp_path / name).read_bytes(), name
    assert sum(os.path.getsize(tmp_path / name) for name in _files(tmp_path)) < size_with  # pages given back
    assert archive.read_events("kept", 1, 50) == make_events(1, 50)


def test_a_vanished_or_swapped_directory_is_an_outage_not_an_empty_archive(tmp_path):
    root = tmp_path / "archive"
    archive = LocalArchiveAdapter(str(root))
    archive.write_events("s", make_events(1, 5))
    archive.upsert_session(make_session("s"))
    os.rename(root, str(root) + ".offline")
    root.write_bytes(b"")  # as the end-to-end outage does
    for call in (lambda: archive.read_events("s", 1, 5), lambda: archive.get_session("s"),
                 lambda: archive.list_sessions(10), lambda: archive.write_events("s", make_events(6, 6)),
                 lambda: archive.delete_session("s")):
        with pytest.raises(ArchiveUnavailable):
            call()
    root.unlink()
    os.rename(str(root) + ".offline", root)
    assert archive.read_events("s", 1, 5) == make_events(1, 5)
    os.unlink(root / DB_NAME)
    with pytest.raises(ArchiveUnavailable, match="gone"):
        archive.read_events("s", 1, 5)  # never a fresh, empty database in its place


def test_runs_in_the_gevent_threadpool_without_blocking_the_hub(tmp_path):
    # as the node runs it: monkey-patched process, every call (adapter and read cache) in hub threadpool
    # threads, several greenlets contending for one session's stripe lock while the hub keeps ticking
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import time, gevent
        from starcite.adapters.local import LocalArchiveAdapter
        from starcite.adapters.read_cache import ArchiveReadCache
        archive = LocalArchiveAdapter({str(tmp_path)!r})
        assert archive.blocking_io
        cache = ArchiveReadCache(archive)
        pool = gevent.get_hub().threadpool
        events = [{{"seq": s, "type": "t", "payload": {{"n": s}}}} for s in range(1, 1025)]
        added, ticks = [], []
        def ticker():
            while True:
                ticks.append(time.monotonic()); gevent.sleep(0.005)
        def writer(n):
            for first in range(n * 32, 1024, 128):  # overlapping slices of the same chunks
                added.append(pool.apply(archive.write_events, ("s", events[first:first + 64])))
                pool.apply(archive.upsert_session, ({{"id": f"s{{n}}", "metadata": {{}}}},))
        t = gevent.spawn(ticker)
        started = time.monotonic()
        gevent.joinall([gevent.spawn(writer, n) for n in range(4)], raise_error=True, timeout=60)
        elapsed = time.monotonic() - started
        readers = [gevent.spawn(pool.apply, cache.read_events, ("s", 1, 1024)) for _ in range(8)]
        gevent.joinall(readers, raise_error=True, timeout=60)
        t.kill()
        assert sum(added) == 1024, sum(added)
        assert all(r.value == events for r in readers)
        assert len(cache) == 4  # four complete chunks cached
        # The hub was never held up for long: a write run on the hub itself would stop the ticker for
        # about as long as all the writes take. (Not a tick count: a busy machine slows every tick.)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert len(ticks) > 2 and max(gaps) < max(0.5, elapsed / 2), (len(ticks), max(gaps), elapsed)
        assert len(pool.apply(archive.list_sessions, (10,))[0]) == 4
        print("OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stderr[-3000:]


def test_sessions_indexed_by_another_process_are_listed(tmp_path):
    """Nodes of a one-host cluster share one directory: each lists what the others indexed."""
    first, second = LocalArchiveAdapter(str(tmp_path)), LocalArchiveAdapter(str(tmp_path))
    first.upsert_session(make_session("a"))
    assert [r["id"] for r in second.list_sessions(10)[0]] == ["a"]   # loaded from disk
    first.upsert_session(make_session("b"))
    second.upsert_session(make_session("c"))
    assert [r["id"] for r in second.list_sessions(10)[0]] == ["a", "b", "c"]  # followed the log
    assert [r["id"] for r in first.list_sessions(10)[0]] == ["a", "b", "c"]
