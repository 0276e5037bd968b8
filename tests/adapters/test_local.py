"""Local-specific behaviour of `LocalArchiveAdapter`: the on-disk layout and its durability habits.

Owns: exact file paths and contents, no temp files left behind, the session
index surviving a restart (lazy load from disk), very long ids, and id order
of listings. Must not: repeat the shared contract (test_contract.py).
"""

import json
import os

from starcite.adapters import build_adapter
from starcite.adapters.base import encode_session_id
from starcite.adapters.local import LocalArchiveAdapter
from starcite.config import load_config
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
