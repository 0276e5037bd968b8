"""`starcite backup` and `starcite restore` on real processes: back up (the node running under
appends, or stopped), lose the data directory, restore it, and find every acknowledged event; with
the S3 and Postgres archives, the procedure of docs/operations.md: the Raft backup, then the
archive's own (after it), both lost, the archive restored first."""

import os
import shutil
import subprocess
import threading

import pytest

from tests.archive_backends import BACKENDS
from tests.server import STARCITE

SESSIONS = ("bk-a", "bk-b", "bk-c")
ENV = {"STARCITE_RAFT_SNAPSHOT_ENTRIES": "40", "STARCITE_NUM_GROUPS": "4"}


def starcite(server, *args):
    """``starcite <args>`` with the node's environment: ``(exit code, stdout, stderr)``."""
    done = subprocess.run([STARCITE, *args], env=server.env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def append_some(server, acked, first, count):
    for session_id in SESSIONS:
        for n in range(first, first + count):
            response = server.append(session_id, n)
            assert response.status_code == 201, response.text
            acked[session_id][n] = response.json()["seq"]


def all_events(server, session_id):
    events, cursor = [], 0
    for _ in range(1000):
        response = server.request("GET", f"/v1/sessions/{session_id}/events?cursor={cursor}&limit=1000")
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        if not page["events"] or page["next_cursor"] is None or cursor >= page["last_seq"]:
            return events
        cursor = page["next_cursor"]
    raise AssertionError("too many pages")


def assert_every_acked_event(server, acked):
    for session_id, by_producer_seq in acked.items():
        events = all_events(server, session_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), session_id
        found = {e["producer_seq"]: e["seq"] for e in events if e["producer_id"] == "p1"}
        for producer_seq, seq in by_producer_seq.items():
            assert found.get(producer_seq) == seq, (session_id, producer_seq)


def lose_and_restore(server, backup_dir):
    shutil.rmtree(server.data_dir)  # the disk is gone
    os.makedirs(server.data_dir)
    code, out, err = starcite(server, "restore", str(backup_dir))
    assert code == 0, err
    server.start()


@pytest.mark.parametrize("running", [True, False], ids=["node-running", "node-stopped"])
def test_a_backup_restores_every_acknowledged_event(make_server, tmp_path, running):
    server = make_server(ENV)
    acked = {session_id: {} for session_id in SESSIONS}
    for session_id in SESSIONS:
        server.create(session_id, title=session_id)
    append_some(server, acked, 1, 150)
    # archived and evicted from memory: the local archive holds them, the Raft state does not
    server.wait_until(lambda: server.metric("starcite_archive_pending_rows") == 0, timeout=30, what="archive")
    assert server.metric("starcite_archive_tail_size") < 3 * 150
    append_some(server, acked, 151, 20)  # some still only in the Raft state
    backup_dir = tmp_path / "backup"
    if running:
        stop = threading.Event()
        later = {session_id: {} for session_id in SESSIONS}

        def keep_appending():  # appends go on during the backup (what they add may or may not be in it)
            n = 170
            while not stop.is_set() and n < 570:
                n += 1
                append_some(server, later, n, 1)

        writer = threading.Thread(target=keep_appending)
        writer.start()
        try:
            code, out, err = starcite(server, "backup", str(backup_dir))
        finally:
            stop.set()
            writer.join(60)
        assert code == 0, err
        assert '"loop_held_ms"' in out  # made by the running node
    else:
        server.stop()
        code, out, err = starcite(server, "backup", str(backup_dir))
        assert code == 0, err
    assert os.path.exists(backup_dir / "manifest.json")
    assert os.listdir(backup_dir / "archive") == ["archive.sqlite3"]  # one consistent file, no WAL beside it
    server.stop()
    lose_and_restore(server, backup_dir)
    assert sorted(s["id"] for s in server.request("GET", "/v1/sessions").json()["sessions"]) == sorted(SESSIONS)
    assert_every_acked_event(server, acked)
    events = all_events(server, "bk-a")
    response = server.append("bk-a", events[-1]["producer_seq"] + 1)  # seq and the producer continue
    assert response.json()["seq"] == events[-1]["seq"] + 1, response.text


@pytest.mark.parametrize("kind", ["s3", "postgres"])
def test_the_procedure_for_an_external_archive_restores_every_acknowledged_event(make_server, tmp_path, kind):
    backend = BACKENDS[kind](tmp_path)
    try:
        server = make_server({**ENV, **backend.env})
        acked = {session_id: {} for session_id in SESSIONS}
        for session_id in SESSIONS:
            server.create(session_id, title=session_id)
        append_some(server, acked, 1, 150)
        server.wait_until(lambda: server.metric("starcite_archive_pending_rows") == 0, timeout=30, what="archive")
        append_some(server, acked, 151, 20)
        code, _out, err = starcite(server, "ops", "archive-pause", "600000")
        assert code == 0, err
        code, out, err = starcite(server, "backup", str(tmp_path / "backup"))  # the Raft dir, running
        assert code == 0 and f'"archive_adapter": "{kind}"' in out, err
        assert not os.path.exists(tmp_path / "backup" / "archive")
        append_some(server, acked, 171, 5)  # acknowledged after the backups: not in them
        saved = backend.backup(tmp_path)  # the archive by its own means, archiving still paused
        code, _out, err = starcite(server, "ops", "archive-resume")
        assert code == 0, err
        server.wait_until(lambda: server.metric("starcite_archive_pending_rows") == 0, timeout=30, what="archive")
        server.stop()
        backend.lose()
        backend.restore(saved)  # the archive first
        lose_and_restore(server, tmp_path / "backup")
        for session_id in SESSIONS:
            for n in range(171, 176):
                acked[session_id].pop(n)
        assert_every_acked_event(server, acked)
        # the seqs of the appends after the backups are given again, and read back as the new events
        response = server.append("bk-a", 171, payload={"again": True})
        assert response.json()["seq"] == 171, response.text
        server.wait_until(lambda: server.metric("starcite_archive_pending_rows") == 0, timeout=30, what="archive")
        server.restart()  # the hot tier is empty: seq 171 comes from the archive
        assert all_events(server, "bk-a")[170]["payload"] == {"again": True}
    finally:
        backend.close()


def test_restore_and_backup_refuse_what_would_lose_data(make_server, tmp_path):
    server = make_server(ENV)
    server.create("bk-r")
    assert server.append("bk-r", 1).status_code == 201
    code, _out, err = starcite(server, "restore", str(tmp_path))
    assert code == 2 and "is in use by another starcite node" in err and "stop it before restoring" in err, err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _out, err = starcite(server, "backup", str(tmp_path / "full"))
    assert code == 1 and "not an empty directory" in err, err
    code, _out, err = starcite(server, "backup", str(tmp_path / "ok"))
    assert code == 0, err
    server.stop()
    code, _out, err = starcite(server, "restore", str(tmp_path / "ok"))  # over the existing Raft state
    assert code == 1 and "already holds Raft state" in err, err
    code, _out, err = starcite(server, "restore", str(tmp_path / "full"))
    assert code == 1 and "not a complete backup" in err, err
