"""Run settings shared by every workload.

Owns: the two profiles (`FULL`, `QUICK`: every fixed count of the run) and
`Context` (profile, supervisor, scratch directory, generator processes,
progress log). Must not: start or measure anything.
"""

import asyncio
import dataclasses
import sys
import time


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    ops: int                      # timed operations per (system, clients) point
    warmup: int                   # untimed operations before them
    timeout_s: float              # bound of one phase of one point
    replay_events: int            # events in the replayed session
    replay_passes: int            # timed full replays (after one untimed warm pass; cold: one pass)
    fanout_tails: int
    fanout_seconds: float
    idle_tails: int
    reconnect_tails: int          # tails that follow one session through a node restart
    reconnect_steady_s: float     # live with appends before the restart
    concurrency: tuple = (1, 16, 64)
    sessions: int = 1000          # appends go to a random session among these
    replay_batch: int = 1000
    fanout_interval_ms: float = 10.0
    reconnect_interval_ms: float = 200.0


FULL = Profile("full", ops=20000, warmup=1000, timeout_s=300, replay_events=100_000, replay_passes=3,
               fanout_tails=1000, fanout_seconds=10, idle_tails=10_000, reconnect_tails=10_000,
               reconnect_steady_s=5)
QUICK = Profile("quick", ops=2000, warmup=200, timeout_s=60, replay_events=10_000, replay_passes=2,
                fanout_tails=100, fanout_seconds=3, idle_tails=1000, reconnect_tails=1000,
                reconnect_steady_s=2)


@dataclasses.dataclass
class Context:
    profile: Profile
    sup: object                   # bench.procs.Supervisor
    work_dir: str                 # scratch directory, removed at the end of the run
    procs: int = 1                # load generator processes
    started: float = dataclasses.field(default_factory=time.monotonic)

    def run_async(self, coro):
        """Run a setup coroutine to completion within the profile's phase bound."""
        async def bounded():
            return await asyncio.wait_for(coro, self.profile.timeout_s)
        return asyncio.run(bounded())

    def log(self, message: str):
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)
