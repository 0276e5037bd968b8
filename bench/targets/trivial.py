"""The trivial endpoint: an asyncio raw-socket HTTP/1.1 server that answers
every request with ``201`` and a small JSON ack, doing nothing else. Driving
it shows the load generator's own ceiling (the most it can measure).

Owns: the server (run as ``python -m bench.targets.trivial PORT``) and
`start`. Must not: do any work per request beyond parsing it.
"""

import asyncio
import os
import sys

from bench.procs import port_open
from bench.targets import ACK_BODY, REPO_ROOT

_RESPONSE = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
             % (len(ACK_BODY), ACK_BODY))


class _Server(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, bytearray()

    def data_received(self, data):
        self.buf += data
        answers, pos = 0, 0
        while True:
            end = self.buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = bytes(self.buf[pos:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                break
            pos = end + 4 + length
            answers += 1
        del self.buf[:pos]
        if answers:
            self.transport.write(_RESPONSE * answers)


async def _serve(port: int):
    server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", port, backlog=1024,
                                                            reuse_port=True)
    async with server:
        await server.serve_forever()


def _main(port: int, processes: int):
    """Serve from ``processes`` forked processes sharing the port (SO_REUSEPORT), so the endpoint
    is not what limits the ceiling; all stay in the process group the supervisor stops."""
    for _ in range(processes - 1):
        if os.fork() == 0:
            break
    asyncio.run(_serve(port))


def start(sup, port: int, processes: int = 2):
    return sup.start("trivial", [sys.executable, "-m", "bench.targets.trivial", str(port), str(processes)],
                     lambda: port_open(port), cwd=REPO_ROOT, timeout=15)


if __name__ == "__main__":
    _main(int(sys.argv[1]), int(sys.argv[2]))
