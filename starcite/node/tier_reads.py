"""Reads across the storage tiers: archived event lines and hot events merged into one gap-free run.

Owns: `merge_cold_hot` (the archive's ``(seq, line bytes)`` then the hot tier's
``(seq, json, cost)``, each seq once, in order, at most ``limit``, refusing a
gap) and `ArchiveReadError`, the 503 a read answers rather than serve a gap or
a line it cannot send. Must not: do I/O, parse event JSON, or know about
Raft, actors or HTTP.
"""

from starcite.core.errors import StarciteError


class ArchiveReadError(StarciteError):
    """Cold events could not be read (archive down or a gap): never serve a gap (503)."""

    def __init__(self, message: str):
        super().__init__(503, "archive_read_unavailable", message, {"Retry-After": "1"})


def merge_cold_hot(session_id, after_seq, limit, last_seq, cold, hot) -> list:
    """Up to ``limit`` ``(seq, json)`` after ``after_seq`` from archived ``(seq, line bytes)`` and hot
    ``(seq, json, cost)`` entries, each seq once (archived first), gap-free or `ArchiveReadError`.
    Archived lines are sent as stored: decoded from UTF-8 in one call, never parsed."""
    cold = [entry for entry in cold if entry[0] > after_seq]
    merged = []
    if cold:
        try:
            texts = b"\n".join(line for _seq, line in cold).decode().split("\n")
        except UnicodeDecodeError:
            raise ArchiveReadError(f"Archive holds events of {session_id} that are not UTF-8") from None
        merged = [(entry[0], text) for entry, text in zip(cold, texts)]
    newest = merged[-1][0] if merged else after_seq
    merged.extend((seq, event_json) for seq, event_json, _n in hot if seq > newest)
    out = merged[:limit]
    for expected, (seq, _json) in enumerate(out, start=after_seq + 1):
        if seq != expected:
            raise ArchiveReadError(f"Archive is missing events {expected}..{seq - 1} of {session_id}")
    if not out and after_seq < last_seq:
        raise ArchiveReadError(f"Archive is missing events after {after_seq} of {session_id}")
    return out
