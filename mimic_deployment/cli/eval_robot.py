"""`eval-robot --policy P [--dry-run | --check]`: run a policy on the real robot (lerobot-rollout / lerobot-record).

Driven by env vars, as the per-policy eval.sh scripts always were (flags win):
MODEL_PATH (required), EVAL_DATASET (required: namespace/rollout_<name> on LeRobot 0.6,
namespace/eval_<name> on 0.4), NUM_EPISODES (10), TASK, EPISODE_TIME_S (60), RESET_TIME_S (30),
DEVICE, PUSH_TO_HUB (false), ROBOT_CONFIG. Which LeRobot: the env of LEROBOT_TRAIN (else the
toolkit's), or the command LEROBOT_ROLLOUT / LEROBOT_RECORD names.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from mimic_deployment.planning.settings import ROBOT
from mimic_deployment.util.settings import add_flags


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval-robot", help="evaluate a policy on the real robot (lerobot-rollout/-record)",
                              description="Run a trained policy on the robot and record the episodes as a dataset: "
                                          "lerobot-rollout --strategy.type=episodic on LeRobot 0.6 (dataset "
                                          "rollout_<name>), lerobot-record on 0.4 (eval_<name>); the LeRobot of "
                                          "LEROBOT_TRAIN's env, else the toolkit's (LEROBOT_ROLLOUT / LEROBOT_RECORD "
                                          "name the command itself). Each setting: flag > env var > default.")
    p.add_argument("--policy", help="policy name (set by training_scripts/<policy>/eval.sh); "
                                    "checked against the checkpoint's type")
    add_flags(p, ROBOT.values())
    show = p.add_argument_group("show instead of running")
    show.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    show.add_argument("--check", action="store_true",
                      help="parse the command with the parser of the LeRobot that runs it, in its own env "
                           "(no robot needed; slow: imports LeRobot)")
    show.add_argument("--json", action="store_true", help="with --dry-run or --check: JSON")
    p.set_defaults(run=run)


def render(plan) -> str:
    from mimic_deployment.evaluation.robot import record_command

    m = plan.model
    origin = f"run {m.run}" if m.run else ("Hub" if not m.local else "local checkpoint")
    step = f", step {m.step}" if m.step is not None else ""
    lines = [f"eval-robot {plan.policy or '?'} on {plan.robot.type} ({plan.robot.id})",
             f"  engine      {plan.engine.describe()}",
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
        from mimic_deployment.evaluation.robot_check import parse_with_lerobot

        parsed = parse_with_lerobot(plan.engine, plan.argv[1:])
        if args.json:
            print(json.dumps({"plan": plan.to_dict(), "lerobot": parsed}, indent=2))
        else:
            pol = parsed["policy"] or {}
            print(f"{plan.engine.command}'s parser (LeRobot {plan.engine.engine.version}) accepted the command: "
                  f"robot {parsed['robot']['type']} ({parsed['robot']['id']}), policy {pol.get('type')} from "
                  f"{pol.get('pretrained_path')}, dataset {parsed['dataset']['repo_id']}, "
                  f"cameras {', '.join(parsed['recorded_cameras'])}")
            for problem in plan.problems:
                print(f"PROBLEM {problem}")
        return 0
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2) if args.json else render(plan))
        return 0
    if plan.problems:
        more = f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""
        raise UserError(plan.problems[0] + more, hint="see --dry-run")
    sdk = robot.sdk_problem(plan.robot, plan.engine.engine)
    if sdk:
        raise UserError(sdk)
    if not os.access(plan.argv[0], os.X_OK):
        raise UserError(f"{plan.argv[0]} not found", hint=plan.engine.install_hint())
    print(render(plan), file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(plan.argv[0], plan.argv)
    return 0  # not reached
