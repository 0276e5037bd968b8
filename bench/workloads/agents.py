"""Agents: a workload shaped like the product. K sessions; each has one
producer appending a 50-byte token chunk every 50 ms (20 a second), and two
tails following it from cursor 0, one over WebSocket and one over SSE.

K steps up the ladder 25, 50, 100, 200, 400, ... (the profile's
``agents_ladder``); a step passes when no append failed, both tails of every
session received every acknowledged event, and the append->receipt p99 is at
most 50 ms at each kind of tail. The ladder stops at the first step that
misses; the system's figure is the largest K that passed.

Append->receipt runs from the append's *scheduled* send (the producer's
fixed 50 ms grid, stamped into the event's payload) to the tail's receipt, so
a producer that falls behind its schedule (an ack slower than 50 ms) shows
up in the latency instead of silently lowering the rate. Both sides stamp
with CLOCK_MONOTONIC.

Systems: Starcite single node, the Starcite 3-node cluster (session i's
producer goes through member i mod 3, its WebSocket tail through the next,
its SSE tail through the one after: a load balancer spreads them), and
Redis Streams as the peer (``XADD`` on a private ``appendfsync always``
server; two readers per stream, each on its own connection in ``XREAD BLOCK``
from the last id it saw).

The tails (or readers) live in a forked process with their own event loop;
the producers run in the harness's process. Owns: the ladder, the producers,
the tail holder and the agents rows.
"""

import array
import asyncio
import re
import time

from bench.aio import gather_bounded
from bench.procs import expect, fork, free_port, raise_fd_limit, reap, run_reporting
from bench.results import CLUSTER_SYSTEM, GENERATOR_BUSY_FRACTION, Row
from bench.stats import latency_summary
from bench.targets import cluster as cluster_target
from bench.targets import redis as redis_target
from bench.targets import starcite as starcite_target
from bench.wire import sse, ws
from bench.wire.http import HttpClient
from bench.wire.resp import RedisClient
from bench.workloads import session_ids

INTERVAL_S = 0.05            # each producer appends every 50 ms
TARGET_P99_MS = 50.0
CHUNK_BYTES = 50             # the payload: a JSON object of this size, its scheduled send time inside
_STAMP = re.compile(rb'"sched_ns":(\d+)')
_DRAIN_S = 10.0              # after the last append, how long tails may take to receive the rest
_XREAD_BLOCK_MS = 500
_CONNECT_PARALLEL = 100
_WIRES = ("ws", "sse")


def chunk(scheduled_ns: int) -> bytes:
    """A ``CHUNK_BYTES`` JSON object carrying ``scheduled_ns`` (a 19-digit CLOCK_MONOTONIC stamp pads alike)."""
    head = b'{"sched_ns":%d,"text":"' % scheduled_ns
    return head + b"x" * max(0, CHUNK_BYTES - len(head) - 2) + b'"}'


# -- the tail holder (a forked process) --------------------------------------------------------

class _Receipts:
    """Per wire: one latency per received event, and how many events each session's tail received."""

    def __init__(self, sessions: int):
        self.latencies = {w: array.array("q") for w in _WIRES}
        self.counts = {w: [0] * sessions for w in _WIRES}

    def callback(self, wire: str, index: int):
        latencies, counts = self.latencies[wire], self.counts[wire]

        def on_data(payload, received_ns):
            for match in _STAMP.finditer(payload):
                latencies.append(received_ns - int(match.group(1)))
                counts[index] += 1
        return on_data

    def missing(self, expected: list) -> dict:
        return {w: sum(max(0, e - got) for e, got in zip(expected, self.counts[w])) for w in _WIRES}

    def complete(self, expected: list) -> bool:
        return all(got >= e for w in _WIRES for e, got in zip(expected, self.counts[w]))


async def _open_starcite_tails(ports: list, ids: list, receipts: _Receipts, timeout: float) -> list:
    """Session i's WebSocket tail through ``ports[(i + 1) % n]``, its SSE tail through ``ports[(i + 2) % n]``
    (``_CONNECT_PARALLEL`` handshakes at a time)."""
    gate = asyncio.Semaphore(_CONNECT_PARALLEL)

    async def one(port, session_id, on_data, module):
        async with gate:
            return await module.connect(port, starcite_target.tail_path(session_id), on_data)
    return await gather_bounded([one(ports[(i + offset) % len(ports)], session_id, receipts.callback(wire, i), module)
                                 for offset, wire, module in ((1, "ws", ws), (2, "sse", sse))
                                 for i, session_id in enumerate(ids)], timeout)


