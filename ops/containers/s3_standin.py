#!/usr/bin/env python3
"""The S3 stand-in's commands in its container (ops/containers/s3-standin.Containerfile).

    s3-standin serve | server [DIR]  moto's S3 server on 0.0.0.0:9000 (exec; in memory, no auth;
                                     `server /data` is MinIO's command, so compose files run unchanged)
    s3-standin ready                 exit 0 when it answers on 127.0.0.1:9000 (the HEALTHCHECK)
    s3-standin make-bucket URL NAME  create bucket NAME at URL (idempotent), retried for 60 s
    mc alias set ALIAS URL USER PASS / mc mb [--ignore-existing] ALIAS/BUCKET / mc ready local
                                     the three MinIO client commands the compose files use

Owns: those commands, with the standard library only (installed also as `mc`, so the MinIO
services of docker-compose.cluster.yml run with only their image replaced). Must not: import
Starcite, check credentials, or be used as a production object store (moto keeps nothing across
a restart).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

LOCAL = "http://127.0.0.1:9000"
ALIASES = "/tmp/mc-standin-aliases.json"


def _request(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def ready() -> int:
    try:
        return 0 if _request(LOCAL + "/") == 200 else 1
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1


def make_bucket(url, bucket) -> int:
    target, deadline = f"{url.rstrip('/')}/{bucket}", time.monotonic() + 60
    while True:
        try:
            if _request(target, "PUT") in (200, 409):
                print(f"bucket {bucket} at {url}")
                return 0
        except OSError as exc:
            if time.monotonic() >= deadline:
                print(f"{target}: {exc}", file=sys.stderr)
                return 1
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.5)


def mc(args) -> int:
    aliases = {}
    if os.path.exists(ALIASES):
        with open(ALIASES) as fh:
            aliases = json.load(fh)
    if args[:2] == ["alias", "set"] and len(args) >= 4:
        aliases[args[2]] = args[3]
        with open(ALIASES, "w") as fh:
            json.dump(aliases, fh)
        return 0
    if args[:1] == ["mb"]:
        alias, _, bucket = [a for a in args[1:] if not a.startswith("--")][0].partition("/")
        return make_bucket(aliases.get(alias, LOCAL), bucket)
    if args[:1] == ["ready"]:
        return ready()
    print(f"mc stand-in: unsupported: {' '.join(args)}", file=sys.stderr)
    return 2


def main(argv) -> int:
    if os.path.basename(argv[0]) == "mc":
        return mc(argv[1:])
    command = argv[1] if len(argv) > 1 else ""
    if command in ("serve", "server"):
        os.execv("/opt/moto/bin/moto_server", ["moto_server", "-H", "0.0.0.0", "-p", "9000"])
    if command == "ready":
        return ready()
    if command == "make-bucket" and len(argv) == 4:
        return make_bucket(argv[2], argv[3])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
