"""`forget NAME [--purge]`: move an ended run aside (record, checkpoints, log) so that its name is free again."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("forget", help="move an ended run aside so that its name (and Hub repo id) is free")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--purge", action="store_true",
                   help="delete its checkpoints and log instead of keeping them aside (the record is kept)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.runs import forget

    for name in args.names:
        done = forget.forget(name, purge=args.purge)
        print(f"forgot {done.name} ({done.state}); the name is free. Moved to {done.folder}:")
        for what, src, dst in done.moved:
            print(f"  {what}: {src} -> {dst}")
        for what, path in done.deleted:
            print(f"  {what}: {path} deleted (--purge)")
    return 0
