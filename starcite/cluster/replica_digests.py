"""Replica digests compared across nodes: a divergence is logged and counted, never silent.

Owns: every `INTERVAL` seconds, sending each peer replica of each local group
``("digest", group, chain start, index, hex)`` (the running digest of the entries this
replica applied, from `SafeSyncObj.applied_digest`), and checking the claims
received: once the local replica has applied the same index, its digest there
must be equal. A mismatch is logged as an error and counted in
`starcite_raft_replica_divergence_total`. Claims for indexes that fell out of
the local ring (too old) or from before a snapshot restart are dropped.

Must not: act on a divergence (repair is an operator's decision), or touch
Raft state.
"""

import logging

import gevent

log = logging.getLogger("starcite.digests")

INTERVAL = 1.0
MAX_CLAIMS = 256   # per group: claims waiting for the local replica to apply their index


class DigestExchange:
    def __init__(self, node, hub):
        self.node, self.hub = node, hub
        self.claims = {}        # group id -> {index: (peer, hex)}
        self.compared = 0
        self.diverged = 0
        hub.handlers["digest"] = self._on_digest
        self.timer = None

    def start(self):
        self.timer = gevent.spawn(self._loop)

    def stop(self):
        if self.timer is not None:
            self.timer.kill(block=False)

    def _loop(self):
        while True:
            gevent.sleep(INTERVAL)
            try:
                self.exchange()
            except Exception:
                log.exception("digest exchange failed")

    def exchange(self):
        for group_id, group in self.node.groups.items():
            self._check(group_id, group)
            if group.transport is None:
                continue
            index, digest = group.applied_digest()
            if not digest:
                continue
            for peer in group.transport.nodes:
                self.hub.send(peer, ("digest", group_id, group.digest_chain_start(), index, digest))

    def _on_digest(self, peer, message):
        _kind, group_id, chain_start, index, digest = message
        group = self.node.groups.get(group_id)
        if group is None or chain_start != group.digest_chain_start():
            return  # chains restarted at different points (an old snapshot): not comparable
        claims = self.claims.setdefault(group_id, {})
        claims[index] = (peer, digest)
        while len(claims) > MAX_CLAIMS:
            claims.pop(next(iter(claims)))
        self._check(group_id, group)

    def _check(self, group_id, group):
        claims = self.claims.get(group_id)
        if not claims:
            return
        applied = group.raftLastApplied
        for index in [i for i in claims if i <= applied]:
            peer, theirs = claims.pop(index)
            mine = group.digest_at(index)
            if mine is None:
                continue
            self.compared += 1
            if mine != theirs:
                self.diverged += 1
                self.node.metrics.divergence.inc()
                log.error("raft group %s: replica on %s diverges from this one at index %s (%s != %s)",
                          group_id, peer, index, theirs, mine)

    def status(self) -> dict:
        return {"compared": self.compared, "diverged": self.diverged}
