"""The `ArchiveAdapter` contract of a session's lifecycle, run unchanged against every adapter (local, s3, postgres).

Owns: session records written in batches (a later write of an id replaces
the earlier one, opaque JSON kept whole), read back by id, listed after an
id in the adapter's `list_key` order with tenant, metadata and predicate
filters (what the node merges with its in-memory sessions); deletion (every
event and the record gone, idempotent, other sessions untouched, through
the read cache too); and an unreachable archive answering
`ArchiveUnavailable` fast on each of these calls, never an empty answer.
Must not: test one back end's internals (test_local.py, test_s3.py,
test_postgres.py).
"""

import pytest

from starcite.adapters import ArchiveUnavailable
from starcite.adapters.read_cache import ArchiveReadCache
from tests.adapters.archive_helpers import assert_fails_fast, make_events, make_session, run_threads, walk
from tests.adapters.conftest import KINDS


def evicted_record(session_id, tenant=None, **metadata):
    """What the node writes for a session it evicts: the record and its state, opaque to the archive."""
    return {**make_session(session_id, tenant, **metadata), "last_seq": 7, "version": 3, "archived": False,
            "producers": {"writer-1": {"producer_seq": 7, "seq": 7, "request": "r-7"}, "w\u00e9": {"producer_seq": 1}},
            "expires_at": None, "nested": {"list": [1, 2.5, None, {"deep": True}], "nul": "a\u0000b"}}


def listed(archive, after_id=None, limit=1000, **filters):
    """Every id `list_session_records` yields from ``after_id`` on, following ``next_after_id``."""
    ids, position = [], after_id
    for _ in range(1000):
        records, position = archive.list_session_records(position, limit, **filters)
        assert len(records) <= limit
        ids.extend(record["id"] for record in records)
        if position is None:
            return ids
    raise AssertionError("list walk does not terminate")


class TestSessionRecords:
    def test_a_batch_is_written_and_read_back_whole(self, archive):
        records = [evicted_record(f"ev-{i}", tenant="acme") for i in range(5)]
        assert archive.write_session_records(records) is None
        for record in records:
            assert archive.read_session_record(record["id"]) == record
        assert archive.read_session_record("missing") is None
        assert archive.write_session_records([]) is None

    def test_a_later_write_replaces_the_earlier_one(self, archive):
        first = evicted_record("ev")
        archive.write_session_records([first])
        second = {**first, "version": 4, "archived": True, "title": None}
        archive.write_session_records([second])
        assert archive.read_session_record("ev") == second
        archive.write_session_records([second])  # idempotent
        assert archive.read_session_record("ev") == second
        third = {**second, "version": 5}
        archive.write_session_records([first, third, evicted_record("other")])  # within a batch the last wins
        assert archive.read_session_record("ev") == third
        assert archive.get_session("ev") == third  # the older names read the same records

    def test_a_record_without_an_id_is_refused(self, archive):
        for bad in ({"title": "no id"}, {"id": ""}, {"id": 5}):
            with pytest.raises(ValueError):
                archive.write_session_records([make_session("fine"), bad])

    def test_listing_after_an_id_in_list_key_order(self, archive):
        ids = ["b", "a", "Z", "_x", "-y", "\u00e4", "a/b", "aa", "ses_1", "ses_10", "ses_2"]
        archive.write_session_records([evicted_record(session_id) for session_id in ids])
        in_order = sorted(ids, key=archive.list_key)
        assert listed(archive) == in_order
        for limit in (1, 2, 5):
            assert listed(archive, limit=limit) == in_order
        for n, after in enumerate(in_order):
            assert listed(archive, after_id=after) == in_order[n + 1:]
        assert listed(archive, after_id="aab") == [i for i in in_order if archive.list_key(i) > archive.list_key("aab")]

    def test_filters_and_a_predicate(self, archive):
        archive.write_session_records([
            {**evicted_record("a1", tenant="acme", project="p1"), "archived": True},
            evicted_record("a2", tenant="acme", project="p1"),
            evicted_record("a3", tenant="acme", project="p2"),
            {**evicted_record("b1", tenant="beta", project="p1"), "archived": True},
            evicted_record("n1", project="p1")])
        assert sorted(listed(archive, tenant_id="acme")) == ["a1", "a2", "a3"]
        assert sorted(listed(archive, metadata_filters={"project": "p1"})) == ["a1", "a2", "b1", "n1"]
        archived = {"predicate": lambda record: record.get("archived") is True}
        assert sorted(listed(archive, **archived)) == ["a1", "b1"]
        assert sorted(listed(archive, limit=1, tenant_id="acme", metadata_filters={"project": "p1"}, **archived)) == ["a1"]
        records, after = archive.list_sessions(10, tenant_id="acme", predicate=lambda record: not record["archived"])
        assert [r["id"] for r in records] == sorted(["a2", "a3"], key=archive.list_key) and after is None

    def test_a_predicate_that_rejects_most_records_still_walks_them_all(self, archive):
        ids = [f"p{i:04d}" for i in range(1200)]
        archive.write_session_records([{**evicted_record(i), "n": n} for n, i in enumerate(ids)])
        rare = listed(archive, limit=3, predicate=lambda record: record["n"] % 500 == 7)
        assert sorted(rare) == ["p0007", "p0507", "p1007"]


