"""The peer port: one authenticated, encrypted connection per node pair for all node-to-node traffic.

Owns: the listener (bound only to the host of this node's own `CLUSTER_NODES`
entry), dialing (of each pair, the node whose name sorts first dials, so a
pair shares one connection), the handshake, the framing, keep-alives, and
handing decoded messages to the handlers registered per message kind.

Security (what protects the peer port; the handshake and cipher are
`starcite.peers.handshake`):
- Before a single byte of the peer is decoded as anything but fixed-size
  fields, both sides prove they hold `STARCITE_CLUSTER_SECRET`: each sends a
  32-byte random nonce, each answers with HMAC-SHA256(secret, role, both
  nonces, both names). A wrong answer closes the connection; no pickle is
  ever read from an unauthenticated socket.
- After that, every frame is AES-256-GCM with a key per direction derived
  from the secret and both nonces, and a nonce that is the frame's counter:
  frames are confidential, tamper-evident, and cannot be replayed, dropped
  or reordered without the connection failing. Only then is the plaintext
  unpickled (pysyncobj's messages are pickles; peers are trusted members).
- What it does not protect: the secret itself (anyone holding it is a
  member), availability (anyone who reaches the port can open connections
  and make the node spend a handshake), and traffic analysis (frame sizes
  and timing are visible). Keep the peer port on a private network.

Sibling links (a lone node's workers, `starcite.config.worker_members`): a
member whose address is ``("unix", path)`` listens on that unix socket, mode
0600, in the data directory. The handshake is the same; the frames after it
are not encrypted (`PlainFrames`): they never leave the host, and the socket
file admits only the node's own user.

Must not: know Raft, sessions or HTTP; it moves tuples between named nodes.
"""

import itertools
import logging
import os
import pickle
import socket
import struct
import time

import gevent
import gevent.event
import gevent.socket
from gevent.server import StreamServer

from starcite.peers.handshake import HandshakeFailed, handshake
from starcite.peers.unix_address import SocketAddress
from starcite.core.errors import StarciteError

log = logging.getLogger("starcite.peer")

MAX_FRAME = 256 * 1024 * 1024
HANDSHAKE_TIMEOUT = 5.0
KEEPALIVE_INTERVAL = 0.5
DEAD_AFTER = 3.0          # no frame from the peer for this long: the link is down
DIAL_BACKOFF = (0.05, 1.0)
MAX_QUEUED_BYTES = 512 * 1024 * 1024
RECV_BUFFER = 256 * 1024


class PlainFrames:
    """The cipher of a sibling link inside one host: frames as they are."""

    @staticmethod
    def seal(data: bytes) -> bytes:
        return data

    @staticmethod
    def open(data: bytes) -> bytes:
        return data


def _is_unix(address) -> bool:
    return address[0] == "unix"


def _listen(address):
    if _is_unix(address):
        path = address[1]
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            os.unlink(path)  # a killed worker's socket file
        except FileNotFoundError:
            pass
        listener = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with SocketAddress(path) as bindable:
            listener.bind(bindable)
        os.chmod(path, 0o600)
    else:
        host, port = address
        listener = gevent.socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    listener.listen(128)
    return listener


def _dial(address):
    if not _is_unix(address):
        return gevent.socket.create_connection(address, timeout=HANDSHAKE_TIMEOUT)
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        with SocketAddress(address[1]) as reachable:
            sock.connect(reachable)
    except OSError:
        sock.close()
        raise
    return sock


class PeerUnavailable(Exception):
    """The peer has no live link, or it went down before answering."""


