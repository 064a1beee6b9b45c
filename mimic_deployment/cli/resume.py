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
    import os

    from mimic_deployment.host import procs
    from mimic_deployment.runs import registry, tracking
    from mimic_deployment.util.errors import UserError
    from mimic_deployment.runs.launch import LaunchOptions, assign_gpus, run_foreground
    from mimic_deployment.host.gpus import read_gpus
    from mimic_deployment.planning.plan import RunPlan, resume_argv
    from mimic_deployment.util.values import parse_count
    from mimic_deployment.runs.registry import State
    from mimic_deployment.cli import train

    record = registry.read(args.name)
    if record is None:
        raise UserError(f"no run named {args.name!r}", hint="see `status --all`")
    record = tracking.refresh(record)
    plan = RunPlan.from_dict(record["plan"])
    if not State(record["state"]).ended:
        raise UserError(f"run {args.name!r} is {record['state']}", hint=f"stop it first: stop {args.name}")
    step = tracking.last_checkpoint_step(plan.output_dir)
    if step is None:
        raise UserError(f"run {args.name!r} has no checkpoint to resume from",
                        hint=f"the first is saved at step {plan.save_freq}; start it again with --tag")
    steps = parse_count(args.steps, "--steps", 1) if args.steps is not None else None
    target = steps or plan.steps
    if step >= target:
        raise UserError(f"run {args.name!r} is already at step {step} of {target}",
                        hint="give --steps N (N larger) to train further")
    if args.max_restarts is not None and args.max_restarts < 0:
        raise UserError("--max-restarts must be >= 0")
    options = LaunchOptions(wait=args.wait, foreground=args.foreground)
    slurm = record.get("launcher") == "slurm"  # a new job: its GPUs come from the allocation
    if slurm and args.foreground:
        raise UserError("--foreground runs here, not on Slurm", hint=f"follow the job with `logs {args.name} -f`")
    devices = None if slurm else assign_gpus([plan], options, read_gpus() if plan.device == "cuda" else [])[0]

    def reopen(r: dict) -> None:
        registry.open_attempt(r, "resume", resume_argv(plan, steps))
        r["launched_by"] = procs.identity(os.getpid())  # owner until the supervisor takes over
        r["plan"]["steps"] = target
        r["cuda_visible_devices"] = devices
        if args.max_restarts is not None:
            r["max_restarts"] = args.max_restarts

    record = registry.update(args.name, reopen)
    print(f"resuming {args.name} from step {step} to {target}")
    if args.foreground:
        return run_foreground([args.name], continue_on_failure=False)
    started = tracking.launcher_of(record).start([record], sequential=False, continue_on_failure=False)
    record = registry.update(args.name, lambda r: r.update(started[args.name]))
    train.print_launched([record])
    return 0
