"""`LocalArchiveAdapter`: the archive as a directory on disk, in the S3 layout.

Owns: files under one directory — ``events/v1/<b64 id>/<chunk_start>.ndjson``
and ``sessions/v1/<b64 id>.json`` (layout and encoding from `chunks`) — written
atomically (temp file, fsync, rename, directory fsync) and merged by seq, plus
an in-memory index of session records loaded lazily from disk for listing.
Writes are serialised per session by a striped OS-thread lock and a striped
``flock`` (so two processes sharing the directory cannot lose each other's
events). Every call blocks its OS thread (disk I/O, fsync, real locks), so the
adapter says ``blocking_io = True`` and the node runs it in gevent's hub
threadpool. Must not: cache event data (that is `ArchiveReadCache`'s job), use
gevent's (patched) locks or sleep, or talk to the network.

The session index is shared by every process writing the directory (the
nodes of a one-host development cluster): each upsert appends the session's
file name to ``.locks/index.log`` (``O_APPEND``, one short line, under the session
lock), and a process reads the log's new lines before it lists, so a session
indexed by another node is listed too. `get_session` falls back to disk for
ids it has not seen.
"""

import bisect
import copy
import errno
import fcntl
import os
import time
import uuid
import zlib

from starcite.adapters import chunks, osthread
from starcite.adapters.base import ArchiveAdapter, ArchiveUnavailable

_STRIPES = 64
_NAME_MAX = 240  # longest path component written (file systems allow 255 bytes)
_FLOCK_TIMEOUT_S = 10.0


