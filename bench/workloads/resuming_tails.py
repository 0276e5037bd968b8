"""The client side of the reconnect workload: tails that resume from their last seq, as the SDK does.

Owns: `ResumingTail` (one client: follows a session with the SDK's
``batch_size`` (100: a frame is a JSON array of events), checks that every
seq arrives exactly once and in order, and when its socket
closes reconnects with ``cursor=<last seq>`` after a short, capped,
jittered backoff) and `hold_tails`, the body of a forked holder process that
runs a share of the clients on a uvloop event loop and answers the parent's
pipe messages. The clients share the machine with the node they measure, so
they are made cheap: uvloop (libuv, in C) instead of asyncio's selector loop
halved the holders' wait before the node's first resume after ready (measured
1.8-2.4 s → 0.8-1.0 s), and their state is frozen out of the collector.

A client is *caught up* once it has received an event whose append was sent
after the client's latest upgrade: it then holds every event up to the live
head (no gap, checked per event) and is receiving new ones. The producer
stamps each event with its send time (``sent_ns``, CLOCK_MONOTONIC, so
comparable across processes). Must not: append, or start or stop the node.
"""

import asyncio
import gc
import random
import re
import time

import uvloop

from bench.procs import run_reporting
from bench.targets import starcite as starcite_target
from bench.wire import ws

_SEQ = re.compile(rb'"seq":\s*(\d+)')
_SENT = re.compile(rb'"sent_ns":\s*(\d+)')
BATCH_SIZE = 100                        # the SDK's default (`session.tail(batch_size=100)`)
_BACKOFF_S = (0.1, 0.2, 0.4, 0.8, 1.0)  # then 1.0 s; each delay jittered to 50-100% of it
_OPEN_PARALLEL = 200                    # handshakes in flight at once when the tails first open
_POLL_S = 0.1
_UPGRADE_TIMEOUT_S = 30.0               # an SDK's handshake timeout: a storm queues, it must not retry early


class ResumingTail:
    def __init__(self, port: int, session_id: str):
        self.port, self.session_id = port, session_id
        self.last_seq = 0
        self.missed = self.repeated = 0
        self.drops = 0            # connections that ended (the node closed them, or they broke)
        self.failed_attempts = 0  # connection attempts refused or broken before the upgrade
        self.statuses = {}        # HTTP status of refused upgrades -> count
        self.resumed_ns = 0       # receipt of the current connection's 101
        self.caught_up_ns = 0     # first receipt, on the current connection, of an event sent after resumed_ns
        self.proto = None

    def on_frame(self, payload: bytes, received_ns: int):
        """One frame: a JSON array of events, in seq order."""
        for seq in map(int, _SEQ.findall(payload)):
            if seq == self.last_seq + 1:
                self.last_seq = seq
            elif seq <= self.last_seq:
                self.repeated += 1
            else:
                self.missed += seq - self.last_seq - 1
                self.last_seq = seq
        if not self.caught_up_ns:
            sent = _SENT.findall(payload)
            if sent and int(sent[-1]) > self.resumed_ns:
                self.caught_up_ns = received_ns

    def on_upgrade(self, received_ns: int):
        # Stamped when the 101 is parsed, before the frames behind it in the same read: a busy
        # holder process resumes the awaiting coroutine only later, and a stamp taken there
        # counted that delay as the node's (and let a frame parsed first compare with the
        # previous connection's stamp).
        self.resumed_ns = received_ns
        self.caught_up_ns = 0

    async def connect(self):
        path = starcite_target.tail_path(self.session_id, self.last_seq, BATCH_SIZE)
        self.caught_up_ns = 0
        self.proto = await ws.connect(self.port, path, self.on_frame, timeout=_UPGRADE_TIMEOUT_S,
                                      on_upgrade=self.on_upgrade)

    async def follow(self, stop: asyncio.Event):
        """Stay connected until ``stop``: after each close, resume from the last seq received."""
        attempt = 0
        while not stop.is_set():
            if self.proto is None or not self.proto.is_open:
                try:
                    await self.connect()
                    attempt = 0
                except Exception as exc:  # refused, reset, or a non-101 answer: back off and retry
                    self.failed_attempts += 1
                    status = re.search(r"upgrade refused: (\d+)", str(exc))
                    if status:
                        self.statuses[status.group(1)] = self.statuses.get(status.group(1), 0) + 1
                    delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)] * random.uniform(0.5, 1.0)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            closed = self.proto.closed
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([closed, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if closed.done():
                self.drops += 1
        if self.proto is not None:
            self.proto.close()


async def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def _hold(conn, port: int, session_id: str, count: int, timeout: float):
    loop = asyncio.get_running_loop()
    tails = [ResumingTail(port, session_id) for _ in range(count)]
    gate = asyncio.Semaphore(_OPEN_PARALLEL)

    async def first_open(tail):
        async with gate:
            await tail.connect()

    await asyncio.wait_for(asyncio.gather(*(first_open(t) for t in tails)), timeout)
    # The clients' state is here for the run: out of the collector's generations, so that a
    # full collection in this process (~0.5 s over 5,000 clients, measured) never stalls them.
    gc.freeze()
    stop = asyncio.Event()
    followers = [asyncio.ensure_future(t.follow(stop)) for t in tails]
    try:
        conn.send(("ready", count))
        # "restarted": every client has dropped once and is caught up again (or the bound passed)
        _, bound = await loop.run_in_executor(None, conn.recv)
        await _wait(lambda: all(t.drops and t.caught_up_ns for t in tails), bound)
        conn.send(("caught_up", [t.resumed_ns for t in tails], [t.caught_up_ns for t in tails]))
        # "final": the producer stopped at last_seq; every client must get there
        _, last_seq, bound = await loop.run_in_executor(None, conn.recv)
        await _wait(lambda: all(t.last_seq >= last_seq for t in tails), bound)
        statuses = {}
        for t in tails:
            for status, n in t.statuses.items():
                statuses[status] = statuses.get(status, 0) + n
        conn.send(("done", {"short": sum(1 for t in tails if t.last_seq < last_seq),
                            "missed": sum(t.missed for t in tails), "repeated": sum(t.repeated for t in tails),
                            "drops": sum(t.drops for t in tails),
                            "failed_attempts": sum(t.failed_attempts for t in tails), "refusals": statuses}))
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*followers, return_exceptions=True), 10)


def hold_tails(conn, port, session_id, count, timeout):
    """Forked holder process: ``count`` resuming tails; reports over ``conn``."""
    run_reporting(conn, uvloop.run, _hold(conn, port, session_id, count, timeout))
