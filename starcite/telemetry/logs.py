"""Node logging: plain text (the default) or one JSON object per line.

Owns: the `log_format` switch (`configure(config)`, called once before the
gunicorn logger is built), `JsonFormatter` (``ts``, ``level``, ``logger``,
``msg``, ``node``, and ``request_id`` / ``session_id`` / ``group`` when
known), the per-request log context, the request id (`request_id_from`:
a sanitised incoming ``X-Request-Id`` or a fresh one), and scrubbing every
JSON line of secrets: ``access_token`` values, bearer tokens and the secret
values of the config (cluster secret, SECRET_KEY_BASE, S3 and Postgres
credentials).

The request context lives in contextvars: gevent gives every greenlet its own
context (tested in tests/test_logs.py), and the server runs each request in
its connection's greenlet, so `bind_request` at the start of every request
starts a fresh context for it.

Must not: read the environment (a `Config` says everything), know gunicorn
(starcite/api/server/worker.py adapts its logger to this module) or log request
bodies.
"""

import contextvars
import datetime
import itertools
import json
import logging
import os
import re
import secrets
import sys
import traceback
import urllib.parse

from starcite.telemetry.redact import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
REQUEST_ID_MAX_LENGTH = 128

_request_id = contextvars.ContextVar("starcite_request_id", default=None)
_session_id = contextvars.ContextVar("starcite_session_id", default=None)
_group = contextvars.ContextVar("starcite_group", default=None)

_UNSAFE_REQUEST_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]")
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_REDACTED = "[REDACTED]"


# -- request context -------------------------------------------------------------------------------


def request_id_from(header_value) -> str:
    """The request id of a request: the client's ``X-Request-Id`` when something is left of it after
    keeping only ``[A-Za-z0-9._:-]`` and the first 128 characters, else a new one (`new_request_id`)."""
    if not header_value:
        return new_request_id()
    cleaned = _UNSAFE_REQUEST_ID_CHARS.sub("", header_value)[:REQUEST_ID_MAX_LENGTH]
    return cleaned or new_request_id()


_ids = None  # (pid, random prefix, counter) of this process


def new_request_id() -> str:
    """32 hex characters, unique per request: a random prefix drawn once per process (so once per
    worker, not inherited across a fork) and a counter. Not a secret; a uuid4 per request (a
    getrandom call and a UUID object) was 3% of a tail open's cost."""
    global _ids
    pid = os.getpid()
    if _ids is None or _ids[0] != pid:
        _ids = (pid, secrets.token_hex(8), itertools.count(1))
    return _ids[1] + format(next(_ids[2]), "016x")


def bind_request(request_id: str):
    """Start the log context of a new request (on a keep-alive connection, forget the previous one's)."""
    _request_id.set(request_id)
    _session_id.set(None)
    _group.set(None)


def bind_session(session_id: str, group: int):
    _session_id.set(session_id)
    _group.set(group)


def current_context() -> dict:
    context = {"request_id": _request_id.get(), "session_id": _session_id.get(), "group": _group.get()}
    return {key: value for key, value in context.items() if value is not None}


# -- JSON lines ------------------------------------------------------------------------------------


class Scrubber:
    """Removes secrets from log text: access_token values, bearer tokens and known secret values."""

    def __init__(self, secret_values=()):
        # Longest first, so a secret that contains another is replaced whole.
        self.secret_values = sorted({s for s in secret_values if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _BEARER_RE.sub(r"\1 " + _REDACTED, redact(text))
        for secret in self.secret_values:
            text = text.replace(secret, _REDACTED)
        return text

    def value(self, value):
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return value


def config_secrets(config) -> list:
    """Every secret value a config holds (those that must never reach a log line)."""
    values = [config.cluster_secret, config.secret_key_base, config.s3_secret_access_key, config.s3_session_token]
    if config.postgres_url:
        try:
            values.append(urllib.parse.urlsplit(config.postgres_url).password)
        except ValueError:
            pass
    return [value for value in values if value]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Structured fields of a record (``extra={"fields": {...}}``, e.g. the access
    log's method, path, status) are merged into the object. The context fields
    come from the current context, unless the record brings its own
    (``extra={"context": {...}}``: the access log, written after the request,
    names the request it is about).
    """

    def __init__(self, node: str, scrubber: Scrubber):
        super().__init__()
        self.node = node
        self.scrubber = scrubber

    def format(self, record) -> str:
        line = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
            "node": self.node,
        }
        context = getattr(record, "context", None)
        line.update(current_context() if context is None else
                    {key: value for key, value in context.items() if value is not None})
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(self.scrubber.value(line), default=str)


def _message(record) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-arguments: still one JSON line, never logging's stderr report
        return f"{record.msg} {record.args!r}"


# -- configuration ---------------------------------------------------------------------------------


class _State:
    log_format = "text"
    formatter = None


def configure(config):
    """Set the node's log format and route the root logger (app logs) to stderr in it. Idempotent.

    JSON mode owns the root logger: every handler on it is replaced by ours, so
    call this again after something else configured logging (Thespian's
    ActorSystem installs its own root handlers when the `Node` creates it).
    Text mode keeps what it was: ours only when the root has no handler yet (as
    `logging.basicConfig` did), so a later Thespian configuration stands.
    """
    _State.log_format = config.log_format
    _State.formatter = JsonFormatter(config.node_name, Scrubber(config_secrets(config)))
    # No format here (text, JSON, gunicorn's, Thespian's) shows the thread, and under gevent every
    # greenlet is a "thread": each record's `threading.current_thread()` built a _DummyThread for
    # its request greenlet (a quarter of an access line's cost during a reconnect storm).
    logging.logThreads = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if json_enabled() or getattr(handler, "_starcite", False):
            root.removeHandler(handler)
    if json_enabled() or not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_State.formatter if json_enabled() else logging.Formatter(TEXT_FORMAT))
        handler._starcite = True
        root.addHandler(handler)
    root.setLevel(config.log_level.upper())
    logging.captureWarnings(json_enabled())


def json_enabled() -> bool:
    return _State.log_format == "json"


def json_formatter() -> JsonFormatter:
    return _State.formatter


def log_greenlet_errors(hub):
    """JSON mode: an error that kills a greenlet becomes a log record, not a bare traceback on stderr."""
    if not json_enabled():
        return
    greenlet_log = logging.getLogger("starcite.greenlet")

    def print_exception(context, error_type, value, tb):
        greenlet_log.error("unhandled error in %s", context, exc_info=(error_type, value, tb))

    hub.print_exception = print_exception
