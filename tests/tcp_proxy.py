"""A loopback TCP proxy a test can cut, restore or slow down: a dependency or a peer in trouble.

Owns: `TcpProxy` (accepting on 127.0.0.1, pumping bytes both ways on daemon
threads, optionally holding every chunk for ``delay_s`` before passing it on, in
order, like a long wire; resetting every connection on `cut`, pointing at a new
port on `restore`). Must not: listen on anything but loopback, inspect or change
the bytes it carries, or leave a thread blocked after `close`.
"""

import queue
import socket
import struct
import threading
import time


class TcpProxy:
    """Loopback TCP proxy to ``127.0.0.1:<target_port>`` that the test can cut and restore.

    Cut: every open connection is reset and new ones are accepted then reset at
    once (the archive is down). Restore: connections go through again, possibly
    to a new target port (a restarted server).
    """

    def __init__(self, target_port, delay_s=0.0):
        self.target_port = target_port
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.closed = False
        self.lock = threading.Lock()
        self.open = set()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                client, _addr = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            upstream = None
            if self.up:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                    upstream.settimeout(None)
                except OSError:
                    upstream = None
            if upstream is None:
                _reset(client)
                continue
            with self.lock:
                self.open.update((client, upstream))
            pump = self._pump_delayed if self.delay_s > 0 else self._pump
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            self._drop(sock)

    def _pump_delayed(self, src, dst):
        """Every chunk read from ``src`` is written to ``dst`` ``delay_s`` later, in order."""
        line = queue.Queue()

        def deliver():
            while True:
                item = line.get()
                if item is None:
                    break
                time.sleep(max(0.0, item[0] - time.monotonic()))
                try:
                    dst.sendall(item[1])
                except OSError:
                    break
            for sock in (src, dst):
                self._drop(sock)

        threading.Thread(target=deliver, daemon=True).start()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                line.put((time.monotonic() + self.delay_s, data))
        except OSError:
            pass
        line.put(None)

    def _drop(self, sock, reset=False):
        with self.lock:
            self.open.discard(sock)
        (_reset if reset else _close)(sock)

    def cut(self):
        self.up = False
        with self.lock:
            socks = list(self.open)
        for sock in socks:
            self._drop(sock, reset=True)

    def restore(self, target_port=None):
        if target_port is not None:
            self.target_port = target_port
        self.up = True

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()
        self.thread.join(timeout=5)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _reset(sock):
    """Abort a connection. The shutdown also wakes a pump thread blocked in ``recv`` on it: without it
    the socket would stay open (and silent) for as long as that thread waits."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)
