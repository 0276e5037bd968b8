"""How long after its expiry a session is really gone: a measuring script, not a test.

Run: ``.venv/bin/python -m tests.expiry_latency [SESSIONS] [EVENTS]`` (defaults 10 and 300). It
starts one `starcite serve` with the default timers (expiry check every second, archive flush
every `STARCITE_ARCHIVE_FLUSH_INTERVAL_MS`, 5 s unless set), creates SESSIONS sessions with
EVENTS events each and an ``expires_at`` a few seconds ahead, waits until everything is archived,
then polls every session: the time from its ``expires_at`` to its first 404, and to the moment the
local archive holds neither its events nor its record. Prints the min / median / max of both and
stops the node. Owns nothing the tests use; must not run in the test suite (it waits for real
timers) or leave its node running.
"""

import os
import statistics
import sys
import tempfile
import time

from starcite.adapters.local import LocalArchiveAdapter
from tests.server import StarciteServer, wait_until

POLL_S = 0.02


def iso_at(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def main(sessions=10, events=300) -> dict:
    flush_ms = os.environ.get("STARCITE_ARCHIVE_FLUSH_INTERVAL_MS", "5000")
    with tempfile.TemporaryDirectory(prefix="starcite-expiry-") as data_dir:
        server = StarciteServer(data_dir, {"STARCITE_ARCHIVE_FLUSH_INTERVAL_MS": flush_ms,
                                           "STARCITE_ACCESS_LOG": "false"})
        server.start()
        try:
            archive = LocalArchiveAdapter(os.path.join(data_dir, "archive"))
            expires = time.time() + 8 + sessions * events / 150  # after the fill and the archiving
            ids = [f"exp-{n}" for n in range(sessions)]
            for session_id in ids:
                server.create(session_id, expires_at=iso_at(expires))
                for seq in range(1, events + 1):
                    assert server.append(session_id, seq).status_code == 201
            wait_until(lambda: all(len(archive.read_lines(i, 1, events)) == events for i in ids),
                       max(5.0, expires - time.time()), "everything archived before the expiry")
            assert time.time() < expires, "the fill took longer than planned: fewer sessions or events"
            to_404, to_archive = {}, {}
            deadline = expires + 120
            while len(to_archive) < len(ids) and time.time() < deadline:
                now = time.time()
                for session_id in ids:
                    if session_id not in to_404 and server.request("GET", f"/v1/sessions/{session_id}") \
                            .status_code == 404:
                        to_404[session_id] = now - expires
                    if session_id not in to_archive and not archive.read_lines(session_id, 1, events) \
                            and archive.get_session(session_id) is None:
                        to_archive[session_id] = now - expires
                time.sleep(POLL_S)
        finally:
            server.stop()
    report = {"sessions": sessions, "events": events, "flush_interval_ms": int(flush_ms),
              "to_404_s": _spread(to_404.values()), "to_archive_gone_s": _spread(to_archive.values()),
              "missing": len(ids) - len(to_archive)}
    return report


def _spread(values) -> dict:
    values = sorted(values)
    if not values:
        return {}
    return {"min": round(values[0], 3), "median": round(statistics.median(values), 3), "max": round(values[-1], 3)}


if __name__ == "__main__":
    print(main(*(int(arg) for arg in sys.argv[1:3])))
