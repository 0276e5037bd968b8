"""One node per data directory: an exclusive `flock` held for as long as the node runs.

Owns: `lock_data_dirs(config)`, which takes the lock on every place a node
writes that no other node may share: `<data_dir>/starcite.lock`, the Raft
directory's own `starcite.lock` when `STARCITE_RAFT_DATA_DIR` is outside the
data directory, and `<ops socket>.lock` when `STARCITE_OPS_SOCKET` is
outside it. The holder writes its pid into each lock file; a second node
finds the lock taken and gets `DataDirInUse`, naming the directory and that
pid, before it has created, written or removed anything else (not the
journals, not the layout record, not the ops socket). The lock is an open
file description: a forked worker shares it, and the kernel drops it when the
last process holding it exits (a SIGKILL included: no stale lock to clean).
The local archive is not locked: the nodes of a one-host cluster share it.

Must not: read or write anything in the directories beyond its lock files.
"""

import fcntl
import os

LOCK_NAME = "starcite.lock"


class DataDirInUse(Exception):
    """Another live process holds the lock of a directory this node needs (the message says which)."""


def lock_paths(config) -> list:
    """``[(directory or socket named in the message, lock file)]``, the data directory first."""
    data_dir = os.path.abspath(config.data_dir)
    paths = [(data_dir, os.path.join(data_dir, LOCK_NAME))]
    raft_dir = os.path.abspath(config.raft_data_dir)
    if not _inside(raft_dir, data_dir):
        paths.append((raft_dir, os.path.join(raft_dir, LOCK_NAME)))
    ops_socket = os.path.abspath(config.ops_socket_path)
    if os.path.dirname(ops_socket) != data_dir:
        paths.append((ops_socket, ops_socket + ".lock"))
    return paths


def lock_data_dirs(config) -> list:
    """Take every lock of ``config``'s node, or raise `DataDirInUse` having changed nothing.

    Returns the open lock files: keep them referenced while the node runs."""
    held = []
    try:
        for named, path in lock_paths(config):
            held.append(take_lock(named, path))
    except BaseException:
        for fh in held:
            fh.close()
        raise
    return held


def take_lock(named: str, path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise DataDirInUse(f"{named} is in use by another starcite node (pid {holder}, lock {path}); "
                           "one node per data directory") from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return os.fdopen(fd, "r+b")


def holder_pid(path: str):
    """The pid written in the lock file at ``path`` while its lock is held, else None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd)
    finally:
        os.close(fd)
    return None


def _read_pid(fd) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def _inside(path: str, directory: str) -> bool:
    return os.path.commonpath([path, directory]) == directory
