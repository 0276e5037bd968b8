"""The event store cap: what `event_store_max_bytes` counts, and appends refused past it.

Owns: `EventStoreCap`, the bytes the cap counts (this node's hot events and the
Raft log its replicas hold since their last snapshot, then the read cache,
which gives way first), the check an append makes on its group's leader
(`check`: 429 `event_store_backpressure` when the events alone fill the cap),
and the headroom that spares most appends the exact sum.

Must not: evict events (the archiver's acks do), or know about HTTP.
"""

import time

from starcite.core.rules import RuleError

RECHECK_S = 0.05  # longest a check's headroom is trusted
# What one append can add to the event store, at most: 8 bytes per body byte and 8 KiB. Its hot JSON
# (a number can re-encode ~4.5x longer: "1e15" is 1000000000000000.0) with `HOT_EVENT_OVERHEAD_BYTES`,
# and its journal record (pickle, ~2x), each with fixed fields of a few hundred bytes.
APPEND_GROWTH_PER_BODY_BYTE, APPEND_GROWTH_FIXED = 8, 8192


class EventStoreCap:
    """``replicas()``: this node's Raft groups (the control group too); ``cold``: the read cache;
    ``refused``: the counter of appends refused."""

    def __init__(self, replicas, cold, limit, max_body_bytes, refused):
        self.replicas, self.cold, self.limit, self.refused = replicas, cold, limit, refused
        self.append_bound = APPEND_GROWTH_PER_BODY_BYTE * max_body_bytes + APPEND_GROWTH_FIXED
        self.headroom, self.recheck_at = 0, 0.0

    def hot_bytes(self) -> int:
        """Hot events as held in memory: JSON plus the measured per-event overhead (`rules.hot_cost`)."""
        return sum(group.state.hot_bytes for group in self.replicas() if group.state is not None)

    def raft_log_bytes(self) -> int:
        """Raft log entries held in memory since each group's last snapshot (`DurableFileJournal.held_bytes`)."""
        return sum(getattr(group.journal, "held_bytes", 0) for group in self.replicas())

    def event_store_bytes(self) -> int:
        """What the cap counts before the read cache: hot events and the Raft log."""
        return self.hot_bytes() + self.raft_log_bytes()

    def check(self):
        """Hot events, the Raft log held since the last snapshot, and the read cache must fit the cap:
        the cache gives way first (least recently used chunks); only when the events alone fill it
        are appends refused.

        Summing every replica's hot bytes and log (17 groups, properties all the way down) was ~4%
        of the worker per append at 16 clients, so a check that finds room leaves a headroom: the
        next appends only take the most one append can add (`APPEND_GROWTH_PER_BODY_BYTE` x the body
        cap + `APPEND_GROWTH_FIXED`) each from it, and the next exact sum comes when the headroom
        could be used up or `RECHECK_S` later (whichever first: follower replicas, creates and the
        read cache grow without passing here). Far from the cap nothing changes; near it (headroom
        under one bound) every append sums, as before."""
        now = time.monotonic()
        if self.headroom >= self.append_bound and now < self.recheck_at:
            self.headroom -= self.append_bound
            return
        hot = self.event_store_bytes()
        cache = self.cold.size_bytes
        if hot + cache < self.limit:
            self.headroom, self.recheck_at = self.limit - hot - cache - self.append_bound, now + RECHECK_S
            return
        self.headroom = 0
        if cache:
            self.cold.reclaim(cache if hot >= self.limit else hot + cache - self.limit)
        if hot < self.limit:
            return
        self.refused.inc()
        raise RuleError(429, "event_store_backpressure",
                        "Hot event store is full; retry after the archiver catches up", {"Retry-After": "1"})
