"""The worker's logger: gunicorn's, with tokens kept out of every line and access lines written in batches.

Owns: `RedactingLogger` (gunicorn's ``logger_class``). Access lines never
carry an ``access_token`` and never show an Authorization header; with
``log_format = json`` every gunicorn line, access lines included, is a JSON
object from `starcite.telemetry.logs`. In text mode, when every access handler is a
plain stream (stdout, a file), an access line is formatted here and kept
in memory, and `flush_access` writes what was kept in one write: the worker
calls it every 0.1 s and when it stops, and it runs by itself at
`ACCESS_BATCH_LINES`. Why: logging's record, filter, handler lock and
formatter and a write per line were ~5% of the worker's time in a reconnect
storm, where every tail open is a line. A line therefore shows up at most
~0.1 s late, and a node that is killed (SIGKILL) loses at most that much.

Must not: drop or reorder lines, or log a token.
"""

import logging
import os
import re
import time

from gunicorn.glogging import Logger

from starcite.telemetry import logs
from starcite.telemetry.redact import redact
from starcite.api.http.request_context import ENVIRON_KEY

ACCESS_BATCH_LINES = 256  # kept lines that trigger a write before the worker's next flush


class RedactingLogger(Logger):
    """gunicorn's logger, with tokens kept out of every line.

    Access log: every string atom (request line, path, query, referer,
    headers, environ) has its `access_token` values replaced, and the
    Authorization header atoms are masked, whatever `access_log_format` asks
    for. Error log: a filter redacts each message the same way. JSON mode:
    both logs use `logs.JsonFormatter`, and an access line carries method,
    path (query included, redacted), status, duration_ms, bytes, remote and
    the request id as fields.
    """

    access_lines = None  # text lines kept for the next `flush_access`; None: written one by one

    def setup(self, cfg):
        super().setup(cfg)
        self.flush_access()  # a reload: what was kept goes out through the old handlers
        handlers = self.access_log.handlers
        batched = not logs.json_enabled() and handlers and all(
            type(h) in (logging.StreamHandler, logging.FileHandler) for h in handlers)
        self.access_lines = [] if batched else None
        self._plan()
        # An access line never shows where it was logged from: skip logging's stack walk for it.
        self.access_log.findCaller = _no_caller
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if not any(isinstance(f, _RedactFilter) for f in handler.filters):
                    handler.addFilter(_RedactFilter())
                if logs.json_enabled():
                    handler.setFormatter(logs.json_formatter())

    def access(self, resp, req, environ, request_time):
        if not logs.json_enabled():
            return self._text_access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        path = (atoms["U"] or "") + (f"?{atoms['q']}" if atoms["q"] else "")
        status = _int_or_none(atoms["s"])
        fields = {"method": atoms["m"], "path": path, "status": status,
                  "duration_ms": round(request_time.total_seconds() * 1000, 3),
                  "bytes": _int_or_none(atoms["B"]), "remote": atoms["h"]}
        if status is None:  # gevent's word for a network error instead of a status, e.g. "socket"
            fields["error"] = atoms["s"]
        try:  # the context of this request (none when it never reached the app), not the greenlet's
            self.access_log.info("%s %s %s", fields["method"], path, atoms["s"],
                                 extra={"fields": fields, "context": environ.get(ENVIRON_KEY) or {}})
        except Exception:
            self.exception("access log")

    def _text_access(self, resp, req, environ, request_time):
        lines = self.access_lines
        if lines is None:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        try:
            # gunicorn's SafeAtoms, cheaper: quotes escaped, a missing atom is "-", and the
            # format's "{header}" keys lower-cased once (`_plan`) instead of per lookup.
            atoms = _LineAtoms({key: value.replace('"', '\\"') if isinstance(value, str) else value
                                for key, value in self.atoms(resp, req, environ, request_time).items()})
            lines.append(self._line % atoms)
        except Exception:
            self.exception("access log")
        if len(lines) >= ACCESS_BATCH_LINES:
            self.flush_access()

    def flush_access(self):
        """Write the kept access lines, in order, in one write per handler (redacted once more as
        a whole, as the handlers' filter would have each line)."""
        lines = self.access_lines
        if not lines:
            return
        text = redact("\n".join(lines)) + "\n"
        lines.clear()
        for handler in self.access_log.handlers:
            handler.acquire()
            try:
                handler.stream.write(text)
                handler.flush()
            except Exception:
                handler.handleError(logging.makeLogRecord({"msg": "access log write failed"}))
            finally:
                handler.release()

    def atoms(self, resp, req, environ, request_time):
        wanted, kinds = self._wanted, self._wanted_kinds
        if kinds:  # a header or environ atom: gunicorn's atoms, copying only the kinds the format uses
            if "e" not in kinds:  # no environ atom: gunicorn copies them all
                environ = {key: environ[key] for key in _ATOM_ENVIRON if key in environ}
            if "i" not in kinds:  # nor a request header atom
                req = _NO_HEADERS
            if "o" not in kinds:  # nor a response header atom
                resp = _Response(resp.status, getattr(resp, "sent", None))
            atoms = super().atoms(resp, req, environ, request_time)
            atoms = {key: atoms[key] for key in wanted if key in atoms}  # a missing one logs as "-"
        else:  # only gunicorn's letters: just those (building all of them was ~2% of the worker per append)
            atoms = {key: _LETTER_ATOMS[key](self, resp, environ, request_time) for key in wanted
                     if key in _LETTER_ATOMS}
        for key, value in atoms.items():
            if "authorization" in key:
                atoms[key] = "[REDACTED]"
            elif isinstance(value, str) and "=" in value:  # no "=", no `access_token=` to redact
                atoms[key] = redact(value)
        return atoms

    def _plan(self):
        """What a line uses, from `access_log_format` (or the JSON fields), worked out once per
        setup (a reload runs setup again): the atoms (gunicorn builds every header and environ
        variable; copying and redacting only these was most of the access log's cost per request
        in a reconnect storm), which kinds of ``{name}`` atoms appear (``e``, ``i``, ``o``), and
        the format with those keys lower-cased, as gunicorn's atoms are."""
        fmt = self.cfg.access_log_format
        if logs.json_enabled():
            self._wanted = ("m", "U", "q", "s", "B", "h")
        else:
            self._wanted = tuple(dict.fromkeys(k.lower() if k.startswith("{") else k
                                               for k in re.findall(r"%\(([^)]+)\)", fmt)))
        self._wanted_kinds = {k[-1] for k in self._wanted if k.startswith("{")}
        self._line = re.sub(r"%\((\{[^)]*\}\w)\)", lambda m: "%(" + m.group(1).lower() + ")", fmt)


