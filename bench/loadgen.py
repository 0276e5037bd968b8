"""The one load generator every system is measured with.

Closed loop: N clients, each with its own connection, each running its share
of a fixed number of operations back to back; every operation is timed from
just before its request is written to just after its reply is parsed
(`time.perf_counter_ns`). A warm-up share runs first and is not counted.
With ``procs > 1`` the clients are split over forked processes (one asyncio
loop each) that start together at a barrier; their latencies are merged and
the wall time runs from the earliest start to the latest end (the clock is
CLOCK_MONOTONIC, shared by all processes). The generator's own CPU time in
the timed phase is recorded too: cores it kept busy, next to the ceiling,
tell whether it, rather than the system measured, set the pace.

Owns: the client/operation contract (`Client`, a `ClientFactory`), splitting
work, timing, error counting, the time bound of a run. Must not: know any
protocol (the factories in `workloads/` do).
"""

import array
import asyncio
import dataclasses
import gc
import multiprocessing
import time
from typing import Awaitable, Callable

from bench.aio import gather_bounded
from bench.procs import fork, reap, receive
from bench.stats import Measurement


@dataclasses.dataclass
class Client:
    """One connected client: ``op()`` performs one operation and raises on failure."""
    op: Callable[[], Awaitable[object]]
    close: Callable[[], Awaitable[object]]


ClientFactory = Callable[[int], Awaitable[Client]]  # client index -> connected Client


def split(total: int, parts: int) -> list:
    """``total`` as ``parts`` near-equal non-negative integers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def _loop(client: Client, count: int, latencies) -> tuple:
    op, clock = client.op, time.perf_counter_ns
    errors, first_error = 0, ""
    for _ in range(count):
        started = clock()
        try:
            await op()
        except Exception as exc:  # counted, not fatal: the op count is fixed either way
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
            continue
        if latencies is not None:
            latencies.append(clock() - started)
    return errors, first_error


async def _drive(factory: ClientFactory, ids, counts, warmups, barrier, timeout: float) -> tuple:
    clients = []
    try:
        clients = await gather_bounded([factory(i) for i in ids], timeout)
        await gather_bounded([_loop(c, w, None) for c, w in zip(clients, warmups)], timeout)
        if barrier is not None:
            barrier.wait()
        latencies = array.array("q")
        gc.collect()
        gc.disable()  # no collector pauses inside the timed phase (the generator's own jitter)
        try:
            cpu_started, started = time.process_time(), time.perf_counter_ns()
            outcomes = await gather_bounded([_loop(c, n, latencies) for c, n in zip(clients, counts)], timeout)
            ended, cpu_s = time.perf_counter_ns(), time.process_time() - cpu_started
        finally:
            gc.enable()
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    errors = sum(e for e, _ in outcomes)
    first_error = next((m for _, m in outcomes if m), "")
    return latencies.tobytes(), errors, first_error, started, ended, cpu_s


def _measurement(results: list) -> Measurement:
    latencies = array.array("q")
    for raw, *_ in results:
        latencies.frombytes(raw)
    wall_s = (max(r[4] for r in results) - min(r[3] for r in results)) / 1e9
    return Measurement(latencies, wall_s, sum(r[1] for r in results), next((r[2] for r in results if r[2]), ""),
                       client_cpu_s=sum(r[5] for r in results), client_procs=len(results))


def run(factory: ClientFactory, clients: int, ops: int, *, warmup: int = 0, timeout: float = 120.0,
        procs: int = 1) -> Measurement:
    """Run ``ops`` timed operations over ``clients`` concurrent clients (after ``warmup`` untimed ones).

    Raises TimeoutError when a phase overruns ``timeout`` seconds.
    """
    procs = max(1, min(procs, clients))
    ids = list(range(clients))
    counts, warmups = split(ops, clients), split(warmup, clients)
    if procs == 1:
        return _measurement([asyncio.run(_drive(factory, ids, counts, warmups, None, timeout))])
    return _measurement(_run_forked(factory, procs, ids, counts, warmups, timeout))


def _child(conn, factory, ids, counts, warmups, barrier, timeout):
    try:
        conn.send(("ok", asyncio.run(_drive(factory, ids, counts, warmups, barrier, timeout))))
    except BaseException as exc:
        barrier.abort()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _run_forked(factory, procs, ids, counts, warmups, timeout) -> list:
    barrier = multiprocessing.get_context("fork").Barrier(procs, timeout=timeout)
    workers = []
    try:
        for p in range(procs):
            share = slice(p, None, procs)
            workers.append(fork(_child, factory, ids[share], counts[share], warmups[share], barrier, timeout))
        deadline = time.monotonic() + 3 * timeout + 10
        results = []
        for _, conn in workers:
            status, value = receive(conn, deadline, "load generator process")
            if status != "ok":
                raise RuntimeError(f"load generator process failed: {value}")
            results.append(value)
        return results
    finally:
        for process, conn in workers:
            reap(process, conn)
