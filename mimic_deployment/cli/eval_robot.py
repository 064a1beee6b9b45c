"""`eval-robot --policy P [--dry-run | --check]`: run a policy on the real robot with lerobot-record.

Driven by env vars, as the per-policy eval.sh scripts always were (flags win):
MODEL_PATH (required), EVAL_DATASET (required, namespace/eval_<name>), NUM_EPISODES (10),
TASK, EPISODE_TIME_S (60), RESET_TIME_S (30), DEVICE, PUSH_TO_HUB (false), ROBOT_CONFIG.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from mimic_deployment.planning.settings import ROBOT
from mimic_deployment.util.settings import add_flags


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval-robot", help="evaluate a policy on the real robot (lerobot-record)",
                              description="Run a trained policy on the robot with lerobot-record and record "
                                          "the episodes as an eval_ dataset. Each setting: flag > env var > default.")
    p.add_argument("--policy", help="policy name (set by training_scripts/<policy>/eval.sh); "
                                    "checked against the checkpoint's type")
    add_flags(p, ROBOT.values())
    show = p.add_argument_group("show instead of running")
    show.add_argument("--dry-run", action="store_true", help="print the lerobot-record command, run nothing")
    show.add_argument("--check", action="store_true",
                      help="parse the command with LeRobot's own lerobot-record parser "
                           "(no robot needed; slow: imports LeRobot)")
    show.add_argument("--json", action="store_true", help="with --dry-run or --check: JSON")
    p.set_defaults(run=run)


def render(plan) -> str:
    from mimic_deployment.evaluation.robot import record_command

    m = plan.model
    origin = f"run {m.run}" if m.run else ("Hub" if not m.local else "local checkpoint")
    step = f", step {m.step}" if m.step is not None else ""
    lines = [f"eval-robot {plan.policy or '?'} on {plan.robot.type} ({plan.robot.id})",
             f"  model       {m.path} ({origin}{step}; MODEL_PATH from {plan.sources['model_path']})",
             f"  dataset     {plan.eval_dataset} -> {plan.dataset_root}",
             f"  robot       {plan.robot.path}",
             "  cameras     " + ", ".join(f"{c} -> observation.images.{k}" for c, k in plan.camera_keys.items())]
    lines += [f"  note        {n}" for n in plan.notes]
    lines += [f"  PROBLEM     {p}" for p in plan.problems]
    lines += ["  command:", "    " + record_command(plan.argv, indent="      ")]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mimic_deployment.evaluation import robot
    from mimic_deployment.util.errors import UserError
    from mimic_deployment.util.settings import flag_values

    if args.json and not (args.dry_run or args.check):
        raise UserError("--json needs --dry-run or --check")
    request = robot.EvalRequest(policy=args.policy, **flag_values(args, ROBOT))
    plan = robot.build(request)
    if args.check:
        parsed = robot.parse_with_lerobot(plan.argv[1:])
        if args.json:
            print(json.dumps({"plan": plan.to_dict(), "lerobot": parsed}, indent=2))
        else:
            pol = parsed["policy"] or {}
            print(f"lerobot-record's parser accepted the command: robot {parsed['robot']['type']} "
                  f"({parsed['robot']['id']}), policy {pol.get('type')} from {pol.get('pretrained_path')}, "
                  f"dataset {parsed['dataset']['repo_id']}, cameras {', '.join(parsed['recorded_cameras'])}")
            for problem in plan.problems:
                print(f"PROBLEM {problem}")
        return 0
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2) if args.json else render(plan))
        return 0
    if plan.problems:
        more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
        raise UserError(plan.problems[0] + more, hint="see --dry-run")
    sdk = robot.sdk_problem(plan.robot)
    if sdk:
        raise UserError(sdk)
    if not os.access(plan.argv[0], os.X_OK):
        raise UserError(f"{plan.argv[0]} not found", hint="install lerobot==0.4.4 (make env), or set LEROBOT_RECORD")
    print(render(plan), file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(plan.argv[0], plan.argv)
    return 0  # not reached
