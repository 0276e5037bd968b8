#!/usr/bin/env python3
"""The S3 stand-in's entry point in its container (ops/containers/s3-standin.Containerfile).

    s3-standin serve                 moto's S3 server on 0.0.0.0:9000 (exec; in-memory, no auth)
    s3-standin ready                 exit 0 when it answers on 127.0.0.1:9000 (the HEALTHCHECK)
    s3-standin make-bucket URL NAME  create bucket NAME at URL (idempotent), retried for 60 s

Owns: those three commands, with the standard library only. Must not: import Starcite, or be used
as a production object store (moto keeps nothing across a restart).
"""

import os
import sys
import time
import urllib.error
import urllib.request


def _request(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def main(argv) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "serve":
        os.execv("/opt/moto/bin/moto_server", ["moto_server", "-H", "0.0.0.0", "-p", "9000"])
    if command == "ready":
        try:
            return 0 if _request("http://127.0.0.1:9000/") == 200 else 1
        except OSError as exc:
            print(exc, file=sys.stderr)
            return 1
    if command == "make-bucket" and len(argv) == 4:
        url = f"{argv[2].rstrip('/')}/{argv[3]}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(url, "PUT") in (200, 409):
                    print(f"bucket {argv[3]} at {argv[2]}")
                    return 0
            except OSError as exc:
                if time.monotonic() >= deadline:
                    print(f"{url}: {exc}", file=sys.stderr)
                    return 1
            if time.monotonic() >= deadline:
                return 1
            time.sleep(0.5)
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
