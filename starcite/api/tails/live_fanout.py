"""The live fan-out: a committed batch goes to every idle live tail of its session in one job,
whose sends run beside the worker's main thread.

Owns: `LiveFanout` (one per worker process, `FANOUT`): a job at a time. For
each live tail of the session the tail itself says whether the batch can go
out now (`TailStream.claim`: idle, live, contiguous; it then marks its
socket in flight) or goes to its outbox for its pump; the claimed sockets
are grouped by the bytes they get (encoded once per wire, batch size and
first seq), and the group's sends run in one call of `send_each`: the C
helper `starcite._fanout` in the fan-out thread, with the GIL released, or
where it was not built the same loop here, on the calling thread. When the
job ends each tail settles its result (`TailStream.settle`: all sent; part
sent: the pump writes the rest; dead: the tail ends) and batches committed
meanwhile go out together in the next job (per session, one frame run for
all of them).

Why: one loopback send(2) costs ~13 us of kernel time here, and a live
event costs one per tail: 10,000 tails x 5 events/s took 94% of the
worker's one core before anything else, and a reconnect storm's opens got
what was left. Python sends in a second thread get the GIL back only every
switch interval (measured ~600 us a send beside a busy worker), hence C.

Must not: decide who is live (the group's registry does) or what a tail has
sent (each tail does, in `claim`), write to a socket a tail has not claimed
for the job, or close one (a tail waits for its socket's job before it
writes or closes anything, so an fd is never reused under a send).
"""

import logging
import os

import gevent.event
import gevent.threadpool

try:
    from starcite._fanout import send_each as native_send_each
except ImportError:  # built without a compiler: the fallback below, on the worker's thread
    native_send_each = None

log = logging.getLogger("starcite.fanout")

# A job of at most this many sends runs at once on the calling thread (~4 ms at ~15 us a send):
# the hand-off to the fan-out thread and back costs a few ms of latency, worth paying only when
# the sends would cost the worker more (measured, 1,000 tails at 100 appends/s: ack to receipt
# p50 2.7 ms on the worker's thread, which then sustained only 62 appends/s; 37 ms through the
# thread, at 100 appends/s).
INLINE_SENDS = 256


def send_each_here(fds, data) -> list:
    """`starcite._fanout.send_each` in Python: per fd the bytes sent (0 when the buffer is
    full) or -errno. The fds are non-blocking (gevent sockets)."""
    results = []
    for fd in fds:
        try:
            results.append(os.write(fd, data))
        except BlockingIOError:
            results.append(0)
        except OSError as exc:
            results.append(-(exc.errno or 1))
    return results


def _send_groups(groups, send_each) -> list:
    return [send_each(fds, data) for data, fds, _streams in groups]


class FanoutJob:
    """One round of sends: ``groups`` of ``(data, fds, streams)``; ``done`` is set once every
    stream in it has settled."""

    __slots__ = ("groups", "done")

    def __init__(self):
        self.groups = []
        self.done = gevent.event.Event()


class LiveFanout:
    def __init__(self, threaded: bool = None):
        """``threaded``: send in the fan-out thread (default: when the C helper is built)."""
        self.threaded = native_send_each is not None if threaded is None else threaded
        self.send_each = native_send_each if self.threaded else send_each_here
        self.pool = None     # the fan-out thread, made on first use (in the worker, after the fork)
        self.job = None      # the job out now
        self.pending = {}    # session id -> [outboxes, entries]: committed while a job was out
        self.jobs = 0        # jobs run (the tests read it)

    def put_all(self, session_id, outboxes, entries):
        """Hub context: ``entries`` (a committed batch of ``session_id``, contiguous seqs) to its
        live tails' ``outboxes`` (a snapshot of the group's registry)."""
        if self.job is not None:
            waiting = self.pending.get(session_id)
            if waiting is None:
                self.pending[session_id] = [outboxes, entries]
            else:  # the newest registry snapshot, and every batch since the job went out
                waiting[0], waiting[1] = outboxes, waiting[1] + entries
            return
        self._start([(outboxes, entries)])

    def _start(self, batches):
        job = FanoutJob()
        for outboxes, entries in batches:
            by_bytes = {}  # within one session's run: (wire and batch size, first index) -> group
            for outbox in outboxes:
                stream = outbox.stream
                first = stream.claim(entries, job)
                if first is None:
                    continue
                key = (stream.wire_key, first)
                group = by_bytes.get(key)
                if group is None:
                    group = by_bytes[key] = (stream.conn.encode(entries[first:], stream.batch_size), [], [])
                    job.groups.append(group)
                group[1].append(stream.fd)
                group[2].append(stream)
        if not job.groups:
            return job.done.set()
        self.job = job
        self.jobs += 1
        if not self.threaded or sum(len(group[1]) for group in job.groups) <= INLINE_SENDS:
            return self._finish(job, _send_groups(job.groups, self.send_each))
        if self.pool is None:
            self.pool = gevent.threadpool.ThreadPool(1)
        self.pool.spawn(_send_groups, job.groups, self.send_each).rawlink(
            lambda result: self._finish(job, result.value if result.successful() else None))

    def _finish(self, job, results):
        """Hub context: every claimed tail settles its send, then the batches that waited go out.
        The common case, everything sent, is settled here (it is this job's claim that ends: a
        call per tail and event was ~8% of the worker during a storm); the rest by the tail."""
        if results is None:
            log.error("live fan-out job failed; its tails end and their clients resume")
        for index, (data, _fds, streams) in enumerate(job.groups):
            sent = results[index] if results is not None else [-1] * len(streams)
            size = len(data)
            for stream, count in zip(streams, sent):
                if count == size:
                    stream.conn.in_flight = None
                    if stream.outbox.items:
                        stream.kick()
                else:
                    stream.settle(data, count)
        self.job = None
        job.done.set()
        if self.pending:
            batches = list(self.pending.values())
            self.pending.clear()
            self._start(batches)


FANOUT = LiveFanout()
