"""Backups of a node's data: `starcite backup DEST` and `starcite restore SRC`.

Owns: the backup's layout (``DEST/raft/``: the Raft directory; ``DEST/archive/``:
the local archive, with the `local` adapter only: its SQLite database copied by
`starcite.adapters.local.copy_database`, one file with no WAL; ``DEST/manifest.json``,
written last, so a backup without it is incomplete) and the two ways to take
one, which give the same result:

- `backup_running(node, dest)`, inside a running node (asked over its ops
  socket). The Raft directory is read while the worker's event loop is held
  (no greenlet runs, so no journal, meta or snapshot changes under the copy:
  the image is the one a SIGKILL at that instant would leave, which a
  restart recovers exactly). Only journals and meta files are copied then;
  snapshot files, which are never changed in place (pysyncobj writes a new
  one and renames it), are only opened, and copied from those open files
  once the loop runs again, with the archive. Archiving is held still from
  before the Raft copy to the end (`ArchivePauses`), so the archive copy
  holds exactly what the Raft copy counts as archived (and evicted): no
  less, or events would be lost, and no more, or a seq given again after a
  restore would find an older event in the archive.
- `backup_stopped(config, dest)`, by the command itself under the node's
  data-directory lock when no node runs.

`restore(config, src)` copies a backup into an empty Raft directory (and
archive directory), under the lock, so never under a running node.

Must not: copy the lock file or temporary files, restore over existing Raft
state, or write into a backup destination that already holds anything.
"""

import datetime
import json
import os
import shutil
import time

import gevent

from starcite.adapters import local as local_archive
from starcite.core.errors import StarciteError

MANIFEST = "manifest.json"
FORMAT = 1
SKIPPED = ("starcite.lock",)


class BackupError(StarciteError):
    def __init__(self, message):
        super().__init__(409, "backup_refused", message)


FLUSH_WAIT_S = 30.0  # how long a pause waits for the archive flush under way to finish
BACKUP_PAUSE_S = 3600.0  # the longest a running backup holds archiving still


class ArchivePauses:
    """Named, time-bounded pauses of this node's archiving. While one holds, the node writes nothing
    to the archive (no flush, no session record), so the archive stays a subset of the Raft state
    a backup copies, and nothing leaves the Raft state for the archive. A pause that is not
    released ends at its deadline (a crashed backup cannot stop archiving for good)."""

    def __init__(self):
        self.until = {}

    def active(self) -> bool:
        now = time.monotonic()
        self.until = {name: end for name, end in self.until.items() if end > now}
        return bool(self.until)

    def hold(self, node, name: str, seconds: float) -> float:
        """Pause under ``name`` and wait for a flush under way; the seconds left of the pause."""
        self.until[name] = time.monotonic() + seconds
        deadline = time.monotonic() + FLUSH_WAIT_S
        while node.archiving and time.monotonic() < deadline:
            gevent.sleep(0.02)
        if node.archiving:
            self.release(name)
            raise BackupError(f"the archive flush under way did not finish within {FLUSH_WAIT_S:.0f} s")
        return seconds

    def release(self, name: str):
        self.until.pop(name, None)


def _empty_destination(dest: str) -> str:
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise BackupError(f"{dest} already exists and is not an empty directory")
    os.makedirs(dest, exist_ok=True)
    return dest


