"""`stop NAME | --all`: SIGTERM to the run's processes, SIGKILL after a timeout, no orphan left."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("stop", help="stop runs completely (queued ones are cancelled)")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true", help="every queued or running run")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.runs import stop
    from mimic_deployment.util.errors import UserError

    if args.all == bool(args.names):
        raise UserError("give run names or --all (not both)")
    names = stop.live_names() if args.all else args.names
    if not names:
        print("nothing to stop")
        return 0
    results = stop.stop_runs(names, args.timeout)
    for result in results:
        print(result.line())
    return 1 if any(r.survivors for r in results) else 0
