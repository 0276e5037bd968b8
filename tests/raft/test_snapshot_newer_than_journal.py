"""A restart that finds a snapshot newer than its journal's start keeps the journal's later entries.

A group's snapshot is written by a forked child and renamed into place; the parent compacts the journal
to it at a later tick. A SIGKILL between the two leaves a journal that starts before the snapshot and
holds acknowledged entries after it. Stock pysyncobj then cleared the journal at the next start and those
entries were gone (`SafeSyncObj._SyncObj__loadDumpFile`). Here a real single-replica `RaftGroup` on its real
journal is made to skip the compaction (as a kill before it would), then restarted.

Must not: wait without a bound.
"""

import os
import time
from unittest import mock

import gevent
import gevent.event

from starcite.actors.group_actor import _reply_from_raft
from starcite.actors.raft_errors import RaftUnavailable
from starcite.actors.raft_group import RaftGroup
from starcite.config.settings import load_config

T0 = "2026-01-01T00:00:00.000000Z"


def _group(tmp_path):
    config = load_config(None, {"STARCITE_DATA_DIR": str(tmp_path), "STARCITE_RAFT_SNAPSHOT_ENTRIES": "100000"})
    return RaftGroup(0, "n1", [], os.path.join(str(tmp_path), "raft"), config)


def _create(group, session_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        reply = gevent.event.AsyncResult()
        group.machine.create_session(session_id, None, {}, T0, None, callback=_reply_from_raft(reply))
        try:
            result = reply.get(timeout=max(0.01, deadline - time.monotonic()))
        except RaftUnavailable:  # not leading yet
            if time.monotonic() > deadline:
                raise
            gevent.sleep(0.02)
            continue
        assert result[0] == "ok", result
        return


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        gevent.sleep(0.02)


def test_entries_after_a_snapshot_the_journal_was_not_compacted_to_survive_a_restart(tmp_path):
    snapshot = tmp_path / "raft" / "group-0.snapshot"
    group = _group(tmp_path)
    # The kill before the parent's compaction: it never happens (patched on the class, as an instance
    # attribute would be pickled into the snapshot).
    with mock.patch.object(RaftGroup, "_SyncObj__deleteEntriesTo", lambda self, entry_to: None):
        try:
            for n in range(10):
                _create(group, f"before-{n}")
            group.forceLogCompaction()
            _wait(snapshot.exists, 20, "the snapshot written")
            for n in range(10):
                _create(group, f"after-{n}")
        finally:
            group.stop()
    restarted = _group(tmp_path)
    try:
        _wait(lambda: restarted.state is not None and len(restarted.state.sessions) >= 20, 20,
              f"every session back (have {sorted(restarted.state.sessions)})")
        assert sorted(restarted.state.sessions) == sorted([f"before-{n}" for n in range(10)]
                                                          + [f"after-{n}" for n in range(10)])
    finally:
        restarted.stop()