def _files(root: str):
    """Relative paths of the regular files under ``root`` worth keeping (not locks, not temp files)."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name in SKIPPED or name.endswith(".tmp") or name.startswith(".tmp-"):
                continue
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield os.path.relpath(path, root)


def _copy_file(src, dest_path) -> int:
    os.makedirs(os.path.dirname(dest_path), exist_ok=True)
    if isinstance(src, str):
        shutil.copyfile(src, dest_path)
    else:  # an open file: a snapshot read from the inode opened while the loop was held
        with open(dest_path, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return os.path.getsize(dest_path)


def _copy_tree(root: str, dest: str, skip_dirs=(), skip_names=()) -> int:
    total = 0
    for rel in _files(root):
        if rel.split(os.sep)[0] not in skip_dirs and rel not in skip_names:
            total += _copy_file(os.path.join(root, rel), os.path.join(dest, rel))
    return total


def _sync_tree(root: str):
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _finish(config, dest: str, raft_bytes: int, archive_bytes, held_ms=None) -> dict:
    manifest = {"format": FORMAT, "node": config.node_name, "single_node": config.single_node,
                "num_groups": config.num_groups,
                "archive_adapter": config.archive_adapter, "raft_bytes": raft_bytes,
                "archive_bytes": archive_bytes,
                "taken_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if held_ms is not None:
        manifest["loop_held_ms"] = held_ms
    _sync_tree(dest)
    tmp = os.path.join(dest, MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(dest, MANIFEST))
    _sync_tree(dest)
    return {"backup": dest, **manifest}


def _archive_part(config, dest: str):
    """Copy the local archive: its database by SQLite's backup (one consistent file, whatever runs
    meanwhile), and any file of the older layout not imported yet (its ``.locks`` are per running
    process, not data); None for S3/Postgres."""
    if config.archive_adapter != "local" or not os.path.isdir(config.archive_dir):
        return None if config.archive_adapter != "local" else 0
    target = os.path.join(dest, "archive")
    return (_copy_tree(config.archive_dir, target, skip_dirs=(".locks",), skip_names=local_archive.DB_FILES)
            + local_archive.copy_database(config.archive_dir, target))


def _written(fn):
    """A failure to read or write files (a full disk, a bad path) as one `BackupError`."""
    def wrapper(*args):
        try:
            return fn(*args)
        except OSError as exc:
            raise BackupError(f"{fn.__name__.replace('_', ' ')} failed: {exc}") from None
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


@_written
def backup_stopped(config, dest: str) -> dict:
    """The backup of a node that is not running (the caller holds its data-directory lock)."""
    dest = _empty_destination(dest)
    raft_bytes = _copy_tree(config.raft_data_dir, os.path.join(dest, "raft"))
    return _finish(config, dest, raft_bytes, _archive_part(config, dest))


@_written
def backup_running(node, dest: str) -> dict:
    """The backup of the running ``node`` (called on its event loop, from the ops console). A node of
    several workers: archiving is held still on every worker first, then each worker copies the Raft
    files of its own groups with its own loop held (`copy_own_raft`, asked of the siblings over their
    links), so every group's image is one a SIGKILL of its worker would leave."""
    config = node.config
    dest = _empty_destination(dest)
    pause = f"backup-{os.getpid()}-{time.monotonic_ns()}"
    holding = []
    try:
        for worker in [None, *node.siblings]:
            hold_archiving(node, worker, pause)
            holding.append(worker)
        raft_bytes, held_ms = copy_own_raft(node, dest)
        for sibling in node.siblings:
            copied, sibling_held_ms = node.peer_hub.call(sibling, "backup_raft", (dest,), BACKUP_CALL_S)
            raft_bytes, held_ms = raft_bytes + copied, max(held_ms, sibling_held_ms)
        lone = config.replace(node_name=node.host_name, member_peers=None)  # the node, not one of its workers
        return gevent.get_hub().threadpool.apply(
            lambda: _finish(lone, dest, raft_bytes, _archive_part(config, dest), held_ms))
    finally:
        for worker in holding:
            release_archiving(node, worker, pause)


BACKUP_CALL_S = 600.0  # the longest a worker waits for a sibling's part of a backup


def hold_archiving(node, worker, pause: str):
    """Hold archiving still under ``pause`` on this worker (``worker`` None) or on a sibling."""
    if worker is None:
        node.archive_pauses.hold(node, pause, BACKUP_PAUSE_S)
    else:
        node.peer_hub.call(worker, "backup_hold", (pause,), FLUSH_WAIT_S + 5)


def release_archiving(node, worker, pause: str):
    if worker is None:
        node.archive_pauses.release(pause)
        return
    try:
        node.peer_hub.call(worker, "backup_release", (pause,), 5.0)
    except Exception:  # the sibling is gone, or slow: its pause ends at its deadline
        pass


