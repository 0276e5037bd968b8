"""The Raft journal made durable: pysyncobj's mmap journal plus fsync, group commit across groups.

Owns: `DurableFileJournal` (pysyncobj's journal file format, entries kept on
disk only: memory holds one offset per entry and entries are read back from
the mmap on demand, so the log is not a second in-memory copy of what the file
and the state machine hold; one sync per tick, before entries count toward a
commit or a follower acknowledges them; `held_bytes`, what the log costs in
memory, counted by the hot store cap), `DurableMetaStorer` (term, vote and
commit index fsynced before the rename), `JournalSyncer` (one flush for every
journal that asks while a flush runs, in the hub's thread pool), and
`durable_replace` for snapshot files, and `finish_snapshot` (a stop waits
for a snapshot still being written and compacts the journal after it, so the
two never disagree at the next start). Installing them into pysyncobj happens
here, once, at import (two module-level names pysyncobj builds through).

Must not: know about groups, sessions or the network.
"""

import array
import ctypes
import ctypes.util
import mmap
import os
import struct
import time

import gevent
import gevent.event
from pysyncobj import journal as pysyncobj_journal
from pysyncobj import serializer as pysyncobj_serializer
from pysyncobj import syncobj as pysyncobj_syncobj
from pysyncobj.serializer import SERIALIZER_STATE


class DurableMetaStorer(pysyncobj_journal.MetaStorer):
    """pysyncobj's meta file (term, vote, commit index), made durable where it matters.

    pysyncobj stores the whole meta on every term or vote change (which must be
    durable before a vote is sent) and, once a second per group, whenever only the
    commit index moved. Fsyncing that second kind on the hub cost 12% of a busy
    leader's samples (17 groups x one fsync a second, each blocking every greenlet).
    So: a term or vote change is written with fsync before the rename; a commit-index
    change goes to a side file ``.commit`` (plain write and rename, no fsync). A lost or
    torn side file only leaves an older commit index, which is always safe (committed
    entries stay committed; a restarted node learns the rest from its leader).
    """

    def __init__(self, path):
        super().__init__(path)
        self.durable = None  # (term, vote) in the fsynced file

    def commit_path(self):
        return self.getPath() + ".commit"

    def storeMeta(self, meta):
        identity = (meta.get("currentTerm"), meta.get("votedForNodeId"))
        if identity != self.durable:
            tmp = self.getPath() + ".tmp"
            with open(tmp, "wb") as fh:
                fh.write(pysyncobj_journal.dumps(meta))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.getPath())
            self.durable = identity
        tmp = self.commit_path() + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(int(meta.get("raftCommitIndex", 1))))
        os.replace(tmp, self.commit_path())

    def stored_commit_index(self) -> int:
        try:
            with open(self.commit_path()) as fh:
                return int(fh.read().strip() or 1)
        except (OSError, ValueError):
            return 1


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def flush_files(fds):
    """Make the written data of ``fds`` durable: one syncfs when several files (all
    journals live in one directory, so one filesystem), else fdatasync."""
    if len(fds) > 2 and _SYNCFS is not None:
        fd = next(iter(fds))
        if _SYNCFS(fd) == 0:
            return
    for fd in fds:
        os.fdatasync(fd)


class JournalSyncer:
    """Group commit across the node's Raft groups.

    A group's tick asks for its journal to be synced and waits; every journal that
    asks while a flush is running rides on the next one, so 16 busy groups cost one
    flush (measured: one syncfs ~0.35 ms vs 16 fdatasyncs ~2.7 ms). The flush runs in
    the hub's thread pool, so HTTP and the other groups keep running meanwhile.
    """

    def __init__(self):
        self.waiting = set()
        self.next_flush = gevent.event.Event()
        self.flusher = None

    def sync(self, fd):
        self.waiting.add(fd)
        done = self.next_flush
        if self.flusher is None:
            self.flusher = gevent.spawn(self._flush_loop)
        done.wait()

    def _flush_loop(self):
        pool = gevent.get_hub().threadpool
        try:
            while self.waiting:
                fds, done = self.waiting, self.next_flush
                self.waiting, self.next_flush = set(), gevent.event.Event()
                try:
                    pool.apply(flush_files, (fds,))
                finally:
                    done.set()
        finally:
            self.flusher = None


SYNCER = JournalSyncer()


_RECORD_HEAD = struct.Struct("<IQQ")  # a record: length, idx, term, command, length again
_LENGTH = struct.Struct("<I")
JOURNAL_OFFSET_BYTES = 8  # memory per entry: its offset in the file
# Journal bytes left resident in the mmap after a sync (the newest entries, which pysyncobj reads
# back to send to followers); older pages are given back and fault in from the page cache if read.
RESIDENT_LOG_BYTES = 256 * 1024


