"""The ops console's client: plain HTTP/1.1 over a node's ops unix socket (stdlib only).

Owns: `OpsClient` (what `starcite ops`, the ops scripts and the tests use to
reach a node's console). Must not: import
gevent: the CLI runs it unpatched, and `starcite serve` must not import gevent
modules before the worker patches.
"""

import http.client
import json
import os
import socket

from starcite.peers.unix_address import SocketAddress

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
