"""The `ArchiveAdapter` contract, run unchanged against every adapter (local, s3, postgres).

Owns: the behaviour every back end must share — ranges across chunk
boundaries, idempotent re-writes, out-of-range reads, event lines returned
byte for byte, torn / corrupt / misplaced chunks refused (never a wrong event), session upsert/get/list
with tenant and metadata filters, stable cursor walks, concurrent writers,
awkward session ids (the `archive` fixture, in conftest.py, is each adapter in turn; the session
lifecycle, records in batches and deletion, is test_contract_lifecycle.py). Must not: test one back end's internals (those live in
test_s3.py / test_postgres.py / test_local.py).
"""

import pytest

from starcite.adapters import ArchiveUnavailable, chunks
from starcite.adapters.chunks import InvalidCursor
from tests.adapters.archive_helpers import make_event, make_events, make_session, run_threads, walk

AWKWARD_IDS = ["日本語/セッション", "a/b/../c", "../../etc/passwd", "emoji 🚀 / space", "x" * 200, "y" * 500, "-_.~%2F?#"]


class TestArchiveContract:
    def test_write_and_read_across_chunk_boundaries(self, archive):
        events = make_events(1, 600)
        assert archive.write_events("s1", events[:100]) == 100
        assert archive.write_events("s1", events[100:]) == 500
        assert archive.read_events("s1", 1, 600) == events
        assert archive.read_events("s1", 250, 260) == events[249:260]
        assert archive.read_events("s1", 256, 513) == events[255:513]
        assert archive.read_events("s1", 257, 257) == [events[256]]
        assert archive.read_events("s1", 512, 512) == [events[511]]
        assert archive.read_events("s1", 513, 600) == events[512:]
        assert archive.read_events("other", 1, 600) == []

    def test_rewrite_of_overlapping_ranges_is_idempotent(self, archive):
        events = make_events(1, 400)
        assert archive.write_events("s1", events[:300]) == 300
        assert archive.write_events("s1", events[199:]) == 100
        assert archive.write_events("s1", events) == 0
        assert archive.write_events("s1", events[250:260]) == 0
        # stored events are immutable: a different body for a stored seq changes nothing
        assert archive.write_events("s1", [make_event(5, payload={"changed": True})]) == 0
        assert archive.read_events("s1", 1, 400) == events

    def test_out_of_range_reads(self, archive):
        assert archive.read_events("empty", 1, 100) == []
        events = make_events(1, 300)
        archive.write_events("s1", events)
        assert archive.read_events("s1", 301, 1000) == []
        assert archive.read_events("s1", 10, 9) == []
        assert archive.read_events("s1", 0, 3) == events[:3]
        assert archive.read_events("s1", -5, 1) == events[:1]
        assert archive.read_events("s1", 290, 10**12) == events[289:]  # a huge upper bound stays cheap

    def test_events_with_gaps_between_writes(self, archive):
        archive.write_events("s1", make_events(1, 10))
        archive.write_events("s1", make_events(700, 710))
        got = archive.read_events("s1", 1, 1000)
        assert [e["seq"] for e in got] == list(range(1, 11)) + list(range(700, 711))
        assert archive.read_events("s1", 11, 699) == []

    def test_event_round_trip_is_exact(self, archive):
        odd = [make_event(1, payload={"nul": "a\u0000b", "emoji": "🚀"}),
               make_event(2, actor=None, metadata={}, refs={}, idempotency_key="k-2", extra_field=[1, {"x": 2}]),
               make_event(3, inserted_at="2025-06-30T23:59:59Z", payload={"big": 2**62, "neg": -1.5e-7})]
        archive.write_events("s1", odd)
        assert archive.read_events("s1", 1, 3) == odd

    def test_lines_come_back_byte_for_byte(self, archive):
        lines = [(1, b'{"seq":1, "spaced" : true}'), (2, b'{"type":"seq not first","seq":2}'),
                 (3, '{"seq":3,"text":"h\u00e9llo \u2713 \\u0000"}'.encode())]
        assert archive.write_lines("s1", lines) == 3
        assert archive.read_lines("s1", 1, 3) == lines
        assert archive.write_lines("s1", [(2, b'{"seq":2,"other":1}')]) == 0  # the stored line wins
        assert archive.read_lines("s1", 2, 2) == [lines[1]]
        events = make_events(4, 300)
        archive.write_events("s1", events)
        assert archive.read_lines("s1", 4, 300) == chunks.event_lines(events)

    def test_lines_that_are_not_their_seq_are_refused(self, archive):
        for bad in ([(1, b'{"seq":2}')], [(1, b'{"seq":1}\n{"seq":2}')], [(1, "{}")], [(0, b'{"seq":0}')],
                    [(1, b'not json')]):
            with pytest.raises(ValueError):
                archive.write_lines("s1", bad)
        assert archive.read_lines("s1", 1, 10) == []

    @pytest.mark.parametrize("damage", ["torn", "garbage line", "seqs of another chunk", "seqs out of order"])
    def test_damaged_chunk_is_refused_never_served(self, archive, request, store_chunk_bytes, damage):
        kind = request.node.callspec.params["archive"]
        archive.write_events("s1", make_events(1, 300))
        good = chunks.encode_chunk(chunks.event_lines(make_events(1, 10)))
        data = {"torn": good[:-25],
                "garbage line": good.replace(chunks.encode_json(make_event(5)), b'{"seq":5,"type":"x"#garbage'),
                "seqs of another chunk": chunks.encode_chunk(chunks.event_lines(make_events(257, 266))),
                "seqs out of order": chunks.encode_chunk(chunks.event_lines(make_events(2, 2) + make_events(1, 1))),
                }[damage]
        store_chunk_bytes(kind, archive, "s1", 1, data)
        with pytest.raises(ArchiveUnavailable):
            archive.read_lines("s1", 1, 10)
        with pytest.raises(ArchiveUnavailable):
            archive.read_events("s1", 1, 300)
        assert archive.read_events("s1", 257, 300) == make_events(257, 300)  # other chunks still serve

    def test_session_upsert_and_get(self, archive):
        assert archive.get_session("nope") is None
        record = make_session("s1", tenant="acme", project="p1")
        archive.upsert_session(record)
        assert archive.get_session("s1") == record
        changed = {**record, "last_seq": 42, "title": "renamed", "updated_at": "2025-02-01T00:00:00.000000Z"}
        archive.upsert_session(changed)
        assert archive.get_session("s1") == changed
        got = archive.get_session("s1")
        got["title"] = "mutated by a caller"
        assert archive.get_session("s1") == changed

    def test_list_with_tenant_and_metadata_filters(self, archive):
        archive.upsert_session(make_session("a1", tenant="acme", project="p1", live=True, rank=5))
        archive.upsert_session(make_session("a2", tenant="acme", project="p2", live=False, rank=6))
        archive.upsert_session(make_session("b1", tenant="beta", project="p1", live=True))
        archive.upsert_session(make_session("n1", project="p1"))

        def ids(**filters):
            return sorted(r["id"] for r in walk(archive, 100, **filters)[0])

        assert ids() == ["a1", "a2", "b1", "n1"]
        assert ids(tenant_id="acme") == ["a1", "a2"]
        assert ids(tenant_id="nobody") == []
        assert ids(metadata_filters={"project": "p1"}) == ["a1", "b1", "n1"]
        assert ids(tenant_id="acme", metadata_filters={"project": "p1"}) == ["a1"]
        assert ids(metadata_filters={"project": "p1", "live": "true"}) == ["a1", "b1"]
        assert ids(metadata_filters={"rank": "6"}) == ["a2"]
        assert ids(metadata_filters={"rank": "6.0"}) == []
        assert ids(metadata_filters={"missing": "x"}) == []
        records, cursor = archive.list_sessions(100, tenant_id="acme")
        assert cursor is None and {r["id"] for r in records} == {"a1", "a2"}
        assert records[0] == archive.get_session(records[0]["id"])

    def test_cursor_walk_yields_every_session_exactly_once(self, archive):
        ids = [f"ses_{i:03d}" for i in range(30)] + AWKWARD_IDS
        for n, session_id in enumerate(ids):
            archive.upsert_session(make_session(session_id, tenant="even" if n % 2 == 0 else "odd"))
        everything, _pages = walk(archive, 1000)
        for page_size in (1, 5, 7, 64):
            seen, pages = walk(archive, page_size)
            assert [r["id"] for r in seen] == [r["id"] for r in everything]
            assert pages == -(-len(ids) // page_size)  # no trailing empty page
        assert sorted(r["id"] for r in everything) == sorted(ids)
        evens, _pages = walk(archive, 4, tenant_id="even")
        assert sorted(r["id"] for r in evens) == sorted(ids[0::2])

    def test_cursor_walk_stays_stable_while_sessions_are_added(self, archive):
        for i in range(20):
            archive.upsert_session(make_session(f"m{i:02d}"))
        records, cursor = archive.list_sessions(5)
        seen = [r["id"] for r in records]
        for i in range(20, 30):
            archive.upsert_session(make_session(f"m{i:02d}"))
        while cursor is not None:
            records, cursor = archive.list_sessions(5, cursor=cursor)
            seen.extend(r["id"] for r in records)
        assert len(seen) == len(set(seen))
        assert set(seen) >= {f"m{i:02d}" for i in range(20)}

    def test_invalid_cursor_and_limit_are_value_errors(self, archive):
        for bad in ("!!!", "%%%", ""):
            with pytest.raises(InvalidCursor):
                archive.list_sessions(10, cursor=bad)
        with pytest.raises(ValueError):
            archive.list_sessions(0)

    def test_concurrent_writes_to_one_session(self, archive):
        total, threads, batch = 600, 4, 40
        events = make_events(1, total)
        added = []

        def writer(offset):
            # every writer covers the whole range, starting at a different point: heavy overlap
            starts = list(range(0, total, batch))
            for start in starts[offset:] + starts[:offset]:
                added.append(archive.write_events("hot", events[start:start + batch]))

        assert run_threads(writer, [(i * 3,) for i in range(threads)], timeout=120) == []
        assert sum(added) == total  # each event counted as new exactly once
        assert archive.read_events("hot", 1, total) == events

    def test_awkward_session_ids(self, archive):
        for n, session_id in enumerate(AWKWARD_IDS, start=1):
            events = make_events(1, 260 + n)
            assert archive.write_events(session_id, events) == len(events)
            archive.upsert_session(make_session(session_id, tenant="t"))
        for n, session_id in enumerate(AWKWARD_IDS, start=1):
            assert archive.read_events(session_id, 1, 10_000) == make_events(1, 260 + n)
            assert archive.get_session(session_id)["id"] == session_id
        assert sorted(r["id"] for r in walk(archive, 2, tenant_id="t")[0]) == sorted(AWKWARD_IDS)

    def test_two_adapters_on_one_archive_see_each_other(self, archive, make_adapter, request):
        kind = request.node.callspec.params["archive"]
        other = make_adapter(kind)
        archive.write_events("shared", make_events(1, 100))
        assert other.write_events("shared", make_events(50, 300)) == 200
        assert archive.read_events("shared", 1, 300) == make_events(1, 300)
        other.upsert_session(make_session("shared"))
        assert archive.get_session("shared") == make_session("shared")

    def test_check_passes_on_a_usable_archive(self, archive):
        archive.check()

    def test_delete_session_removes_events_and_record(self, archive):
        archive.write_events("gone", make_events(1, 600))  # three chunks
        archive.upsert_session(make_session("gone", tenant="t"))
        archive.write_events("kept", make_events(1, 10))
        archive.upsert_session(make_session("kept", tenant="t"))
        archive.delete_session("gone")
        assert archive.read_events("gone", 1, 10_000) == []
        assert archive.get_session("gone") is None
        assert [r["id"] for r in walk(archive, 10, tenant_id="t")[0]] == ["kept"]
        assert archive.read_events("kept", 1, 10) == make_events(1, 10)
        assert archive.get_session("kept")["id"] == "kept"

    def test_delete_session_is_idempotent(self, archive):
        archive.delete_session("never-was")
        archive.write_events("twice", make_events(1, 3))
        archive.delete_session("twice")
        archive.delete_session("twice")
        assert archive.read_events("twice", 1, 3) == []
        assert archive.write_events("twice", make_events(1, 3)) == 3  # the id can be written afresh

    def test_delete_session_with_awkward_ids(self, archive):
        for session_id in AWKWARD_IDS:
            archive.write_events(session_id, make_events(1, 260))
            archive.upsert_session(make_session(session_id, tenant="awk"))
        for session_id in AWKWARD_IDS:
            archive.delete_session(session_id)
            assert archive.read_events(session_id, 1, 1000) == []
            assert archive.get_session(session_id) is None
        assert walk(archive, 5, tenant_id="awk")[0] == []

    def test_a_deletion_is_seen_by_another_adapter_on_the_archive(self, archive, make_adapter, request):
        other = make_adapter(request.node.callspec.params["archive"])
        archive.write_events("shared", make_events(1, 5))
        archive.upsert_session(make_session("shared", tenant="both"))
        assert [r["id"] for r in walk(other, 10, tenant_id="both")[0]] == ["shared"]
        archive.delete_session("shared")
        assert other.get_session("shared") is None
        assert walk(other, 10, tenant_id="both")[0] == []
        assert other.read_events("shared", 1, 5) == []
