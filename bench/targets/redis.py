"""A private redis-server for the Redis Streams peer (never the system Redis
on 6379): its own port, its own temp directory, `appendonly yes` with the
chosen `appendfsync` policy, RDB snapshots off.

Owns: `start` and the server version. Must not: send workload commands.
"""

import subprocess
import tempfile

from bench.procs import port_open


def version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    return next((part[2:] for part in out.split() if part.startswith("v=")), out.strip())


def start(sup, port: int, fsync: str, work_dir: str):
    """Start redis-server with ``appendfsync <fsync>`` (always | everysec) under ``work_dir``."""
    data_dir = tempfile.mkdtemp(prefix=f"redis-{fsync}-", dir=work_dir)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir, "--save", "",
            "--appendonly", "yes", "--appendfsync", fsync, "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", ""]
    return sup.start(f"redis-{fsync}", argv, lambda: port_open(port), timeout=15)
