"""Command line: ``python -m bench run [--quick] [--only KEY,...] [--procs N]``."""

import argparse
import os
import sys

from bench import runner


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start everything on loopback, measure, stop, print and save results")
    run.add_argument("--quick", action="store_true", help="small counts: finishes in under 3 minutes (CI smoke)")
    run.add_argument("--only", default="", help="comma-separated substrings of workload:system keys "
                     f"(e.g. append:redis,replay); keys: {', '.join(s.key for s in runner.SPECS)}")
    run.add_argument("--procs", type=int, default=min(2, os.cpu_count() or 1),
                     help="load generator processes (default: one per core, at most 2)")
    run.add_argument("--ops", type=int, default=None, help="override the timed operations per point")
    run.add_argument("--out", default=runner.RESULTS_DIR, help="directory of the JSON results")
    args = parser.parse_args(argv)
    only = [part.strip() for part in args.only.split(",") if part.strip()]
    return runner.run(args.quick, only, max(1, args.procs), args.out, args.ops)


if __name__ == "__main__":
    sys.exit(main())
