"""Keeping `access_token` values out of anything a node logs.

Owns: `redact`, the one rule for an ``access_token`` (or the Phoenix socket's
``token``) query parameter in a URL, a query string or a log line: its value becomes ``[REDACTED]``. The logs
(`starcite.telemetry.logs`) and the worker's access lines
(`starcite.api.server.access_log`) both call it. Must not: know about tokens
beyond their parameter name (reading and verifying them is
`starcite.api.auth.tokens`), or import the edge.
"""

import re

# Query parameters that carry a token: every route's `access_token`, the Phoenix socket's `token`.
TOKEN_PARAMS = ("access_token", "token")


def _name_pattern(name: str) -> str:
    """A regex for `name` with any of its characters percent-encoded."""
    return "".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in name)


# `access_token=<value>` as a query parameter: the name starts at a boundary
# (not inside `my_access_token`), may be percent-encoded (`access%5Ftoken`,
# which the web framework decodes to the same name), any case; the value runs
# to `&`, `#`, whitespace or a quote.
_ACCESS_TOKEN_RE = re.compile(r"(?<![\w.~%+-])(" + "|".join(_name_pattern(name) for name in TOKEN_PARAMS)
                              + r")=[^&#\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the value of every `access_token` or `token` query parameter in a URL,
    query string or log line (see `_ACCESS_TOKEN_RE`)."""
    return _ACCESS_TOKEN_RE.sub(r"\1=[REDACTED]", text) if text else text