def serve_sibling_backups(node):
    """The calls a sibling worker's backup makes on this worker."""
    methods = node.peer_hub.methods
    methods["backup_hold"] = lambda peer, pause: hold_archiving(node, None, pause)
    methods["backup_release"] = lambda peer, pause: release_archiving(node, None, pause)
    methods["backup_raft"] = lambda peer, dest: _written(copy_own_raft)(node, dest)


def _owned(node):
    """Whether a file of the Raft directory is this worker's to copy: its groups' files; the rest
    (the layout record) is the first worker's."""
    prefixes = tuple(f"group-{group_id}." for group_id in node.replica_ids())
    first = not node.siblings or node.name < min(node.siblings)
    return lambda rel: rel.startswith(prefixes) or (first and not rel.startswith("group-"))


def copy_own_raft(node, dest: str):
    """Copy this worker's Raft files into ``dest/raft`` with the event loop held; ``(bytes, held ms)``."""
    config = node.config
    raft_dest = os.path.join(dest, "raft")
    owned = _owned(node)
    snapshots, raft_bytes = [], 0
    started = time.monotonic()
    try:
        # No gevent call from here to the end of the loop: nothing else runs on this event loop.
        for rel in _files(config.raft_data_dir):
            if not owned(rel):
                continue
            path = os.path.join(config.raft_data_dir, rel)
            if rel.endswith(".snapshot"):
                snapshots.append((open(path, "rb"), rel))
            else:
                raft_bytes += _copy_file(path, os.path.join(raft_dest, rel))
        held_ms = round((time.monotonic() - started) * 1000, 1)
        copied = gevent.get_hub().threadpool.apply(
            lambda: sum(_copy_file(fh, os.path.join(raft_dest, rel)) for fh, rel in snapshots))
        return raft_bytes + copied, held_ms
    finally:
        for fh, _rel in snapshots:
            fh.close()


def read_manifest(src: str) -> dict:
    try:
        with open(os.path.join(src, MANIFEST)) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise BackupError(f"{src} is not a complete backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src}: unreadable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: backup format {manifest.get('format')!r}, this version reads {FORMAT}")
    return manifest


@_written
def restore(config, src: str) -> dict:
    """Copy the backup at ``src`` into ``config``'s empty Raft directory (and local archive)."""
    src = os.path.abspath(src)
    manifest = read_manifest(src)
    if not (manifest["single_node"] and config.single_node) and manifest["node"] != config.node_name:
        raise BackupError(f"{src} is node {manifest['node']}'s backup; this node is {config.node_name} "
                          "(set NODE_NAME to restore it here)")
    if any(True for _ in _files(config.raft_data_dir)) if os.path.isdir(config.raft_data_dir) else False:
        raise BackupError(f"{config.raft_data_dir} already holds Raft state: restore onto an empty one "
                          "(move the old one aside first)")
    raft_bytes = _copy_tree(os.path.join(src, "raft"), config.raft_data_dir)
    archive_bytes = None
    if os.path.isdir(os.path.join(src, "archive")):
        if config.archive_adapter != "local":
            raise BackupError(f"{src} holds a local archive; this node's archive is {config.archive_adapter}")
        archive_bytes = _copy_missing(os.path.join(src, "archive"), config.archive_dir)
    _sync_tree(config.raft_data_dir)
    return {"restored": src, "raft_dir": config.raft_data_dir, "raft_bytes": raft_bytes,
            "archive_dir": config.archive_dir if archive_bytes is not None else None,
            "archive_bytes": archive_bytes, "taken_at": manifest["taken_at"]}


def _copy_missing(root: str, dest: str) -> int:
    """The archive's files not already in ``dest`` (an archive file there is as full or fuller)."""
    total = 0
    for rel in _files(root):
        target = os.path.join(dest, rel)
        if not os.path.exists(target):
            total += _copy_file(os.path.join(root, rel), target)
    _sync_tree(dest)
    return total
