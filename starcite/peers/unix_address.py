"""Unix socket paths of any length (the ops console's socket, the sibling links of a node's workers).

Owns: `SocketAddress`. Stdlib only: the CLI imports it unpatched, before any
gevent module. Must not: open sockets.
"""

import os

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


class SocketAddress:
    """A unix socket path short enough for sun_path: a long one is reached through its
    directory's descriptor (``/proc/self/fd/N/name``), which the kernel resolves."""

    def __init__(self, path):
        self.path, self.dir_fd = os.path.abspath(path), None

    def __enter__(self):
        if len(self.path) <= MAX_SOCKET_PATH:
            return self.path
        self.dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY | os.O_DIRECTORY)
        return f"/proc/self/fd/{self.dir_fd}/{os.path.basename(self.path)}"

    def __exit__(self, *exc):
        if self.dir_fd is not None:
            os.close(self.dir_fd)
