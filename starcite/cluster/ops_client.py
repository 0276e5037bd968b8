"""The ops console's client: plain HTTP/1.1 over a node's ops unix socket (stdlib only).

Owns: `OpsClient` (what `starcite ops`, the ops scripts and the tests use to
reach a node's console) and `SocketAddress` (a unix socket path too long for
sun_path is reached through its directory's descriptor). Must not: import
gevent: the CLI runs it unpatched, and `starcite serve` must not import gevent
modules before the worker patches.
"""

import http.client
import json
import os
import socket

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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        with SocketAddress(self.path) as address:
            sock.connect(address)
        self.sock = sock


class OpsClient:
    """``request(method, path)`` -> ``(status, decoded JSON body)`` over the node's ops socket."""

    def __init__(self, path, timeout=5.0):
        self.path, self.timeout = path, timeout

    def request(self, method, path):
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request(method, path, body=b"" if method == "POST" else None)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def get(self, path):
        return self.request("GET", path)
