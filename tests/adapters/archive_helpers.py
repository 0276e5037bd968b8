"""Helpers shared by the adapter and read-cache tests: sample data, threads, timing.

Owns: builders of realistic event dicts and session records, running workers
on threads with a bounded join, and asserting that a call fails fast. Must
not: touch any archive by itself or hold fixtures (those are in conftest.py).
"""

import threading
import time

import pytest


def make_event(seq, **overrides):
    event = {
        "seq": seq,
        "type": "message.delta",
        "payload": {"text": f"chunk {seq} — héllo ✓", "n": seq, "nested": {"ok": True, "list": [1, 2.5, None]}},
        "actor": "agent:planner",
        "producer_id": "writer-1",
        "producer_seq": seq,
        "source": "sdk",
        "metadata": {"trace": f"t{seq}"},
        "refs": {"to_seq": max(0, seq - 1), "request_id": "req-1"},
        "idempotency_key": None,
        "inserted_at": f"2025-01-02T03:04:{seq % 60:02d}.{seq:06d}Z",
    }
    event.update(overrides)
    return event


def make_events(first, last, **overrides):
    return [make_event(seq, **overrides) for seq in range(first, last + 1)]


def make_session(session_id, tenant=None, **metadata):
    if tenant is not None:
        metadata["tenant_id"] = tenant
    return {"id": session_id, "title": f"title of {session_id}", "metadata": metadata, "last_seq": 0,
            "created_at": "2025-01-02T03:04:05.000000Z", "updated_at": "2025-01-02T03:04:06.000000Z",
            "creator_principal": {"kind": "service", "id": "svc"}}


def run_threads(target, args_list, timeout=60.0):
    """Run ``target(*args)`` on one thread per entry; return the exceptions they raised."""
    errors = []

    def guarded(*args):
        try:
            target(*args)
        except Exception as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "worker threads did not finish in time"
    return errors


def assert_fails_fast(call, exc_type, seconds=3.0, match=None):
    started = time.monotonic()
    with pytest.raises(exc_type, match=match):
        call()
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.2f}s to fail"


def walk(archive, page_size, **filters):
    """Every record reachable by following `list_sessions` cursors, with the number of pages."""
    seen, cursor, pages = [], None, 0
    while True:
        records, cursor = archive.list_sessions(page_size, cursor=cursor, **filters)
        assert len(records) <= page_size
        seen.extend(records)
        pages += 1
        assert pages < 1000, "cursor walk does not terminate"
        if cursor is None:
            return seen, pages
