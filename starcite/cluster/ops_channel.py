"""The ops channel, node side: the ops console's unix socket, served inside the node's worker.

Owns: the socket's path (`STARCITE_OPS_SOCKET`, default `<data_dir>/ops.sock`)
and serving the ops app on it (created with mode 0600, so only the node's
own user, or root, can drain it). The client is `starcite.cluster.ops_client`. Nothing ops-related listens on a TCP port: a
reverse proxy or sidecar in front of the API port (nginx, envoy, Istio, all
connecting from loopback) cannot reach it.

Must not: contain ops logic (that is `starcite.api.http.ops_console` and the node's actors).
"""

import os
import socket

from gevent import pywsgi
from gevent import socket as gsocket

from starcite.cluster.ops_client import SocketAddress

def serve_ops(app, path, log=None):
    """Start the ops app on a fresh unix socket at ``path`` (0600); returns the started server."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        os.unlink(path)  # a socket left by a killed node (the data-dir lock proves no live node serves it)
    except FileNotFoundError:
        pass
    listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        with SocketAddress(path) as address:
            listener.bind(address)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(16)
    server = pywsgi.WSGIServer(listener, app, log=None, error_log=log)
    server.start()
    return server


def close_ops(server, path):
    if server is not None:
        server.stop(timeout=0.5)
    if path is None:  # a worker that does not serve the console
        return
    try:
        os.unlink(path)
    except OSError:
        pass
