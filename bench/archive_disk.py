"""Disk use of the local archive per small session: bytes and files beyond the session's own bytes.

Owns: writing N small sessions (each: one event of about ``--event-bytes``
bytes of JSON and its session record, written as the archiver writes them:
the event lines, then the record) straight through a local archive adapter
into a fresh temporary directory, then reporting what the directory holds
on disk (allocated blocks, files and directories included) per session, and
how much of it is beyond the session's own bytes (its event line and record
JSON). The issue's measurement is 30,000 sessions with one 150-byte event.

    .venv/bin/python -m bench.archive_disk                      # 30,000 sessions
    .venv/bin/python -m bench.archive_disk --sessions 2000 --json

``--adapter module:Class`` measures another adapter class taking a directory
(e.g. an older release's, copied beside the tree). Must not: start a node, or
leave its temporary directory behind.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile
import time

from starcite.adapters import chunks


def session_record(session_id: str) -> dict:
    return {"id": session_id, "title": f"conversation {session_id}", "metadata": {"tenant_id": "acme", "user": "u-1"},
            "last_seq": 1, "archived_seq": 1, "version": 1, "archived": False,
            "created_at": "2026-12-07T10:00:00.000000Z", "updated_at": "2026-12-07T10:00:01.000000Z",
            "creator_principal": {"kind": "service", "id": "svc"}}


def event_line(session_id: str, event_bytes: int) -> bytes:
    event = {"seq": 1, "type": "message", "payload": {"text": ""}, "actor": "user:u-1", "producer_id": "p",
             "producer_seq": 1, "source": None, "metadata": {}, "refs": {}, "idempotency_key": None,
             "inserted_at": "2026-12-07T10:00:00.000000Z"}
    padding = max(0, event_bytes - len(chunks.encode_json(event)))
    event["payload"]["text"] = "x" * padding
    return chunks.encode_json(event)


def disk_use(root: str) -> dict:
    """Allocated bytes (blocks), apparent bytes, files and directories under ``root``."""
    allocated = apparent = files = directories = 0
    for directory, _dirs, names in os.walk(root):
        directories += 1
        allocated += os.lstat(directory).st_blocks * 512
        for name in names:
            stat = os.lstat(os.path.join(directory, name))
            files += 1
            allocated += stat.st_blocks * 512
            apparent += stat.st_size
    return {"allocated_bytes": allocated, "apparent_bytes": apparent, "files": files, "directories": directories}


def measure(adapter_class, sessions: int, event_bytes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="archive-disk-") as root:
        archive = adapter_class(os.path.join(root, "archive"))
        own = 0
        started = time.monotonic()
        try:
            for n in range(sessions):
                session_id = f"ses_{n:08d}"
                line, record = event_line(session_id, event_bytes), session_record(session_id)
                archive.write_lines(session_id, [(1, line)])
                archive.upsert_session(record)
                own += len(line) + len(chunks.encode_json(record))
        finally:
            archive.close()
        elapsed = time.monotonic() - started
        use = disk_use(os.path.join(root, "archive"))
    per = {key: round(value / sessions, 2) for key, value in use.items()}
    return {"adapter": f"{adapter_class.__module__}.{adapter_class.__name__}", "sessions": sessions,
            "event_bytes": event_bytes, "own_bytes_per_session": round(own / sessions, 1), **use,
            "per_session": per, "beyond_own_bytes_per_session": round((use["allocated_bytes"] - own) / sessions, 1),
            "write_seconds": round(elapsed, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive_disk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30_000)
    parser.add_argument("--event-bytes", type=int, default=150)
    parser.add_argument("--adapter", default="starcite.adapters.local:LocalArchiveAdapter")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    module, _, name = args.adapter.partition(":")
    result = measure(getattr(importlib.import_module(module), name), max(1, args.sessions), args.event_bytes)
    if args.json:
        print(json.dumps(result))
        return 0
    per = result["per_session"]
    print(f"{result['adapter']}: {result['sessions']:,} sessions, one {result['event_bytes']}-byte event each "
          f"(own bytes {result['own_bytes_per_session']:,} per session), written in {result['write_seconds']} s")
    print(f"  on disk   {result['allocated_bytes']:,} bytes allocated, {result['apparent_bytes']:,} apparent, "
          f"{result['files']:,} files, {result['directories']:,} directories")
    print(f"  per session  {per['allocated_bytes']:,} bytes allocated, {per['files']} files; "
          f"{result['beyond_own_bytes_per_session']:,} bytes beyond its own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
