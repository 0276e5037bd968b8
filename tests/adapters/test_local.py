"""Local-specific behaviour of `LocalArchiveAdapter`: the on-disk layout and its durability habits.

Owns: exact file paths and contents, no temp files left behind, the session
index surviving a restart (lazy load from disk), very long ids, id order of
listings, and running in gevent's hub threadpool (as the node runs it) without
blocking the hub. Must not: repeat the shared contract (test_contract.py).
"""

import json
import os
import subprocess
import sys
import textwrap

from starcite.adapters import build_adapter
from starcite.adapters.chunks import encode_session_id
from starcite.adapters.local import LocalArchiveAdapter
from starcite.config.settings import load_config
from tests.adapters.archive_helpers import make_events, make_session


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in os.walk(root) for f in files
                  if ".locks" not in d)


def test_files_use_the_s3_layout(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    session_id = "org/ses 1 ✓"
    archive.write_events(session_id, make_events(1, 300))
    archive.write_events(session_id, make_events(290, 520))
    archive.upsert_session(make_session(session_id))
    b64 = encode_session_id(session_id)
    assert _files(tmp_path) == [f"events/v1/{b64}/1.ndjson", f"events/v1/{b64}/257.ndjson",
                                f"events/v1/{b64}/513.ndjson", f"sessions/v1/{b64}.json"]
    lines = (tmp_path / f"events/v1/{b64}/257.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in lines] == make_events(257, 512)
    assert json.loads((tmp_path / f"sessions/v1/{b64}.json").read_text()) == make_session(session_id)


def test_restart_reloads_sessions_and_events_from_disk(tmp_path):
    first = LocalArchiveAdapter(str(tmp_path))
    for i in range(30):
        first.upsert_session(make_session(f"s{i:02d}", tenant="t"))
    first.write_events("s00", make_events(1, 10))
    first.close()
    (tmp_path / "sessions" / "v1" / ".tmp-leftover-from-a-crash").write_bytes(b"{half")
    second = LocalArchiveAdapter(str(tmp_path))
    records, cursor = second.list_sessions(100, tenant_id="t")
    assert [r["id"] for r in records] == [f"s{i:02d}" for i in range(30)] and cursor is None
    assert second.read_events("s00", 1, 10) == make_events(1, 10)


def test_sessions_written_by_another_process_are_found_by_id(tmp_path):
    reader = LocalArchiveAdapter(str(tmp_path))
    assert reader.list_sessions(10) == ([], None)  # index loaded now
    LocalArchiveAdapter(str(tmp_path)).upsert_session(make_session("later"))
    assert reader.get_session("later") == make_session("later")
    assert [r["id"] for r in reader.list_sessions(10)[0]] == ["later"]


def test_listing_is_in_id_order(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    ids = ["b", "a", "Z", "_x", "-y", "ä", "a/b", "aa"]
    for session_id in ids:
        archive.upsert_session(make_session(session_id))
    assert [r["id"] for r in archive.list_sessions(100)[0]] == sorted(ids)


def test_very_long_ids_are_split_into_directories(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    # encodings of 240 and 480 characters sit exactly on the split boundary; one id prefixes another
    ids = sorted(["long-" * 150, "z" * 180, "z" * 360, "z" * 361])
    for session_id in ids:
        archive.write_events(session_id, make_events(1, len(session_id) % 7 + 1))
        archive.upsert_session(make_session(session_id))
    assert all(len(part) <= 255 for f in _files(tmp_path) for part in f.split(os.sep))
    reopened = LocalArchiveAdapter(str(tmp_path))
    assert reopened.list_sessions(10)[0] == [make_session(session_id) for session_id in ids]
    for session_id in ids:
        assert reopened.read_events(session_id, 1, 10) == make_events(1, len(session_id) % 7 + 1)


def test_no_temp_files_are_left_behind(tmp_path):
    archive = LocalArchiveAdapter(str(tmp_path))
    for first in range(1, 600, 50):
        archive.write_events("s", make_events(first, first + 49))
        archive.upsert_session(make_session("s"))
    assert not [f for f in _files(tmp_path) if ".tmp-" in f]


def test_built_from_config(tmp_path):
    config = load_config(environ={"STARCITE_DATA_DIR": str(tmp_path)})
    archive = build_adapter(config)
    archive.check()
    archive.write_events("s", make_events(1, 1))
    assert (tmp_path / "archive" / "events" / "v1" / encode_session_id("s") / "1.ndjson").exists()


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
