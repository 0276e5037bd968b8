"""The peer port: nothing from an unauthenticated peer is decoded, frames are sealed, one link per pair."""

import os
import pickle
import socket
import struct
import time

import gevent
import pytest

from starcite.peers import handshake as peer_handshake
from starcite.peers.link import PeerHub, PeerUnavailable
from tests.server import free_listen_port

SECRET = "correct horse battery staple"


class _Boom:
    """Unpickling this runs a command that leaves a file behind."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def _hubs(names=("a", "b"), secrets=None):
    peers = {name: ("127.0.0.1", free_listen_port()) for name in names}
    hubs = [PeerHub(name, peers, (secrets or {}).get(name, SECRET)) for name in names]
    for hub in hubs:
        hub.start()
    return hubs


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(0.01)
    return False


def test_two_hubs_link_once_and_call_each_other():
    a, b = _hubs()
    try:
        b.methods["echo"] = lambda peer, value: (peer, value)
        assert _wait(lambda: a.connected("b") and b.connected("a"))
        assert a.call("b", "echo", ({"x": 1},), timeout=2) == ("a", {"x": 1})
        assert len(a.links) == len(b.links) == 1  # one connection per pair: only "a" dials
        assert a.status()["b"]["state"] == "up"
    finally:
        a.stop()
        b.stop()


def test_a_wrong_secret_never_links():
    a, b = _hubs(secrets={"a": "not the secret at all"})
    try:
        assert not _wait(lambda: a.connected("b") or b.connected("a"), timeout=1.5)
        assert "cluster secret" in a.status()["b"]["error"]
        with pytest.raises(PeerUnavailable):
            a.call("b", "echo", (), timeout=1)
    finally:
        a.stop()
        b.stop()


def test_the_link_goes_down_when_the_peer_stops_and_comes_back():
    a, b = _hubs()
    try:
        assert _wait(lambda: a.connected("b"))
        port = b.address[1]
        b.stop()
        assert _wait(lambda: not a.connected("b"))
        b2 = PeerHub("b", {"a": a.address, "b": ("127.0.0.1", port)}, SECRET)
        b2.start()
        assert _wait(lambda: a.connected("b") and b2.connected("a"))
        b2.stop()
    finally:
        a.stop()


def _raw(address, data, timeout=3.0):
    """Send ``data`` to a peer port and read until it closes (bounded)."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        return received
    finally:
        sock.close()


def test_a_real_node_never_unpickles_unauthenticated_bytes(make_cluster, tmp_path):
    cluster = make_cluster(3, env={"STARCITE_NUM_GROUPS": "2"})
    host, port = [entry.split("@")[1] for entry in cluster["n3"].env["CLUSTER_NODES"].split(",")][2].split(":")
    address = (host, int(port))
    marker = tmp_path / "pwned"
    bomb = pickle.dumps(_Boom(marker))
    attempts = [
        bomb,                                                       # a bare pickle
        struct.pack("!I", len(bomb)) + bomb,                        # a frame, no handshake
        peer_handshake.MAGIC + os.urandom(32) + bytes([2]) + b"n1" + bomb,  # a hello, then no proof
        peer_handshake.MAGIC + os.urandom(32) + bytes([2]) + b"n1" + os.urandom(32) + struct.pack("!I", len(bomb)) + bomb,
    ]
    for data in attempts:
        _raw(address, data)
    time.sleep(0.5)
    assert not marker.exists()
    # the node still works, its links to the real peers intact
    cluster["n3"].create("s-after-attack")
    assert cluster["n1"].append("s-after-attack", 1).status_code == 201
    assert "refused" in cluster["n3"].output()


def test_the_peer_listener_binds_only_its_own_host():
    peers = {"a": ("127.0.0.2", free_listen_port()), "b": ("127.0.0.1", free_listen_port())}
    hub = PeerHub("a", peers, SECRET)
    hub.start()
    try:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", peers["a"][1]), timeout=1).close()
        socket.create_connection(peers["a"], timeout=1).close()
    finally:
        hub.stop()
