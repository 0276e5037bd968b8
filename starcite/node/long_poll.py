"""Long-poll waiters of `GET /v1/sessions/:id/events?wait_ms=W`: a per-session registry on the `Node`.

Owns: `LongPolls`, the registry of waiting requests (one gevent `Event` per
held request, keyed by session id), waking a session's waiters when the
group's commit fan-out reports a commit, waking every waiter at shutdown,
and `wait_for_events`, the hold loop a request greenlet runs. A held request
costs its own greenlet (the request's) and one `Event`: no extra greenlet,
no actor, no Thespian message per waiter.

When this node holds no replica of the session's group, no local commit
fan-out sees its commits: the waiter then re-reads through the router every
`REMOTE_POLL_SECONDS` until the wait ends.

Must not: decide which events a page holds (`SessionReads.read_page` does), or touch
the tail registry (`RaftGroupActor`) or tail behaviour.
"""

import contextlib
import time

from gevent.event import Event

REMOTE_POLL_SECONDS = 0.05


class LongPolls:
    def __init__(self):
        self.waiting = {}  # session_id -> set of Event
        self.closed = False

    def __contains__(self, session_id) -> bool:
        return session_id in self.waiting

    def count(self) -> int:
        return sum(len(events) for events in self.waiting.values())

    @contextlib.contextmanager
    def waiter(self, session_id):
        """An `Event` set on the next commit of ``session_id`` (or at shutdown); always deregistered."""
        event = Event()
        if self.closed:
            event.set()
        self.waiting.setdefault(session_id, set()).add(event)
        try:
            yield event
        finally:
            events = self.waiting.get(session_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self.waiting[session_id]

    def wake(self, session_id):
        for event in list(self.waiting.get(session_id, ())):
            event.set()

    def wake_all(self):
        """Shutdown: every waiter answers at once, and new ones do not wait."""
        self.closed = True
        for session_id in list(self.waiting):
            self.wake(session_id)


def wait_for_events(polls: LongPolls, read_page, session_id, wait_seconds: float, local: bool):
    """``read_page()`` until it returns events, the wait ends or the node stops; the last page read.

    The waiter is registered before each read, so a commit landing between the read and
    the wait still wakes it. ``local``: a commit on this node's replica wakes the waiter;
    otherwise the read is repeated every `REMOTE_POLL_SECONDS`.
    """
    deadline = time.monotonic() + wait_seconds
    with polls.waiter(session_id) as event:
        while True:
            event.clear()
            page = read_page()
            remaining = deadline - time.monotonic()
            if page[0] or remaining <= 0 or polls.closed:
                return page
            event.wait(remaining if local else min(remaining, REMOTE_POLL_SECONDS))
