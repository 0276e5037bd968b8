"""The SDK and `starcite-cli` on deletion and expiry, against a real `starcite serve`.

Owns: `Starcite.delete_session` / `Session.delete` (and the asyncio flavour),
`create_session(ttl_seconds=, expires_at=)`, a following tail ended by the
delete with `SessionDeleted` over each transport, a retried delete whose first
try committed read as deleted (`_core.deleted_by_earlier_try`), `starcite-cli
sessions delete` and `sessions create --ttl` with their exit codes. Must not:
use anything but loopback, or leave a thread or a process behind.
"""

import asyncio
import threading

import pytest

import starcite_client as sc
from starcite_client import _core
from starcite_client.cli import duration
from tests.sdk.test_client_cli import cli
from tests.server import wait_until


@pytest.fixture
def client(shared_server):
    with sc.Starcite(shared_server.base) as client:
        yield client


def test_delete_a_session_then_it_is_not_found(client, sid):
    session = client.create_session(sid)
    session.producer("p").append("note", {"n": 1})
    answer = session.delete()
    assert answer["id"] == sid and answer["deleted"] is True and answer["deleted_at"]
    with pytest.raises(sc.SessionNotFound):
        session.refresh()
    with pytest.raises(sc.SessionNotFound):
        client.delete_session(sid)
    with pytest.raises(sc.SessionDeleted) as refused:
        client.create_session(sid)
    assert refused.value.status == 409


def test_a_404_after_a_retry_means_the_earlier_try_deleted_it():
    settled = _core.deleted_by_earlier_try("s")
    assert settled(sc.error_for(404, {"error": "session_not_found", "message": "m"}, {}))["deleted"] is True
    assert settled(sc.error_for(403, {"error": "forbidden_scope", "message": "m"}, {})) is None


def test_create_with_a_ttl_or_an_expiry(client, sid):
    brief = client.create_session(sid, ttl_seconds=1)
    assert brief.data["expires_at"].endswith("Z")
    later = client.create_session(sid + "-later", expires_at="2999-01-01T00:00:00Z")
    assert later.data["expires_at"] == "2999-01-01T00:00:00.000000Z"
    wait_until(lambda: _missing(client, sid), 15, "the session expired")
    assert client.get_session(sid + "-later").data["expires_at"]


def _missing(client, session_id):
    try:
        client.get_session(session_id)
    except sc.SessionNotFound:
        return True
    return False


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_a_following_tail_ends_with_session_deleted(client, sid, transport):
    session = client.create_session(sid)
    session.producer("p").append("note", {"n": 1})
    seen, ended = [], {}

    def follow():
        try:
            for event in session.tail(transport=transport):
                seen.append(event["seq"])
        except sc.StarciteError as exc:
            ended["error"] = exc

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_until(lambda: seen == [1], 10, "the tail caught up")
    client.delete_session(sid)
    reader.join(15)
    assert not reader.is_alive()
    assert isinstance(ended.get("error"), sc.SessionDeleted), ended


def test_the_asyncio_flavour(shared_server, sid):
    async def run():
        async with sc.AsyncStarcite(shared_server.base) as client:
            session = await client.create_session(sid, ttl_seconds=3600)
            assert session.data["expires_at"]
            assert (await session.delete())["deleted"] is True
            with pytest.raises(sc.SessionNotFound):
                await client.get_session(sid)
    asyncio.run(run())


def test_cli_delete_and_create_with_ttl(shared_server, sid):
    code, out, _ = cli(shared_server, "sessions", "create", "--id", sid, "--ttl", "2h")
    assert code == 0 and out[0]["expires_at"].endswith("Z")
    code, out, _ = cli(shared_server, "sessions", "delete", sid)
    assert code == 0 and out[0]["id"] == sid and out[0]["deleted"] is True
    code, _, err = cli(shared_server, "sessions", "delete", sid)
    assert code == 3 and "session_not_found" in err
    code, _, err = cli(shared_server, "sessions", "create", "--id", sid)
    assert code == 5 and "session_deleted" in err
    assert cli(shared_server, "sessions", "create", "--ttl", "soon")[0] == 2


def test_cli_durations():
    assert [duration(text) for text in ("45", "45s", "90m", "12h", "30d", "1w")] == [
        45, 45, 5400, 43200, 2592000, 604800]
    for bad in ("0", "-1", "1y", "h", ""):
        with pytest.raises(Exception):
            duration(bad)
