"""`SessionReads.read_events` over the real local archive and read cache: cold + hot, any split, damage refused.

Owns: the property that a replay from any cursor, over any split between the
archive and the hot tier and any page size, returns exactly the events with
seq > cursor, in order, each once, as the bytes the archive holds; and that a
damaged chunk answers 503 archive_read_unavailable, never a wrong event.
Must not: start a node (the node's read part runs over a stand-in hot tier
and a real cold tier) or touch anything but a temporary directory.
"""

import contextlib
import sqlite3
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starcite.adapters.local import LocalArchiveAdapter
from starcite.adapters.read_cache import ArchiveReadCache
from starcite.node.long_poll import LongPolls
from starcite.node.reads import ColdMemo, SessionReads
from starcite.node.tier_reads import ArchiveReadError
from starcite.core.records import encode_event, event_json_of
from tests.adapters.archive_helpers import make_events

SESSION = "ses-merge"
TOTAL = 700  # crosses two chunk boundaries
EVENTS = make_events(1, TOTAL)
JSON = {event["seq"]: event_json_of(encode_event(event)) for event in EVENTS}  # today's shape: sent as stored


def reader(adapter, archived_seq, cache=True):
    """The node's read part over a stand-in hot tier (events past ``archived_seq``) and the cold tier."""
    hot = [(seq, JSON[seq], len(JSON[seq])) for seq in range(archived_seq + 1, TOTAL + 1)]

    def read_hot(_session_id, after_seq, limit, _fresh=False):
        entries = [entry for entry in hot if entry[0] > after_seq][:limit]
        return archived_seq, TOTAL, entries

    cold = ArchiveReadCache(adapter) if cache else adapter
    return SessionReads(read_hot, cold.read_lines, LongPolls(), lambda _session_id: True, lambda: False)


@pytest.fixture(scope="module")
def archive():
    with tempfile.TemporaryDirectory() as directory:
        adapter = LocalArchiveAdapter(directory)
        adapter.write_lines(SESSION, [(seq, JSON[seq].encode()) for seq in JSON])
        yield adapter
        adapter.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(archived_seq=st.integers(0, TOTAL), cursor=st.integers(0, TOTAL), limit=st.integers(1, 1000),
       cache=st.booleans())
def test_any_split_returns_exactly_the_events_after_the_cursor(archive, archived_seq, cursor, limit, cache):
    node = reader(archive, archived_seq, cache)
    got, position = [], cursor
    for _ in range(TOTAL + 2):
        page = node.read_events(SESSION, position, limit)
        if not page:
            break
        assert len(page) <= limit
        got.extend(page)
        position = page[-1][0]
    assert got == [(seq, JSON[seq]) for seq in range(cursor + 1, TOTAL + 1)]


def test_a_gap_in_the_archive_is_never_skipped(tmp_path):
    adapter = LocalArchiveAdapter(str(tmp_path))
    adapter.write_lines(SESSION, [(seq, JSON[seq].encode()) for seq in range(1, 300) if seq != 100])
    with pytest.raises(ArchiveReadError):
        reader(adapter, 299).read_events(SESSION, 0, 1000)
    assert reader(adapter, 299).read_events(SESSION, 100, 5) == [(seq, JSON[seq]) for seq in range(101, 106)]


@pytest.mark.parametrize("damage", [lambda data: data[:-10], lambda data: data.replace(b'{"seq":7,', b'{"seq":9,')])
def test_a_damaged_chunk_answers_503_archive_read_unavailable(tmp_path, damage):
    adapter = LocalArchiveAdapter(str(tmp_path))
    adapter.write_lines(SESSION, [(seq, JSON[seq].encode()) for seq in range(1, 301)])
    with contextlib.closing(sqlite3.connect(adapter.path)) as db, db:  # the chunk's row, damaged in place
        (data,), = db.execute("SELECT data FROM chunks WHERE session_id = ? AND start = 1", (SESSION,)).fetchall()
        db.execute("UPDATE chunks SET data = ? WHERE session_id = ? AND start = 1", (damage(data), SESSION))
    with pytest.raises(ArchiveReadError) as caught:
        reader(adapter, 300).read_events(SESSION, 0, 1000)
    assert caught.value.status == 503 and caught.value.code == "archive_read_unavailable"
    assert reader(adapter, 300).read_events(SESSION, 256, 10) == [(seq, JSON[seq]) for seq in range(257, 267)]


def test_cold_memo_serves_only_ranges_it_holds():
    memo = ColdMemo()
    lines = [(seq, b"x%d" % seq) for seq in range(10, 21)]
    memo.put("s", 10, 20, lines)
    assert memo.get("s", 10, 20) is lines
    assert memo.get("s", 12, 15) == lines[2:6]
    assert memo.get("s", 9, 20) is None and memo.get("s", 10, 21) is None and memo.get("t", 10, 20) is None
    memo.put("big", 1, 1000, [(seq, b"") for seq in range(1, ColdMemo.LINES + 2)])
    assert memo.get("big", 1, 10) is None  # too many lines to keep
    for n in range(ColdMemo.SESSIONS):
        memo.put(f"other-{n}", 1, 1, [(1, b"")])
    assert memo.get("s", 10, 20) is None  # least recently used, dropped


def test_a_repeated_cold_read_returns_the_same_events(archive):
    node = reader(archive, 200)  # 41..200 cold: few enough lines for the memo
    first = node.read_events(SESSION, 40, 1000)
    assert node._cold_memo.get(SESSION, 41, 200) is not None
    assert node.read_events(SESSION, 40, 1000) == first  # the second from the memo
    assert node.read_events(SESSION, 100, 50) == first[60:110]