async def _open_redis_readers(port: int, keys: list, receipts: _Receipts, stop: asyncio.Event) -> list:
    """Two readers per stream, each on its own connection, ``XREAD BLOCK`` from the last id it saw."""
    async def reader(wire, index, key, client):
        last_id, on_data = b"0", receipts.callback(wire, index)
        while not stop.is_set():
            reply = await client.call(b"XREAD", b"COUNT", b"100", b"BLOCK", _XREAD_BLOCK_MS, b"STREAMS", key, last_id)
            received = time.perf_counter_ns()
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    on_data(fields[1], received)  # fields: [b"data", chunk]

    clients = await gather_bounded([RedisClient.connect(port) for _ in range(2 * len(keys))], 60)
    tasks = [asyncio.ensure_future(reader(wire, i, key, clients[2 * i + w]))
             for i, key in enumerate(keys) for w, wire in enumerate(_WIRES)]
    return tasks, clients


async def _hold(conn, system: str, ports: list, ids: list, timeout: float):
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    receipts, stop = _Receipts(len(ids)), asyncio.Event()
    tasks, tails, readers = [], [], []
    if system.startswith("redis"):
        tasks, readers = await _open_redis_readers(ports[0], [i.encode() for i in ids], receipts, stop)
    else:
        tails = await _open_starcite_tails(ports, ids, receipts, timeout)
    cpu_start = time.process_time()
    conn.send(("ready",))
    expected = await loop.run_in_executor(None, conn.recv)  # acked appends per session, once producers are done
    deadline = time.monotonic() + _DRAIN_S
    while not receipts.complete(expected) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu_s = time.process_time() - cpu_start
    stop.set()
    for tail in tails:
        tail.close()
    for reader in readers:
        await reader.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(("done", {w: receipts.latencies[w].tobytes() for w in _WIRES}, receipts.missing(expected), cpu_s))


def _tail_process(conn, system, ports, ids, timeout):
    run_reporting(conn, asyncio.run, _hold(conn, system, ports, ids, timeout))


# -- the producers (the harness's process) -----------------------------------------------------

class _Appenders:
    """How a producer appends: ``connect(i)`` -> ``append(seq, body_chunk)`` coroutine and a closer."""

    @staticmethod
    def starcite(ports: list, ids: list):
        async def connect(i):
            client = HttpClient(ports[i % len(ports)])
            path, producer = starcite_target.append_path(ids[i]), f"agent-{i}"

            async def append(seq, body_chunk):
                await client.post_json(path, starcite_target.append_body(body_chunk, producer, seq))
            return append, client.close
        return connect

    @staticmethod
    def redis(port: int, ids: list):
        async def connect(i):
            client, key = await RedisClient.connect(port), ids[i].encode()

            async def append(_seq, body_chunk):
                await client.call(b"XADD", key, b"*", b"data", body_chunk)
            return append, client.close
        return connect


