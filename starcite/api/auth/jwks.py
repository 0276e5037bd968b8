"""The identity provider's public signing keys, fetched from its JWKS URL and cached by `kid`.

Owns: `JwksCache`: the first fetch at start, the periodic refresh in a daemon
thread, and the on-demand refetch when a token names a `kid` the cache does
not hold, rate-limited by its own short interval. Must not: decide whether a
token is valid (that is `starcite.api.auth.tokens`, which turns a missing key into a
401), import the web framework, or depend on gevent: under gevent's monkey
patching the refresh thread and the blocking `urllib` call simply become
cooperative.
"""

import json
import logging
import threading
import time
import urllib.request

log = logging.getLogger("starcite.auth")

MAX_JWKS_BYTES = 1024 * 1024
DEFAULT_REFETCH_MS = 3000


class JwksCache:
    """Public signing keys of the identity provider, by `kid`.

    `start()` fetches once (a failure only logs: the node still starts) and
    then refreshes every `refresh_ms` in a daemon thread. A failed fetch keeps
    the keys already cached. `get_key` never waits for the periodic refresh.

    An unknown `kid` triggers a refetch at most once per `refetch_ms` (a few
    seconds), whatever the periodic interval: a key newly published for a
    rotation is picked up within `refetch_ms` of its first use, even right
    after a forged `kid` used up a refetch, while a stream of forged kids
    costs the identity provider one request per `refetch_ms` at most.
    """

    def __init__(self, url: str, refresh_ms: int, fetch_timeout: float = 3.0, clock=time.monotonic,
                 refetch_ms: int = DEFAULT_REFETCH_MS):
        if not url:
            raise ValueError("JWKS url is required (auth.jwks_url / STARCITE_AUTH_JWKS_URL)")
        self.url = url
        self.interval = max(refresh_ms, 1) / 1000.0
        self.refetch_interval = max(refetch_ms, 1) / 1000.0
        self.fetch_timeout = fetch_timeout
        self._clock = clock
        self._keys = {}
        self.last_error = None
        self._last_refetch = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = None

    @property
    def key_ids(self) -> list:
        return sorted(self._keys, key=str)

    @property
    def key_count(self) -> int:
        return len(self._keys)

    def start(self):
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="jwks-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        while not self._stopping.wait(self.interval):
            self.refresh()

    def refresh(self) -> bool:
        """Fetch the JWKS now; True on success. Never raises."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=self.fetch_timeout) as response:
                body = response.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("JWKS document larger than 1 MiB")
            self._keys = parse_jwks(json.loads(body))
        except Exception as exc:  # noqa: BLE001 - the refresher must survive anything
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("JWKS fetch from %s failed (%s); %d cached key(s) stay in use",
                        self.url, self.last_error, len(self._keys))
            return False
        self.last_error = None
        return True

    def _lookup(self, kid):
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        now = self._clock()
        if self._last_refetch is not None and now - self._last_refetch < self.refetch_interval:
            return False
        self._last_refetch = now
        return True

    def get_key(self, kid: str | None) -> dict | None:
        """The JWK for `kid` (None: the only key of the set), refetching once if it is unknown; else None."""
        key = self._lookup(kid)
        if key is None:
            with self._lock:  # one refetch at a time; waiters see its result
                key = self._lookup(kid)
                if key is None and self._may_refetch():
                    self._refresh_locked()
                    key = self._lookup(kid)
        return key


def parse_jwks(document) -> dict:
    """kid -> JWK for every RSA/EC signing key; symmetric keys are ignored."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys = {}
    for entry in document["keys"]:
        if (isinstance(entry, dict) and entry.get("kty") in ("RSA", "EC") and entry.get("use", "sig") == "sig"
                and isinstance(entry.get("kid"), (str, type(None)))):
            keys.setdefault(entry.get("kid"), entry)
    return keys
