"""The local archive written by an older release (a file per chunk and per record) is imported on first use.

Owns: an archive directory in the older layout (written here file by file, as
that release wrote it: long components split into directories, leftovers of
a crash, its ``.locks``) read whole by a new `LocalArchiveAdapter`, the old
files removed after, an import cut short done again without loss (a record
written since wins), and a torn old file refused rather than skipped. Must
not: test the new layout itself (test_local.py).
"""

import os

import pytest

from starcite.adapters import ArchiveUnavailable, chunks
from starcite.adapters.local import DB_NAME, LocalArchiveAdapter
from starcite.adapters.local_files import file_path
from tests.adapters.archive_helpers import make_events, make_session

LONG_ID = "long-" * 150  # its base64 is split into directories of 240 characters


def write_old(root, key, data):
    path = file_path(str(root), key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def write_old_session(root, session_id, events, record=True):
    for start, lines in chunks.group_by_chunk(chunks.event_lines(events)).items():
        write_old(root, chunks.chunk_key(session_id, start), chunks.encode_chunk(lines))
    if record:
        write_old(root, chunks.session_key(session_id), chunks.encode_json(make_session(session_id, tenant="t")))


def old_archive(root):
    sessions = {"s1": make_events(1, 600), "日本語/セッション": make_events(1, 3), LONG_ID: make_events(1, 260)}
    for session_id, events in sessions.items():
        write_old_session(root, session_id, events)
    write_old_session(root, "events-only", make_events(1, 2), record=False)
    write_old(root, "sessions/v1/.tmp-0123", b"{half a reco")  # a crash's leftover: never renamed, never data
    write_old(root, "events/v1/czE/.tmp-4567", b'{"seq":1')
    write_old(root, ".locks/index.log", b"sessions/v1/czE.json\n")
    write_old(root, ".locks/3.lock", b"")
    return sessions


def test_an_old_archive_is_imported_whole_and_its_files_removed(tmp_path):
    sessions = old_archive(tmp_path)
    archive = LocalArchiveAdapter(str(tmp_path))
    archive.check()
    for session_id, events in sessions.items():
        assert archive.read_events(session_id, 1, 10**6) == events
        assert archive.read_session_record(session_id) == make_session(session_id, tenant="t")
    assert archive.read_events("events-only", 1, 10) == make_events(1, 2)
    records, _next = archive.list_session_records(None, 100, tenant_id="t")
    assert sorted(r["id"] for r in records) == sorted(sessions)
    assert set(os.listdir(tmp_path)) <= {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}
    archive.write_events("s1", make_events(601, 602))  # and it goes on from there
    reopened = LocalArchiveAdapter(str(tmp_path))
    assert reopened.read_events("s1", 1, 10**6) == make_events(1, 602)


def test_an_import_cut_short_is_done_again_and_newer_records_win(tmp_path):
    old_archive(tmp_path)
    archive = LocalArchiveAdapter(str(tmp_path))
    archive.check()
    newer = {**make_session("s1", tenant="t"), "version": 9}
    archive.write_session_records([newer])
    archive.write_events("s1", make_events(601, 700))
    # the files come back, as if the import had crashed before removing them
    sessions = old_archive(tmp_path)
    again = LocalArchiveAdapter(str(tmp_path))
    assert again.read_session_record("s1") == newer
    assert again.read_events("s1", 1, 10**6) == make_events(1, 700)
    assert again.read_events(LONG_ID, 1, 10**6) == sessions[LONG_ID]
    assert not os.path.exists(tmp_path / "events")


def test_a_torn_old_chunk_is_refused_not_skipped(tmp_path):
    old_archive(tmp_path)
    write_old(tmp_path, chunks.chunk_key("s1", 257), b'{"seq":257,"type":"x"}\n{"seq":258,"ty')
    archive = LocalArchiveAdapter(str(tmp_path))
    with pytest.raises(ArchiveUnavailable, match="257"):
        archive.check()
    assert os.path.exists(tmp_path / "events")  # nothing removed: an operator can repair the file
