"""Failover: how long a group cannot take writes after its leader dies.

On the 3-node cluster (the one the `append starcite-3node` rows ran on, or a
fresh one), under a light append load (a few producers, each appending to its
own session every 10 ms through one member, retrying through the others),
each round picks a group, finds its leader (the member whose `GET
/ops/status` says `is_leader` for it), SIGKILLs that member's process group
and times from the kill to the first acknowledged append on a session of that
group. One probe producer per member appends to its own session of the group
and retries, with the same `producer_seq` (so a retry of an append that did
commit is deduplicated, never doubled), through the members in turn. The
killed member is then restarted with its data directory, and the next round
starts once it is ready and every group has a leader again. After the rounds
every session is read back from cursor 0: an acknowledged append missing
from it counts as lost.

Owns: the retrying producer, the rounds, the read-back check and the row.
Must not: start or stop the cluster (`bench.targets.cluster` does).
"""

import asyncio
import statistics
import time

from starcite.cluster.placement import group_for

from bench.aio import gather_bounded
from bench.procs import wait_until
from bench.results import CLUSTER_SYSTEM, FAILED, OK, Row
from bench.targets import cluster as cluster_target
from bench.targets import starcite as starcite_target
from bench.wire.base import ProtocolError
from bench.wire.http import HttpClient
from bench.workloads import PAYLOAD

TARGET_S = 2.0             # what a failover should take at most
ATTEMPT_TIMEOUT_S = 1.0    # one try of one append; then the next member
RETRY_PAUSE_S = 0.01
ROUND_BOUND_S = 30.0       # kill to first ack, and any one append, at most
LOAD_PRODUCERS = 4
LOAD_INTERVAL_S = 0.01
SETTLE_S = 0.5             # the load runs this long before each kill
READ_BACK_S = 10.0


class RetryingProducer:
    """One producer on one session, appending through the members in turn until each append is acked."""

    def __init__(self, ports: list, session_id: str, first_member: int):
        self.ports, self.session_id, self.member = ports, session_id, first_member
        self.path, self.producer = starcite_target.append_path(session_id), f"fo-{session_id}"
        self.acked = self.failed_tries = 0
        self.client = None

    async def append(self, deadline: float):
        """Append the next event; the time.monotonic() of its ack, or None when ``deadline`` came first."""
        body = starcite_target.append_body(PAYLOAD, self.producer, self.acked + 1)
        while time.monotonic() < deadline:
            if self.client is None:
                self.client = HttpClient(self.ports[self.member % len(self.ports)])
            try:
                await asyncio.wait_for(self.client.post_json(self.path, body), ATTEMPT_TIMEOUT_S)
            except (OSError, ProtocolError, asyncio.TimeoutError):  # refused, reset, 5xx, hung: next member
                self.failed_tries += 1
                await self.close()
                self.member += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            self.acked += 1
            return time.monotonic()
        return None

    async def close(self):
        if self.client is not None:
            await self.client.close()
            self.client = None


def _sessions_of_group(group: int, num_groups: int, count: int) -> list:
    """``count`` session ids that hash to ``group``."""
    ids, candidate = [], 0
    while len(ids) < count:
        session_id = f"failover-g{group}-{candidate}"
        if group_for(session_id, num_groups) == group:
            ids.append(session_id)
        candidate += 1
    return ids


async def _load(producer: RetryingProducer, stop: asyncio.Event):
    while not stop.is_set():
        await producer.append(time.monotonic() + ROUND_BOUND_S)
        await asyncio.sleep(LOAD_INTERVAL_S)


async def _round(ctx, cluster, group: int, probes: list) -> float:
    """Kill the leader of ``group``; seconds from the kill to the first ack of a probe (None: none in time)."""
    leader = await asyncio.to_thread(wait_until, lambda: cluster.leader_of(group), ROUND_BOUND_S,
                                     f"a leader for group {group}", 0.1)
    for probe in probes:  # every probe connected and its session written before the kill
        await probe.append(time.monotonic() + ROUND_BOUND_S)
    await asyncio.sleep(SETTLE_S)
    killed_at = time.monotonic()
    leader.kill()
    acks = await asyncio.gather(*(p.append(killed_at + ROUND_BOUND_S) for p in probes))
    done = [t - killed_at for t in acks if t is not None]
    seconds = round(min(done), 3) if done else None
    ctx.log(f"failover: group {group}, killed leader {leader.name}: first ack after {seconds} s; restarting it")
    await asyncio.to_thread(cluster.restart, leader)
    return seconds


async def _read_back(port: int, producer: RetryingProducer) -> int:
    """Acknowledged appends of ``producer`` missing from its session read from cursor 0."""
    seen = 0
    try:
        async with asyncio.timeout(READ_BACK_S):
            async for count in starcite_target.tail_batches(port, producer.session_id, 1000)():
                seen += count
                if seen >= producer.acked:
                    break
    except TimeoutError:
        pass
    return max(0, producer.acked - seen)


async def _failover(ctx, cluster) -> Row:
    status = await asyncio.to_thread(cluster.nodes[0].status)
    num_groups = 1 + max(g["group"] for g in status["groups"])
    rounds = ctx.profile.failover_rounds
    groups = [number % num_groups for number in range(rounds)]
    probe_ids = {g: _sessions_of_group(g, num_groups, len(cluster.nodes)) for g in set(groups)}
    load_ids = [f"failover-load-{i}" for i in range(LOAD_PRODUCERS)]
    await cluster.nodes[0].create_sessions([*load_ids, *(s for ids in probe_ids.values() for s in ids)])
    probes = {g: [RetryingProducer(cluster.ports, s, i) for i, s in enumerate(ids)] for g, ids in probe_ids.items()}
    load = [RetryingProducer(cluster.ports, s, i) for i, s in enumerate(load_ids)]
    stop = asyncio.Event()
    load_tasks = [asyncio.create_task(_load(p, stop)) for p in load]
    try:
        times = [await _round(ctx, cluster, g, probes[g]) for g in groups]
    finally:
        stop.set()
        await asyncio.wait(load_tasks, timeout=ROUND_BOUND_S)
        for task in load_tasks:
            task.cancel()
    everyone = [*load, *(p for ps in probes.values() for p in ps)]
    lost = sum(await gather_bounded([_read_back(cluster.ports[0], p) for p in everyone], 2 * READ_BACK_S))
    await asyncio.gather(*(p.close() for p in everyone))
    measured = [t for t in times if t is not None]
    figures = {"rounds": rounds, "times_s": times, "median_s": statistics.median(measured) if measured else None,
               "max_s": max(measured) if measured else None, "acked": sum(p.acked for p in everyone),
               "failed_tries": sum(p.failed_tries for p in everyone), "lost": lost, "target_s": TARGET_S}
    problems = [f"{rounds - len(measured)} rounds without an ack in {ROUND_BOUND_S:.0f}s"] if len(measured) < rounds else []
    problems += [f"{lost} acknowledged appends missing on read-back"] if lost else []
    note = "; ".join(problems) or f"target <= {TARGET_S} s: {'met' if figures['max_s'] <= TARGET_S else 'NOT met'}"
    return Row("failover", CLUSTER_SYSTEM, LOAD_PRODUCERS, FAILED if problems else OK, note, figures)


def starcite_cluster(ctx) -> list:
    cluster = cluster_target.shared(ctx)
    return [ctx.run_async(_failover(ctx, cluster))]