class TestDeletion:
    def test_delete_removes_every_event_and_the_record(self, archive):
        archive.write_events("gone", make_events(1, 600))  # three chunks
        archive.write_session_records([evicted_record("gone", tenant="t")])
        archive.write_events("kept", make_events(1, 300))
        archive.write_session_records([evicted_record("kept", tenant="t")])
        assert archive.delete_session("gone") is None
        assert archive.read_events("gone", 1, 10**6) == []
        assert archive.read_session_record("gone") is None
        assert listed(archive) == ["kept"] and listed(archive, tenant_id="t") == ["kept"]
        assert [r["id"] for r in walk(archive, 10)[0]] == ["kept"]
        assert archive.read_events("kept", 1, 300) == make_events(1, 300)
        assert archive.read_session_record("kept") == evicted_record("kept", tenant="t")

    def test_delete_is_idempotent(self, archive):
        archive.write_events("s", make_events(1, 10))
        archive.delete_session("s")
        archive.delete_session("s")
        archive.delete_session("never-existed")
        assert archive.read_events("s", 1, 10) == []

    def test_a_deleted_id_can_be_written_again_from_scratch(self, archive):
        archive.write_events("again", make_events(1, 300))
        archive.write_session_records([evicted_record("again")])
        archive.delete_session("again")
        assert archive.write_events("again", make_events(1, 3)) == 3  # nothing old is merged back in
        assert archive.read_events("again", 1, 300) == make_events(1, 3)
        assert archive.read_session_record("again") is None

    def test_delete_of_events_without_a_record_and_of_a_record_without_events(self, archive):
        archive.write_events("events-only", make_events(1, 5))
        archive.write_session_records([evicted_record("record-only")])
        archive.delete_session("events-only")
        archive.delete_session("record-only")
        assert archive.read_events("events-only", 1, 5) == [] and listed(archive) == []

    def test_awkward_ids_and_ids_that_prefix_each_other(self, archive):
        ids = ["a", "ab", "a/b", "a b", "日本語/セッション", "../x", "y" * 500]
        for session_id in ids:
            archive.write_events(session_id, make_events(1, 3))
            archive.write_session_records([evicted_record(session_id)])
        for n, session_id in enumerate(ids):
            archive.delete_session(session_id)
            for later in ids[n + 1:]:
                assert archive.read_events(later, 1, 3) == make_events(1, 3), later
                assert archive.read_session_record(later) is not None, later
        assert listed(archive) == []

    def test_concurrent_deletes_of_many_sessions(self, archive):
        ids = [f"c{i:02d}" for i in range(16)]
        for session_id in ids:
            archive.write_events(session_id, make_events(1, 20))
        archive.write_session_records([evicted_record(i) for i in ids])
        assert run_threads(archive.delete_session, [(i,) for i in ids] * 2, timeout=120) == []
        assert listed(archive) == [] and all(archive.read_events(i, 1, 20) == [] for i in ids)

    def test_through_the_read_cache_nothing_is_served_after_a_delete(self, archive):
        cache = ArchiveReadCache(archive)
        archive.write_events("cached", make_events(1, 600))
        archive.write_events("other", make_events(1, 300))
        assert cache.read_events("cached", 1, 600) == make_events(1, 600)
        assert cache.read_events("other", 1, 300) == make_events(1, 300)
        assert len(cache) == 3  # two complete chunks of "cached", one of "other"
        cache.delete_session("cached")
        assert len(cache) == 1
        assert cache.read_events("cached", 1, 600) == [] and archive.read_events("cached", 1, 600) == []
        assert cache.read_events("other", 1, 300) == make_events(1, 300)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_archive_is_unavailable_fast_on_every_call(unreachable_adapter, kind):
    archive = unreachable_adapter(kind)
    calls = [lambda: archive.write_session_records([evicted_record("s")]),
             lambda: archive.read_session_record("s"),
             lambda: archive.list_session_records(None, 10),
             lambda: archive.list_session_records("s", 10, tenant_id="t", metadata_filters={"k": "v"},
                                                  predicate=lambda record: True),
             lambda: archive.delete_session("s"),
             lambda: ArchiveReadCache(archive).delete_session("s")]
    for call in calls:
        assert_fails_fast(call, ArchiveUnavailable, seconds=15.0)