class DurableFileJournal(pysyncobj_journal.FileJournal):
    """pysyncobj's mmap journal (same file format), entries on disk only, plus `sync()`.

    pysyncobj's `FileJournal` keeps every entry in a list as well as in the file;
    here only each entry's file offset is kept (`array('Q')`) and ``journal[i]``,
    ``journal[a:b]`` and ``journal[-1]`` read ``(command, idx, term)`` back from
    the mmap. Pages a compaction no longer uses are given back (``MADV_DONTNEED``).
    """

    def __init__(self, journal_file):
        super().__init__(journal_file)  # reads the file once (into a list dropped below)
        storer = DurableMetaStorer(journal_file + ".meta")
        meta = self._FileJournal__meta
        storer.durable = (meta.get("currentTerm"), meta.get("votedForNodeId"))
        # The commit index may be newer in the side file than in the fsynced meta file.
        meta["raftCommitIndex"] = max(meta.get("raftCommitIndex", 1), storer.stored_commit_index())
        self._FileJournal__metaStorer = storer
        self._FileJournal__journal = None
        self._offsets = array.array("Q")
        offset = pysyncobj_journal.FIRST_RECORD_OFFSET
        while offset < self._FileJournal__currentOffset:
            self._offsets.append(offset)
            offset += _LENGTH.unpack(self._records.read(offset, 4))[0] + 8
        self._resident_from = pysyncobj_journal.FIRST_RECORD_OFFSET  # pages from here on may be resident
        self.resident_bytes = RESIDENT_LOG_BYTES
        self.dirty = False
        self.fsync = True
        self._release_old_pages()

    @property
    def _records(self):
        return self._FileJournal__journalFile

    def _file(self):
        return self._records._ResizableFile__f

    @property
    def held_bytes(self) -> int:
        """Memory the log holds: the records still resident in the mmap and one offset per entry."""
        resident = max(0, self._FileJournal__currentOffset - self._resident_from)
        return resident + len(self._offsets) * JOURNAL_OFFSET_BYTES

    def _read(self, offset):
        length, idx, term = _RECORD_HEAD.unpack(self._records.read(offset, _RECORD_HEAD.size))
        return self._records.read(offset + _RECORD_HEAD.size, length - 16), idx, term

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._read(self._offsets[i]) for i in range(*index.indices(len(self._offsets)))]
        return self._read(self._offsets[index])

    def __len__(self):
        return len(self._offsets)

    def add(self, command, idx, term):
        command = pysyncobj_journal.to_bytes(command)
        offset = self._FileJournal__currentOffset
        record = _RECORD_HEAD.pack(len(command) + 16, idx, term) + command + _LENGTH.pack(len(command) + 16)
        self._records.write(offset, record)
        self._offsets.append(offset)
        self._set_end(offset + len(record))
        self.dirty = True

    def clear(self):
        self._offsets = array.array("Q")
        self._set_end(pysyncobj_journal.FIRST_RECORD_OFFSET)

    def deleteEntriesFrom(self, entryFrom):
        if entryFrom < len(self._offsets):
            end = self._offsets[entryFrom]
            del self._offsets[entryFrom:]
            self._set_end(end)
        self.dirty = True

    def deleteEntriesTo(self, entryTo):
        kept = self[entryTo:]
        old_end = self._FileJournal__currentOffset
        self.clear()
        for entry in kept:
            self.add(*entry)
        self._release(self._FileJournal__currentOffset, old_end)

    def _set_end(self, offset):
        self._FileJournal__currentOffset = offset
        self._FileJournal__setLastRecordOffset(offset)
        self._resident_from = min(self._resident_from, offset)

    def _release_old_pages(self):
        """After a sync: give back the pages below the newest ``resident_bytes`` (in steps of as much again)."""
        keep = max(self.resident_bytes, mmap.PAGESIZE)
        upto = (self._FileJournal__currentOffset - keep) // mmap.PAGESIZE * mmap.PAGESIZE
        if upto - self._resident_from >= keep:
            self._release(self._resident_from, upto)
            self._resident_from = upto

    def _release(self, start, end):
        """Give back the resident pages of ``[start, end)`` the log no longer uses (the file keeps them)."""
        start = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
        if end > start and hasattr(mmap, "MADV_DONTNEED"):
            self._records._ResizableFile__mm.madvise(mmap.MADV_DONTNEED, start, end - start)

    def sync(self):
        """Called by the group's tick greenlet, which waits; other greenlets keep running."""
        if self.dirty:
            self.dirty = False
            if self.fsync:
                SYNCER.sync(self._file().fileno())
            self._release_old_pages()


def _create_journal(journal_file=None):
    if journal_file is None:
        return pysyncobj_journal.MemoryJournal()
    return DurableFileJournal(journal_file)


def durable_replace(tmp_path, final_path):
    """Snapshot files: fsync the new file, rename it into place, fsync the directory."""
    with open(tmp_path, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp_path, final_path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(final_path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# SyncObj builds its journal through this module-level name; ours adds fsync.
pysyncobj_syncobj.createJournal = _create_journal
# The snapshot writer (run in a forked child) renames through this name: make it durable,
# since the journal entries it covers are deleted once it reports success.
pysyncobj_serializer.atomicReplace = durable_replace


def finish_snapshot(syncobj, timeout: float):
    """At a group's stop, a snapshot its forked child is still writing: wait for it (at most ``timeout``)
    and drop the journal entries it covers, as the next tick would have. Otherwise the restart finds a
    snapshot newer than the journal's start, and pysyncobj then clears the journal
    (`SyncObj.__loadDumpFile`): every entry after the snapshot's would be lost (seen as a deleted
    session back after a quick restart)."""
    serializer = syncobj._SyncObj__serializer
    deadline = time.monotonic() + timeout
    while True:
        state, serialize_id = serializer.checkSerializing()
        if state == SERIALIZER_STATE.SUCCESS:
            syncobj._SyncObj__deleteEntriesTo(serialize_id)
            syncobj._SyncObj__lastSerializedEntry = serialize_id
            return
        if state != SERIALIZER_STATE.SERIALIZING or time.monotonic() > deadline:
            return
        gevent.sleep(0.01)
