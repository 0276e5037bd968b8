"""`ArchiveReadCache`: read-through of complete chunks, TTL, byte budget, reclaim and compression.

Owns: proving the cache returns exactly what the archive holds, never treats
a partial chunk as complete, expires and evicts by its settings, and stays
consistent under concurrent readers. Must not: depend on a network archive
(a local archive behind a call counter is enough).
"""

import pytest

from starcite.adapters.local import LocalArchiveAdapter
from starcite.adapters.read_cache import ArchiveReadCache
from starcite.config.settings import load_config
from tests.adapters.archive_helpers import make_events, run_threads


class CountingArchive:
    """Delegates to a local archive and records every `read_lines` call."""

    def __init__(self, directory):
        self.inner = LocalArchiveAdapter(directory)
        self.reads = []

    def read_lines(self, session_id, from_seq, to_seq):
        self.reads.append((session_id, from_seq, to_seq))
        return self.inner.read_lines(session_id, from_seq, to_seq)

    def write_events(self, session_id, events):
        return self.inner.write_events(session_id, events)

    def delete_session(self, session_id):
        return self.inner.delete_session(session_id)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def archive(tmp_path):
    return CountingArchive(str(tmp_path))


def test_complete_chunks_are_served_from_memory(archive):
    archive.write_events("s", make_events(1, 600))
    cache = ArchiveReadCache(archive)
    assert cache.read_events("s", 1, 512) == make_events(1, 512)
    assert len(archive.reads) == 1 and len(cache) == 2
    assert cache.read_events("s", 100, 400) == make_events(100, 400)
    assert cache.read_events("s", 256, 257) == make_events(256, 257)
    assert len(archive.reads) == 1
    assert cache.hits >= 4


def test_delete_session_drops_the_cached_chunks_and_the_archive_copy(archive):
    archive.write_events("gone", make_events(1, 600))
    archive.write_events("kept", make_events(1, 300))
    cache = ArchiveReadCache(archive)
    cache.read_events("gone", 1, 600)
    cache.read_events("kept", 1, 300)
    assert len(cache) == 3
    cache.delete_session("gone")
    assert len(cache) == 1  # kept's one complete chunk
    assert cache.read_events("gone", 1, 600) == []
    assert cache.read_events("kept", 1, 300) == make_events(1, 300)


def test_partial_chunk_is_returned_but_never_cached(archive):
    archive.write_events("s", make_events(1, 300))
    cache = ArchiveReadCache(archive)
    assert cache.read_events("s", 1, 300) == make_events(1, 300)
    assert len(cache) == 1  # chunk 1..256 only
    archive.write_events("s", make_events(301, 512))
    assert cache.read_events("s", 250, 512) == make_events(250, 512)  # no stale tail
    assert len(cache) == 2


def test_uncached_gap_between_cached_chunks_is_fetched_alone(archive):
    archive.write_events("s", make_events(1, 1024))
    cache = ArchiveReadCache(archive)
    cache.read_events("s", 1, 256)
    cache.read_events("s", 513, 768)
    archive.reads.clear()
    assert cache.read_events("s", 1, 1024) == make_events(1, 1024)
    assert archive.reads == [("s", 257, 512), ("s", 769, 1024)]


def test_out_of_range_and_huge_ranges(archive):
    archive.write_events("s", make_events(1, 300))
    cache = ArchiveReadCache(archive)
    assert cache.read_events("s", 10, 9) == []
    assert cache.read_events("nobody", 1, 10**12) == []
    assert cache.read_events("s", 290, 10**12) == make_events(290, 300)
    assert cache.read_events("s", 0, 2) == make_events(1, 2)


def test_ttl_expiry_and_cleanup(archive):
    archive.write_events("s", make_events(1, 512))
    clock = FakeClock()
    cache = ArchiveReadCache(archive, ttl_ms=1000, clock=clock)
    cache.read_events("s", 1, 512)
    assert len(cache) == 2 and cache.size_bytes > 0
    clock.now += 0.5
    cache.read_events("s", 1, 10)
    assert len(archive.reads) == 1
    clock.now += 0.6  # both entries are past their TTL now
    assert cache.read_events("s", 1, 10) == make_events(1, 10)  # an expired entry is a miss
    assert len(archive.reads) == 2
    clock.now += 0.5
    assert cache.cleanup() > 0  # chunk 257 expired without being read again
    assert len(cache) == 1
    clock.now += 1.0
    cache.cleanup()
    assert len(cache) == 0 and cache.size_bytes == 0


