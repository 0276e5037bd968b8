"""The archiver's deletion pass (`starcite.actors.archiver.purge_deleted`) on a stand-in node.

Owns: each tombstone's archive copy deleted once while it is young and again
just before it is dropped, tombstones dropped only once old enough and only
after their copy is gone, an archive failure ending the pass (the rest waits
for the next cycle, nothing dropped), a failed drop (leadership moved) leaving
the tombstone for the next leader, and the memo of purged ids following the
tombstones. Must not: start a node, Raft or an archive.
"""

import types

from starcite.actors.archiver import deletions_cutoff, purge_deleted
from starcite.adapters import ArchiveUnavailable
from starcite.actors.raft_errors import NotLeader

NOW = 1_000_000.0
OLD = deletions_cutoff(120, NOW)     # deleted two minutes before NOW
YOUNG = deletions_cutoff(1, NOW)     # deleted a second before NOW


class StandIn:
    """A node as `purge_deleted` sees it: tombstones by group, an archive that can fail, the drops made."""

    def __init__(self, tombstones, failing=(), drop_fails=False):
        self.tombstones = {group: dict(items) for group, items in tombstones.items()}
        self.deleted, self.dropped, self.failing, self.drop_fails = [], [], set(failing), drop_fails
        self.deletions = types.SimpleNamespace(pending=self.pending, forget_deleted=self.forget, purged=set(),
                                               tombstone_min_age_s=60)
        self.cold = types.SimpleNamespace(delete_session=self.delete)
        self.metrics = types.SimpleNamespace(archive_errors=types.SimpleNamespace(inc=lambda: None))

    def local_groups(self):
        return sorted(self.tombstones)

    def pending(self, group_id):
        return list(self.tombstones[group_id].items())

    def forget(self, group_id, session_ids):
        if self.drop_fails:
            raise NotLeader(group_id, None)
        for session_id in session_ids:
            del self.tombstones[group_id][session_id]
        self.dropped.extend(session_ids)
        return len(session_ids)

    def delete(self, session_id):
        if session_id in self.failing:
            raise ArchiveUnavailable("down")
        self.deleted.append(session_id)

    def run_io(self, fn, *args):
        return fn(*args)


def test_young_tombstones_are_purged_once_and_dropped_when_old():
    node = StandIn({0: {"old": OLD, "young": YOUNG}})
    stats = purge_deleted(node, NOW)
    assert stats == {"purged": 2, "purge_errors": 0, "tombstones_dropped": 1}
    assert node.dropped == ["old"] and node.tombstones == {0: {"young": YOUNG}}
    purge_deleted(node, NOW)
    assert node.deleted == ["old", "young"]  # young is not deleted again while it is young
    purge_deleted(node, NOW + 120)  # now old: deleted once more, then dropped
    assert node.deleted == ["old", "young", "young"] and node.dropped == ["old", "young"]
    assert node.deletions.purged == set()


def test_an_archive_failure_ends_the_pass_and_drops_nothing_it_did_not_delete():
    node = StandIn({0: {"a": OLD, "b": OLD}, 1: {"c": OLD}}, failing={"a"})
    stats = purge_deleted(node, NOW)
    assert stats["purge_errors"] == 1 and stats["tombstones_dropped"] == 0
    assert node.deleted == [] and node.dropped == []
    node.failing.clear()
    purge_deleted(node, NOW)
    assert sorted(node.dropped) == ["a", "b", "c"]


def test_a_drop_refused_by_a_leader_change_leaves_the_tombstone():
    node = StandIn({0: {"a": OLD}}, drop_fails=True)
    assert purge_deleted(node, NOW)["tombstones_dropped"] == 0
    assert node.tombstones == {0: {"a": OLD}} and node.deleted == ["a"]
