"""`StarciteError`: the one error type, carrying an HTTP status, an error code and a message.

Owns: the error shape every layer raises (session rules, auth, Raft
unavailability, archive reads, request parsing); the edge renders it as
``{"error": code, "message": message}`` plus the fields of ``extra`` (a
machine-readable detail, e.g. ``expected_producer_seq``). Must not: import anything of the
project, so the pure rules module can use it.
"""


class StarciteError(Exception):
    def __init__(self, status: int, code: str, message: str, headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}  # more body fields; never "error" or "message"

    def __repr__(self):
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"