class LocalArchiveAdapter(ArchiveAdapter):
    blocking_io = True
    flush_concurrency = 2  # leaves thread-pool room for cold reads and session index writes

    def __init__(self, directory):
        if not directory:
            raise ValueError("LocalArchiveAdapter needs a directory")
        self.directory = os.path.abspath(directory)
        self._locks = [osthread.lock() for _ in range(_STRIPES)]
        self._lock_fds = [None] * _STRIPES
        self._fd_lock = osthread.lock()
        self._index_lock = osthread.rlock()
        self._records = None  # id -> record, loaded lazily
        self._sorted_ids = []
        self._log_offset = 0  # how much of the shared index log this process has read

    # -- events ---------------------------------------------------------------

    def write_lines(self, session_id, lines):
        chunks.check_lines(lines)
        added = 0
        with self._session_lock(session_id):
            for start, group in chunks.group_by_chunk(lines).items():
                path = self._path(chunks.chunk_key(session_id, start))
                merged, new = chunks.merge_by_seq(self._read_chunk(start, path), group)
                if new:
                    self._write_atomic(path, chunks.encode_chunk(merged))
                    added += new
        return added

    @chunks.clamped
    def read_lines(self, session_id, from_seq, to_seq):
        first = chunks.chunk_start(from_seq)
        out = []
        for start in self._stored_chunk_starts(session_id):
            if first <= start <= to_seq:
                path = self._path(chunks.chunk_key(session_id, start))
                out.extend(chunks.in_range(self._read_chunk(start, path), from_seq, to_seq))
        return out

    def _stored_chunk_starts(self, session_id):
        try:
            names = os.listdir(self._path(chunks.session_events_dir(session_id)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ArchiveUnavailable(f"local archive: cannot list events of {session_id!r}: {exc}") from exc
        return chunks.chunk_starts_from_names(names)

    # -- sessions -------------------------------------------------------------

    def upsert_session(self, record):
        session_id = chunks.check_record(record)
        data = chunks.encode_json(record)
        with self._session_lock(session_id):
            self._write_atomic(self._path(chunks.session_key(session_id)), data)
            self._index_put(chunks.decode_json(data))
            self._log_indexed(chunks.session_key(session_id))

    def delete_session(self, session_id):
        events_dir = self._path(chunks.session_events_dir(session_id))
        with self._session_lock(session_id):
            try:
                names = os.listdir(events_dir)
            except FileNotFoundError:
                names = []
            except OSError as exc:
                raise ArchiveUnavailable(f"local archive: cannot list events of {session_id!r}: {exc}") from exc
            try:
                for name in names:
                    _unlink_missing_ok(os.path.join(events_dir, name))
                if names:
                    os.rmdir(events_dir)
                    _fsync_dir(os.path.dirname(events_dir))
                # the record last: while any event is left, a retry still finds the session to finish
                _unlink_missing_ok(self._path(chunks.session_key(session_id)))
            except OSError as exc:
                raise ArchiveUnavailable(f"local archive: cannot delete {session_id!r}: {exc}") from exc
            with self._index_lock:
                records, ids = self._index()
                if records.pop(session_id, None) is not None:
                    ids.remove(session_id)
            self._log_indexed(chunks.session_key(session_id))  # other processes drop it from their index

    def get_session(self, session_id):
        with self._index_lock:
            record = self._index()[0].get(session_id)
        if record is None:
            record = self._read_session_file(session_id)
            if record is not None:
                record = self._index_put(record, replace=False)
        return copy.deepcopy(record)

    def list_sessions(self, limit, cursor=None, tenant_id=None, metadata_filters=None):
        after = chunks.decode_cursor(cursor) if cursor is not None else None
        with self._index_lock:
            records, ids = self._index()
            position = bisect.bisect_right(ids, after) if after is not None else 0
            page, next_cursor = chunks.take_page((records[i] for i in ids[position:]), limit, tenant_id,
                                                 metadata_filters)
            return copy.deepcopy(page), next_cursor

    def _index_log_path(self):
        return os.path.join(self.directory, ".locks", "index.log")

    def _log_indexed(self, key):
        try:
            fd = os.open(self._index_log_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, key.encode() + b"\n")
            finally:
                os.close(fd)
        except OSError as exc:
            raise ArchiveUnavailable(f"local archive: cannot write the index log: {exc}") from exc

    def _catch_up_index_log(self, records):
        """Index the sessions other processes upserted since this one last looked."""
        try:
            with open(self._index_log_path(), "rb") as fh:
                fh.seek(self._log_offset)
                data = fh.read()
        except OSError:
            return  # missing, or the directory is unreachable: list what is already indexed
        complete = data[:data.rfind(b"\n") + 1]
        for key in set(complete.decode(errors="replace").split("\n")) - {""}:
            session_id = chunks.session_id_from_name(key.rsplit("/", 1)[-1])
            try:
                record = self._read_session_file(session_id) if session_id is not None else None
            except ArchiveUnavailable:
                return  # unreadable now: the same lines are read again next time
            if record is not None:
                if session_id not in records:
                    bisect.insort(self._sorted_ids, session_id)
                records[session_id] = record
            elif records.pop(session_id, None) is not None:  # deleted by another process
                self._sorted_ids.remove(session_id)
        self._log_offset += len(complete)

    def _index(self):
        """``(records by id, sorted ids)``, loading them from disk on first use and then following
        the shared index log (index lock held)."""
        if self._records is not None:
            self._catch_up_index_log(self._records)
        if self._records is None:
            try:
                self._log_offset = os.path.getsize(self._index_log_path())
            except OSError:
                self._log_offset = 0
            records = {}
            for name in self._session_file_names():
                session_id = chunks.session_id_from_name(name)
                record = self._read_session_file(session_id) if session_id is not None else None
                if record is not None:
                    records[session_id] = record
            self._records, self._sorted_ids = records, sorted(records)
        return self._records, self._sorted_ids

    def _session_file_names(self):
        """Names ``<b64 id>.json`` of every stored session (split long names joined back)."""
        root = self._path(chunks.SESSIONS_DIR)
        names = []
        for directory, _dirs, files in os.walk(root, onerror=_raise):
            prefix = "".join(os.path.relpath(directory, root).split(os.sep)) if directory != root else ""
            names.extend(prefix + name for name in files)
        return names

    def _index_put(self, record, replace=True):
        """Index ``record``; with ``replace=False`` a record already indexed (maybe newer) wins."""
        with self._index_lock:
            records, ids = self._index()
            if record["id"] not in records:
                bisect.insort(ids, record["id"])
            elif not replace:
                return records[record["id"]]
            records[record["id"]] = record
            return record

    def _read_session_file(self, session_id):
        return _read_file(self._path(chunks.session_key(session_id)), chunks.decode_json, None)

    # -- files and locks ------------------------------------------------------

    def _path(self, key):
        """Filesystem path of an archive key; a component too long for a file name is split into
        `_NAME_MAX`-character directories (only very long session ids; listing joins them back)."""
        parts = []
        for part in key.split("/"):
            while len(part) > _NAME_MAX:
                parts.append(part[:_NAME_MAX])
                part = part[_NAME_MAX:]
            parts.append(part)
        return os.path.join(self.directory, *parts)

    def _read_chunk(self, start, path):
        return _read_file(path, lambda data: chunks.decode_chunk(start, data), [])

    def _write_atomic(self, path, data):
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        try:
            os.makedirs(directory, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(directory)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise ArchiveUnavailable(f"local archive: cannot write {path}: {exc}") from exc

    def _session_lock(self, session_id):
        return _StripeLock(self, zlib.crc32(session_id.encode()) % _STRIPES)

    def _lock_fd(self, stripe):
        with self._fd_lock:
            if self._lock_fds[stripe] is None:
                directory = os.path.join(self.directory, ".locks")
                try:
                    os.makedirs(directory, exist_ok=True)
                    self._lock_fds[stripe] = os.open(os.path.join(directory, f"{stripe}.lock"),
                                                     os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as exc:
                    raise ArchiveUnavailable(f"local archive: cannot open lock file: {exc}") from exc
            return self._lock_fds[stripe]

    def check(self):
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise ArchiveUnavailable(f"local archive: cannot create {self.directory}: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise ArchiveUnavailable(f"local archive: {self.directory} is not writable")

    def close(self):
        with self._fd_lock:
            for stripe, fd in enumerate(self._lock_fds):
                if fd is not None:
                    os.close(fd)
                    self._lock_fds[stripe] = None


class _StripeLock:
    """OS-thread lock then a non-blocking-polled ``flock`` for one stripe (blocks only its thread)."""

    def __init__(self, adapter, stripe):
        self._adapter, self._stripe = adapter, stripe

    def __enter__(self):
        self._adapter._locks[self._stripe].acquire()
        try:
            fd = self._adapter._lock_fd(self._stripe)
            deadline = time.monotonic() + _FLOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise ArchiveUnavailable(f"local archive: lock failed: {exc}") from exc
                if time.monotonic() > deadline:
                    raise ArchiveUnavailable("local archive: another process holds the session lock")
                osthread.sleep(0.001)
        except BaseException:
            self._adapter._locks[self._stripe].release()
            raise

    def __exit__(self, *exc_info):
        try:
            fcntl.flock(self._adapter._lock_fds[self._stripe], fcntl.LOCK_UN)
        finally:
            self._adapter._locks[self._stripe].release()


def _read_file(path, decode, missing):
    """``decode(contents)`` of a file, ``missing`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return decode(fh.read())
    except FileNotFoundError:
        return missing
    except (OSError, ValueError) as exc:
        raise ArchiveUnavailable(f"local archive: cannot read {path}: {exc}") from exc


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise(exc):
    if not isinstance(exc, FileNotFoundError):
        raise ArchiveUnavailable(f"local archive: cannot list sessions: {exc}") from exc


def _unlink_missing_ok(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
