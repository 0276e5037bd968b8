"""A fast request-header reader for gevent's pywsgi handler.

Owns: reading the header block of one HTTP/1.1 request from the connection
and presenting it with the small interface pywsgi and gunicorn use
(`status`, `get`, `getheader`, `__delitem__`, `headers`, `typeheader`,
`items`). pywsgi's default goes through `email.parser`, which was 15% of the
CPU of an append; this is a plain loop over lines with the same limits
(65,536-byte lines, 100 headers). Must not: interpret headers beyond that.
"""

MAX_LINE = 65536
MAX_HEADERS = 100
LINE_TOO_LONG, TOO_MANY_HEADERS = "Line too long", "Too many headers"
HEADERS_TOO_LARGE = (LINE_TOO_LONG, TOO_MANY_HEADERS)


class RequestHeaders:
    __slots__ = ("pairs", "status")

    def __init__(self, pairs=None, status=""):
        self.pairs = pairs or []
        self.status = status

    def get(self, name, default=None):
        name = name.lower()
        for key, value in self.pairs:
            if key.lower() == name:
                return value
        return default

    getheader = get

    def __contains__(self, name):
        return self.get(name) is not None

    def __delitem__(self, name):
        name = name.lower()
        self.pairs = [(k, v) for k, v in self.pairs if k.lower() != name]

    def items(self):
        return list(self.pairs)

    @property
    def headers(self):
        return [f"{key}: {value}\r\n" for key, value in self.pairs]

    @property
    def typeheader(self):
        return self.get("content-type")


def read_headers(fp, *_args) -> RequestHeaders:
    """Read header lines up to the blank line. Folded lines join the previous value."""
    pairs = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            return RequestHeaders(status=LINE_TOO_LONG)
        if line in (b"\r\n", b"\n", b""):
            return RequestHeaders(pairs)
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and pairs:
            key, value = pairs[-1]
            pairs[-1] = (key, value + " " + text.strip())
            continue
        key, sep, value = text.partition(":")
        if not sep or not key or key != key.strip():
            return RequestHeaders(status=f"Invalid header line {text[:40]!r}")
        pairs.append((key, value.strip()))
        if len(pairs) > MAX_HEADERS:
            return RequestHeaders(status=TOO_MANY_HEADERS)
