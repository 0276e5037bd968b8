"""`starcite.node.long_poll` in-process: the waiter registry and the hold loop, without a node.

Owns: waiters always deregistered (also on an exception), a commit waking a
hold at once, the timeout's empty page, shutdown waking every hold and
refusing new waits, and the re-read cadence without a local replica. Must
not: start a server; every wait is bounded (a few hundred ms).
"""

import time

import gevent
import pytest

from starcite.node.long_poll import REMOTE_POLL_SECONDS, LongPolls, wait_for_events

EMPTY = ([], 0)


def test_waiters_are_always_deregistered():
    polls = LongPolls()
    with pytest.raises(RuntimeError):
        with polls.waiter("s"):
            assert "s" in polls and polls.count() == 1
            raise RuntimeError
    assert "s" not in polls and polls.count() == 0


def test_a_commit_wakes_the_hold_and_the_timeout_answers_empty():
    polls, pages = LongPolls(), [EMPTY]
    gevent.spawn_later(0.05, lambda: (pages.append(([(1, "{}")], 1)), polls.wake("s")))
    started = time.monotonic()
    assert wait_for_events(polls, lambda: pages[-1], "s", 5.0, local=True) == ([(1, "{}")], 1)
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    assert wait_for_events(polls, lambda: EMPTY, "s", 0.2, local=True) == EMPTY
    assert 0.2 <= time.monotonic() - started < 1.0
    assert polls.count() == 0


def test_shutdown_wakes_every_hold_and_refuses_new_waits():
    polls = LongPolls()
    holds = [gevent.spawn(wait_for_events, polls, lambda: EMPTY, f"s{i % 3}", 10.0, True) for i in range(9)]
    gevent.sleep(0.05)
    assert polls.count() == 9
    started = time.monotonic()
    polls.wake_all()
    gevent.joinall(holds, timeout=2)
    assert all(hold.value == EMPTY for hold in holds) and time.monotonic() - started < 1.0
    started = time.monotonic()
    assert wait_for_events(polls, lambda: EMPTY, "s", 10.0, local=True) == EMPTY
    assert time.monotonic() - started < 0.5


def test_without_a_local_replica_the_hold_re_reads():
    reads = []
    wait_for_events(LongPolls(), lambda: reads.append(1) or EMPTY, "s", 0.3, local=False)
    assert 0.3 / REMOTE_POLL_SECONDS - 3 <= len(reads) <= 0.3 / REMOTE_POLL_SECONDS + 2
