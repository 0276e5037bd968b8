"""What a command carries from the node that accepts its request: the time and the request's token.

Owns: `now_iso` (an event's ``inserted_at``, a record's ``created_at``: chosen once, by the accepting
node, so every replica applies the same thing) and `request_token` (the random name of one API
request's command, so that a retry of it finds its own earlier commit). Must not: do I/O.
"""

import random
import time

_iso_second = [None, ""]  # [the last whole UTC second formatted, its "YYYY-MM-DDTHH:MM:SS"]


def now_iso() -> str:
    """The UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (an event's ``inserted_at``). The whole second is
    formatted once per second: `datetime`'s isoformat per append was ~2% of the worker at 16 clients."""
    now = time.time()
    second = int(now)
    if second != _iso_second[0]:
        _iso_second[:] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_iso_second[1]}.{int((now - second) * 1e6):06d}Z"


_tokens = random.Random()  # seeded from os.urandom


def request_token() -> int:
    """A random token naming one API request's command, so that the router's retry of it finds its
    own earlier commit (`rules.same_request`); unique enough within one producer's one seq."""
    return _tokens.getrandbits(63)
