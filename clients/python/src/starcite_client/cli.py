"""`starcite-cli`: the SDK on the command line (tail over a WebSocket or SSE, append, sessions
ls|get|create|patch|archive|unarchive|delete).

Owns: argument parsing (``--url``/``--token``, or STARCITE_URL/STARCITE_TOKEN),
output (JSON lines when stdout is not a terminal or with ``--json``; one
readable line per item on a terminal), and exit codes scripts can test
(`EXIT_CODES`). Must not: talk HTTP itself (the `Starcite` client does), or
share a name with the server's own `starcite serve|ops` command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any, Callable, Iterable, Sequence

from starcite_client._core import TRANSPORTS, UNSET
from starcite_client.client import Starcite
from starcite_client.errors import (BadRequest, Backpressure, Conflict, ConnectionFailed, Forbidden, NotFound,
                                    PayloadTooLarge, StarciteError, Unauthorized, Unavailable)

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
# The first matching class decides the exit code of an error.
EXIT_CODES: list[tuple[type[StarciteError], int]] = [
    (NotFound, 3), (Unauthorized, 4), (Forbidden, 4), (Conflict, 5), (BadRequest, 6), (PayloadTooLarge, 6),
    (Unavailable, 7), (Backpressure, 7), (ConnectionFailed, 7),
]
EXIT_INTERRUPTED = 130
ARCHIVED_CHOICES = {"false": False, "true": True, "all": "all"}  # --archived -> list_sessions(archived=)


def exit_code_for(error: StarciteError) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(error, cls)), EXIT_ERROR)


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starcite-cli", description="Starcite sessions from the command line.")
    parser.add_argument("--url", default=os.environ.get("STARCITE_URL", "http://127.0.0.1:4000"),
                        help="service URL (default: $STARCITE_URL or http://127.0.0.1:4000)")
    parser.add_argument("--token", default=os.environ.get("STARCITE_TOKEN"), help="bearer token ($STARCITE_TOKEN)")
    parser.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    commands = parser.add_subparsers(dest="command", required=True)

    tail = commands.add_parser("tail", help="print a session's events")
    tail.add_argument("session")
    tail.add_argument("--cursor", type=int, default=0, help="print events after this seq (default 0)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new events (reconnects)")
    tail.add_argument("--batch-size", type=int, default=100, help="events per WebSocket frame or page (default 100)")
    tail.add_argument("--transport", choices=TRANSPORTS, default="websocket",
                      help="of --follow: websocket (default) or sse (Server-Sent Events); without it pages are read")

    append = commands.add_parser("append", help="append one event")
    append.add_argument("session")
    append.add_argument("--type", required=True)
    append.add_argument("--payload", type=json_arg, required=True, help="a JSON object")
    append.add_argument("--producer", help="producer_id (default: a new one); a named producer resumes its "
                                           "sequence unless --producer-seq is given")
    append.add_argument("--producer-seq", type=int)
    for name in ("actor", "source", "idempotency-key"):
        append.add_argument(f"--{name}")
    append.add_argument("--metadata", type=json_arg)
    append.add_argument("--refs", type=json_arg)
    append.add_argument("--expected-seq", type=int)

    sessions = commands.add_parser("sessions", help="ls | get | create | patch | archive | unarchive | delete"
                                   ).add_subparsers(dest="action", required=True)
    ls = sessions.add_parser("ls", help="every session (all pages)")
    ls.add_argument("--metadata", "-m", type=key_value, action="append", default=[], help="KEY=VALUE filter")
    ls.add_argument("--page-size", type=int, default=100)
    ls.add_argument("--archived", choices=ARCHIVED_CHOICES, default="false",
                    help="false: active sessions (default); true: archived ones; all: both")
    get = sessions.add_parser("get")
    get.add_argument("session")
    create = sessions.add_parser("create")
    create.add_argument("--id")
    create.add_argument("--title")
    create.add_argument("--metadata", type=json_arg, help="a JSON object")
    create.add_argument("--ttl", type=duration, help="expire (and be deleted) this long after creation: "
                                                      "seconds, or e.g. 90m, 12h, 30d")
    create.add_argument("--expires-at", help="expire at this RFC 3339 time (with --ttl: the earlier)")
    patch = sessions.add_parser("patch", help="change the title and/or merge metadata (version +1)")
    patch.add_argument("session")
    title = patch.add_mutually_exclusive_group()
    title.add_argument("--title")
    title.add_argument("--clear-title", action="store_true", help="set the title to null")
    patch.add_argument("--metadata", type=json_arg, help="a JSON object, merged shallowly into the session's")
    patch.add_argument("--expected-version", type=int, help="refuse (exit 5) unless the session is at this version")
    for action in ("archive", "unarchive"):
        sessions.add_parser(action, help=f"{action} a session").add_argument("session")
    delete = sessions.add_parser("delete", help="delete a session and all its events")
    delete.add_argument("session")
    return parser


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> int:
    """``"3600"``, ``"90m"``, ``"12h"``, ``"30d"`` -> whole seconds (at least 1)."""
    text = text.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text[-1:].isalpha() else 1
    digits = text[:-1] if text[-1:].isalpha() else text
    if unit is None or not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError("expected whole seconds or e.g. 90m, 12h, 30d")
    return int(digits) * unit


# -- output ------------------------------------------------------------------------------------

def event_line(event: dict) -> str:
    producer = f"{event['producer_id']}/{event['producer_seq']}"
    actor = f" actor={event['actor']}" if event.get("actor") else ""
    payload = json.dumps(event["payload"], ensure_ascii=False, separators=(",", ":"))
    return f"#{event['seq']} {event['inserted_at']} {event['type']} {producer}{actor} {payload}"


def session_line(record: dict) -> str:
    metadata = json.dumps(record.get("metadata") or {}, ensure_ascii=False, separators=(",", ":"))
    archived = " archived" if record.get("archived") else ""
    return (f"{record['id']} last_seq={record['last_seq']} version={record.get('version', 1)}{archived} "
            f"title={record.get('title')!r} {metadata}")


def append_line(result: dict) -> str:
    return (f"seq={result['seq']} last_seq={result['last_seq']} deduped={str(result['deduped']).lower()} "
            f"producer={result['producer_id']}/{result['producer_seq']}")


class Printer:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def items(self, items: Iterable[dict], readable: Callable[[dict], str]) -> None:
        for item in items:
            text = json.dumps(item, ensure_ascii=False, separators=(",", ":")) if self.as_json else readable(item)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


# -- commands ----------------------------------------------------------------------------------

def run_tail(client: Starcite, args: argparse.Namespace, out: Printer) -> None:
    session = client.session(args.session)
    if args.follow:
        client.get_session(args.session)  # a typo'd id fails at once, not after retries
    out.items(session.tail(cursor=args.cursor, batch_size=args.batch_size, follow=args.follow,
                           transport=args.transport), event_line)


def run_append(client: Starcite, args: argparse.Namespace, out: Printer) -> None:
    if not isinstance(args.payload, dict):
        raise SystemExit(_usage("--payload must be a JSON object"))
    producer_id = args.producer or f"cli-{uuid.uuid4().hex[:12]}"
    resume = args.producer is not None and args.producer_seq is None
    producer = client.session(args.session).producer(producer_id, args.producer_seq or 1, resume=resume)
    fields = {name: getattr(args, name) for name in ("actor", "source", "metadata", "refs", "idempotency_key",
                                                     "expected_seq") if getattr(args, name) is not None}
    result = producer.append(args.type, args.payload, **fields)
    out.items([result.__dict__], append_line)


def run_sessions(client: Starcite, args: argparse.Namespace, out: Printer) -> None:
    if args.action == "ls":
        records = (s.data for s in client.list_sessions(metadata=dict(args.metadata), page_size=args.page_size,
                                                        archived=ARCHIVED_CHOICES[args.archived]))
    elif args.action == "get":
        records = iter([client.get_session(args.session).data])
    elif args.action == "create":
        records = iter([client.create_session(args.id, args.title, args.metadata, args.ttl, args.expires_at).data])
    elif args.action == "delete":
        out.items([client.delete_session(args.session)], lambda result: f"{result['id']} deleted")
        return
    elif args.action == "patch":
        if args.metadata is not None and not isinstance(args.metadata, dict):
            raise SystemExit(_usage("--metadata must be a JSON object"))
        title = None if args.clear_title else (UNSET if args.title is None else args.title)
        records = iter([client.session(args.session).update(title, args.metadata, args.expected_version).data])
    else:  # archive | unarchive
        records = iter([getattr(client.session(args.session), args.action)().data])
    out.items(records, session_line)


COMMANDS = {"tail": run_tail, "append": run_append, "sessions": run_sessions}


def _usage(message: str) -> int:
    sys.stderr.write(f"starcite-cli: {message}\n")
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Printer(args.json or not sys.stdout.isatty())
    try:
        with Starcite(args.url, token=args.token) as client:
            COMMANDS[args.command](client, args, out)
    except StarciteError as exc:
        sys.stderr.write(f"starcite-cli: {exc}\n")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `starcite-cli tail s | head`: the reader left; nothing more to flush there
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
