"""The peer port's handshake and frame cipher: who may talk to this node, and how frames are sealed.

Owns: the mutual challenge-response with the cluster secret (each side sends a
32-byte nonce and proves the secret with HMAC-SHA256 over both nonces and both
names, before anything else is read), the per-direction keys derived from it,
and `Cipher` (AES-256-GCM with the frame counter as nonce). Must not: decode
anything beyond the fixed-size hello fields, or know what frames carry.
"""

import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SCP1"
NONCE_BYTES = 32
MAX_NAME = 63


class HandshakeFailed(Exception):
    pass


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"\x00".join(parts), hashlib.sha256).digest()


def _recv_exact(sock, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise HandshakeFailed("connection closed during the handshake")
        data += chunk
    return data


def _hello(nonce: bytes, name: str) -> bytes:
    raw = name.encode()
    return MAGIC + nonce + bytes([len(raw)]) + raw


def _read_hello(sock):
    head = _recv_exact(sock, len(MAGIC) + NONCE_BYTES + 1)
    if head[:len(MAGIC)] != MAGIC:
        raise HandshakeFailed("not a Starcite peer")
    size = head[-1]
    if not 0 < size <= MAX_NAME:
        raise HandshakeFailed("bad peer name length")
    try:
        name = _recv_exact(sock, size).decode()
    except UnicodeDecodeError:
        raise HandshakeFailed("peer name is not UTF-8") from None
    return head[len(MAGIC):len(MAGIC) + NONCE_BYTES], name


class Cipher:
    """One direction of a link: AES-GCM with the frame counter as nonce."""

    def __init__(self, key: bytes):
        self.aead = AESGCM(key)
        self.counter = 0

    def _nonce(self) -> bytes:
        self.counter += 1
        return struct.pack("!IQ", 0, self.counter)

    def seal(self, data: bytes) -> bytes:
        return self.aead.encrypt(self._nonce(), data, None)

    def open(self, data: bytes) -> bytes:
        return self.aead.decrypt(self._nonce(), data, None)  # raises InvalidTag


def handshake(sock, secret: bytes, self_name: str, dialer: bool, expect=None):
    """Mutual challenge-response; returns ``(peer_name, send_cipher, recv_cipher)``.

    ``expect``: the dialer knows whom it called; the acceptor checks the name with it
    (a callable) before answering, and only after the proof is anything else read."""
    mine = os.urandom(NONCE_BYTES)
    if dialer:
        sock.sendall(_hello(mine, self_name))
        theirs, peer = _read_hello(sock)
        if peer != expect:
            raise HandshakeFailed(f"dialed {expect} but {peer!r} answered")
        d_nonce, a_nonce, d_name, a_name = mine, theirs, self_name, peer
    else:
        theirs, peer = _read_hello(sock)
        if not expect(peer):
            raise HandshakeFailed(f"{peer!r} may not dial this node")
        d_nonce, a_nonce, d_name, a_name = theirs, mine, peer, self_name
    transcript = (d_nonce, a_nonce, d_name.encode(), a_name.encode())
    if dialer:
        proof = _recv_exact(sock, 32)
        if not hmac.compare_digest(proof, _mac(secret, b"acceptor", *transcript)):
            raise HandshakeFailed(f"{peer} does not hold the cluster secret")
        sock.sendall(_mac(secret, b"dialer", *transcript))
    else:
        sock.sendall(_hello(mine, self_name) + _mac(secret, b"acceptor", *transcript))
        proof = _recv_exact(sock, 32)
        if not hmac.compare_digest(proof, _mac(secret, b"dialer", *transcript)):
            raise HandshakeFailed(f"{peer} does not hold the cluster secret")
    d2a = Cipher(_mac(secret, b"key d->a", *transcript))
    a2d = Cipher(_mac(secret, b"key a->d", *transcript))
    return (peer, d2a, a2d) if dialer else (peer, a2d, d2a)