class PeerLink:
    """One live, authenticated connection to one peer: a writer queue and a reader greenlet."""

    def __init__(self, hub, peer, sock, send_cipher, recv_cipher):
        self.hub, self.peer, self.sock = hub, peer, sock
        self.send_cipher, self.recv_cipher = send_cipher, recv_cipher
        self.queue = []
        self.queued_bytes = 0
        self.wake = gevent.event.Event()
        self.done = gevent.event.Event()
        self.alive = True
        self.last_heard = time.monotonic()
        self.since = time.time()
        self.frames_in = self.frames_out = 0
        self.greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._write_loop),
                          gevent.spawn(self._keepalive_loop)]

    def send(self, message) -> bool:
        """Queue ``message``; never blocks (pysyncobj calls this inside its tick)."""
        if not self.alive:
            return False
        data = self.send_cipher.seal(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        self.queue.append(struct.pack("!I", len(data)) + data)
        self.queued_bytes += len(data) + 4
        if self.queued_bytes > MAX_QUEUED_BYTES:
            self.close("peer is not reading (send queue full)")
            return False
        self.wake.set()
        return True

    def _write_loop(self):
        try:
            while self.alive:
                self.wake.wait()
                self.wake.clear()
                while self.queue and self.alive:
                    batch, self.queue, self.queued_bytes = self.queue, [], 0
                    self.frames_out += len(batch)
                    self.sock.sendall(b"".join(batch))
        except OSError as exc:
            self.close(f"write failed: {exc}")

    def _read_loop(self):
        buf = bytearray()
        # One receive buffer for the link's life. `recv(1 MiB)` allocated (and shrank) a 1 MiB object per
        # read: measured on a node of two workers, 20,000 tail cycles (half of them fed over the sibling
        # link) grew one worker's RSS by ~0.8 MiB per 5,000, with no Python object left (tracemalloc); with
        # this buffer its RSS did not move over 20,000.
        chunk = bytearray(RECV_BUFFER)
        view = memoryview(chunk)
        try:
            while self.alive:
                size = self.sock.recv_into(chunk)
                if not size:
                    return self.close("closed by peer")
                self.last_heard = time.monotonic()
                buf += view[:size]
                while len(buf) >= 4:
                    size = struct.unpack_from("!I", buf)[0]
                    if size > MAX_FRAME:
                        return self.close("frame too large")
                    if len(buf) < 4 + size:
                        break
                    sealed = bytes(buf[4:4 + size])
                    del buf[:4 + size]
                    try:
                        message = pickle.loads(self.recv_cipher.open(sealed))
                    except Exception:
                        return self.close("frame failed authentication")
                    self.frames_in += 1
                    if message != ("ping",):
                        self.hub.dispatch(self.peer, message)
        except OSError as exc:
            self.close(f"read failed: {exc}")

    def _keepalive_loop(self):
        while self.alive:
            gevent.sleep(KEEPALIVE_INTERVAL)
            if time.monotonic() - self.last_heard > DEAD_AFTER:
                return self.close(f"nothing heard for {DEAD_AFTER:.0f}s")
            self.send(("ping",))

    def close(self, why=""):
        if not self.alive:
            return
        self.alive = False
        self.wake.set()
        self.done.set()
        try:
            self.sock.close()
        except OSError:
            pass
        current = gevent.getcurrent()
        gevent.killall([g for g in self.greenlets if g is not current], block=False)
        self.hub.link_down(self, why)


class PeerHub:
    """All of this node's peer links, the listener, the dialers and message dispatch.

    ``handlers[kind](peer, message)`` gets every message whose first element is
    ``kind``; ``link_listeners`` are called with ``(peer, up)``. Calls (`call`) are
    request/reply over the same links, resolved by id.
    """

    def __init__(self, self_name: str, peers: dict, secret: str):
        self.name = self_name
        self.peers = {name: addr for name, addr in peers.items() if name != self_name}
        self.address = peers[self_name]
        self.secret = secret.encode()
        self.links = {}
        self.handlers = {"call": self._on_call, "reply": self._on_reply}
        self.methods = {}
        self.link_listeners = []
        self.pending = {}        # call id -> (peer, AsyncResult)
        self.call_ids = itertools.count(1)
        self.last_error = {}
        self.server = None
        self.dialers = []
        self.stopped = False

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        self.server = StreamServer(_listen(self.address), self._accept)
        self.server.start()
        for peer in self.peers:
            if self.name < peer:
                self.dialers.append(gevent.spawn(self._dial_loop, peer))

    def stop(self):
        self.stopped = True
        gevent.killall(self.dialers, block=False)
        if self.server is not None:
            self.server.stop(timeout=0)
        for link in list(self.links.values()):
            link.close("node stopping")

    # -- connections ----------------------------------------------------------

    def _dial_loop(self, peer):
        delay = DIAL_BACKOFF[0]
        while not self.stopped:
            if peer in self.links:
                gevent.sleep(0.05)
                continue
            try:
                sock = _dial(self.peers[peer])
                with gevent.Timeout(HANDSHAKE_TIMEOUT, HandshakeFailed("handshake timed out")):
                    name, send_cipher, recv_cipher = handshake(sock, self.secret, self.name, True, peer)
                self._link_up(name, sock, send_cipher, recv_cipher)
                delay = DIAL_BACKOFF[0]
            except (OSError, HandshakeFailed) as exc:
                self.last_error[peer] = str(exc)
                gevent.sleep(delay)
                delay = min(delay * 2, DIAL_BACKOFF[1])

    def _accept(self, sock, address):
        def allowed(name):
            return name in self.peers and name < self.name
        try:
            with gevent.Timeout(HANDSHAKE_TIMEOUT, HandshakeFailed("handshake timed out")):
                name, send_cipher, recv_cipher = handshake(sock, self.secret, self.name, False, allowed)
        except (OSError, HandshakeFailed) as exc:
            log.warning("peer connection from %s refused: %s", address[0] if address else "a sibling", exc)
            sock.close()
            return
        old = self.links.get(name)
        if old is not None:
            old.close("replaced by a new connection")
        # StreamServer closes the socket when this handler returns: hold it while the link lives.
        self._link_up(name, sock, send_cipher, recv_cipher).done.wait()

    def _link_up(self, peer, sock, send_cipher, recv_cipher):
        sock.settimeout(None)
        if _is_unix(self.address):
            send_cipher = recv_cipher = PlainFrames
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = PeerLink(self, peer, sock, send_cipher, recv_cipher)
        self.links[peer] = link
        self.last_error.pop(peer, None)
        log.info("peer link to %s up", peer)
        for listener in self.link_listeners:
            listener(peer, True)
        return link

    def link_down(self, link, why):
        if self.links.get(link.peer) is not link:
            return
        del self.links[link.peer]
        self.last_error[link.peer] = why
        if not self.stopped:
            log.warning("peer link to %s down: %s", link.peer, why)
        for call_id, (peer, result) in list(self.pending.items()):
            if peer == link.peer:
                del self.pending[call_id]
                result.set_exception(PeerUnavailable(f"link to {peer} went down: {why}"))
        for listener in self.link_listeners:
            listener(link.peer, False)

    # -- messages -------------------------------------------------------------

    def connected(self, peer) -> bool:
        return peer in self.links

    def send(self, peer, message) -> bool:
        link = self.links.get(peer)
        return link is not None and link.send(message)

    def dispatch(self, peer, message):
        handler = self.handlers.get(message[0])
        if handler is None:
            log.warning("unknown peer message %r from %s", message[0], peer)
            return
        handler(peer, message)

    def call(self, peer, method, args, timeout):
        """Run ``methods[method](peer, *args)`` on ``peer``; its return value, or what it raised."""
        link = self.links.get(peer)
        if link is None:
            raise PeerUnavailable(f"no link to {peer}")
        call_id = next(self.call_ids)
        result = gevent.event.AsyncResult()
        self.pending[call_id] = (peer, result)
        link.send(("call", call_id, method, args))
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise PeerUnavailable(f"{peer} did not answer {method} in {timeout:.1f}s") from None
        finally:
            self.pending.pop(call_id, None)

    def _on_call(self, peer, message):
        gevent.spawn(self._serve_call, peer, *message[1:])

    def _serve_call(self, peer, call_id, method, args):
        try:
            reply = ("reply", call_id, True, self.methods[method](peer, *args))
        except StarciteError as exc:  # handed back to the caller, who re-raises it
            reply = ("reply", call_id, False, (exc.status, exc.code, exc.message, exc.headers))
        except Exception as exc:
            log.exception("peer call %s from %s failed", method, peer)
            reply = ("reply", call_id, False, (503, "peer_call_failed", f"{method} failed on {self.name}: {exc}",
                                               {"Retry-After": "1"}))
        self.send(peer, reply)

    def _on_reply(self, peer, message):
        _kind, call_id, ok, value = message
        entry = self.pending.pop(call_id, None)
        if entry is None:
            return
        if ok:
            entry[1].set(value)
        else:
            entry[1].set_exception(StarciteError(*value))

    def status(self) -> dict:
        now = time.time()
        out = {}
        for peer in sorted(self.peers):
            link = self.links.get(peer)
            if link is None:
                out[peer] = {"state": "down", "error": self.last_error.get(peer)}
            else:
                out[peer] = {"state": "up", "up_seconds": round(now - link.since, 1),
                             "frames_in": link.frames_in, "frames_out": link.frames_out}
        return out