# What gunicorn's own atoms read from the environ (the rest is one "{name}e" atom per variable).
_ATOM_ENVIRON = ("REMOTE_ADDR", "REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO", "QUERY_STRING",
                 "HTTP_REFERER", "HTTP_USER_AGENT", "HTTP_AUTHORIZATION")


_clf_second = [None, ""]  # [the last whole second formatted, its Apache Common Log Format time]


def _clf_now() -> str:
    """gunicorn's ``%(t)s`` (`Logger.now`), formatted once per second."""
    second = int(time.time())
    if second != _clf_second[0]:
        _clf_second[:] = second, time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
    return _clf_second[1]


def _status(resp):
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(resp):
    return getattr(resp, "sent", None)


# gunicorn's letter atoms (`Logger.atoms`), each computed alone: ``(logger, resp, environ, request_time)``.
_LETTER_ATOMS = {
    "h": lambda log, resp, env, rt: env.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, env, rt: "-",
    "u": lambda log, resp, env, rt: log._get_user(env) or "-",
    "t": lambda log, resp, env, rt: _clf_now(),
    "r": lambda log, resp, env, rt: f"{env['REQUEST_METHOD']} {env['RAW_URI']} {env['SERVER_PROTOCOL']}",
    "s": lambda log, resp, env, rt: _status(resp),
    "m": lambda log, resp, env, rt: env.get("REQUEST_METHOD"),
    "U": lambda log, resp, env, rt: env.get("PATH_INFO"),
    "q": lambda log, resp, env, rt: env.get("QUERY_STRING"),
    "H": lambda log, resp, env, rt: env.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, env, rt: _sent(resp) is not None and str(_sent(resp)) or "-",
    "B": lambda log, resp, env, rt: _sent(resp),
    "f": lambda log, resp, env, rt: env.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, env, rt: env.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, env, rt: rt.seconds,
    "D": lambda log, resp, env, rt: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda log, resp, env, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda log, resp, env, rt: "%d.%06d" % (rt.seconds, rt.microseconds),
    "p": lambda log, resp, env, rt: f"<{os.getpid()}>",
}


class _LineAtoms(dict):
    def __missing__(self, key):
        return "-"


class _Response:
    """What gunicorn's atoms read of a response, without its headers."""

    __slots__ = ("status", "sent", "headers")

    def __init__(self, status, sent):
        self.status, self.sent, self.headers = status, sent, ()


_NO_HEADERS = _Response(None, None)  # a request whose header atoms are not wanted


def _no_caller(stack_info=False, stacklevel=1):
    return "(unknown file)", 0, "(unknown function)", None


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _RedactFilter(logging.Filter):
    def filter(self, record):
        # The formatted message replaces msg and args either way, so the formatter does not
        # %-format the line a second time (an access line per request).
        record.msg, record.args = redact(record.getMessage()), None
        return True
