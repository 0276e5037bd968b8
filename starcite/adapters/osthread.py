"""Real OS-thread primitives for archive code that may run in gevent's hub threadpool.

Owns: `lock()`, `rlock()` and `sleep()` that block the calling OS thread even
when the process is monkey-patched. The node runs a blocking adapter's calls
(the local adapter's file I/O and fsync) in threadpool threads, where gevent's
patched locks and ``time.sleep`` would bind to a per-thread hub instead of
excluding the other threads. Must not: be used around anything that can yield
to the hub (a greenlet holding an OS lock across a switch would deadlock
another greenlet of the same thread).
"""

from gevent import monkey


def lock():
    """A plain ``_thread`` lock, never gevent's."""
    return monkey.get_original("_thread", "allocate_lock")()


def rlock():
    return monkey.get_original("_thread", "RLock")()


def sleep(seconds: float) -> None:
    monkey.get_original("time", "sleep")(seconds)
