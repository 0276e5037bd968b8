"""Fan-out: N WebSocket tails (batch_size 1) on one Starcite session while
one producer appends an event every 10 ms for T seconds; the figure is the
delivery latency from the append's ack (as the producer saw it) to each
tail's receipt of that event. Negative values (a tail got the event before
its producer read the ack) are kept as they are; the row also carries the
latency from the append's send to receipt (``send_p50_ms``...), never negative.

The tails live in a forked process with its own loop so the producer's ack
times are not delayed by receipt work; both sides stamp with
CLOCK_MONOTONIC. The tail process reads each event's ``seq`` without
decoding the whole event, and reports its own CPU use: near 100% means the
client, not the server, limited the figures.

Owns: the tail holder process, the paced producer and the fan-out row.
"""

import array
import asyncio
import re
import time

from bench.aio import gather_bounded
from bench.procs import expect, fork, reap, run_reporting
from bench.results import Row
from bench.stats import Measurement, latency_summary
from bench.targets import starcite as starcite_target
from bench.wire import ws
from bench.wire.http import HttpClient
from bench.workloads import PAYLOAD

SESSION = "fanout-0"
_SEQ = re.compile(rb'"seq":\s*(\d+)')
_CONNECT_PARALLEL = 100
_DRAIN_S = 10.0  # after the last append, how long tails may take to receive everything


async def open_tails(port: int, paths: list, on_frame, timeout: float, wire=ws) -> list:
    """Open one tail per path, ``_CONNECT_PARALLEL`` handshakes at a time, within ``timeout`` s,
    over ``wire`` (`bench.wire.ws`, or `bench.wire.sse`)."""
    gate = asyncio.Semaphore(_CONNECT_PARALLEL)

    async def one(path):
        async with gate:
            return await wire.connect(port, path, on_frame)
    return await gather_bounded([one(p) for p in paths], timeout)


async def _hold_tails(conn, port: int, count: int, timeout: float):
    loop = asyncio.get_running_loop()
    seqs, times = array.array("q"), array.array("q")

    def on_frame(payload, received_ns):
        match = _SEQ.search(payload)
        seqs.append(int(match.group(1)) if match else -1)
        times.append(received_ns)

    sockets = await open_tails(port, [starcite_target.tail_path(SESSION)] * count, on_frame, timeout)
    cpu_start = time.process_time()
    conn.send(("ready", count))
    acks = await loop.run_in_executor(None, conn.recv)  # {seq: (sent_ns, ack_ns)} once the producer is done
    deadline = time.monotonic() + _DRAIN_S
    while len(seqs) < count * len(acks) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu_s = time.process_time() - cpu_start
    for sock in sockets:
        sock.close()
    matched = [(acks[s], t) for s, t in zip(seqs, times) if s in acks]
    from_ack = array.array("q", (t - acked for (_, acked), t in matched))
    from_send = array.array("q", (t - sent for (sent, _), t in matched))
    conn.send(("done", from_ack.tobytes(), from_send.tobytes(), len(seqs) - len(matched), cpu_s))


def _tail_process(conn, port, count, timeout):
    run_reporting(conn, asyncio.run, _hold_tails(conn, port, count, timeout))


async def _paced_appends(port: int, count: int, interval_ms: float) -> tuple:
    """Append ``count`` events on a fixed schedule; returns ({seq: (sent_ns, ack_ns)}, wall seconds)."""
    client, acks, clock = HttpClient(port), {}, time.perf_counter_ns
    path = starcite_target.append_path(SESSION)
    started = clock()
    try:
        for k in range(count):
            delay = (started + int(k * interval_ms * 1e6) - clock()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            sent = clock()
            response = await client.post_json(path, starcite_target.append_body(PAYLOAD, "fanout", k + 1))
            acks[response.json()["seq"]] = (sent, clock())
    finally:
        await client.close()
    return acks, (clock() - started) / 1e9


def starcite(ctx) -> list:
    p = ctx.profile
    appends = int(p.fanout_seconds * 1000 / p.fanout_interval_ms)
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start()
    try:
        ctx.run_async(node.create_sessions([SESSION]))
        process, conn = fork(_tail_process, node.port, p.fanout_tails, p.timeout_s)
        try:
            expect(conn, time.monotonic() + p.timeout_s + 5, "tail process", "ready")
            acks, wall_s = ctx.run_async(_paced_appends(node.port, appends, p.fanout_interval_ms))
            conn.send(acks)
            _, raw_ack, raw_send, unmatched, cpu_s = expect(conn, time.monotonic() + _DRAIN_S + 30, "tail process",
                                                            "done")
        finally:
            reap(process, conn)
        from_ack, from_send = array.array("q"), array.array("q")
        from_ack.frombytes(raw_ack)
        from_send.frombytes(raw_send)
        expected = p.fanout_tails * len(acks)
        from_send_ms = {f"send_{k}": v for k, v in latency_summary(from_send).items()}
        row = Row.measured("fanout", "starcite", p.fanout_tails, Measurement(from_ack, wall_s),
                           f"tail process CPU {cpu_s / (wall_s + 1e-9):.0%}", **from_send_ms,
                           appends=len(acks), appends_per_s=round(len(acks) / wall_s, 1),
                           missing=expected - len(from_ack), unmatched=unmatched,
                           negative=sum(1 for v in from_ack if v < 0), tail_cpu_s=round(cpu_s, 2))
        ctx.log(f"fanout starcite: p50 {row.figures['p50_ms']} p99 {row.figures['p99_ms']} ms, "
                f"missing {row.figures['missing']}")
        return [row]
    finally:
        node.stop()
