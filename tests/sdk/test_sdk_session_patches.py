"""The SDK and `starcite-cli` patching, archiving and unarchiving sessions on a live node.

Owns: `Session.update` (title, a cleared title, merged metadata, version,
`ExpectedVersionConflict` with ``current_version``), `archive`/`unarchive`,
`list_sessions(archived=...)` in the sync and asyncio clients, events with a
``cursor``, and `starcite-cli sessions patch|archive|unarchive` and `ls
--archived` with their exit codes. Must not: use anything but loopback, or
leave a process running.
"""

import asyncio
import json
import os
import subprocess
import sys

import pytest

import starcite_client as sc

CLI = os.path.join(os.path.dirname(sys.executable), "starcite-cli")


def cli(server, *args):
    result = subprocess.run([CLI, "--url", server.base, *args], capture_output=True, text=True, timeout=30)
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_update_archive_and_list_with_the_sync_client(shared_server, sid):
    with sc.Starcite(shared_server.base) as client:
        session = client.create_session(id=sid, title="T", metadata={"suite": sid, "keep": "1"})
        assert (session.data["version"], session.data["archived"]) == (1, False)
        session.update(title="U", metadata={"stage": "b"}, expected_version=1)
        assert session.data["title"] == "U" and session.data["version"] == 2
        assert session.data["metadata"] == {"suite": sid, "keep": "1", "stage": "b"}
        session.update(title=None)
        assert session.data["title"] is None and session.data["version"] == 3
        with pytest.raises(sc.ExpectedVersionConflict) as info:
            session.update(metadata={"x": "y"}, expected_version=1)
        assert info.value.current_version == 3 and info.value.status == 409
        with pytest.raises(sc.BadRequest):
            session.update()
        assert session.archive().data["archived"] is True
        assert [s.id for s in client.list_sessions(metadata={"suite": sid})] == []
        assert [s.id for s in client.list_sessions(metadata={"suite": sid}, archived=True)] == [sid]
        assert [s.id for s in client.list_sessions(metadata={"suite": sid}, archived="all")] == [sid]
        assert session.unarchive().data["archived"] is False
        assert [s.id for s in client.list_sessions(metadata={"suite": sid})] == [sid]
        with pytest.raises(ValueError):
            next(client.list_sessions(archived="maybe"))
        with pytest.raises(sc.SessionNotFound):
            client.session(sid + "-missing").archive()
        session.producer("p").append("note", {"n": 1})
        event = next(session.tail(follow=False))
        assert event["cursor"] == event["seq"] == 1 and event["actor"] == "service:service" and "source" not in event


def test_update_archive_and_list_with_the_asyncio_client(shared_server, sid):
    async def main():
        async with sc.AsyncStarcite(shared_server.base) as client:
            session = await client.create_session(id=sid, metadata={"suite": sid})
            assert (await session.update(title="A", expected_version=1)).data["version"] == 2
            with pytest.raises(sc.ExpectedVersionConflict):
                await session.update(title="B", expected_version=1)
            await session.archive()
            assert [s.id async for s in client.list_sessions(metadata={"suite": sid}, archived=True)] == [sid]
            assert [s.id async for s in client.list_sessions(metadata={"suite": sid})] == []
            assert (await session.unarchive()).data["archived"] is False
    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_cli_patches_archives_and_lists(shared_server, sid):
    shared_server.create(sid, title="T", metadata={"cli": sid})
    code, out, _ = cli(shared_server, "sessions", "patch", sid, "--title", "U", "--metadata", '{"k":"v"}',
                       "--expected-version", "1")
    assert code == 0 and (out[0]["title"], out[0]["version"], out[0]["metadata"]["k"]) == ("U", 2, "v")
    code, _, err = cli(shared_server, "sessions", "patch", sid, "--clear-title", "--expected-version", "1")
    assert code == 5 and "expected_version_conflict" in err
    code, out, _ = cli(shared_server, "sessions", "patch", sid, "--clear-title")
    assert code == 0 and out[0]["title"] is None and out[0]["version"] == 3
    assert cli(shared_server, "sessions", "patch", sid)[0] == 6  # nothing to change: 400
    assert cli(shared_server, "sessions", "patch", sid, "--metadata", "[1]")[0] == 2
    assert cli(shared_server, "sessions", "patch", sid + "-missing", "--title", "x")[0] == 3
    code, out, _ = cli(shared_server, "sessions", "archive", sid)
    assert code == 0 and out[0]["archived"] is True
    assert cli(shared_server, "sessions", "ls", "-m", f"cli={sid}")[1] == []
    assert [r["id"] for r in cli(shared_server, "sessions", "ls", "-m", f"cli={sid}", "--archived", "true")[1]] == [sid]
    assert [r["id"] for r in cli(shared_server, "sessions", "ls", "-m", f"cli={sid}", "--archived", "all")[1]] == [sid]
    code, out, _ = cli(shared_server, "sessions", "unarchive", sid)
    assert code == 0 and out[0]["archived"] is False
    assert [r["id"] for r in cli(shared_server, "sessions", "ls", "-m", f"cli={sid}")[1]] == [sid]
