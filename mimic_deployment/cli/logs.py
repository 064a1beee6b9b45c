"""`logs NAME [-f] [-n N]`: the run's log; -f follows it until the run ends."""
from __future__ import annotations

import argparse
import os
import sys
import time


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("logs", help="show or follow a run's log")
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("-n", "--lines", type=int, default=40, help="how many last lines (default 40)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.logs.tail import tail_lines
    from mimic_deployment.runs import registry
    from mimic_deployment.util.errors import UserError

    log = registry.require(args.name).plan["log_file"]
    if args.lines < 0:
        raise UserError(f"-n {args.lines}: must be >= 0")
    if os.path.exists(log):
        for line in tail_lines(log, args.lines):
            print(line)
    if args.follow:
        return _follow(args.name, log)
    return 0


def _run_ended(name: str) -> bool:
    from mimic_deployment.runs import registry, tracking

    record = registry.read(name)
    return record is None or tracking.refresh(record).state.ended


def _follow(name: str, log: str) -> int:
    offset = os.path.getsize(log) if os.path.exists(log) else 0
    quiet_since = None
    while True:
        chunk = b""
        if os.path.exists(log):
            with open(log, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(1 << 20)
        if chunk:
            offset += len(chunk)
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            quiet_since = None
            continue
        if _run_ended(name):  # drain once more after the end, then stop
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 1.0:
                return 0
        time.sleep(0.5)
