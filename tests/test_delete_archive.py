"""A deleted session's archive copy goes, on every adapter (local, S3 on moto, Postgres), across an
archive outage and a node restart.

Owns: the end-to-end deletion from the archive as the store itself shows it
(`tests.archive_backends`: object by object, row by row): the copy is gone
once the archive answers, the other sessions' copies stay whole; while the
archive is down the delete still answers and the session is 404 at once, and
the deletion waits in the tombstone (replicated, so a restarted node resumes
it). Must not: test the API's answers in detail (tests/test_delete.py) or
reach into the node's process.
"""

import pytest
from minio.error import S3Error

from tests.archive_backends import BACKENDS
from tests.server import wait_until

NODE_ENV = {"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": "100", "STARCITE_NUM_GROUPS": "4",
            "STARCITE_ARCHIVE_READ_CACHE_TTL_MS": "100", "STARCITE_RAFT_TIMEOUT_MS": "2000"}
WAIT_S = 45.0


@pytest.fixture(params=list(BACKENDS))
def backend(request, tmp_path):
    """The archive of the test's node; taken before ``make_server``, so the node stops first."""
    built = BACKENDS[request.param](tmp_path)
    yield built
    built.close()


def fill(server, session_id, count):
    server.create(session_id, metadata={"tenant_id": "t"})
    for n in range(1, count + 1):
        assert server.append(session_id, n).status_code == 201


def stored(backend, session_ids):
    """``{session_id: (events stored, record stored?)}``; None while the node is deleting under the reader."""
    try:
        events, records = backend.stored(session_ids)
    except (FileNotFoundError, S3Error):  # a file or object listed, then deleted before it was read
        return None
    return {session_id: (len(events.get(session_id) or []), session_id in records) for session_id in session_ids}


def test_the_archive_copy_goes_after_an_outage_and_a_restart(backend, make_server):
    server = make_server({**NODE_ENV, **backend.env})
    ids = ["gone-now", "gone-later", "kept"]
    for session_id in ids:
        fill(server, session_id, 300)  # two chunks each
    wait_until(lambda: stored(backend, ids) == {i: (300, True) for i in ids}, WAIT_S, "everything archived")

    assert server.request("DELETE", "/v1/sessions/gone-now").status_code == 200
    wait_until(lambda: stored(backend, ["gone-now"]) == {"gone-now": (0, False)}, WAIT_S, "gone-now's copy gone")

    backend.kill()
    try:
        assert server.request("DELETE", "/v1/sessions/gone-later").status_code == 200
        assert server.request("GET", "/v1/sessions/gone-later").status_code == 404
        wait_until(lambda: "archive deletion of gone-later failed" in server.output(), WAIT_S, "a failed deletion")
        server.stop()
    finally:
        backend.revive()
    server.start()
    assert server.request("GET", "/v1/sessions/gone-later").status_code == 404
    wait_until(lambda: stored(backend, ids) == {"gone-now": (0, False), "gone-later": (0, False),
                                                "kept": (300, True)}, WAIT_S, "gone-later's copy gone")
    listed = server.request("GET", "/v1/sessions").json()["sessions"]
    assert [record["id"] for record in listed] == ["kept"]
    page = server.request("GET", "/v1/sessions/kept/events?limit=1000").json()
    assert [event["seq"] for event in page["events"]] == list(range(1, 301))