@pytest.mark.parametrize("compressed", [True, False])
def test_byte_budget_evicts_least_recently_used(archive, compressed):
    for n in range(20):
        archive.write_events(f"s{n}", make_events(1, 256))
    one = ArchiveReadCache(archive, compressed=compressed)
    one.read_events("s0", 1, 256)
    budget = one.size_bytes * 8
    cache = ArchiveReadCache(archive, max_bytes=budget, reclaim_fraction=0.25, compressed=compressed)
    for n in range(8):
        cache.read_events(f"s{n}", 1, 256)
    assert len(cache) == 8
    cache.read_events("s0", 1, 256)  # s0 becomes the most recently used
    for n in range(8, 20):
        cache.read_events(f"s{n}", 1, 256)
        assert cache.size_bytes <= budget
    assert cache.evictions > 0
    archive.reads.clear()
    cache.read_events("s19", 1, 256)
    assert archive.reads == []
    cache.read_events("s1", 1, 256)  # long evicted
    assert archive.reads == [("s1", 1, 256)]


def test_reclaim_frees_memory_on_demand(archive):
    for n in range(10):
        archive.write_events(f"s{n}", make_events(1, 256))
    cache = ArchiveReadCache(archive)
    for n in range(10):
        cache.read_events(f"s{n}", 1, 256)
    before = cache.size_bytes
    freed = cache.reclaim(before // 3)
    assert freed >= before // 3 and cache.size_bytes == before - freed
    assert cache.reclaim(10**12) == before - freed and cache.size_bytes == 0 and len(cache) == 0
    assert cache.read_events("s3", 1, 256) == make_events(1, 256)


def test_compression_round_trip_and_saving(archive):
    archive.write_events("s", make_events(1, 768))
    packed = ArchiveReadCache(archive, compressed=True)
    plain = ArchiveReadCache(archive, compressed=False)
    for cache in (packed, plain):
        assert cache.read_events("s", 1, 768) == make_events(1, 768)
        assert cache.read_events("s", 3, 700) == make_events(3, 700)  # served from memory
    assert packed.size_bytes * 3 < plain.size_bytes


def test_an_entry_larger_than_the_budget_is_not_cached(archive):
    archive.write_events("s", make_events(1, 256))
    cache = ArchiveReadCache(archive, max_bytes=1000)
    assert cache.read_events("s", 1, 256) == make_events(1, 256)
    assert len(cache) == 0 and cache.size_bytes == 0


def test_concurrent_readers_and_reclaimers(archive):
    for n in range(8):
        archive.write_events(f"s{n}", make_events(1, 600))
    cache = ArchiveReadCache(archive, max_bytes=200_000)

    def reader(n):
        for i in range(12):
            session_id = f"s{(n + i) % 8}"
            assert cache.read_events(session_id, 1 + i, 600 - i) == make_events(1 + i, 600 - i)
            if i % 4 == 0:
                cache.reclaim(50_000)
                cache.cleanup()

    assert run_threads(reader, [(n,) for n in range(6)]) == []
    assert 0 <= cache.size_bytes <= 200_000


def test_built_from_config(archive):
    config = load_config(environ={"STARCITE_ARCHIVE_READ_CACHE_TTL_MS": "1234",
                                  "STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE": "1MB",
                                  "STARCITE_ARCHIVE_READ_CACHE_RECLAIM_FRACTION": "0.5",
                                  "STARCITE_ARCHIVE_READ_CACHE_COMPRESSED": "false"})
    cache = ArchiveReadCache.from_config(config, archive)
    assert (cache.ttl_s, cache.max_bytes, cache.reclaim_fraction, cache.compressed) == (1.234, 1024**2, 0.5, False)


def test_a_read_under_way_when_a_session_is_deleted_caches_nothing(archive):
    archive.write_events("s", make_events(1, 600))
    cache = ArchiveReadCache(archive)
    inner_read = archive.read_lines

    def read_then_deleted(session_id, from_seq, to_seq):
        lines = inner_read(session_id, from_seq, to_seq)  # read before the deletion...
        archive.inner.delete_session(session_id)
        cache.forget(session_id)  # ...which ran while these lines were on their way back
        return lines

    archive.read_lines = read_then_deleted
    assert cache.read_events("s", 1, 600) == make_events(1, 600)  # this read's answer stands
    archive.read_lines = inner_read
    assert len(cache) == 0 and cache.size_bytes == 0
    assert cache.read_events("s", 1, 600) == []


def test_forget_drops_one_sessions_chunks_only(archive):
    for session_id in ("a", "b"):
        archive.write_events(session_id, make_events(1, 512))
    cache = ArchiveReadCache(archive)
    cache.read_events("a", 1, 512)
    cache.read_events("b", 1, 512)
    size = cache.size_bytes
    freed = cache.forget("a")
    assert len(cache) == 2 and 0 < freed and cache.size_bytes == size - freed
    reads = len(archive.reads)
    assert cache.read_events("b", 1, 512) == make_events(1, 512) and len(archive.reads) == reads  # still cached
    assert cache.forget("a") == 0 and cache.forget("never") == 0
