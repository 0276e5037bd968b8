#!/usr/bin/env python3
"""Container health probe: exit 0 when this node answers 200 on a health route.

Owns: one GET to ``http://127.0.0.1:$PORT<path>`` (path from argv, default
``/health/ready``) with a short timeout. Installed in the image as
``starcite-healthcheck`` and used by the Dockerfile HEALTHCHECK and every
compose healthcheck. Must not: import Starcite (it runs beside the node, in a
fresh interpreter every few seconds) or print anything but one short line on
failure.
"""

import os
import sys
import urllib.error
import urllib.request


def main(argv) -> int:
    path = argv[1] if len(argv) > 1 else "/health/ready"
    url = f"http://127.0.0.1:{os.environ.get('PORT', '4000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
