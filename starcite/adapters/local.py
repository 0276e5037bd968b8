"""`LocalArchiveAdapter`: the archive as one SQLite database file in a directory on disk.

Owns: ``<dir>/archive.sqlite3`` (and SQLite's ``-wal``/``-shm`` beside it):
table ``chunks`` holds each session's events as the chunks every back end
shares (``(session_id, chunk_start)`` -> the chunk's NDJSON, encoding and
checks from `chunks`, merged by seq), table ``sessions`` the session records
(``id`` -> the record's JSON, ``tenant_id`` indexed for fenced lists).
Small sessions share database pages instead of each having its own files
(a file and a directory cost a 4 KB block each). Every write is one
transaction (``BEGIN IMMEDIATE``, WAL, ``synchronous=FULL``: durable when it
returns, and a crash leaves every transaction whole or absent). Several
processes may share the directory (the nodes of a one-host development
cluster): SQLite's own locks serialise their writes. Every call blocks its OS
thread (disk I/O, fsync, SQLite's busy wait), so the adapter says
``blocking_io = True`` and the node runs it in gevent's hub threadpool.

Deletion: rows are deleted with ``secure_delete`` on (their bytes zeroed in
the pages that held them); `delete_session` then checkpoints the WAL and
truncates it and gives freed pages back to the file system
(``auto_vacuum = INCREMENTAL``), so a deleted session's bytes are gone from
the files when it returns; when other transactions (another process's
reads and writes) keep the checkpoint from completing for a second, they go
at the next deletion's checkpoint that completes.

The directory layout before this one (a file per chunk and per record,
`starcite.adapters.local_files`) is imported on first use and then removed.

Must not: cache event data (that is `ArchiveReadCache`'s job), use gevent's
(patched) locks, or create a fresh, empty database where one was in use
(a vanished database is an outage, never "no events").
"""

import contextlib
import os
import sqlite3

from starcite.adapters import chunks, local_files, osthread
from starcite.adapters.base import ArchiveAdapter, ArchiveUnavailable

