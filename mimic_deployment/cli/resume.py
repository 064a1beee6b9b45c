"""`resume NAME [--steps N]`: continue a run from its last checkpoint (LeRobot's own resume)."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("resume", help="continue a stopped, failed or lost run from its last checkpoint")
    p.add_argument("name")
    p.add_argument("--steps", help="train up to this step (also to extend a finished run)")
    p.add_argument("--max-restarts", type=int, default=None, help="resume automatically after a crash, N times")
    p.add_argument("--foreground", action="store_true", help="stay attached until it ends")
    p.add_argument("--wait", action="store_true", help="wait for busy GPUs instead of refusing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.cli import train
    from mimic_deployment.runs import resume
    from mimic_deployment.runs.launch import run_foreground
    from mimic_deployment.util.values import parse_count

    steps = parse_count(args.steps, "--steps", 1) if args.steps is not None else None
    reopened = resume.reopen(resume.ResumeRequest(args.name, steps=steps, max_restarts=args.max_restarts,
                                                  foreground=args.foreground, wait=args.wait))
    print(f"resuming {args.name} from step {reopened.from_step} to {reopened.to_step}")
    if args.foreground:
        return run_foreground([args.name], continue_on_failure=False)
    train.print_launched([resume.start(reopened.record)])
    return 0
