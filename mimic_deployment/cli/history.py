"""`history`: every run ever recorded here, with its attempts and how each ended."""
from __future__ import annotations

import argparse
import time


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("history", help="all past runs: attempts, duration, exit code, reason")
    p.add_argument("--json", action="store_true")
    p.add_argument("--policy", help="only this policy")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.runs.view import collect_rows, fmt_duration, step_text
    from mimic_deployment.util.table import table

    rows = collect_rows()[0]
    rows = sorted((r for r in rows if not args.policy or r["policy"] == args.policy),
                  key=lambda r: r["created_at"] or 0)
    if args.json:
        from mimic_deployment.cli.status import to_json

        print(to_json(rows))
        return 0
    if not rows:
        print("no runs yet")
        return 0
    print(table(
        ("NAME", "STATE", "STEP", "ATTEMPTS", "STARTED", "DURATION", "EXIT", "NOTE"),
        [(r["name"], r["state"], step_text(r), r["attempts"],
          time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"])) if r["started_at"] else "-",
          fmt_duration((r["ended_at"] or time.time()) - r["started_at"]) if r["started_at"] else "-",
          "-" if r["exit_code"] is None else r["exit_code"], r["reason"] or r["wandb_url"] or "")
         for r in rows],
        right=(2, 3, 5, 6),
    ))
    return 0
