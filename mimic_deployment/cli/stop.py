"""`stop NAME | --all`: SIGTERM to the run's processes, SIGKILL after a timeout, no orphan left.

Also of an ended run, or of one whose record is corrupt: whatever carries the run's marker."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("stop", help="stop runs completely (queued ones are cancelled)")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true",
                   help="every queued or running run (and any ended or corrupt one that left a process behind)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.runs import stop
    from mimic_deployment.util.errors import UserError

    if args.all == bool(args.names):
        raise UserError("give run names or --all (not both)")
    if not args.timeout >= 0:  # also NaN
        raise UserError(f"--timeout must be 0 or more seconds, got {args.timeout}")
    names = stop.live_names() if args.all else args.names
    if not names:
        print("nothing to stop")
        return 0
    results = stop.stop_runs(names, args.timeout)
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1