DB_NAME = "archive.sqlite3"
DB_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")  # the database and SQLite's files beside it
_BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's transaction
_IDLE_CONNECTIONS = 8
_COMPACT_TRIES, _COMPACT_PAUSE_S = 20, 0.05  # how long a deletion's checkpoint waits for others' transactions
_LIST_MAX_SCAN = 1000  # most records a list call examines when filters reject them
_SCHEMA = [
    # set before the first table exists: freed pages can then be given back to the file system
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    """CREATE TABLE IF NOT EXISTS chunks (
           session_id TEXT NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL,
           PRIMARY KEY (session_id, start)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sessions (
           id TEXT PRIMARY KEY, tenant_id TEXT, record TEXT NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS sessions_tenant ON sessions (tenant_id, id)",
]


class LocalArchiveAdapter(ArchiveAdapter):
    blocking_io = True
    flush_concurrency = 2  # leaves thread-pool room for cold reads and session index writes

    def __init__(self, directory):
        if not directory:
            raise ValueError("LocalArchiveAdapter needs a directory")
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, DB_NAME)
        self._lock = osthread.lock()  # guards the idle connections (never held across I/O)
        self._ready_lock = osthread.lock()
        self._compact_lock = osthread.lock()  # one checkpoint at a time in this process
        self._idle = []
        self._inode = None  # the database file this process opened (None: not opened yet)

    # -- events ---------------------------------------------------------------

    def write_lines(self, session_id, lines):
        chunks.check_lines(lines)
        with self._transaction() as db:
            return self._merge_lines(db, session_id, lines)

    def _merge_lines(self, db, session_id, lines):
        added = 0
        for start, group in chunks.group_by_chunk(lines).items():
            row = db.execute("SELECT data FROM chunks WHERE session_id = ? AND start = ?",
                             (session_id, start)).fetchone()
            merged, new = chunks.merge_by_seq(self._decode_chunk(session_id, start, row[0] if row else b""), group)
            if new:
                db.execute("INSERT OR REPLACE INTO chunks (session_id, start, data) VALUES (?, ?, ?)",
                           (session_id, start, chunks.encode_chunk(merged)))
                added += new
        return added

    @chunks.clamped
    def read_lines(self, session_id, from_seq, to_seq):
        with self._connection() as db:
            rows = db.execute("SELECT start, data FROM chunks WHERE session_id = ? AND start BETWEEN ? AND ? "
                              "ORDER BY start", (session_id, chunks.chunk_start(from_seq), to_seq)).fetchall()
        out = []
        for start, data in rows:
            out.extend(chunks.in_range(self._decode_chunk(session_id, start, data), from_seq, to_seq))
        return out

    def _decode_chunk(self, session_id, start, data):
        try:
            return chunks.decode_chunk(start, bytes(data))
        except chunks.CorruptChunk as exc:
            raise ArchiveUnavailable(f"local archive {self.path}: chunk {start} of {session_id!r}: {exc}") from None

    # -- session records ------------------------------------------------------

    def write_session_records(self, records):
        rows = [(session_id, chunks.record_tenant(record), chunks.encode_json(record).decode())
                for session_id, record in chunks.latest_records(records).items()]
        if rows:
            with self._transaction() as db:
                db.executemany("INSERT OR REPLACE INTO sessions (id, tenant_id, record) VALUES (?, ?, ?)", rows)

    def read_session_record(self, session_id):
        with self._connection() as db:
            row = db.execute("SELECT record FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return self._decode_record(session_id, row[0]) if row else None

    def list_session_records(self, after_id=None, limit=100, tenant_id=None, metadata_filters=None,
                             predicate=None):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        where = " AND tenant_id = ?" if tenant_id is not None else ""

        def fetch(position, count):
            with self._connection() as db:
                rows = db.execute(f"SELECT id, record FROM sessions WHERE id > ?{where} ORDER BY id LIMIT ?",
                                  (position if position is not None else "",
                                   *([tenant_id] if tenant_id is not None else []), count)).fetchall()
            return [self._decode_record(session_id, record) for session_id, record in rows]

        batch = limit + 1 if not metadata_filters and predicate is None else max(limit + 1, 200)
        return chunks.take_page(chunks.records_in_pages(fetch, after_id, batch), limit, tenant_id, metadata_filters,
                                max_scan=max(_LIST_MAX_SCAN, limit + 1), predicate=predicate)

    def _decode_record(self, session_id, text):
        try:
            return chunks.decode_json(text)
        except ValueError as exc:
            raise ArchiveUnavailable(f"local archive {self.path}: record of {session_id!r}: {exc}") from None

    # -- deletion ---------------------------------------------------------------

    def delete_session(self, session_id):
        with self._transaction() as db:
            db.execute("DELETE FROM chunks WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self.compact()

    def compact(self) -> bool:
        """Give freed pages back to the file system and empty the WAL (its frames may hold deleted
        bytes). Other transactions can hold the checkpoint back: it is tried for up to
        `_COMPACT_TRIES` x `_COMPACT_PAUSE_S`, then left to the next call. True when it completed."""
        with self._compact_lock, self._connection() as db:
            db.execute("PRAGMA incremental_vacuum").fetchall()
            for _attempt in range(_COMPACT_TRIES):
                (blocked, _frames, _copied), = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                if not blocked:
                    return True
                osthread.sleep(_COMPACT_PAUSE_S)
        return False

    # -- the database -----------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self):
        """A pooled connection inside a write transaction (`_writing`)."""
        with self._connection() as db, _writing(db):
            yield db

    @contextlib.contextmanager
    def _connection(self):
        """A pooled connection to the database this process opened; SQLite and file errors ->
        `ArchiveUnavailable`. A connection goes back to the pool only when its work succeeded."""
        self._ready()
        with self._lock:
            db = self._idle.pop() if self._idle else None
        try:
            if db is None:
                db = self._open()
            yield db
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            raise ArchiveUnavailable(f"local archive {self.path}: {exc}") from exc
        except BaseException:
            if db is not None:
                db.close()
            raise
        with self._lock:
            if len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(db)
                db = None
        if db is not None:
            db.close()

    def _open(self):
        db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA secure_delete = ON")
        return db

    def _ready(self):
        """Check the database file is the one this process opened (a directory swapped or removed
        under it is an outage); on first use create it, its tables, and import the old layout."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        except OSError as exc:
            raise ArchiveUnavailable(f"local archive {self.path}: {exc}") from exc
        if inode is not None and inode == self._inode:
            return
        if inode is None and self._inode is not None:
            raise ArchiveUnavailable(f"local archive {self.path}: the database file is gone")
        with self._ready_lock:
            if self._inode is not None and inode is not None and inode != self._inode:
                self._close_idle()  # the file was replaced (restored): open the new one
            elif self._inode is not None:
                return
            try:
                os.makedirs(self.directory, exist_ok=True)
                db = self._open()
                try:
                    for statement in _SCHEMA:
                        db.execute(statement).fetchall()
                    local_files.import_old_layout(self.directory, lambda *batch: self._import_batch(db, *batch))
                finally:
                    db.close()
                self._inode = os.stat(self.path).st_ino
            except (sqlite3.Error, OSError) as exc:
                raise ArchiveUnavailable(f"local archive {self.path}: cannot open: {exc}") from exc

    def _import_batch(self, db, lines_by_session, records):
        """One transaction of the old layout's import: merged events, and records the database does
        not hold yet (a record written since is newer)."""
        with _writing(db):
            for session_id, lines in lines_by_session.items():
                self._merge_lines(db, session_id, lines)
            db.executemany("INSERT OR IGNORE INTO sessions (id, tenant_id, record) VALUES (?, ?, ?)",
                           [(record["id"], chunks.record_tenant(record), chunks.encode_json(record).decode())
                            for record in records])

    def _close_idle(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    def check(self):
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise ArchiveUnavailable(f"local archive: cannot create {self.directory}: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise ArchiveUnavailable(f"local archive: {self.directory} is not writable")
        with self._connection():
            pass

    def close(self):
        self._close_idle()


def copy_database(directory, dest_directory) -> int:
    """Copy the database of the archive in ``directory`` to ``dest_directory`` as one self-contained
    file (SQLite's online backup: a consistent snapshot even while others write, no WAL to carry
    along). Returns its size; 0 when there is no database. A backup copies the database this way,
    never as files: a WAL copied beside another database would corrupt it."""
    source = os.path.join(directory, DB_NAME)
    if not os.path.exists(source):
        return 0
    os.makedirs(dest_directory, exist_ok=True)
    target = os.path.join(dest_directory, DB_NAME)
    try:
        with contextlib.closing(sqlite3.connect(source, timeout=_BUSY_TIMEOUT_S)) as src, \
                contextlib.closing(sqlite3.connect(target + ".tmp")) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE").fetchall()  # the copy stands alone: no -wal
        with open(target + ".tmp", "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(target + ".tmp", target)
    except sqlite3.Error as exc:
        raise OSError(f"cannot copy the archive database {source}: {exc}") from exc
    return os.path.getsize(target)


@contextlib.contextmanager
def _writing(db):
    """``BEGIN IMMEDIATE`` (this writer first, or wait for another's) on ``db``, committed when the
    block ends, rolled back when it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite rolls some failures back by itself
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
