"""`ArchiveReadCache`: a bounded read-through cache of archived event chunks for cold reads.

Owns: complete chunks (`chunks.CHUNK_SIZE` events, keyed by ``(session_id,
chunk_start)``) read as event lines from any `ArchiveAdapter`, stored as the
chunk's NDJSON bytes (optionally zlib-compressed; a hit splits them back into
lines, seqs known from the chunk's start, no event decoded) with a TTL, a byte budget with LRU eviction of
``reclaim_fraction`` of the budget when full, `cleanup()` of expired entries
and `reclaim()` of memory on demand. Archived events are immutable, so a
complete chunk never goes stale; a partial chunk (the archive's tail) is
returned but never cached. Its lock is a real OS-thread lock, held only for
dictionary work, because `read_events` runs wherever the adapter does (gevent's
threadpool for the local adapter, the hub otherwise). Must not: write to the
archive, hold its lock during archive I/O or anything that can yield, or call
the clock's cleanup by itself (the node schedules `cleanup()`).
"""

import collections
import time
import zlib

from starcite.adapters import chunks, osthread

_MAX_RUN_CHUNKS = 64  # most uncached chunks fetched from the archive in one call


class ArchiveReadCache:
    def __init__(self, adapter, ttl_ms=600_000, max_bytes=512 * 1024**2, reclaim_fraction=0.25, compressed=True,
                 clock=time.monotonic):
        if not 0 < reclaim_fraction <= 1:
            raise ValueError("reclaim_fraction must be in (0, 1]")
        self.adapter = adapter
        self.ttl_s = ttl_ms / 1000.0
        self.max_bytes = int(max_bytes)
        self.reclaim_fraction = reclaim_fraction
        self.compressed = compressed
        self._clock = clock
        self._lock = osthread.lock()  # read_events may run in threadpool threads (local adapter)
        self._entries = collections.OrderedDict()  # (session_id, start) -> (expires_at, bytes); LRU first
        self._bytes = 0
        self.hits = self.misses = self.evictions = 0

    @classmethod
    def from_config(cls, config, adapter):
        return cls(adapter, ttl_ms=config.read_cache_ttl_ms, max_bytes=config.read_cache_max_bytes,
                   reclaim_fraction=config.read_cache_reclaim_fraction, compressed=config.read_cache_compressed)

    # -- reads ------------------------------------------------------------------

    def read_events(self, session_id, from_seq, to_seq):
        """`read_lines`, each line decoded to its event dict."""
        return chunks.decode_lines(self.read_lines(session_id, from_seq, to_seq))

    @chunks.clamped
    def read_lines(self, session_id, from_seq, to_seq):
        """Same contract as `ArchiveAdapter.read_lines`, served from cached chunks where possible."""
        out, start = [], chunks.chunk_start(from_seq)
        while start <= to_seq:
            cached = self._lookup(session_id, start)
            if cached is not None:
                out.extend(chunks.in_range(cached, from_seq, to_seq))
                start += chunks.CHUNK_SIZE
                continue
            run_end = start  # last chunk of a run of uncached chunks, fetched in one archive call
            while (run_end + chunks.CHUNK_SIZE <= to_seq and run_end - start < _MAX_RUN_CHUNKS * chunks.CHUNK_SIZE
                   and not self._contains(session_id, run_end + chunks.CHUNK_SIZE)):
                run_end += chunks.CHUNK_SIZE
            fetched = self.adapter.read_lines(session_id, start, chunks.chunk_end(run_end))
            for chunk, lines in chunks.group_by_chunk(fetched).items():
                if chunks.is_complete_chunk(chunk, lines):
                    self._store(session_id, chunk, lines)
            out.extend(chunks.in_range(fetched, from_seq, to_seq))
            next_start = run_end + chunks.CHUNK_SIZE
            archive_ended = not fetched or fetched[-1][0] < chunks.chunk_end(run_end)
            if archive_ended and not (next_start <= to_seq and self._contains(session_id, next_start)):
                break  # nothing archived past this run, and nothing cached there either
            start = next_start
        return out

    # -- memory -----------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self):
        return len(self._entries)

    def cleanup(self) -> int:
        """Drop expired entries; returns the bytes freed."""
        now = self._clock()
        with self._lock:
            expired = [key for key, (expires_at, _data) in self._entries.items() if expires_at <= now]
            return sum(self._drop(key) for key in expired)

    def reclaim(self, nbytes: int) -> int:
        """Evict least recently used entries until at least ``nbytes`` are freed (or the cache is empty)."""
        with self._lock:
            return self._evict(nbytes)

    def forget(self, session_id) -> int:
        """Drop every cached chunk of ``session_id`` (a deleted session); returns the bytes freed."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == session_id]
            return sum(self._drop(key) for key in keys)

    def delete_session(self, session_id) -> None:
        """`ArchiveAdapter.delete_session` through the cache: its chunks go before and after the archive's."""
        self.forget(session_id)
        self.adapter.delete_session(session_id)
        self.forget(session_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    # -- internals ----------------------------------------------------------------

    def _lookup(self, session_id, start):
        key = (session_id, start)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] <= self._clock():
                self._drop(key)
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            data = entry[1]
        lines = (zlib.decompress(data) if self.compressed else data).split(b"\n")
        return list(zip(range(start, start + chunks.CHUNK_SIZE), lines))  # a cached chunk is complete

    def _contains(self, session_id, start):
        with self._lock:
            return (session_id, start) in self._entries

    def _store(self, session_id, start, lines):
        data = chunks.encode_chunk(lines)
        if self.compressed:
            data = zlib.compress(data, 1)
        size = _entry_size(session_id, data)
        if size > self.max_bytes:
            return
        key = (session_id, start)
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if self._bytes + size > self.max_bytes:
                self._evict(max(int(self.max_bytes * self.reclaim_fraction), self._bytes + size - self.max_bytes))
            self._entries[key] = (self._clock() + self.ttl_s, data)
            self._bytes += size

    def _evict(self, nbytes):
        freed = 0
        while freed < nbytes and self._entries:
            key = next(iter(self._entries))
            freed += self._drop(key)
            self.evictions += 1
        return freed

    def _drop(self, key):
        _expires_at, data = self._entries.pop(key)
        size = _entry_size(key[0], data)
        self._bytes -= size
        return size


def _entry_size(session_id, data):
    """Bytes charged for one entry: the value plus a rough per-entry overhead."""
    return len(data) + len(session_id) + 128
