"""Run settings shared by every workload.

Owns: the two profiles (`FULL`, `QUICK`: every fixed count of the run) and
`Context` (profile, supervisor, scratch directory, generator processes,
progress log, and the systems kept running between consecutive workloads
that share them). Must not: start or measure anything itself (a shared
system is started by the starter a workload hands it).
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
    failover_rounds: int          # leader kills of the failover workload
    replicated_ops: int           # timed operations per point of the 3-node rows (etcd, Starcite cluster)
    reconnect_tails: int          # tails that follow one session through a node restart
    reconnect_steady_s: float     # live with appends before the restart
    agents_ladder: tuple          # the agents workload's K steps (sessions, each 1 producer and 2 tails)
    agents_seconds: float         # how long each agents step appends
    concurrency: tuple = (1, 16, 64)
    sessions: int = 1000          # appends go to a random session among these
    replay_batch: int = 1000
    fanout_interval_ms: float = 10.0
    reconnect_interval_ms: float = 200.0


FULL = Profile("full", ops=20000, warmup=1000, timeout_s=300, replay_events=100_000, replay_passes=3,
               fanout_tails=1000, fanout_seconds=10, idle_tails=10_000, failover_rounds=5,
               replicated_ops=5000, reconnect_tails=10_000, reconnect_steady_s=5,
               agents_ladder=(25, 50, 100, 200, 400, 800, 1600), agents_seconds=10)
QUICK = Profile("quick", ops=2000, warmup=200, timeout_s=60, replay_events=10_000, replay_passes=2,
                fanout_tails=100, fanout_seconds=3, idle_tails=1000, failover_rounds=1,
                replicated_ops=300, reconnect_tails=1000, reconnect_steady_s=2,
                agents_ladder=(25, 50), agents_seconds=2)


@dataclasses.dataclass
class Context:
    profile: Profile
    sup: object                   # bench.procs.Supervisor
    work_dir: str                 # scratch directory, removed at the end of the run
    procs: int = 1                # load generator processes
    started: float = dataclasses.field(default_factory=time.monotonic)
    # name -> (system or its start error, stop, index in sup.spawned of its first process)
    shared: dict = dataclasses.field(default_factory=dict)

    def shared_system(self, name: str, start, stop):
        """The system ``name``: started by ``start()`` the first time it is asked for, then kept (so is a
        start error, re-raised to every later asker) until `release`, which calls ``stop(system)``."""
        if name not in self.shared:
            first_child = len(self.sup.spawned)
            try:
                self.shared[name] = (start(), stop, first_child)
            except Exception as exc:
                self.shared[name] = (exc, None, first_child)
        system = self.shared[name][0]
        if isinstance(system, Exception):
            raise system
        return system

    def first_child(self, names) -> int:
        """Index in ``sup.spawned`` of the first process of the shared systems ``names`` that are running
        (or of the next process to start): whose logs a failing workload that uses them keeps."""
        return min([self.shared[n][2] for n in names if n in self.shared] + [len(self.sup.spawned)])

    def release(self, keep=()):
        """Stop every shared system whose name is not in ``keep``."""
        for name in [n for n in self.shared if n not in keep]:
            system, stop, _ = self.shared.pop(name)
            if stop is not None:
                stop(system)

    def run_async(self, coro):
        """Run a setup coroutine to completion within the profile's phase bound."""
        async def bounded():
            return await asyncio.wait_for(coro, self.profile.timeout_s)
        return asyncio.run(bounded())

    def log(self, message: str):
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)
