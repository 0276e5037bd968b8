"""The asyncio SDK against a real `starcite serve`: the same calls as the sync one, awaited.

Owns: sessions and pages, typed errors, producer retries and resume, the
events page with a long-poll, `follow=False`, and a following tail (replay
then live, a refusal, across a restart and a SIGKILL) over each transport
(WebSocket and SSE). Must not: use anything but loopback or run unbounded
(each test is one `asyncio.run` under a timeout).
"""

import asyncio
import uuid

import pytest

import starcite_client as sc

TRANSPORTS = pytest.mark.parametrize("transport", ["websocket", "sse"])


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_the_asyncio_flavour(shared_server, sid):
    async def main():
        async with sc.AsyncStarcite(shared_server.base) as client:
            tag = uuid.uuid4().hex
            made = {(await client.create_session(metadata={"suite": tag})).id for _ in range(5)}
            assert {s.id async for s in client.list_sessions(metadata={"suite": tag}, page_size=2)} == made
            session = await client.create_session(id=sid, title="async")
            assert (await client.get_session(sid)).data["title"] == "async"
            with pytest.raises(sc.SessionNotFound):
                await client.get_session("no-such-async-session")
            with pytest.raises(sc.SessionExists):
                await client.create_session(id=sid)
            producer = session.producer("p")
            assert [(await producer.append("m", {"n": n})).seq for n in range(3)] == [1, 2, 3]
            with pytest.raises(sc.ProducerSeqConflict) as info:
                await session.producer("p").append("m", {})
            assert info.value.expected_producer_seq == 4
            producer = session.producer("p", resume=True)  # a restarted producer
            resumed = await producer.append("m", {"n": 3})
            assert (resumed.seq, resumed.producer_seq) == (4, 4)
            with pytest.raises(sc.ExpectedSeqConflict):
                await producer.append("m", {}, expected_seq=0)

            waiting = asyncio.ensure_future(session.events(cursor=4, wait_ms=10000))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await producer.append("m", {"n": 4})
            page = await asyncio.wait_for(waiting, 5)
            assert [e["seq"] for e in page["events"]] == [5] and page["next_cursor"] == 5

            assert [e["seq"] async for e in session.tail(cursor=2, batch_size=2, follow=False)] == [3, 4, 5]
    run(main())


@TRANSPORTS
def test_async_tail_replays_then_follows_live(shared_server, sid, transport):
    async def main():
        async with sc.AsyncStarcite(shared_server.base) as client:
            session = await client.create_session(id=sid)
            producer = session.producer("p")
            for n in range(5):
                await producer.append("m", {"n": n})
            tail = session.tail(cursor=3, transport=transport)
            got = [(await tail.__anext__())["seq"], (await tail.__anext__())["seq"]]
            await producer.append("m", {"n": 5})
            got.append((await tail.__anext__())["seq"])
            await tail.aclose()
            assert got == [4, 5, 6]
            with pytest.raises(sc.SessionNotFound):
                await client.session("no-such-async-session").tail(transport=transport).__anext__()
    run(main())


@TRANSPORTS
def test_async_tail_survives_a_restart(make_server, sid, transport):
    server = make_server({"STARCITE_ACCESS_LOG": "0"})

    async def main():
        async with sc.AsyncStarcite(server.base, timeout=2.0, retry_for=30.0) as client:
            session = await client.create_session(id=sid)
            producer = session.producer("p")
            for n in range(10):
                await producer.append("m", {"n": n})
            tail = session.tail(batch_size=4, transport=transport)
            seen = [(await tail.__anext__())["seq"] for _ in range(10)]
            await asyncio.to_thread(server.restart)
            for n in range(10, 20):
                await producer.append("m", {"n": n})
            seen += [(await tail.__anext__())["seq"] for _ in range(10)]
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            for n in range(20, 30):
                await producer.append("m", {"n": n})
            seen += [(await tail.__anext__())["seq"] for _ in range(10)]
            await tail.aclose()
            return seen
    assert run(main(), timeout=90) == list(range(1, 31))