async def _produce(connect, sessions: int, seconds: float) -> dict:
    """Every producer appends on its own 50 ms grid (staggered over the first interval) for ``seconds``;
    returns acked appends per session, ack latencies from the scheduled send, errors and the first error."""
    appends = int(seconds / INTERVAL_S)
    producers = await gather_bounded([connect(i) for i in range(sessions)], 60)
    acked, ack_ns, errors = [0] * sessions, array.array("q"), []
    cpu_start, start = time.process_time(), time.perf_counter_ns() + 200_000_000
    step = int(INTERVAL_S * 1e9)

    async def producer(i, append):
        offset = start + step * i // sessions
        for k in range(appends):
            scheduled = offset + k * step
            delay = (scheduled - time.perf_counter_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(append(acked[i] + 1, chunk(scheduled)), 5.0)
            except Exception as exc:  # a failed append fails the step; the producer goes on with its grid
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            acked[i] += 1
            ack_ns.append(time.perf_counter_ns() - scheduled)

    try:
        await gather_bounded([producer(i, append) for i, (append, _) in enumerate(producers)], seconds + 60)
        wall_s, cpu_s = (time.perf_counter_ns() - start) / 1e9, time.process_time() - cpu_start
    finally:
        for _, close in producers:
            await close()
    return {"acked": acked, "ack_ns": ack_ns, "errors": len(errors), "first_error": errors[0] if errors else "",
            "wall_s": wall_s, "cpu_s": cpu_s}


def _step(ctx, system: str, ports: list, ids: list, connect) -> Row:
    """One step of the ladder: K = len(ids) sessions, producers and their two tails each."""
    p = ctx.profile
    process, conn = fork(_tail_process, system, ports, ids, p.timeout_s)
    try:
        expect(conn, time.monotonic() + p.timeout_s + 5, "agents tail process", "ready")
        produced = ctx.run_async(_produce(connect, len(ids), p.agents_seconds))
        conn.send(produced["acked"])
        _, raw, missing, cpu_s = expect(conn, time.monotonic() + _DRAIN_S + 30, "agents tail process", "done")
    finally:
        reap(process, conn)
    return _row(system, len(ids), produced, raw, missing, cpu_s)


def _row(system, k, produced, raw, missing, cpu_s) -> Row:
    """The step's row: ``appends/s`` over the producers' wall time (below K x 20: they fell behind)."""
    figures = {"appends": sum(produced["acked"]), "errors": produced["errors"],
               "appends_per_s": round(sum(produced["acked"]) / produced["wall_s"], 1),
               "ack_p99_ms": latency_summary(produced["ack_ns"])["p99_ms"],
               "producers_cores": round(produced["cpu_s"] / produced["wall_s"], 2),
               "tails_cores": round(cpu_s / produced["wall_s"], 2)}
    for wire in _WIRES:
        latencies = array.array("q")
        latencies.frombytes(raw[wire])
        summary = latency_summary(latencies)
        figures.update({f"{wire}_p50_ms": summary["p50_ms"], f"{wire}_p99_ms": summary["p99_ms"],
                        f"{wire}_missing": missing[wire]})
    misses = [f"{produced['errors']} failed appends ({produced['first_error']})" if produced["errors"] else "",
              *(f"{w} missing {missing[w]}" for w in _WIRES if missing[w]),
              *(f"{w} p99 > {TARGET_P99_MS:g} ms" for w in _WIRES
                if figures[f"{w}_p99_ms"] is None or figures[f"{w}_p99_ms"] > TARGET_P99_MS)]
    figures["passed"] = not any(misses)
    busy = [f"{side} process busy ({figures[key]} cores): the client may have set the pace"
            for side, key in (("producer", "producers_cores"), ("tail", "tails_cores"))
            if figures[key] >= GENERATOR_BUSY_FRACTION]
    note = "; ".join(m for m in [*misses, *busy] if m)
    return Row("agents", system, k, note=note, figures=figures)


def ladder(ctx, system: str, ports: list, make_connect, create=None) -> list:
    """Step up the profile's ladder until a step misses (or the ladder ends); one row per step.
    ``create(ids)``: a coroutine creating the sessions first (Starcite)."""
    rows = []
    for k in ctx.profile.agents_ladder:
        ids = session_ids(k, f"agents-k{k}")
        if create is not None:
            ctx.run_async(create(ids))
        row = _step(ctx, system, ports, ids, make_connect(ids))
        f = row.figures
        ctx.log(f"agents {system} K={k}: {f['appends_per_s']} appends/s, errors {f['errors']}, "
                f"ws p99 {f['ws_p99_ms']} sse p99 {f['sse_p99_ms']} ms, "
                f"missing {f['ws_missing']}/{f['sse_missing']}: {'pass' if f['passed'] else 'miss'}")
        rows.append(row)
        if not f["passed"]:
            break
    best = max([r.clients for r in rows if r.figures["passed"]], default=0)
    for row in rows:
        row.figures["largest_k"] = best
    return rows


def redis(ctx) -> list:
    port = free_port()
    child = redis_target.start(ctx.sup, port, "always", ctx.work_dir)
    try:
        return ladder(ctx, "redis-always", [port], lambda ids: _Appenders.redis(port, ids))
    finally:
        ctx.sup.stop(child)


def starcite(ctx) -> list:
    raise_fd_limit()
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start()
    try:
        return ladder(ctx, "starcite", [node.port], lambda ids: _Appenders.starcite([node.port], ids),
                      node.create_sessions)
    finally:
        node.stop()


def starcite_cluster(ctx) -> list:
    raise_fd_limit()
    cluster = cluster_target.shared(ctx)
    return ladder(ctx, CLUSTER_SYSTEM, cluster.ports, lambda ids: _Appenders.starcite(cluster.ports, ids),
                  cluster.nodes[0].create_sessions)
